//! Global average pool: [h, w, c] → [1, 1, c].

use crate::model::Layer;
use crate::quant::fixed_point::{multiply_by_quantized_multiplier, requantize_fp32};
use crate::quant::{PoolRounding, QLayer, Requant};

pub fn global_avg_pool_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    let c = layer.input_shape.c;
    let count = (layer.input_shape.h * layer.input_shape.w) as f32;
    let mut sum = vec![0.0f32; c];
    for pixel in input.chunks_exact(c) {
        for (s, &x) in sum.iter_mut().zip(pixel) {
            *s += x;
        }
    }
    sum.iter().map(|&s| s / count).collect()
}

/// The integer average of each channel under the layer's [`PoolRounding`]:
/// - `half-up`: (Σq + n/2) / n, as TFLite's uint8 AveragePool; the output keeps the input's scale and zero point
///   (the mean of values in a range stays in it), so no requantization is needed;
/// - `ties-away`: TFLite's int8 AveragePool on the int8 values q − 128: s = Σq − 128·n, (s ± n/2) / n truncated
///   toward zero, + 128;
/// - `fp32`: ONNX Runtime's QLinearGlobalAveragePool, requantize_fp32(Σq − n·z_in, s_in / (s_out · f32(n)));
/// - `tflite-mean`: LiteRT's int8 MEAN, multiply_by_quantized_multiplier(Σq − n·z_in, M, s) + z_out, clamped, with
///   1/n folded into M and s (`fixed_point::mean_multiplier`); under `--requant fp32` XNNPACK's, as `fp32`.
pub fn global_avg_pool_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    // Overflow budget: Σq ≤ 255·h·w; 255·7·7 = 12,495 here, and i32 holds any h·w ≤ 8.4 million (h, w ≤ 4,096
    // gives h·w ≤ 16.8 million: Σq < 2^32 in u32, and |Σq − n·z| < 2^32 in i64).
    let c = layer.input_shape.c;
    let count = (layer.input_shape.h * layer.input_shape.w) as u32;
    let mut sum = vec![0u32; c];
    for pixel in input.chunks_exact(c) {
        for (s, &q) in sum.iter_mut().zip(pixel) {
            *s += u32::from(q);
        }
    }
    match layer.pool {
        PoolRounding::HalfUp => sum.iter().map(|&s| ((s + count / 2) / count) as u8).collect(),
        PoolRounding::TiesAway => {
            let n = i64::from(count);
            sum.iter()
                .map(|&s| {
                    let signed = i64::from(s) - 128 * n;
                    // Rust's `/` truncates toward zero, as C's does in TFLite's kernel.
                    let average = if signed > 0 { (signed + n / 2) / n } else { (signed - n / 2) / n };
                    (average.clamp(-128, 127) + 128) as u8
                })
                .collect()
        }
        PoolRounding::Fp32 => fp32_average(layer, &sum, count),
        PoolRounding::TfliteMean if layer.requant == Requant::Fp32 => fp32_average(layer, &sum, count),
        PoolRounding::TfliteMean => {
            let (multiplier, shift) = (layer.multipliers[0], layer.shifts[0]);
            let offset = i64::from(count) * i64::from(layer.input.zero_point);
            sum.iter()
                .map(|&s| {
                    // |Σq − n·z_in| ≤ 255·n < 2^31 (QuantModel::validate).
                    let acc = (i64::from(s) - offset) as i32;
                    let scaled = multiply_by_quantized_multiplier(acc, multiplier, shift);
                    scaled.saturating_add(layer.output.zero_point).clamp(0, 255) as u8
                })
                .collect()
        }
    }
}

/// requantize_fp32(Σq − n·z_in, s_in / (s_out · f32(n))): ONNX Runtime's QLinearGlobalAveragePool and XNNPACK's MEAN.
fn fp32_average(layer: &QLayer, sum: &[u32], count: u32) -> Vec<u8> {
    let scale = layer.pool_scale();
    let offset = i64::from(count) * i64::from(layer.input.zero_point);
    sum.iter()
        .map(|&s| {
            let acc = (i64::from(s) - offset).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            requantize_fp32(acc, scale, layer.output.zero_point, 0, 255)
        })
        .collect()
}
