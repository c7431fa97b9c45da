//! Depthwise 3×3 convolution, depth multiplier 1, TF SAME padding. Kernel [3, 3, c], NHWC.

use super::window_3x3;
use crate::model::Layer;
use crate::quant::QLayer;

/// Float depthwise convolution (plus bias, if the layer has one) before BatchNorm and activation.
pub fn depthwise_conv2d_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    let mut output = vec![0.0f32; outs.len()];
    for oy in 0..outs.h {
        for ox in 0..outs.w {
            let acc = &mut output[(oy * outs.w + ox) * outs.c..][..outs.c];
            if let Some(bias) = &layer.bias {
                acc.copy_from_slice(bias);
            }
            for (tap, pixel) in window_3x3(ins, layer.op, oy, ox) {
                let pixel = &input[pixel * ins.c..][..ins.c];
                let taps = &layer.kernel[tap * ins.c..][..ins.c];
                for ((a, &x), &w) in acc.iter_mut().zip(pixel).zip(taps) {
                    *a += x * w;
                }
            }
        }
    }
    output
}

/// Integer depthwise convolution: acc[c] = bias[c] + Σ_9 (x − z_x)(w − z_w[c]); padding adds 0.
pub fn depthwise_conv2d_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    // Overflow budget: 9 products of |.| ≤ 65,025 plus |bias| ≤ 2^30: < 2^30 + 2^20, far below 2^31.
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    let input_zero = layer.input.zero_point;
    let mut output = vec![0u8; outs.len()];
    let mut acc = vec![0i32; outs.c];
    for oy in 0..outs.h {
        for ox in 0..outs.w {
            acc.copy_from_slice(&layer.bias);
            for (tap, pixel) in window_3x3(ins, layer.op, oy, ox) {
                let pixel = &input[pixel * ins.c..][..ins.c];
                let taps = &layer.weights[tap * ins.c..][..ins.c];
                for (((a, &x), &w), &w_zero) in acc.iter_mut().zip(pixel).zip(taps).zip(&layer.weight_zero_points) {
                    *a = a.wrapping_add((i32::from(x) - input_zero) * (i32::from(w) - w_zero));
                }
            }
            let out = &mut output[(oy * outs.w + ox) * outs.c..][..outs.c];
            super::requantize_channels(layer, &acc, out);
        }
    }
    output
}
