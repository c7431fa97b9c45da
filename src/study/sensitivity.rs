//! `sensitivity`'s study: how much each weighted layer loses when its weights alone have fewer bits, and the
//! cheapest per-layer assignment of weight widths that stays within a top-1 budget, checked end to end.
//!
//! One layer at a time (`layers_alone`): the layer's float input (from the float pass) is quantized with its
//! input parameters, the integer layer runs ([`run_layer_alone`]) with its weights at [`Setup::bits`] (and, for
//! comparison, at 8), its output is dequantized and the rest of the network runs in float. The layer is the one
//! the fully quantized `BASE+wB` model holds, so what is measured is that model's layer, and nothing else is
//! quantized.
//!
//! The assignment (`search`) starts with every weighted layer at `bits` and moves layers to 8 bits, the
//! largest measured top-1 drop first, until the end-to-end integer model (every activation 8-bit) is within
//! [`Setup::max_drop`] points of the all-8-bit model; then each moved layer is tried back at `bits` in turn and
//! kept there if the model stays within budget. Cost = total weight bits. The chosen assignment then runs on the
//! study's device (`verify`), every layer checked against the CPU integer reference on the GPU.

use super::{classes, load_images, paths, Device, List, Progress, CHUNK};
use crate::calibrate::{self, Calibration};
use crate::cpu_ref;
use crate::engine::{check_layers, Accuracy, Tally};
use crate::gpu::Readback;
use crate::model::Model;
use crate::quant::scheme::{RangeMethod, Scheme};
use crate::quant::QuantModel;
use crate::sqnr::{powers, run_layer_alone, sqnr_db};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Serialize, Serializer};
use std::path::{Path, PathBuf};

/// What to study.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The base scheme, without weight widths of its own (e.g. `tf8-zero-var`).
    pub base: Scheme,
    /// Weight bits of the layer under test and of the assignment's cheap layers (2 to 8).
    pub bits: u8,
    /// The top-1 loss (points) the assignment may have against the all-8-bit model of the base scheme.
    pub max_drop: f64,
}

#[derive(Serialize)]
pub struct LayerSensitivity {
    pub layer: String,
    pub weights: usize,
    /// Top-1 (points) of the float model minus that of the float model with this layer alone quantized.
    pub top1_drop_8bit: f64,
    pub top1_drop: f64,
    /// Local SQNR of the layer alone (mean dB over images), weights at 8 bits and at [`Setup::bits`].
    pub local_sqnr_8bit_db: f64,
    pub local_sqnr_db: f64,
}

/// One step of the assignment search: the layer moved, and the end-to-end model it gave.
#[derive(Serialize)]
pub struct Step {
    /// `+layer` moved to 8 bits, `-layer` moved back to [`Setup::bits`].
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
    #[serde(serialize_with = "untimed")]
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
    #[serde(serialize_with = "untimed")]
    pub float: Accuracy,
    /// End to end, every activation 8-bit: weights all at 8 bits, and all at [`Setup::bits`].
    #[serde(serialize_with = "untimed")]
    pub all_8bit: Accuracy,
    #[serde(serialize_with = "untimed")]
    pub all_bits: Accuracy,
    pub layers: Vec<LayerSensitivity>,
    pub steps: Vec<Step>,
    /// The layers the assignment keeps at 8 bits, in network order.
    pub eight_bit_layers: Vec<String>,
    /// Total weight bits: all at 8, all at [`Setup::bits`], the assignment.
    pub weight_bits_8bit: usize,
    pub weight_bits_all: usize,
    pub weight_bits: usize,
    pub assignment: Verified,
}

impl Report {
    /// Whether the assignment's GPU run differed from the CPU integer reference.
    pub fn mismatched(&self) -> bool {
        self.assignment.differing_bytes.is_some_and(|d| d > 0)
    }
}

/// Top-1 and top-5 only: the study does not time its pipelines, so [`Accuracy::wall_s`] would say nothing.
fn untimed<S: Serializer>(accuracy: &Accuracy, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Untimed {
        top1_percent: f64,
        top5_percent: f64,
    }
    Untimed { top1_percent: accuracy.top1_percent, top5_percent: accuracy.top5_percent }.serialize(serializer)
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

/// Every figure of the report: `float` studied under `setup`, calibrated on the images of the list `calibration`,
/// measured on `list`, the chosen assignment verified on `device`.
pub fn measure(
    float: &Model,
    setup: &Setup,
    calibration: &Path,
    list: &List,
    device: &Device,
    progress: &dyn Progress,
) -> Result<Report> {
    if list.images.is_empty() {
        return Err(Error::Invalid(format!("{}: no images to measure", list.path.display())));
    }
    if !float.is_chain() {
        return Err(Error::Invalid(format!(
            "{}: sensitivity runs each layer alone through the rest of a chain (MobileNetV1); this model is a graph \
             with residual ADDs",
            float.name
        )));
    }
    let calibrated = Calibrated::new(float, setup, calibration, progress)?;
    let eight = calibrated.quantize(&setup.base)?;
    let all_bits_scheme = assignment_scheme(&setup.base, setup.bits, &[]);
    let cheap = calibrated.quantize(&all_bits_scheme)?;

    let (alone, images) = layers_alone(float, &calibrated.prepared, [&eight, &cheap], list, progress)?;
    let n = images.len();
    let mut float_tally = Tally::default();
    alone.iter().for_each(|r| float_tally.merge(&r.float));
    let float_accuracy = float_tally.accuracy(n);
    let layers = summarize(&eight, &alone, float_accuracy);

    let all_8bit = end_to_end(&eight, &images, "all 8-bit", progress).accuracy(n);
    let all_bits = end_to_end(&cheap, &images, "all b-bit", progress).accuracy(n);
    progress.note(&format!(
        "end to end: all 8-bit top-1 {:.2} %, all {}-bit {:.2} %",
        all_8bit.top1_percent, setup.bits, all_bits.top1_percent
    ));

    let target = all_8bit.top1_percent - setup.max_drop;
    let (eight_bit, steps) = search(&calibrated, &layers, target, all_bits.top1_percent, &images, progress)?;
    let eight_bit_layers: Vec<String> =
        layers.iter().zip(&eight_bit).filter(|(_, &e)| e).map(|(l, _)| l.layer.clone()).collect();
    let names: Vec<&str> = eight_bit_layers.iter().map(String::as_str).collect();
    let chosen = assignment_scheme(&setup.base, setup.bits, &names);
    let model = calibrated.quantize(&chosen)?;
    let assignment = verify(device, &chosen, &model, &images, progress)?;
    Ok(Report {
        model: float.name.clone(),
        list: list.path.clone(),
        images: n,
        base_scheme: setup.base.name.clone(),
        bits: setup.bits,
        max_drop_points: setup.max_drop,
        float: float_accuracy,
        all_8bit,
        all_bits,
        weight_bits_8bit: total_weight_bits(&eight, &setup.base),
        weight_bits_all: total_weight_bits(&cheap, &all_bits_scheme),
        weight_bits: total_weight_bits(&model, &chosen),
        layers,
        steps,
        eight_bit_layers,
        assignment,
    })
}

/// The base scheme's float model and calibration, made once: every assignment quantizes from them, so all share
/// their activation parameters, and the int8 inputs.
struct Calibrated<'a> {
    setup: &'a Setup,
    /// The float model the base scheme quantizes (BatchNorm folded, transforms applied).
    prepared: Model,
    calibration: Calibration,
}

impl<'a> Calibrated<'a> {
    fn new(float: &Model, setup: &'a Setup, list: &Path, progress: &dyn Progress) -> Result<Calibrated<'a>> {
        let prepared = calibrate::prepare(float, &setup.base);
        let images = super::calibration_images(list, float, &[&setup.base], progress)?;
        let calibration = calibrate::calibrate(&prepared, &images, setup.base.ranges == RangeMethod::Mse);
        Ok(Calibrated { setup, prepared, calibration })
    }

    fn quantize(&self, scheme: &Scheme) -> Result<QuantModel> {
        calibrate::quantize_calibrated(&self.prepared, scheme, &self.calibration)
            .map_err(|e| Error::Invalid(format!("quantizing {scheme}: {e}")))
    }

    /// The assignment with `eight_bit[k]` layers (of `layers`) at 8 bits and the others at [`Setup::bits`], end
    /// to end over `images`: its scheme, top-1 and total weight bits.
    fn try_assignment(
        &self,
        layers: &[LayerSensitivity],
        eight_bit: &[bool],
        images: &Int8Images,
        message: &'static str,
        progress: &dyn Progress,
    ) -> Result<(Scheme, f64, usize)> {
        let names: Vec<&str> =
            layers.iter().zip(eight_bit).filter(|(_, &e)| e).map(|(l, _)| l.layer.as_str()).collect();
        let scheme = assignment_scheme(&self.setup.base, self.setup.bits, &names);
        let model = self.quantize(&scheme)?;
        let top1 = end_to_end(&model, images, message, progress).accuracy(images.len()).top1_percent;
        let weight_bits = total_weight_bits(&model, &scheme);
        Ok((scheme, top1, weight_bits))
    }
}

/// The images as every assignment takes them: the input quantization comes from the calibration alone, so every
/// assignment shares the int8 inputs.
struct Int8Images {
    inputs: Vec<Vec<u8>>,
    /// Each image's label as an output index.
    classes: Vec<usize>,
}

impl Int8Images {
    fn len(&self) -> usize {
        self.inputs.len()
    }
}

/// Per image: the float model's hits, and per weighted layer (8-bit and b-bit weights) the hits of the otherwise
/// float network and the layer's local SQNR.
struct ImageResult {
    float: Tally,
    alone: Vec<[(Tally, f64); 2]>,
}

/// Every image of `list` (decoded as `float`'s input) through `prepared` with each weighted layer of `models`
/// (8-bit and b-bit weights) quantized alone; and the images as int8 inputs of `models[0]`.
fn layers_alone(
    float: &Model,
    prepared: &Model,
    models: [&QuantModel; 2],
    list: &List,
    progress: &dyn Progress,
) -> Result<(Vec<ImageResult>, Int8Images)> {
    let weighted = weighted_layers(models[0]);
    let n = list.images.len();
    let mut images = Int8Images { inputs: Vec::with_capacity(n), classes: Vec::with_capacity(n) };
    let mut results = Vec::with_capacity(n);
    let bar = progress.bar(n, "one layer each");
    for chunk in list.images.chunks(CHUNK) {
        let chunk_classes = classes(float, chunk);
        let inputs = load_images(&paths(chunk), float, "decoding", progress)?;
        let chunk_results: Vec<ImageResult> = inputs
            .par_iter()
            .zip(&chunk_classes)
            .map(|(image, &class)| {
                let result = image_sensitivity(prepared, models, &weighted, image, class);
                bar.advance(1);
                result
            })
            .collect();
        images.inputs.extend(inputs.iter().map(|image| models[0].quantize_input(image)));
        images.classes.extend(chunk_classes);
        results.extend(chunk_results);
    }
    Ok((results, images))
}

/// The indices of `model`'s layers with weights.
fn weighted_layers(model: &QuantModel) -> Vec<usize> {
    (0..model.layers.len()).filter(|&i| model.layers[i].op.has_weights()).collect()
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

/// Each weighted layer of `eight`: its top-1 drops against `float` and its mean local SQNR, from the images'
/// `results` (8-bit weights, then b-bit).
fn summarize(eight: &QuantModel, results: &[ImageResult], float: Accuracy) -> Vec<LayerSensitivity> {
    let n = results.len();
    weighted_layers(eight)
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let at = |variant: usize| {
                let mut tally = Tally::default();
                results.iter().for_each(|r| tally.merge(&r.alone[k][variant].0));
                let sqnr = results.iter().map(|r| r.alone[k][variant].1).sum::<f64>() / n as f64;
                (float.top1_percent - tally.accuracy(n).top1_percent, sqnr)
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
        .collect()
}

/// `model` end to end on the CPU integer reference over `images`: its hits.
fn end_to_end(model: &QuantModel, images: &Int8Images, message: &'static str, progress: &dyn Progress) -> Tally {
    let bar = progress.bar(images.len(), message);
    let hits: Vec<Tally> = images
        .inputs
        .par_iter()
        .zip(&images.classes)
        .map(|(input, &class)| {
            let logits = cpu_ref::run_u8(model, input).pop().expect("layers");
            let mut hit = Tally::default();
            hit.add(&[model.dequantize_logits(&logits)], &[class]);
            bar.advance(1);
            hit
        })
        .collect();
    drop(bar);
    let mut tally = Tally::default();
    hits.iter().for_each(|h| tally.merge(h));
    tally
}

/// The greedy search over `layers` from all at [`Setup::bits`] (top-1 `start_top1`) towards top-1 ≥ `target`: the
/// largest measured drop first (ties: the lower local SQNR), then a pass moving layers back. Returns which layers
/// end at 8 bits, and every step.
fn search(
    calibrated: &Calibrated,
    layers: &[LayerSensitivity],
    target: f64,
    start_top1: f64,
    images: &Int8Images,
    progress: &dyn Progress,
) -> Result<(Vec<bool>, Vec<Step>)> {
    let bits = calibrated.setup.bits;
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&layers[a], &layers[b]);
        y.top1_drop.total_cmp(&x.top1_drop).then(x.local_sqnr_db.total_cmp(&y.local_sqnr_db))
    });
    let mut eight_bit = vec![false; layers.len()];
    let mut steps = Vec::new();
    let mut top1 = start_top1;
    for &k in &order {
        if top1 >= target || bits == 8 {
            break;
        }
        eight_bit[k] = true;
        let (scheme, reached, weight_bits) =
            calibrated.try_assignment(layers, &eight_bit, images, "searching", progress)?;
        top1 = reached;
        progress.note(&format!("{} to 8 bits: top-1 {top1:.2} % (target {target:.2} %)", layers[k].layer));
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
        let (scheme, reached, weight_bits) =
            calibrated.try_assignment(layers, &eight_bit, images, "pruning", progress)?;
        let kept = reached >= target;
        if !kept {
            eight_bit[k] = true;
        }
        let verdict = if kept { "kept there" } else { "undone" };
        progress.note(&format!("{} back to {bits} bits: top-1 {reached:.2} %, {verdict}", layers[k].layer));
        steps.push(Step {
            change: format!("-{}", layers[k].layer),
            kept,
            scheme: scheme.name,
            top1_percent: reached,
            weight_bits,
        });
    }
    Ok((eight_bit, steps))
}

/// The assignment `model` (scheme `scheme`) end to end on `device`: top-1/top-5, and on the GPU every layer
/// compared with the CPU reference.
fn verify(
    device: &Device,
    scheme: &Scheme,
    model: &QuantModel,
    images: &Int8Images,
    progress: &dyn Progress,
) -> Result<Verified> {
    let mut engine = device.engine(&[model], progress)?;
    let on_gpu = engine.adapter().is_some();
    let mut tally = Tally::default();
    let (mut checked, mut differing) = (0, 0);
    let bar = progress.bar(images.len(), "verifying");
    for (chunk, chunk_classes) in images.inputs.chunks(CHUNK).zip(images.classes.chunks(CHUNK)) {
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
        bar.advance(chunk.len());
    }
    drop(bar);
    Ok(Verified {
        scheme: scheme.name.clone(),
        device: engine.device(),
        adapter: engine.adapter().map(ToString::to_string),
        accuracy: tally.accuracy(images.len()),
        checked_bytes: on_gpu.then_some(checked),
        differing_bytes: on_gpu.then_some(differing),
    })
}
