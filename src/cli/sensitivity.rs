//! `mnq-gpu sensitivity`: how much each weighted layer loses when its weights alone have fewer bits, and the
//! cheapest per-layer assignment of weight widths that stays within a top-1 budget, checked end to end on the GPU.
//!
//! One layer at a time: the layer's float input (from the cached float pass) is quantized with its input
//! parameters, the integer layer runs ([`run_layer_alone`]) with its weights at `--bits` (and, for comparison,
//! at 8), its output is dequantized and the rest of the network runs in float. The layer is the one the fully
//! quantized `SCHEME+wB` model holds, so what is measured is that model's layer, and nothing else is quantized.
//!
//! The assignment starts with every weighted layer at `--bits` and moves layers to 8 bits, the largest measured
//! top-1 drop first, until the end-to-end integer model (every activation 8-bit) is within `--max-drop` points of
//! the all-8-bit model; then each moved layer is tried back at `--bits` in turn and kept there if the model
//! stays within budget. Cost = total weight bits.

use super::{default_evaluation_list, load_images, print_json, progress_bar, DeviceArgs, ModelArgs, SchemeChoice};
use super::{Device, EXIT_MISMATCH};
use anyhow::{bail, Context, Result};
use clap::Args;
use mnq_gpu::calibrate::{calibrate, prepare, quantize_calibrated};
use mnq_gpu::cpu_ref;
use mnq_gpu::engine::{check_layers, Tally};
use mnq_gpu::gpu::Readback;
use mnq_gpu::labels::read_list;
use mnq_gpu::model::Model;
use mnq_gpu::quant::scheme::{RangeMethod, Scheme};
use mnq_gpu::quant::QuantModel;
use mnq_gpu::sqnr::{powers, run_layer_alone, sqnr_db};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Images decoded together: bounds memory (a 224×224 float image is 600 KB, its float activations 10 MB).
const CHUNK: usize = 48;

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
    /// Labelled list (`FILE CLASS` lines). Default: ../shared/imagenet/val1300/evaluation.txt
    #[arg(long, value_name = "LIST")]
    list: Option<PathBuf>,
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

#[derive(Serialize, Clone, Copy, Default)]
pub struct Accuracy {
    pub top1_percent: f64,
    pub top5_percent: f64,
}

#[derive(Serialize)]
pub struct LayerSensitivity {
    pub layer: String,
    pub weights: usize,
    /// Top-1 (points) of the float model minus that of the float model with this layer alone quantized.
    pub top1_drop_8bit: f64,
    pub top1_drop: f64,
    /// Local SQNR of the layer alone (mean dB over images), weights at 8 bits and at --bits.
    pub local_sqnr_8bit_db: f64,
    pub local_sqnr_db: f64,
}

/// One step of the assignment search: the layer moved, and the end-to-end model it gave.
#[derive(Serialize)]
pub struct Step {
    /// `+layer` moved to 8 bits, `-layer` moved back to --bits.
    pub change: String,
    pub kept: bool,
    pub scheme: String,
    pub top1_percent: f64,
    pub weight_bits: usize,
}

#[derive(Serialize)]
pub struct Verified {
    pub scheme: String,
    pub device: &'static str,
    pub adapter: Option<String>,
    pub accuracy: Accuracy,
    /// On the GPU: bytes of every layer's output compared with the CPU integer reference, and how many differ.
    pub checked_bytes: Option<usize>,
    pub differing_bytes: Option<usize>,
}

#[derive(Serialize)]
pub struct Report {
    pub model: String,
    pub list: PathBuf,
    pub images: usize,
    pub base_scheme: String,
    pub bits: u8,
    pub max_drop_points: f64,
    pub float: Accuracy,
    /// End to end, every activation 8-bit: weights all at 8 bits, and all at --bits.
    pub all_8bit: Accuracy,
    pub all_bits: Accuracy,
    pub layers: Vec<LayerSensitivity>,
    pub steps: Vec<Step>,
    /// The layers the assignment keeps at 8 bits, in network order.
    pub eight_bit_layers: Vec<String>,
    /// Total weight bits: all at 8, all at --bits, the assignment.
    pub weight_bits_8bit: usize,
    pub weight_bits_all: usize,
    pub weight_bits: usize,
    pub assignment: Verified,
}

/// Per image: float hits, and per weighted layer (8-bit, b-bit) hits and SQNR powers.
struct ImageResult {
    float: Tally,
    alone: Vec<[(Tally, f64); 2]>,
}

pub fn run(args: SensitivityArgs) -> Result<ExitCode> {
    let report = measure(&args)?;
    if args.json {
        print_json(&report)?;
    } else {
        print_tables(&report);
    }
    let mismatched = report.assignment.differing_bytes.is_some_and(|d| d > 0);
    Ok(if mismatched { ExitCode::from(EXIT_MISMATCH) } else { ExitCode::SUCCESS })
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

/// `base` with weights at `bits` except `eight_bit` layers at 8: e.g. `tf8-zero-var+w4+w8@conv1@conv_preds`.
pub fn assignment_scheme(base: &Scheme, bits: u8, eight_bit: &[&str]) -> Scheme {
    let mut name = format!("{base}+w{bits}");
    if !eight_bit.is_empty() && bits != 8 {
        name += &format!("+w8@{}", eight_bit.join("@"));
    }
    name.parse().expect("a base scheme with weight widths")
}

fn total_weight_bits(model: &QuantModel, scheme: &Scheme) -> usize {
    model.layers.iter().map(|l| l.weights.len() * usize::from(scheme.weight_bits_of(&l.name))).sum()
}

fn accuracy(tally: &Tally, n: usize) -> Accuracy {
    let a = tally.accuracy(n);
    Accuracy { top1_percent: a.top1_percent, top5_percent: a.top5_percent }
}

/// Every figure of the report.
pub fn measure(args: &SensitivityArgs) -> Result<Report> {
    let base = base_scheme(&args.model)?;
    let loaded = args.model.load()?;
    let float = &loaded.float;
    let list = match &args.list {
        Some(list) => list.clone(),
        None => default_evaluation_list()?,
    };
    let mut images = read_list(&list, float.imagenet_classes())?;
    images.truncate(args.limit.unwrap_or(usize::MAX));
    if images.is_empty() {
        bail!("{}: no images to measure", list.display());
    }

    let prepared = prepare(float, &base);
    let calibration_images = args.model.calibration_images(float, &[&base])?;
    let calibration = calibrate(&prepared, &calibration_images, base.ranges == RangeMethod::Mse);
    drop(calibration_images);
    let quantize = |scheme: &Scheme| -> Result<QuantModel> {
        quantize_calibrated(&prepared, scheme, &calibration).with_context(|| format!("quantizing {scheme}"))
    };
    let eight = quantize(&base)?;
    let all_bits_scheme = assignment_scheme(&base, args.bits, &[]);
    let cheap = quantize(&all_bits_scheme)?;
    let weighted: Vec<usize> = (0..eight.layers.len()).filter(|&i| eight.layers[i].op.has_weights()).collect();

    // The input quantization comes from the calibration alone, so every assignment shares the int8 inputs.
    let mut int8_inputs = Vec::with_capacity(images.len());
    let mut classes = Vec::with_capacity(images.len());
    let mut results = Vec::with_capacity(images.len());
    let bar = progress_bar(images.len(), "one layer each");
    for chunk in images.chunks(CHUNK) {
        let paths: Vec<&Path> = chunk.iter().map(|i| i.path.as_path()).collect();
        let chunk_classes: Vec<usize> = chunk.iter().map(|i| float.output_of_class(i.class)).collect();
        let inputs = load_images(&paths, float, "decoding")?;
        let chunk_results: Vec<ImageResult> = inputs
            .par_iter()
            .zip(&chunk_classes)
            .map(|(image, &class)| {
                let result = image_sensitivity(&prepared, [&eight, &cheap], &weighted, image, class);
                bar.inc(1);
                result
            })
            .collect();
        int8_inputs.extend(inputs.iter().map(|image| eight.quantize_input(image)));
        classes.extend(chunk_classes);
        results.extend(chunk_results);
    }
    bar.finish_and_clear();

    let n = images.len();
    let mut float_tally = Tally::default();
    results.iter().for_each(|r| float_tally.merge(&r.float));
    let float_accuracy = accuracy(&float_tally, n);
    let layers: Vec<LayerSensitivity> = weighted
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let at = |variant: usize| {
                let mut tally = Tally::default();
                results.iter().for_each(|r| tally.merge(&r.alone[k][variant].0));
                let sqnr = results.iter().map(|r| r.alone[k][variant].1).sum::<f64>() / n as f64;
                (float_accuracy.top1_percent - accuracy(&tally, n).top1_percent, sqnr)
            };
            let ((drop_8, sqnr_8), (drop, sqnr)) = (at(0), at(1));
            LayerSensitivity {
                layer: eight.layers[i].name.clone(),
                weights: eight.layers[i].weights.len(),
                top1_drop_8bit: drop_8,
                top1_drop: drop,
                local_sqnr_8bit_db: sqnr_8,
                local_sqnr_db: sqnr,
            }
        })
        .collect();

    let end_to_end = |model: &QuantModel, message: &'static str| -> Tally {
        let bar = progress_bar(n, message);
        let mut tally = Tally::default();
        let hits: Vec<Tally> = int8_inputs
            .par_iter()
            .zip(&classes)
            .map(|(input, &class)| {
                let logits = cpu_ref::run_u8(model, input).pop().expect("layers");
                let mut hit = Tally::default();
                hit.add(&[model.dequantize_logits(&logits)], &[class]);
                bar.inc(1);
                hit
            })
            .collect();
        bar.finish_and_clear();
        hits.iter().for_each(|h| tally.merge(h));
        tally
    };
    let all_8bit = accuracy(&end_to_end(&eight, "all 8-bit"), n);
    let all_bits = accuracy(&end_to_end(&cheap, "all b-bit"), n);
    eprintln!(
        "end to end: all 8-bit top-1 {:.2} %, all {}-bit {:.2} %",
        all_8bit.top1_percent, args.bits, all_bits.top1_percent
    );

    // Greedy: the largest measured drop first (ties: the lower local SQNR), then a pass moving layers back.
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&layers[a], &layers[b]);
        y.top1_drop.total_cmp(&x.top1_drop).then(x.local_sqnr_db.total_cmp(&y.local_sqnr_db))
    });
    let target = all_8bit.top1_percent - args.max_drop;
    let mut eight_bit = vec![false; layers.len()];
    let mut steps = Vec::new();
    let evaluate = |eight_bit: &[bool], message: &'static str| -> Result<(Scheme, QuantModel, f64)> {
        let names: Vec<&str> =
            layers.iter().zip(eight_bit).filter(|(_, &e)| e).map(|(l, _)| l.layer.as_str()).collect();
        let scheme = assignment_scheme(&base, args.bits, &names);
        let model = quantize(&scheme)?;
        let top1 = accuracy(&end_to_end(&model, message), n).top1_percent;
        Ok((scheme, model, top1))
    };
    let mut top1 = all_bits.top1_percent;
    for &k in &order {
        if top1 >= target || args.bits == 8 {
            break;
        }
        eight_bit[k] = true;
        let (scheme, model, reached) = evaluate(&eight_bit, "searching")?;
        top1 = reached;
        let weight_bits = total_weight_bits(&model, &scheme);
        eprintln!("{} to 8 bits: top-1 {top1:.2} % (target {target:.2} %)", layers[k].layer);
        steps.push(Step {
            change: format!("+{}", layers[k].layer),
            kept: true,
            scheme: scheme.name,
            top1_percent: top1,
            weight_bits,
        });
    }
    let moved: Vec<usize> = order.iter().copied().filter(|&k| eight_bit[k]).collect();
    for &k in moved.iter().rev().skip(1) {
        eight_bit[k] = false;
        let (scheme, model, reached) = evaluate(&eight_bit, "pruning")?;
        let kept = reached >= target;
        if !kept {
            eight_bit[k] = true;
        }
        let weight_bits = total_weight_bits(&model, &scheme);
        let verdict = if kept { "kept there" } else { "undone" };
        eprintln!("{} back to {} bits: top-1 {reached:.2} %, {verdict}", layers[k].layer, args.bits);
        steps.push(Step {
            change: format!("-{}", layers[k].layer),
            kept,
            scheme: scheme.name,
            top1_percent: reached,
            weight_bits,
        });
    }
    let eight_bit_layers: Vec<String> =
        layers.iter().zip(&eight_bit).filter(|(_, &e)| e).map(|(l, _)| l.layer.clone()).collect();
    let names: Vec<&str> = eight_bit_layers.iter().map(String::as_str).collect();
    let chosen = assignment_scheme(&base, args.bits, &names);
    let model = quantize(&chosen)?;
    let assignment = verify(&args.device, &chosen, &model, &int8_inputs, &classes)?;
    Ok(Report {
        model: float.name.clone(),
        list,
        images: n,
        base_scheme: base.name.clone(),
        bits: args.bits,
        max_drop_points: args.max_drop,
        float: float_accuracy,
        all_8bit,
        all_bits,
        weight_bits_8bit: total_weight_bits(&eight, &base),
        weight_bits_all: total_weight_bits(&cheap, &all_bits_scheme),
        weight_bits: total_weight_bits(&model, &chosen),
        layers,
        steps,
        eight_bit_layers,
        assignment,
    })
}

/// One image: the float model's hits, and for each weighted layer `weighted[k]` quantized alone in each of
/// `models` (8-bit and b-bit weights) the hits of the otherwise float network and Σx², Σ(x − x̂)² as local SQNR.
fn image_sensitivity(
    float: &Model,
    models: [&QuantModel; 2],
    weighted: &[usize],
    image: &[f32],
    class: usize,
) -> ImageResult {
    let outputs = cpu_ref::run_f32(float, image);
    let hits = |logits: &[f32]| {
        let mut tally = Tally::default();
        tally.add(&[logits.to_vec()], &[class]);
        tally
    };
    let alone = weighted
        .iter()
        .map(|&i| {
            let input = if i == 0 { image } else { &outputs[i - 1] };
            models.map(|model| {
                let layer = &model.layers[i];
                let output = run_layer_alone(layer, input);
                let (signal, noise) = powers(&outputs[i], &output, layer.output);
                let mut x: Vec<f32> = output.iter().map(|&q| layer.output.dequantize(q)).collect();
                for next in &float.layers[i + 1..] {
                    x = cpu_ref::run_layer_f32(next, &x);
                }
                (hits(&x), sqnr_db(signal, noise))
            })
        })
        .collect();
    ImageResult { float: hits(outputs.last().expect("layers")), alone }
}

/// The assignment end to end on `device`: top-1/top-5, and on the GPU every layer compared with the CPU reference.
fn verify(
    device: &DeviceArgs,
    scheme: &Scheme,
    model: &QuantModel,
    inputs: &[Vec<u8>],
    classes: &[usize],
) -> Result<Verified> {
    let mut engine = device.engine(&[model])?;
    let on_gpu = device.device == Device::Gpu;
    let mut tally = Tally::default();
    let (mut checked, mut differing) = (0, 0);
    let bar = progress_bar(inputs.len(), "verifying");
    for (chunk, chunk_classes) in inputs.chunks(CHUNK).zip(classes.chunks(CHUNK)) {
        let readback = if on_gpu { Readback::AllLayers } else { Readback::Logits };
        let outputs = engine.run(0, chunk, readback)?;
        let logits: Vec<Vec<f32>> =
            outputs.iter().map(|layers| model.dequantize_logits(layers.last().expect("layers"))).collect();
        tally.add(&logits, chunk_classes);
        if on_gpu {
            let results: Vec<(usize, usize)> = chunk
                .par_iter()
                .zip(&outputs)
                .map(|(input, layers)| {
                    let check = check_layers(model, input, layers);
                    (check.compared_bytes, check.differing_bytes())
                })
                .collect();
            for (c, d) in results {
                checked += c;
                differing += d;
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Verified {
        scheme: scheme.name.clone(),
        device: engine.device(),
        adapter: engine.adapter().map(ToString::to_string),
        accuracy: accuracy(&tally, inputs.len()),
        checked_bytes: on_gpu.then_some(checked),
        differing_bytes: on_gpu.then_some(differing),
    })
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
