//! TF8, the study's baseline (Sheng et al. 2018): BatchNorm folded into each convolution; per-tensor asymmetric
//! uint8 for the input, every weight tensor and every layer output; activation ranges = min/max over calibration
//! images, weight ranges = min/max of the folded weights, each extended to include 0 and nudged
//! ([`QuantParams::from_range`]); bias as int32 with scale s_in·s_w and zero point 0.

use super::fixed_point::quantize_multiplier;
use super::{QLayer, QuantModel, QuantParams, Range};
use crate::cpu_ref;
use crate::error::{Error, Result};
use crate::model::{Activation, Layer, Model, Op};
use rayon::prelude::*;

/// Bias magnitudes are clamped here so that bias + accumulator fits i32 (see the overflow budgets in cpu_ref).
pub const BIAS_LIMIT: i64 = 1 << 30;

/// Min/max of the input and of every layer's output over the calibration images.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub input: Range,
    pub outputs: Vec<Range>,
}

/// Run the float model on every image (in parallel) and record the ranges.
pub fn calibrate(model: &Model, images: &[Vec<f32>]) -> Calibration {
    let empty = || Calibration { input: Range::default(), outputs: vec![Range::default(); model.layers.len()] };
    images
        .par_iter()
        .map(|image| {
            let outputs = cpu_ref::run_f32(model, image);
            Calibration { input: Range::of(image), outputs: outputs.iter().map(|o| Range::of(o)).collect() }
        })
        .reduce(empty, |a, b| Calibration {
            input: a.input.merge(b.input),
            outputs: a.outputs.iter().zip(&b.outputs).map(|(x, y)| x.merge(*y)).collect(),
        })
}

/// Calibrate on `images` and quantize with TF8.
pub fn quantize(model: &Model, images: &[Vec<f32>]) -> Result<QuantModel> {
    if images.is_empty() {
        return Err(Error::Invalid("calibration needs at least one image".into()));
    }
    quantize_calibrated(model, &calibrate(model, images))
}

/// The folded float weights [layout of the op] and bias [c_out] of a layer: BN(conv(x)) = conv'(x) + b'.
pub fn fold_batch_norm(layer: &Layer) -> (Vec<f32>, Vec<f32>) {
    let channels = layer.output_shape.c;
    let mut kernel = layer.kernel.clone();
    let mut bias = layer.bias.clone().unwrap_or_else(|| vec![0.0; channels]);
    if let Some(bn) = &layer.batch_norm {
        // Every kernel layout of MobileNetV1 has the output channel fastest.
        for (i, w) in kernel.iter_mut().enumerate() {
            *w *= bn.scale_shift(i % channels).0;
        }
        for (c, b) in bias.iter_mut().enumerate() {
            let (scale, shift) = bn.scale_shift(c);
            *b = *b * scale + shift;
        }
    }
    (kernel, bias)
}

/// Quantize with known activation ranges, one weight range per tensor.
pub fn quantize_calibrated(model: &Model, calibration: &Calibration) -> Result<QuantModel> {
    let input = QuantParams::from_range(calibration.input.min, calibration.input.max);
    let mut layers = Vec::with_capacity(model.layers.len());
    let mut layer_input = input;
    for (layer, range) in model.layers.iter().zip(&calibration.outputs) {
        let qlayer = if layer.op == Op::GlobalAvgPool {
            pool_layer(layer, layer_input)
        } else {
            let (kernel, bias) = fold_batch_norm(layer);
            let weight_range = Range::of(&kernel);
            let weights = vec![QuantParams::from_range(weight_range.min, weight_range.max); layer.output_shape.c];
            let output = QuantParams::from_range(range.min, range.max);
            quantize_layer(layer, &kernel, &bias, layer_input, &weights, output)?
        };
        layer_input = qlayer.output;
        layers.push(qlayer);
    }
    Ok(QuantModel {
        name: model.name.clone(),
        scheme: "tf8".into(),
        input_shape: model.input_shape,
        input,
        layers,
        synthetic: model.synthetic,
    })
}

/// The global average pool keeps its input's quantization (TFLite requires it), so it needs no parameters.
fn pool_layer(layer: &Layer, input: QuantParams) -> QLayer {
    QLayer {
        name: layer.name.clone(),
        op: layer.op,
        input_shape: layer.input_shape,
        output_shape: layer.output_shape,
        input,
        output: input,
        weights: Vec::new(),
        weight_scales: Vec::new(),
        weight_zero_points: Vec::new(),
        bias: Vec::new(),
        multipliers: Vec::new(),
        shifts: Vec::new(),
        act_min: 0,
        act_max: 255,
    }
}

/// Quantize one folded convolution with the given per-output-channel weight parameters.
pub fn quantize_layer(
    layer: &Layer,
    kernel: &[f32],
    bias: &[f32],
    input: QuantParams,
    weights: &[QuantParams],
    output: QuantParams,
) -> Result<QLayer> {
    let channels = layer.output_shape.c;
    let quantized_weights = kernel.iter().enumerate().map(|(i, &w)| weights[i % channels].quantize(w)).collect();
    let mut multipliers = Vec::with_capacity(channels);
    let mut shifts = Vec::with_capacity(channels);
    let mut quantized_bias = Vec::with_capacity(channels);
    for (c, w) in weights.iter().enumerate() {
        let bias_scale = f64::from(input.scale) * f64::from(w.scale);
        let q = (f64::from(bias[c]) / bias_scale).round() as i64;
        quantized_bias.push(q.clamp(-BIAS_LIMIT, BIAS_LIMIT) as i32);
        let real = bias_scale / f64::from(output.scale);
        let (multiplier, shift) = quantize_multiplier(real).ok_or_else(|| Error::UnsupportedShape {
            layer: layer.name.clone(),
            reason: format!("requantization multiplier {real:e} is out of range"),
        })?;
        multipliers.push(multiplier);
        shifts.push(shift);
    }
    let (act_min, act_max) = match layer.activation {
        Activation::None => (0, 255),
        Activation::Relu => (output.zero(), 255),
        Activation::Relu6 => (output.zero(), output.quantize(6.0)),
    };
    Ok(QLayer {
        name: layer.name.clone(),
        op: layer.op,
        input_shape: layer.input_shape,
        output_shape: layer.output_shape,
        input,
        output,
        weights: quantized_weights,
        weight_scales: weights.iter().map(|w| w.scale).collect(),
        weight_zero_points: weights.iter().map(|w| w.zero_point).collect(),
        bias: quantized_bias,
        multipliers,
        shifts,
        act_min,
        act_max,
    })
}
