//! 1×1 convolution. Kernel [c_in, c_out], NHWC.

use crate::model::Layer;
use crate::quant::QLayer;

/// Float 1×1 convolution (plus bias, if the layer has one) before BatchNorm and activation.
pub fn pointwise_conv2d_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    let mut output = vec![0.0f32; outs.len()];
    for (pixel, acc) in input.chunks_exact(ins.c).zip(output.chunks_exact_mut(outs.c)) {
        if let Some(bias) = &layer.bias {
            acc.copy_from_slice(bias);
        }
        for (ci, &x) in pixel.iter().enumerate() {
            let row = &layer.kernel[ci * outs.c..][..outs.c];
            for (a, &w) in acc.iter_mut().zip(row) {
                *a += x * w;
            }
        }
    }
    output
}

/// Integer 1×1 convolution: acc[c] = bias[c] + Σ_{c_in} (x − z_x)(w − z_w[c]).
pub fn pointwise_conv2d_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    // Overflow budget: c_in products of |.| ≤ 65,025 plus |bias| ≤ 2^30 stay under 2^31 for
    // c_in ≤ 16,513 (2^30 / 65,025); MobileNetV1 has c_in ≤ 1,024 (|acc| < 2^30 + 2^26). Under `fp32` the bias
    // may be any i32 (ONNX Runtime's quantize_static saturates biases to int32): then the sum wraps mod 2^32, as
    // ORT's MLAS kernels' int32 adds and the shaders' u32 sums do (the adds here wrap in every op).
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    let input_zero = layer.input.zero_point;
    let mut output = vec![0u8; outs.len()];
    let mut acc = vec![0i32; outs.c];
    for (pixel, out) in input.chunks_exact(ins.c).zip(output.chunks_exact_mut(outs.c)) {
        acc.copy_from_slice(&layer.bias);
        for (ci, &x) in pixel.iter().enumerate() {
            let x = i32::from(x) - input_zero;
            let row = &layer.weights[ci * outs.c..][..outs.c];
            for ((a, &w), &w_zero) in acc.iter_mut().zip(row).zip(&layer.weight_zero_points) {
                *a = a.wrapping_add(x * (i32::from(w) - w_zero));
            }
        }
        super::requantize_channels(layer, &acc, out);
    }
    output
}
