//! Calibration and quantization of a float model under a [`Scheme`]. TF8, the study's baseline (Sheng et al.
//! 2018): BatchNorm folded into each convolution; per-tensor asymmetric uint8 for the input, every weight tensor
//! and every layer output; activation ranges = min/max over calibration images, weight ranges = min/max of the
//! folded weights, each extended to include 0 and nudged ([`QuantParams::from_range`]); bias as int32 with scale
//! s_in·s_w and zero point 0. The other schemes change one step each (see [`crate::quant::scheme`]).
//!
//! It sits above the CPU reference, whose float pass it runs over the calibration images; the arithmetic of
//! quantizing one layer is in [`crate::quant::weights`].

use crate::cpu_ref;
use crate::error::{Error, Result};
use crate::model::{Activation, Model, Op, Source};
use crate::quant::fixed_point::ScaleProduct;
use crate::quant::scheme::{Architecture, RangeMethod, Scheme};
use crate::quant::weights::{correct_bias, quantize_layer, weight_params};
use crate::quant::{transform, AddStage, QLayer, QuantModel, QuantParams, Range};

/// Bins of the activation histograms that MSE clipping searches.
const HISTOGRAM_BINS: usize = 2048;

/// Min/max of the input and of every layer's output over the calibration images, and the mean of every
/// layer's (first) input's channels (for bias correction).
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub input: Range,
    pub outputs: Vec<Range>,
    /// [layer][input channel] mean over images and positions.
    pub input_means: Vec<Vec<f64>>,
    /// [layer][bin] counts of each layer's output over its [min, max], when MSE clipping asked for them.
    pub histograms: Vec<Vec<u64>>,
}

/// Per-channel sums of an NHWC tensor.
fn channel_sums(values: &[f32], channels: usize) -> Vec<f64> {
    let mut sums = vec![0.0f64; channels];
    for pixel in values.chunks_exact(channels) {
        for (s, &x) in sums.iter_mut().zip(pixel) {
            *s += f64::from(x);
        }
    }
    sums
}

/// Run the float model on every image (in parallel) and record ranges and input means; with `histograms`, a
/// second pass records each output's histogram over its range.
pub fn calibrate(model: &Model, images: &[Vec<f32>], histograms: bool) -> Calibration {
    let layers = model.layers.len();
    let empty = || Calibration {
        input: Range::default(),
        outputs: vec![Range::default(); layers],
        input_means: model.layers.iter().map(|l| vec![0.0; l.input_shape.c]).collect(),
        histograms: Vec::new(),
    };
    let per_image = crate::par::map(images, |image| {
        let outputs = cpu_ref::run_f32(model, image);
        let first_input = |i: usize| match model.inputs_of(i)[0] {
            Source::Image => image.as_slice(),
            Source::Layer(j) => outputs[j].as_slice(),
        };
        Calibration {
            input: Range::of(image),
            outputs: outputs.iter().map(|o| Range::of(o)).collect(),
            input_means: (0..layers).map(|i| channel_sums(first_input(i), model.layers[i].input_shape.c)).collect(),
            histograms: Vec::new(),
        }
    });
    // Folded in image order, so the sums do not depend on how the images were shared out between threads.
    let sum = per_image.into_iter().fold(empty(), |a, b| Calibration {
        input: a.input.merge(b.input),
        outputs: a.outputs.iter().zip(&b.outputs).map(|(x, y)| x.merge(*y)).collect(),
        input_means: a
            .input_means
            .iter()
            .zip(&b.input_means)
            .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p + q).collect())
            .collect(),
        histograms: Vec::new(),
    });
    let mut calibration = sum;
    for (means, layer) in calibration.input_means.iter_mut().zip(&model.layers) {
        let count = (images.len() * layer.input_shape.h * layer.input_shape.w).max(1) as f64;
        means.iter_mut().for_each(|m| *m /= count);
    }
    if histograms {
        calibration.histograms = output_histograms(model, images, &calibration.outputs);
    }
    calibration
}

fn output_histograms(model: &Model, images: &[Vec<f32>], ranges: &[Range]) -> Vec<Vec<u64>> {
    let empty = || vec![vec![0u64; HISTOGRAM_BINS]; ranges.len()];
    let per_image = crate::par::map(images, |image| {
        let mut histograms = empty();
        for ((output, range), histogram) in cpu_ref::run_f32(model, image).iter().zip(ranges).zip(&mut histograms) {
            let width = (range.max - range.min).max(f32::MIN_POSITIVE);
            for &x in output {
                let bin = ((x - range.min) / width * HISTOGRAM_BINS as f32) as usize;
                histogram[bin.min(HISTOGRAM_BINS - 1)] += 1;
            }
        }
        histograms
    });
    per_image.into_iter().fold(empty(), |mut a, b| {
        a.iter_mut().zip(&b).for_each(|(x, y)| x.iter_mut().zip(y).for_each(|(p, q)| *p += q));
        a
    })
}

/// The clipping range [α·min, α·max] (α ∈ [0.2, 1]) minimising the expected squared error of quantizing the
/// histogram's values: clipped values cost their distance to the bound, the others the uniform rounding noise
/// scale²/12.
pub fn mse_range(range: Range, histogram: &[u64]) -> Range {
    let width = f64::from(range.max - range.min) / histogram.len() as f64;
    let error = |candidate: Range| {
        let params = QuantParams::from_range(candidate.min, candidate.max);
        let (low, high) = (f64::from(params.dequantize(0)), f64::from(params.dequantize(255)));
        let noise = f64::from(params.scale).powi(2) / 12.0;
        histogram
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(bin, &n)| {
                let x = f64::from(range.min) + (bin as f64 + 0.5) * width;
                let clipped = x.clamp(low, high);
                n as f64 * if clipped == x { noise } else { (x - clipped).powi(2) }
            })
            .sum::<f64>()
    };
    (20..=100)
        .map(|percent| {
            let alpha = percent as f32 / 100.0;
            Range { min: range.min * alpha, max: range.max * alpha }
        })
        .min_by(|a, b| error(*a).total_cmp(&error(*b)))
        .expect("candidates")
}

/// Calibrate on `images` and quantize with TF8.
pub fn quantize(model: &Model, images: &[Vec<f32>]) -> Result<QuantModel> {
    Ok(quantize_scheme(model, &Scheme::tf8(), images)?.1)
}

/// The float model a scheme quantizes (BatchNorm folded, transforms applied): the reference for its SQNR.
pub fn prepare(model: &Model, scheme: &Scheme) -> Model {
    let changed = match scheme.architecture {
        Architecture::Original => model.clone(),
        Architecture::Relu => transform::relu_everywhere(model),
        Architecture::DwLinear => transform::depthwise_linear(model, scheme.zero_variance_fix),
        Architecture::DwLinearRelu => {
            transform::relu_everywhere(&transform::depthwise_linear(model, scheme.zero_variance_fix))
        }
    };
    let folded = transform::fold_batch_norms(&changed, scheme.zero_variance_fix);
    if scheme.equalize {
        transform::equalize(&folded)
    } else {
        folded
    }
}

/// Calibrate on `images` and quantize under `scheme`: (the prepared float model, the quantized model).
pub fn quantize_scheme(model: &Model, scheme: &Scheme, images: &[Vec<f32>]) -> Result<(Model, QuantModel)> {
    if images.is_empty() {
        return Err(Error::Invalid("calibration needs at least one image".into()));
    }
    let prepared = prepare(model, scheme);
    let calibration = calibrate(&prepared, images, scheme.ranges == RangeMethod::Mse);
    let quantized = quantize_calibrated(&prepared, scheme, &calibration)?;
    Ok((prepared, quantized))
}

/// Quantize a prepared (BatchNorm-folded) model with known calibration.
pub fn quantize_calibrated(model: &Model, scheme: &Scheme, calibration: &Calibration) -> Result<QuantModel> {
    let weighted = || model.layers.iter().filter(|l| l.op.has_weights());
    if let Some(unknown) = scheme.layer_weight_bits.keys().find(|name| !weighted().any(|l| &l.name == *name)) {
        return Err(Error::Invalid(format!(
            "scheme `{scheme}`: `@{unknown}` is no layer with weights of {}; they are {}",
            model.name,
            weighted().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let input = QuantParams::from_range(calibration.input.min, calibration.input.max);
    let mut layers: Vec<QLayer> = Vec::with_capacity(model.layers.len());
    for (i, layer) in model.layers.iter().enumerate() {
        if layer.batch_norm.is_some() {
            return Err(Error::Invalid(format!("layer {}: fold BatchNorm before quantizing", layer.name)));
        }
        // Each operand's quantization is the output quantization of the tensor it reads.
        let sources = model.inputs_of(i);
        let params_of = |source: Source| match source {
            Source::Image => input,
            Source::Layer(j) => layers[j].output,
        };
        let layer_input = params_of(sources[0]);
        let output_range = || match scheme.ranges {
            RangeMethod::MinMax => calibration.outputs[i],
            RangeMethod::Mse => mse_range(calibration.outputs[i], &calibration.histograms[i]),
        };
        let qlayer = match layer.op {
            Op::GlobalAvgPool => QLayer {
                inputs: layer.inputs.clone(),
                ..QLayer::global_avg_pool(&layer.name, layer.input_shape, layer_input)
            },
            Op::Add => {
                let range = output_range();
                let output = QuantParams::from_range(range.min, range.max);
                add_layer(layer, layer_input, params_of(sources[1]), output)?
            }
            Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::PointwiseConv2d | Op::Classifier => {
                let range = output_range();
                let output = QuantParams::from_range(range.min, range.max);
                let bits = scheme.weight_bits_of(&layer.name);
                let weights = weight_params(layer, scheme.per_channel, scheme.symmetric, bits);
                let mut bias = layer.bias.clone().unwrap_or_else(|| vec![0.0; layer.output_shape.c]);
                if scheme.bias_correction {
                    correct_bias(layer, &weights, &calibration.input_means[i], &mut bias);
                }
                // Symmetric weights are TFLite's int8 convention, whose kernels derive the multipliers in double.
                let product = if scheme.symmetric { ScaleProduct::Float64 } else { ScaleProduct::Float32 };
                quantize_layer(layer, &bias, layer_input, &weights, output, product)?
            }
        };
        layers.push(qlayer);
    }
    Ok(QuantModel {
        name: model.name.clone(),
        scheme: scheme.name.clone(),
        input_shape: model.input_shape,
        input,
        layers,
        synthetic: model.synthetic,
        input_rounding: Default::default(),
    })
}

/// A calibrated ADD of operands quantized as `first` and `second` into `output`, with TFLite's arithmetic
/// ([`AddStage::tflite`]) and its activation as a clamp (no activation: the whole range).
fn add_layer(
    layer: &crate::model::Layer,
    first: QuantParams,
    second: QuantParams,
    output: QuantParams,
) -> Result<QLayer> {
    let add = AddStage::tflite(first, second, output).ok_or_else(|| Error::UnsupportedShape {
        layer: layer.name.clone(),
        reason: format!(
            "input scales {} and {} and output scale {} give no multiplier",
            first.scale, second.scale, output.scale
        ),
    })?;
    let (act_min, act_max) = match layer.activation {
        Activation::None => (0, 255),
        Activation::Relu => (output.zero(), 255),
        Activation::Relu6 => (output.zero(), output.activation_bound(6.0)),
    };
    Ok(QLayer::add(&layer.name, layer.inputs.clone(), layer.input_shape, first, output, add, act_min, act_max))
}
