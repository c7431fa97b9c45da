//! Standard 3×3 convolution (MobileNetV1's first layer), TF SAME padding. Kernel [3, 3, c_in, c_out], NHWC.

use super::window_3x3;
use crate::model::Layer;
use crate::quant::QLayer;

/// Float convolution (plus bias, if the layer has one) before BatchNorm and activation.
pub fn conv2d_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
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
                for (ci, &x) in pixel.iter().enumerate() {
                    let row = &layer.kernel[(tap * ins.c + ci) * outs.c..][..outs.c];
                    for (a, &w) in acc.iter_mut().zip(row) {
                        *a += x * w;
                    }
                }
            }
        }
    }
    output
}

/// Integer convolution: acc = bias + Σ (x − z_x)(w − z_w[c]); padding is the input zero point, so it adds 0.
pub fn conv2d_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    // Overflow budget: each product |(x − z_x)(w − z_w)| ≤ 255·255 = 65,025; 9·c_in products (c_in = 3 here,
    // ≤ 1,600 for the bound below) plus |bias| ≤ 2^30 stay under 2^31: 2^30 + 9·1,600·65,025 < 2^31.
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    let input_zero = layer.input.zero_point;
    let mut output = vec![0u8; outs.len()];
    let mut acc = vec![0i32; outs.c];
    for oy in 0..outs.h {
        for ox in 0..outs.w {
            acc.copy_from_slice(&layer.bias);
            for (tap, pixel) in window_3x3(ins, layer.op, oy, ox) {
                let pixel = &input[pixel * ins.c..][..ins.c];
                for (ci, &x) in pixel.iter().enumerate() {
                    let x = i32::from(x) - input_zero;
                    let row = &layer.weights[(tap * ins.c + ci) * outs.c..][..outs.c];
                    for ((a, &w), &w_zero) in acc.iter_mut().zip(row).zip(&layer.weight_zero_points) {
                        *a = a.wrapping_add(x * (i32::from(w) - w_zero));
                    }
                }
            }
            let out = &mut output[(oy * outs.w + ox) * outs.c..][..outs.c];
            super::requantize_channels(layer, &acc, out);
        }
    }
    output
}
