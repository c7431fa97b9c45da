//! `mnq-gpu inspect`: weight ranges before and after folding BatchNorm, dead BatchNorm channels, and the
//! per-channel range chart of one layer. Needs no inference, so it also works on an incomplete model.

use super::{charts, model_dir, print_json};
use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::analysis::{self, LayerAnalysis};
use mnq_gpu::model::tfjs::TfjsModel;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InspectArgs {
    /// TF.js MobileNetV1 folder (model.json + shards); missing shards are reported, not fatal.
    /// Default: ../shared/models/mobilenet_v1_0.75_224
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Layer whose per-channel weight ranges are charted (folded and unfolded).
    #[arg(long, value_name = "NAME", default_value = "conv_dw_1")]
    layer: String,
    /// Folder the charts are written to (`<layer>_folded.{png,svg}`, `<layer>_unfolded.{png,svg}`).
    #[arg(long, value_name = "DIR", default_value = "plots")]
    out: PathBuf,
    /// Write no charts.
    #[arg(long)]
    no_plot: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// List the zero-variance BatchNorm channels of each layer.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    zero_variance_threshold: f32,
    layers: Vec<LayerAnalysis>,
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let dir = model_dir(args.model.as_deref())?;
    let model = TfjsModel::open(&dir)?;
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    let report =
        Report { model: name, zero_variance_threshold: analysis::ZERO_VARIANCE, layers: analysis::analyse(&model) };

    if args.json {
        print_json(&report)?;
    } else {
        print_table(&report, args.verbose);
    }
    if !args.no_plot {
        let channels = analysis::layer_channels(&model, &args.layer)
            .with_context(|| format!("cannot chart layer {} (pass --layer NAME or --no-plot)", args.layer))?;
        for path in charts::layer_ranges(&channels, &args.layer, &args.out)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(report: &Report, verbose: bool) {
    println!(
        "{}: kernel ranges before and after folding BatchNorm; ratio = folded range / median channel's folded range",
        report.model
    );
    println!(
        "{:<12} {:>5} {:>19} {:>19} {:>7} {:>5} {:>21}",
        "layer", "ch", "kernel min..max", "folded min..max", "ratio", "dead", "widest ch (scale)"
    );
    let range = |r: Option<mnq_gpu::quant::Range>| r.map_or("-".to_string(), |r| format!("{:.3}..{:.3}", r.min, r.max));
    for row in &report.layers {
        let dead = row.zero_variance_channels.as_ref().map_or("-".to_string(), |d| d.len().to_string());
        let channels = row.channels.map_or("-".to_string(), |c| c.to_string());
        if row.kernel.is_none() {
            println!(
                "{:<12} {:>5} {:>19} {:>19} {:>7} {:>5} {:>21}",
                row.layer, channels, "missing", "-", "-", dead, "-"
            );
        } else {
            let ratio = row.range_ratio.map_or("-".to_string(), |r| format!("{r:.1}"));
            let widest = row
                .widest_channel
                .as_ref()
                .map_or("-".to_string(), |w| format!("{} (×{:.2})", w.channel, w.fold_scale));
            println!(
                "{:<12} {:>5} {:>19} {:>19} {:>7} {:>5} {:>21}",
                row.layer,
                channels,
                range(row.kernel),
                range(row.folded),
                ratio,
                dead,
                widest
            );
        }
        if verbose {
            if let Some(dead) = row.zero_variance_channels.as_ref().filter(|d| !d.is_empty()) {
                println!("{:<12} zero-variance channels: {dead:?}", "");
            }
        }
        for missing in &row.missing {
            println!("{:<12} missing: {missing}", "");
        }
    }
}
