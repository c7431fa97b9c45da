//! `mnq-gpu bench`: the int8 pipeline on the GPU at batch 1 and a larger batch (median and minimum time per
//! batch, images/s, per-layer GPU time from timestamp queries) against the single-threaded CPU integer
//! reference. Results are checked against the reference before anything is timed.

use super::{print_json, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use mnq_gpu::cpu_ref;
use mnq_gpu::engine::compare;
use mnq_gpu::gpu::{AdapterInfo, AdapterOptions, GpuContext, InnerProduct, Plan, Readback};
use mnq_gpu::model::synthetic;
use mnq_gpu::quant::{QuantModel, Requant};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Instant;

const SEED: u64 = 7;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Benchmark a MobileNetV1 architecture with seeded synthetic weights instead of a model file:
    /// WIDTHxSIZE, e.g. 1.0x224 or 0.25x128. Timing only; `run` and `eval` refuse synthetic models.
    #[arg(long, value_name = "WIDTHxSIZE")]
    arch: Option<String>,
    /// The batch size measured beside batch 1, which is always measured (`--batch 1`: batch 1 alone, the
    /// latency of one image).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    batch: u32,
    /// Timed runs per batch size, after two warm-up runs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Inner-product path of the shaders; `auto` takes dot4 where the adapter's WGSL has dot4U8Packed, else unpack.
    #[arg(long, value_enum, default_value = "auto")]
    inner_product: InnerProductArg,
    /// Use the first GPU adapter whose name contains this (case-insensitive).
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Print JSON instead of a report.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum InnerProductArg {
    Auto,
    Dot4,
    Unpack,
}

#[derive(Serialize)]
struct BatchTiming {
    batch: usize,
    median_ms: f64,
    min_ms: f64,
    images_per_s: f64,
    ms_per_image: f64,
    /// Per-layer GPU time of one batch from timestamp queries (empty without them).
    layers: Vec<(String, f64)>,
}

#[derive(Serialize)]
struct Report {
    adapter: String,
    model: String,
    synthetic: bool,
    scheme: String,
    requant: Requant,
    inner_product: String,
    /// What this adapter lacks and the path taken instead (e.g. no timestamp queries: no per-layer times).
    fallbacks: Vec<String>,
    batches: Vec<BatchTiming>,
    /// Single-threaded CPU integer reference, one image: median over the runs.
    cpu_ref_ms_per_image: f64,
}

fn parse_arch(arch: &str) -> Result<(f32, usize)> {
    let (width, size) = arch.split_once('x').context("--arch is WIDTHxSIZE, e.g. 1.0x224")?;
    let width: f32 = width.parse().context("--arch width")?;
    let size: usize = size.parse().context("--arch input size")?;
    if !(0.1..=2.0).contains(&width) || !(32..=512).contains(&size) {
        bail!("--arch {arch}: width must be in [0.1, 2] and input size in [32, 512]");
    }
    Ok((width, size))
}

fn quantized_model(args: &BenchArgs) -> Result<QuantModel> {
    match &args.arch {
        Some(arch) => {
            let (width, size) = parse_arch(arch)?;
            let float = synthetic::mobilenet_v1(width, size, SEED);
            let calibration: Vec<Vec<f32>> = random_images(float.input_shape.len(), 2, SEED)
                .iter()
                .map(|image| image.iter().map(|&q| f32::from(q) / 127.5 - 1.0).collect())
                .collect();
            let model = mnq_gpu::calibrate::quantize(&float, &calibration)?;
            Ok(match args.model.requant.first() {
                Some(&mode) => model.with_requant(mode),
                None => model,
            })
        }
        None => {
            let loaded = args.model.load()?;
            let mut models = args.model.quantized_models(&loaded)?;
            Ok(models.swap_remove(0).model)
        }
    }
}

/// Seeded random uint8 images (the values do not change the timing).
pub(super) fn random_images(len: usize, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count).map(|_| (0..len).map(|_| rng.random()).collect()).collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let model = quantized_model(&args)?;
    let ctx = GpuContext::new(&AdapterOptions { name_filter: args.adapter.clone(), backends: None })?;
    let inner = match args.inner_product {
        InnerProductArg::Auto => ctx.inner_product(),
        InnerProductArg::Dot4 => InnerProduct::Dot4,
        InnerProductArg::Unpack => InnerProduct::Unpack,
    };
    let fallbacks = fallbacks(ctx.info());
    let batch = args.batch as usize;
    let images = random_images(model.input_shape.len(), batch, SEED);
    let inputs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    eprintln!("adapter: {}", ctx.info());
    if model.synthetic {
        eprintln!("model: {} with SYNTHETIC weights (seed {SEED}): timing only", model.name);
    }

    let mut cpu_times = Vec::new();
    let mut expected = Vec::new();
    for image in &images {
        let start = Instant::now();
        expected.push(cpu_ref::run_u8(&model, image).pop().expect("layers"));
        cpu_times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let cpu_ref_ms = median(&mut cpu_times);

    let mut timings = Vec::new();
    // Batch 1 (latency), then the larger batch (throughput) unless it is 1 too.
    let sizes = if batch == 1 { vec![1] } else { vec![1, batch] };
    for size in sizes {
        let mut plan = Plan::new(&ctx, &model, size, inner)?;
        let outputs = plan.run(&ctx, &inputs[..size], Readback::Logits)?;
        let shape = model.layers.last().expect("layers").output_shape;
        for (i, (got, want)) in outputs.iter().zip(&expected).enumerate() {
            if let Some(mismatch) = compare(&format!("batch {size}, image {i}, logits"), shape, want, &got[0]) {
                bail!("{mismatch}: the GPU differs from the CPU integer reference; not timing");
            }
        }
        plan.run(&ctx, &inputs[..size], Readback::Logits)?; // second warm-up run
        let mut times = Vec::with_capacity(args.iterations as usize);
        for _ in 0..args.iterations {
            let start = Instant::now();
            plan.run(&ctx, &inputs[..size], Readback::Logits)?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let min_ms = times.iter().copied().fold(f64::INFINITY, f64::min);
        let median_ms = median(&mut times);
        let profile = plan.profile(&ctx, &inputs[..size])?;
        timings.push(BatchTiming {
            batch: size,
            median_ms,
            min_ms,
            images_per_s: size as f64 * 1e3 / median_ms,
            ms_per_image: median_ms / size as f64,
            layers: profile.layers.into_iter().map(|l| (l.name, l.gpu_ms)).collect(),
        });
    }
    eprintln!("All results match the CPU integer reference. Timed {} runs per batch size.", args.iterations);

    let report = Report {
        adapter: ctx.info().to_string(),
        model: model.name.clone(),
        synthetic: model.synthetic,
        scheme: model.scheme.clone(),
        requant: model.requant(),
        inner_product: format!("{inner:?}"),
        fallbacks,
        batches: timings,
        cpu_ref_ms_per_image: cpu_ref_ms,
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// What the engine does without each optional capability the adapter lacks.
fn fallbacks(info: &AdapterInfo) -> Vec<String> {
    let mut fallbacks = Vec::new();
    if !info.packed_dot4 {
        fallbacks.push("no dot4U8Packed in this WGSL: the Unpack inner product runs instead".to_string());
    }
    if !info.timestamps {
        fallbacks.push("no timestamp queries: per-layer GPU times are not measured".to_string());
    }
    fallbacks
}

fn print_report(report: &Report) {
    println!("adapter: {}", report.adapter);
    for fallback in &report.fallbacks {
        println!("  {fallback}");
    }
    let synthetic = if report.synthetic { ", SYNTHETIC weights (timing only)" } else { "" };
    println!(
        "model:   {} ({}{synthetic}), inner product {}, requant {}",
        report.model, report.scheme, report.inner_product, report.requant
    );
    println!(
        "{:>6} {:>12} {:>10} {:>10} {:>10} {:>14}",
        "batch", "median (ms)", "min (ms)", "ms/image", "images/s", "vs CPU ref"
    );
    for t in &report.batches {
        println!(
            "{:>6} {:>12.2} {:>10.2} {:>10.2} {:>10.1} {:>13.2}×",
            t.batch,
            t.median_ms,
            t.min_ms,
            t.ms_per_image,
            t.images_per_s,
            report.cpu_ref_ms_per_image / t.ms_per_image
        );
    }
    println!("CPU integer reference (1 thread): {:.2} ms/image", report.cpu_ref_ms_per_image);
    if let Some(last) = report.batches.last().filter(|t| !t.layers.is_empty()) {
        println!("GPU time per layer at batch {} (timestamp queries):", last.batch);
        for (name, ms) in &last.layers {
            println!("  {name:<28} {ms:>8.3} ms");
        }
    }
}
