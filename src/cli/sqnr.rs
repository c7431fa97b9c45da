//! `mnq-gpu sqnr`: per-layer SQNR of each scheme's int8 pipeline against its float model, accumulated and
//! local ([`mnq_gpu::study::sqnr`]), as a table and as a chart like the study's (layer on x, SQNR on y, one line
//! per scheme).

use super::{charts, print_json, ListArgs, ModelArgs, Stderr};
use anyhow::Result;
use clap::Args;
use mnq_gpu::study::sqnr::{measure, Report};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(mut_arg("list", |arg| {
    arg.help("Labelled list whose first --images images are measured. Default: ../shared/imagenet/val1300/evaluation.txt")
}))]
pub struct SqnrArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    list: ListArgs,
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

pub fn run(args: SqnrArgs) -> Result<ExitCode> {
    let loaded = args.model.load()?;
    let list = args.list.read(&loaded.float, Some(args.images as usize))?;
    let quantized = args.model.quantized_models(&loaded)?;
    let report = measure(&loaded.float, &quantized, &list, &Stderr)?;
    if !args.no_plot {
        for path in charts::sqnr(&report, &args.out)? {
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
