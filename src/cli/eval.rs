//! `mnq-gpu eval`: top-1/top-5 of the float and int8 pipelines over a labelled list.

use super::{default_evaluation_list, load_images, print_json, progress_bar, Device, ModelArgs};
use anyhow::Result;
use clap::Args;
use mnq_gpu::cpu_ref;
use mnq_gpu::labels::{read_list, top_k};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Images decoded and evaluated together: bounds memory (a 224×224 float image is 600 KB).
const CHUNK: usize = 48;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled list (`FILE CLASS` lines). Default: ../shared/imagenet/val1300/evaluation.txt
    #[arg(long, value_name = "LIST")]
    list: Option<PathBuf>,
    /// Evaluate only the first N images of the list.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Where the int8 pipeline runs.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct Accuracy {
    top1_percent: f64,
    top5_percent: f64,
    /// Wall time of this pipeline's forward passes over all images (decoding excluded).
    wall_s: f64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    scheme: String,
    list: PathBuf,
    images: usize,
    threads: usize,
    float: Accuracy,
    int8: Accuracy,
}

/// (top-1 hit, top-5 hit) of logits for `class`.
fn hits(logits: &[f32], class: usize) -> (usize, usize) {
    let top = top_k(logits, 5);
    (usize::from(top[0] == class), usize::from(top.contains(&class)))
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let float = args.model.float_model()?;
    let list = match &args.list {
        Some(list) => list.clone(),
        None => default_evaluation_list()?,
    };
    let mut images = read_list(&list, float.classes())?;
    images.truncate(args.limit.unwrap_or(usize::MAX));
    let quantized = args.model.quant_model(&float)?;

    let (mut float_hits, mut int8_hits) = ((0, 0), (0, 0));
    let (mut float_time, mut int8_time) = (Duration::ZERO, Duration::ZERO);
    let bar = progress_bar(images.len(), "evaluating");
    for chunk in images.chunks(CHUNK) {
        let paths: Vec<&Path> = chunk.iter().map(|i| i.path.as_path()).collect();
        let inputs = load_images(&paths, &float, "decoding")?;

        let start = Instant::now();
        let float_logits: Vec<Vec<f32>> =
            inputs.par_iter().map(|input| cpu_ref::run_f32(&float, input).pop().expect("layers")).collect();
        float_time += start.elapsed();

        let start = Instant::now();
        let int8_logits: Vec<Vec<f32>> = inputs
            .par_iter()
            .map(|input| {
                let logits = cpu_ref::run_u8(&quantized, &quantized.quantize_input(input)).pop().expect("layers");
                quantized.dequantize_logits(&logits)
            })
            .collect();
        int8_time += start.elapsed();

        for ((image, f), q) in chunk.iter().zip(&float_logits).zip(&int8_logits) {
            let (f1, f5) = hits(f, image.class);
            let (q1, q5) = hits(q, image.class);
            float_hits = (float_hits.0 + f1, float_hits.1 + f5);
            int8_hits = (int8_hits.0 + q1, int8_hits.1 + q5);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    let n = images.len();
    let percent = |hits: usize| 100.0 * hits as f64 / n as f64;
    let report = Report {
        model: float.name.clone(),
        scheme: quantized.scheme.clone(),
        list,
        images: n,
        threads: rayon::current_num_threads(),
        float: Accuracy { top1_percent: percent(float_hits.0), top5_percent: percent(float_hits.1), wall_s: float_time.as_secs_f64() },
        int8: Accuracy { top1_percent: percent(int8_hits.0), top5_percent: percent(int8_hits.1), wall_s: int8_time.as_secs_f64() },
    };
    if args.json {
        print_json(&report)?;
    } else {
        println!("{} on {} images of {} ({} threads)", report.model, n, report.list.display(), report.threads);
        println!("{:<22} {:>8} {:>8} {:>10}", "pipeline", "top-1", "top-5", "wall (s)");
        let row = |name: String, a: &Accuracy| {
            println!("{:<22} {:>7.2}% {:>7.2}% {:>10.1}", name, a.top1_percent, a.top5_percent, a.wall_s)
        };
        row("float (cpu)".into(), &report.float);
        row(format!("int8 {} ({:?})", report.scheme, args.device).to_lowercase(), &report.int8);
    }
    Ok(ExitCode::SUCCESS)
}
