//! Quantizing one folded layer: weight parameters (asymmetric or symmetric, per tensor or per channel, 2 to 8
//! bits), bias correction from given input means, int32 bias, multipliers and activation bounds.

use super::fixed_point::{effective_scale, quantize_multiplier, Requant, ScaleProduct};
use super::{PoolRounding, QLayer, QuantParams, Range};
use crate::error::{Error, Result};
use crate::model::{Activation, Layer};

/// Bias magnitudes are clamped here so that bias + accumulator fits i32 (see the overflow budgets in cpu_ref).
pub const BIAS_LIMIT: i64 = 1 << 30;

/// One output channel's weight quantization: its parameters and the codes its bit width allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightParams {
    pub params: QuantParams,
    /// The codes [lowest, highest]: [0, 2^b − 1] asymmetric, 128 ± (2^(b−1) − 1) symmetric.
    pub lowest: u8,
    pub highest: u8,
}

impl WeightParams {
    /// b-bit asymmetric: gemmlowp's nudged parameters over [0, 2^b − 1] ([`QuantParams::from_range_levels`]).
    pub fn asymmetric(range: Range, bits: u8) -> WeightParams {
        let highest = ((1u16 << bits) - 1) as u8;
        WeightParams { params: QuantParams::from_range_levels(range.min, range.max, highest), lowest: 0, highest }
    }

    /// b-bit symmetric ([`symmetric_params`]): the codes 128 ± (2^(b−1) − 1).
    pub fn symmetric(range: Range, bits: u8) -> WeightParams {
        let levels = symmetric_levels(bits);
        WeightParams { params: symmetric_params(range, bits), lowest: 128 - levels, highest: 128 + levels }
    }

    pub fn quantize(&self, w: f32) -> u8 {
        self.params.quantize_within(w, self.lowest, self.highest)
    }
}

/// 2^(b−1) − 1: the largest |round(w/s)| of b-bit symmetric weights (127 for 8 bits).
fn symmetric_levels(bits: u8) -> u8 {
    (1u8 << (bits - 1)) - 1
}

/// One weight quantization per output channel: per-tensor repeats the whole kernel's. Asymmetric over the
/// range, or symmetric ([`symmetric_params`]), in `bits` bits.
pub(crate) fn weight_params(layer: &Layer, per_channel: bool, symmetric: bool, bits: u8) -> Vec<WeightParams> {
    let channels = layer.output_shape.c;
    let params =
        |r: &Range| if symmetric { WeightParams::symmetric(*r, bits) } else { WeightParams::asymmetric(*r, bits) };
    if !per_channel {
        return vec![params(&Range::of(&layer.kernel)); channels];
    }
    let mut ranges = vec![Range::default(); channels];
    for (i, &w) in layer.kernel.iter().enumerate() {
        ranges[i % channels].update(&[w]);
    }
    ranges.iter().map(params).collect()
}

/// TFLite's int8 weights (`SymmetricPerChannelQuantizeValues`) generalised to b bits: scale max|w|/(2^(b−1) − 1)
/// (1 for an all-zero range), so round(w/s) lies in ±(2^(b−1) − 1), [−127, 127] for 8 bits; in the engine's u8
/// that + 128, zero point 128.
pub fn symmetric_params(range: Range, bits: u8) -> QuantParams {
    let max = range.min.abs().max(range.max.abs());
    let scale = if max > 0.0 { max / f32::from(symmetric_levels(bits)) } else { 1.0 };
    QuantParams { scale, zero_point: 128 }
}

/// Bias correction (Nagel et al. 2019, §4.2, with empirical input means): the weight-quantization error
/// ε = W_q − W shifts each output's expectation by Σ ε·E[x]; subtract it from the bias. Padding is ignored.
pub(crate) fn correct_bias(layer: &Layer, weights: &[WeightParams], input_means: &[f64], bias: &mut [f32]) {
    let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
    for (i, &w) in layer.kernel.iter().enumerate() {
        let c = i % c_out;
        // The error of the layer's own b-bit codes, clamp included.
        let error = f64::from(weights[c].params.dequantize(weights[c].quantize(w))) - f64::from(w);
        bias[c] -= (error * input_means[layer.op.weight_input_channel(i, c_in, c_out)]) as f32;
    }
}

/// Quantize one folded convolution with the given per-output-channel weight parameters, its multipliers with
/// the `product` convention of the TFLite kernels it is meant for.
pub fn quantize_layer(
    layer: &Layer,
    bias: &[f32],
    input: QuantParams,
    weights: &[WeightParams],
    output: QuantParams,
    product: ScaleProduct,
) -> Result<QLayer> {
    let channels = layer.output_shape.c;
    // Each code is clamped to its width's codes: 8-bit symmetric weights land in [1, 255] (TFLite's int8
    // [−127, 127] + 128), since |w/s| ≤ 127 up to rounding of s, so the clamp changes no 8-bit code.
    let quantized_weights = layer.kernel.iter().enumerate().map(|(i, &w)| weights[i % channels].quantize(w)).collect();
    let mut multipliers = Vec::with_capacity(channels);
    let mut shifts = Vec::with_capacity(channels);
    let mut quantized_bias = Vec::with_capacity(channels);
    for (c, w) in weights.iter().map(|w| w.params).enumerate() {
        let bias_scale = f64::from(input.scale) * f64::from(w.scale);
        let q = (f64::from(bias[c]) / bias_scale).round() as i64;
        quantized_bias.push(q.clamp(-BIAS_LIMIT, BIAS_LIMIT) as i32);
        // As TFLite's kernels derive it from the scales, so that an exported model runs the same arithmetic there.
        let real = effective_scale(input.scale, w.scale, output.scale, product);
        let (multiplier, shift) = quantize_multiplier(real).ok_or_else(|| Error::UnsupportedShape {
            layer: layer.name.clone(),
            reason: format!("requantization multiplier {real:e} is out of range"),
        })?;
        multipliers.push(multiplier);
        shifts.push(shift);
    }
    let relu6_max = |c: usize| layer.clip_max.as_ref().map_or(6.0, |clip| clip[c]);
    let (act_min, act_max) = match layer.activation {
        Activation::None => (0, vec![255; channels]),
        Activation::Relu => (output.zero(), vec![255; channels]),
        Activation::Relu6 => (output.zero(), (0..channels).map(|c| output.activation_bound(relu6_max(c))).collect()),
    };
    Ok(QLayer {
        name: layer.name.clone(),
        op: layer.op,
        inputs: layer.inputs.clone(),
        add: None,
        input_shape: layer.input_shape,
        output_shape: layer.output_shape,
        input,
        output,
        weights: quantized_weights,
        weight_scales: weights.iter().map(|w| w.params.scale).collect(),
        weight_zero_points: weights.iter().map(|w| w.params.zero_point).collect(),
        bias: quantized_bias,
        multipliers,
        shifts,
        act_min,
        act_max,
        requant: Requant::Double,
        pool: PoolRounding::HalfUp,
    })
}
