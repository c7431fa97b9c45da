//! `mnq-gpu soak`: thousands of inferences through one GPU plan, then many plan creations and drops, every
//! output checked against the CPU integer reference. Reports resident memory (RSS) and wgpu's live GPU objects
//! (buffers, texture views, bind groups, pipelines; wgpu's `counters` feature) at the start and end of each phase, and
//! ms per image at the start and end of the inferences: flat numbers mean no leak and no slowdown. A benchmark,
//! not a test: it asserts nothing but bit-exactness (exit code 3 if any output differs).

use super::{print_json, ModelArgs, EXIT_MISMATCH};
use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::cpu_ref;
use mnq_gpu::engine::compare;
use mnq_gpu::gpu::{AdapterOptions, GpuContext, Plan, Readback};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Instant;

const SEED: u64 = 11;
/// Distinct seeded images the inferences cycle through.
const IMAGES: usize = 8;

#[derive(Args)]
pub struct SoakArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Inferences through one plan, one image per submit.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    inferences: u64,
    /// Plans created, run once and dropped after the inferences.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..))]
    plans: u64,
    /// Use the first GPU adapter whose name contains this (case-insensitive).
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Print JSON instead of a report.
    #[arg(long)]
    json: bool,
}

/// What is alive at one moment.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
struct Snapshot {
    /// Resident set size of this process (Linux `/proc/self/statm`); `None` elsewhere.
    rss_kib: Option<u64>,
    buffers: isize,
    /// Every texture of a plan has one view. (wgpu 30's Vulkan backend never counts a texture's creation, only its
    /// destruction, so its texture counter goes negative; the view counter is right on every backend.)
    texture_views: isize,
    bind_groups: isize,
    compute_pipelines: isize,
    shader_modules: isize,
    buffer_bytes: isize,
    texture_bytes: isize,
}

#[derive(Serialize)]
struct Phase {
    /// Iterations: inferences or plan lifetimes.
    count: u64,
    start: Snapshot,
    end: Snapshot,
    /// Mean ms per iteration over the first and the last `window` iterations.
    window: u64,
    first_ms: f64,
    last_ms: f64,
}

#[derive(Serialize)]
struct Report {
    adapter: String,
    model: String,
    scheme: String,
    inferences: Phase,
    plans: Phase,
    /// Outputs compared with the CPU integer reference, and how many differed.
    outputs_checked: u64,
    outputs_differing: u64,
}

fn snapshot(ctx: &GpuContext) -> Snapshot {
    let counters = ctx.device().get_internal_counters().hal;
    Snapshot {
        rss_kib: rss_kib(),
        buffers: counters.buffers.read(),
        texture_views: counters.texture_views.read(),
        bind_groups: counters.bind_groups.read(),
        compute_pipelines: counters.compute_pipelines.read(),
        shader_modules: counters.shader_modules.read(),
        buffer_bytes: counters.buffer_memory.read(),
        texture_bytes: counters.texture_memory.read(),
    }
}

/// Resident pages × page size, from `/proc/self/statm` (second field).
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()? / 1024)
}

/// Times `count` iterations of `step` and the phase's snapshots; the mean of the first and last `window`.
fn phase(ctx: &GpuContext, count: u64, what: &'static str, mut step: impl FnMut(u64) -> Result<()>) -> Result<Phase> {
    let window = (count / 10).clamp(1, 100);
    let bar = super::progress_bar(count as usize, what);
    let start = snapshot(ctx);
    let (mut first, mut last) = (0.0, 0.0);
    for i in 0..count {
        let begin = Instant::now();
        step(i)?;
        let ms = begin.elapsed().as_secs_f64() * 1e3;
        if i < window {
            first += ms;
        }
        if i >= count - window {
            last += ms;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    ctx.device().poll(wgpu::PollType::wait_indefinitely()).context("waiting for the GPU")?;
    let end = snapshot(ctx);
    Ok(Phase { count, start, end, window, first_ms: first / window as f64, last_ms: last / window as f64 })
}

pub fn run(args: SoakArgs) -> Result<ExitCode> {
    let loaded = args.model.load()?;
    let model = args.model.quantized_models(&loaded)?.swap_remove(0).model;
    let ctx = GpuContext::new(&AdapterOptions { name_filter: args.adapter.clone(), backends: None })?;
    eprintln!("adapter: {}", ctx.info());
    let images = super::bench::random_images(model.input_shape.len(), IMAGES, SEED);
    let expected: Vec<Vec<u8>> =
        images.iter().map(|image| cpu_ref::run_u8(&model, image).pop().expect("layers")).collect();
    let (mut checked, mut differing) = (0u64, 0u64);
    let shape = model.layers.last().expect("layers").output_shape;
    let mut check = |i: u64, logits: &[u8]| {
        checked += 1;
        differing += u64::from(compare("logits", shape, &expected[i as usize % IMAGES], logits).is_some());
    };

    let inner = ctx.inner_product();
    let mut plan = Plan::new(&ctx, &model, 1, inner)?;
    plan.run(&ctx, &[&images[0]], Readback::Logits)?; // warm-up: the first submit allocates driver state
    let inferences = phase(&ctx, args.inferences, "inferences", |i| {
        let outputs = plan.run(&ctx, &[&images[i as usize % IMAGES]], Readback::Logits)?;
        check(i, &outputs[0][0]);
        Ok(())
    })?;
    drop(plan);
    let plans = phase(&ctx, args.plans, "plans", |i| {
        let mut plan = Plan::new(&ctx, &model, 1, inner)?;
        let outputs = plan.run(&ctx, &[&images[i as usize % IMAGES]], Readback::Logits)?;
        check(i, &outputs[0][0]);
        Ok(())
    })?;

    let report = Report {
        adapter: ctx.info().to_string(),
        model: model.name.clone(),
        scheme: super::label(&model.scheme, model.requant()),
        inferences,
        plans,
        outputs_checked: checked,
        outputs_differing: differing,
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(if differing > 0 { ExitCode::from(EXIT_MISMATCH) } else { ExitCode::SUCCESS })
}

fn print_report(report: &Report) {
    println!("adapter: {}", report.adapter);
    println!("model:   {} ({})", report.model, report.scheme);
    for (name, phase) in [("inferences", &report.inferences), ("plan creations", &report.plans)] {
        println!(
            "{} {name}: {:.2} ms each over the first {}, {:.2} ms over the last",
            phase.count, phase.first_ms, phase.window, phase.last_ms
        );
        let rss = |s: &Snapshot| s.rss_kib.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        for (when, s) in [("start", &phase.start), ("end", &phase.end)] {
            println!(
                "  {when:<5} RSS {:>10}  buffers {:>4}  texture views {:>4}  bind groups {:>4}  pipelines {:>3}  \
                 GPU memory {:.1} MiB",
                rss(s),
                s.buffers,
                s.texture_views,
                s.bind_groups,
                s.compute_pipelines,
                (s.buffer_bytes + s.texture_bytes) as f64 / (1024.0 * 1024.0)
            );
        }
    }
    println!(
        "outputs checked against the CPU integer reference: {}, differing: {}",
        report.outputs_checked, report.outputs_differing
    );
}
