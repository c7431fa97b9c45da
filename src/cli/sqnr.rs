//! `mnq-gpu sqnr`: per-layer SQNR of each scheme's int8 pipeline against its float model, accumulated and
//! local, as a table and as a chart like the study's (layer on x, SQNR on y, one line per scheme).
//! Computed with the CPU integer reference, which the GPU matches bit for bit.

use super::{default_evaluation_list, load_images, print_json, ModelArgs};
use anyhow::Result;
use clap::Args;
use mnq_gpu::labels::read_list;
use mnq_gpu::plot::{self, Series};
use mnq_gpu::sqnr::{model_sqnr, LayerSqnr};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct SqnrArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled list whose first --images images are measured. Default: ../shared/imagenet/val1300/evaluation.txt
    #[arg(long, value_name = "LIST")]
    list: Option<PathBuf>,
    /// Number of images to average over.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    images: u32,
    /// Folder for the charts `sqnr_accumulated.{png,svg}` and `sqnr_local.{png,svg}`.
    #[arg(long, value_name = "DIR", default_value = "plots")]
    out: PathBuf,
    /// Write no charts.
    #[arg(long)]
    no_plot: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
pub struct SchemeSqnr {
    pub scheme: String,
    pub layers: Vec<LayerSqnr>,
}

#[derive(Serialize)]
pub struct Report {
    pub model: String,
    pub images: usize,
    pub schemes: Vec<SchemeSqnr>,
}

pub fn run(args: SqnrArgs) -> Result<ExitCode> {
    let report = measure(&args.model, args.list.as_deref(), args.images as usize)?;
    if !args.no_plot {
        for path in write_charts(&report, &args.out)? {
            eprintln!("wrote {}", path.display());
        }
    }
    if args.json {
        print_json(&report)?;
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Per-layer SQNR of every scheme, averaged over the first `count` images of `list` (default: evaluation list).
pub fn measure(model_args: &ModelArgs, list: Option<&Path>, count: usize) -> Result<Report> {
    let loaded = model_args.load()?;
    let float = &loaded.float;
    let list = match list {
        Some(list) => list.to_path_buf(),
        None => default_evaluation_list()?,
    };
    let mut images = read_list(&list, float.imagenet_classes())?;
    images.truncate(count);
    let quantized = model_args.quantized_models(&loaded)?;
    let paths: Vec<&Path> = images.iter().map(|i| i.path.as_path()).collect();
    let inputs = load_images(&paths, float, "decoding")?;
    let schemes: Vec<SchemeSqnr> = quantized
        .iter()
        .map(|q| SchemeSqnr { scheme: q.label(), layers: model_sqnr(&q.float, &q.model, &inputs) })
        .collect();
    Ok(Report { model: float.name.clone(), images: inputs.len(), schemes })
}

/// The accumulated and local SQNR charts, PNG and SVG; returns the files written.
pub fn write_charts(report: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    std::fs::create_dir_all(out).map_err(|e| mnq_gpu::Error::io(out, e))?;
    let layers: Vec<String> = report.schemes[0].layers.iter().map(|l| l.layer.clone()).collect();
    type Value = fn(&LayerSqnr) -> f64;
    let charts: [(&str, &str, Value); 2] = [
        ("accumulated", "end to end", |l| l.accumulated_db),
        ("local", "each layer fed the quantized float input", |l| l.local_db),
    ];
    for (kind, description, value) in charts {
        let series: Vec<Series> = report
            .schemes
            .iter()
            .map(|s| Series { name: s.scheme.clone(), values: s.layers.iter().map(value).collect() })
            .collect();
        let title = format!("{}: {kind} SQNR ({description}), {} images", report.model, report.images);
        written.extend(plot::line_chart(&out.join(format!("sqnr_{kind}")), &title, &layers, "SQNR (dB)", &series)?);
    }
    Ok(written)
}

fn print_table(report: &Report) {
    println!("{}: SQNR in dB (accumulated / local), mean over {} images", report.model, report.images);
    let mut header = format!("{:<28}", "layer");
    for s in &report.schemes {
        header += &format!(" {:>20}", s.scheme);
    }
    println!("{header}");
    for (i, layer) in report.schemes[0].layers.iter().enumerate() {
        let mut line = format!("{:<28}", layer.layer);
        for s in &report.schemes {
            line += &format!(" {:>9.2} / {:>8.2}", s.layers[i].accumulated_db, s.layers[i].local_db);
        }
        println!("{line}");
    }
}
