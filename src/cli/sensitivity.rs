//! `mnq-gpu sensitivity`: how much each weighted layer loses when its weights alone have fewer bits, and the
//! cheapest per-layer assignment of weight widths that stays within a top-1 budget, checked end to end on the GPU.
//! The study is [`mnq_gpu::study::sensitivity`]; here --scheme names its base scheme.

use super::{print_json, DeviceArgs, ListArgs, ModelArgs, SchemeChoice, Stderr, EXIT_MISMATCH};
use anyhow::{bail, Result};
use clap::Args;
use mnq_gpu::engine::Accuracy;
use mnq_gpu::quant::scheme::Scheme;
use mnq_gpu::study::sensitivity::{measure, Report, Setup};
use std::process::ExitCode;

/// The base scheme when --scheme is not given.
const DEFAULT_SCHEME: &str = "tf8-zero-var";

#[derive(Args)]
pub struct SensitivityArgs {
    /// --scheme is the base scheme, one name without +wB (default tf8-zero-var).
    #[command(flatten)]
    model: ModelArgs,
    /// Where the chosen assignment runs end to end (checked against the CPU integer reference on the GPU).
    #[command(flatten)]
    device: DeviceArgs,
    /// Weight bits of the layer under test and of the assignment's cheap layers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=8))]
    bits: u8,
    #[command(flatten)]
    list: ListArgs,
    /// Use only the first N images of the list.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// The top-1 loss (points) the assignment may have against the all-8-bit model of the base scheme.
    #[arg(long, value_name = "POINTS", default_value_t = 1.0, value_parser = non_negative)]
    max_drop: f64,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(points) if points >= 0.0 => Ok(points),
        _ => Err(format!("`{text}` is no number of points ≥ 0")),
    }
}

pub fn run(args: SensitivityArgs) -> Result<ExitCode> {
    let setup = Setup { base: base_scheme(&args.model)?, bits: args.bits, max_drop: args.max_drop };
    let loaded = args.model.load()?;
    let list = args.list.read(&loaded.float, args.limit)?;
    let calibration = args.model.calibration_list()?;
    let report = measure(&loaded.float, &setup, &calibration, &list, &args.device.to_device(), &Stderr)?;
    if args.json {
        print_json(&report)?;
    } else {
        print_tables(&report);
    }
    Ok(if report.mismatched() { ExitCode::from(EXIT_MISMATCH) } else { ExitCode::SUCCESS })
}

/// The base scheme: the one --scheme, without weight widths of its own.
fn base_scheme(model_args: &ModelArgs) -> Result<Scheme> {
    if !model_args.quantized.is_empty() {
        bail!("sensitivity quantizes the float model itself; give a base scheme with --scheme, not --quantized");
    }
    if !model_args.requant.is_empty() {
        bail!("sensitivity measures under the default requantization (double); --requant is not supported here");
    }
    match model_args.scheme.as_slice() {
        [] => Ok(DEFAULT_SCHEME.parse()?),
        [SchemeChoice::Calibrate(scheme)] if !scheme.has_weight_bits() => Ok(scheme.clone()),
        [SchemeChoice::Calibrate(scheme)] => {
            bail!("base scheme `{scheme}` sets weight widths; give the base without +wB and the width with --bits")
        }
        [SchemeChoice::File] => bail!("sensitivity calibrates a scheme; `tflite` is a file's own quantization"),
        _ => bail!("sensitivity takes one base scheme, not {}", model_args.scheme.len()),
    }
}

fn print_tables(report: &Report) {
    println!(
        "{}, base scheme {}, weights at {} bits one layer at a time, {} images of {}",
        report.model,
        report.base_scheme,
        report.bits,
        report.images,
        report.list.display()
    );
    let line = |what: &str, a: Accuracy| {
        println!("{what:<40} top-1 {:>6.2} %  top-5 {:>6.2} %", a.top1_percent, a.top5_percent)
    };
    line("float", report.float);
    line(&format!("{} (all weights 8-bit)", report.base_scheme), report.all_8bit);
    line(&format!("{}+w{} (all weights {}-bit)", report.base_scheme, report.bits, report.bits), report.all_bits);
    println!();
    println!("top-1 drop (points, against float) and local SQNR (dB) of each layer quantized alone:");
    let b = report.bits;
    println!(
        "{:<12} {:>9} {:>10} {:>10} {:>12} {:>12}",
        "layer",
        "weights",
        "drop 8b",
        format!("drop {b}b"),
        "SQNR 8b",
        format!("SQNR {b}b")
    );
    for l in &report.layers {
        println!(
            "{:<12} {:>9} {:>10.2} {:>10.2} {:>12.2} {:>12.2}",
            l.layer, l.weights, l.top1_drop_8bit, l.top1_drop, l.local_sqnr_8bit_db, l.local_sqnr_db
        );
    }
    println!();
    println!(
        "assignment search (target: top-1 ≥ {:.2} %, {} points below all 8-bit):",
        report.all_8bit.top1_percent - report.max_drop_points,
        report.max_drop_points
    );
    if report.steps.is_empty() {
        println!("  none needed: all {}-bit is within budget", report.bits);
    }
    for s in &report.steps {
        println!(
            "  {:<14} top-1 {:>6.2} %  {:>10} weight bits  {}",
            s.change,
            s.top1_percent,
            s.weight_bits,
            if s.kept { "kept" } else { "undone" }
        );
    }
    let a = &report.assignment;
    println!();
    println!("assignment: {}", a.scheme);
    println!(
        "weight bits: {} ({:.1} % of all 8-bit {}; all {}-bit {})",
        report.weight_bits,
        100.0 * report.weight_bits as f64 / report.weight_bits_8bit.max(1) as f64,
        report.weight_bits_8bit,
        report.bits,
        report.weight_bits_all
    );
    let check = match (a.checked_bytes, a.differing_bytes) {
        (Some(compared), Some(0)) => format!("GPU = CPU reference: {compared} bytes compared, 0 differ"),
        (Some(compared), Some(d)) => format!("GPU ≠ CPU reference: {d} of {compared} bytes DIFFER"),
        _ => "not checked (ran on the CPU reference)".into(),
    };
    println!(
        "end to end on the {}{}: top-1 {:.2} %, top-5 {:.2} %; {check}",
        a.device,
        a.adapter.as_ref().map_or(String::new(), |name| format!(" ({name})")),
        a.accuracy.top1_percent,
        a.accuracy.top5_percent
    );
}
