//! `mnq-gpu sqnr`: per-layer SQNR of the int8 pipeline against float, accumulated and local.

use super::{default_evaluation_list, load_images, print_json, ModelArgs};
use anyhow::Result;
use clap::Args;
use mnq_gpu::labels::read_list;
use mnq_gpu::quant::sqnr::model_sqnr;
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
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    scheme: String,
    images: usize,
    layers: Vec<mnq_gpu::quant::sqnr::LayerSqnr>,
}

pub fn run(args: SqnrArgs) -> Result<ExitCode> {
    let float = args.model.float_model()?;
    let list = match &args.list {
        Some(list) => list.clone(),
        None => default_evaluation_list()?,
    };
    let mut images = read_list(&list, float.classes())?;
    images.truncate(args.images as usize);
    let quantized = args.model.quant_model(&float)?;
    let paths: Vec<&Path> = images.iter().map(|i| i.path.as_path()).collect();
    let inputs = load_images(&paths, &float, "decoding")?;
    let layers = model_sqnr(&float, &quantized, &inputs);
    let report = Report { model: float.name, scheme: quantized.scheme, images: inputs.len(), layers };
    if args.json {
        print_json(&report)?;
    } else {
        println!("{} int8 {} vs float, SQNR in dB averaged over {} images", report.model, report.scheme, report.images);
        println!("{:<26} {:>12} {:>10}", "layer", "accumulated", "local");
        for layer in &report.layers {
            println!("{:<26} {:>12.2} {:>10.2}", layer.layer, layer.accumulated_db, layer.local_db);
        }
    }
    Ok(ExitCode::SUCCESS)
}
