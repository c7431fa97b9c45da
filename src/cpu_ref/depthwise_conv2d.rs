//! Depthwise 3×3 convolution, depth multiplier 1, TF SAME padding. Kernel [3, 3, c], NHWC.

use crate::model::{same_padding, Layer};
use crate::quant::QLayer;

const K: usize = 3;

/// Float depthwise convolution (plus bias, if the layer has one) before BatchNorm and activation.
pub fn depthwise_conv2d_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    let (ins, outs, stride) = (layer.input_shape, layer.output_shape, layer.op.stride());
    let (_, pad_y) = same_padding(ins.h, K, stride);
    let (_, pad_x) = same_padding(ins.w, K, stride);
    let mut output = vec![0.0f32; outs.len()];
    for oy in 0..outs.h {
        for ox in 0..outs.w {
            let acc = &mut output[(oy * outs.w + ox) * outs.c..][..outs.c];
            if let Some(bias) = &layer.bias {
                acc.copy_from_slice(bias);
            }
            for ky in 0..K {
                let Some(iy) = (oy * stride + ky).checked_sub(pad_y).filter(|&iy| iy < ins.h) else { continue };
                for kx in 0..K {
                    let Some(ix) = (ox * stride + kx).checked_sub(pad_x).filter(|&ix| ix < ins.w) else { continue };
                    let pixel = &input[(iy * ins.w + ix) * ins.c..][..ins.c];
                    let taps = &layer.kernel[(ky * K + kx) * ins.c..][..ins.c];
                    for ((a, &x), &w) in acc.iter_mut().zip(pixel).zip(taps) {
                        *a += x * w;
                    }
                }
            }
        }
    }
    output
}

/// Integer depthwise convolution: acc[c] = bias[c] + Σ_9 (x − z_x)(w − z_w[c]); padding adds 0.
pub fn depthwise_conv2d_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    // Overflow budget: 9 products of |.| ≤ 65,025 plus |bias| ≤ 2^30: < 2^30 + 2^20, far below 2^31.
    let (ins, outs, stride) = (layer.input_shape, layer.output_shape, layer.op.stride());
    let (_, pad_y) = same_padding(ins.h, K, stride);
    let (_, pad_x) = same_padding(ins.w, K, stride);
    let input_zero = layer.input.zero_point;
    let mut output = vec![0u8; outs.len()];
    let mut acc = vec![0i32; outs.c];
    for oy in 0..outs.h {
        for ox in 0..outs.w {
            acc.copy_from_slice(&layer.bias);
            for ky in 0..K {
                let Some(iy) = (oy * stride + ky).checked_sub(pad_y).filter(|&iy| iy < ins.h) else { continue };
                for kx in 0..K {
                    let Some(ix) = (ox * stride + kx).checked_sub(pad_x).filter(|&ix| ix < ins.w) else { continue };
                    let pixel = &input[(iy * ins.w + ix) * ins.c..][..ins.c];
                    let taps = &layer.weights[(ky * K + kx) * ins.c..][..ins.c];
                    for (((a, &x), &w), &w_zero) in acc.iter_mut().zip(pixel).zip(taps).zip(&layer.weight_zero_points) {
                        *a += (i32::from(x) - input_zero) * (i32::from(w) - w_zero);
                    }
                }
            }
            let out = &mut output[(oy * outs.w + ox) * outs.c..][..outs.c];
            super::requantize_channels(layer, &acc, out);
        }
    }
    output
}
