//! The CPU reference: float and integer forward passes, one file per op. Written for clarity and exactness;
//! the integer pass is the specification the GPU shaders must match bit for bit.

mod classifier;
mod conv2d;
mod depthwise_conv2d;
mod global_avg_pool;
mod pointwise_conv2d;

pub use classifier::{classifier_f32, classifier_u8};
pub use conv2d::{conv2d_f32, conv2d_u8};
pub use depthwise_conv2d::{depthwise_conv2d_f32, depthwise_conv2d_u8};
pub use global_avg_pool::{global_avg_pool_f32, global_avg_pool_u8};
pub use pointwise_conv2d::{pointwise_conv2d_f32, pointwise_conv2d_u8};

use crate::model::{Activation, Layer, Model, Op, Shape};
use crate::quant::{QLayer, QuantModel};

/// One float layer: op, then BatchNorm, then activation.
pub fn run_layer_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    debug_assert_eq!(input.len(), layer.input_shape.len(), "{}", layer.name);
    let mut output = match layer.op {
        Op::Conv2d { .. } => conv2d_f32(layer, input),
        Op::DepthwiseConv2d { .. } => depthwise_conv2d_f32(layer, input),
        Op::PointwiseConv2d => pointwise_conv2d_f32(layer, input),
        Op::GlobalAvgPool => global_avg_pool_f32(layer, input),
        Op::Classifier => classifier_f32(layer, input),
    };
    let channels = layer.output_shape.c;
    let scale_shift: Option<Vec<(f32, f32)>> =
        layer.batch_norm.as_ref().map(|bn| (0..channels).map(|c| bn.scale_shift(c)).collect());
    for pixel in output.chunks_exact_mut(channels) {
        for (c, x) in pixel.iter_mut().enumerate() {
            if let Some(scale_shift) = &scale_shift {
                let (scale, shift) = scale_shift[c];
                *x = *x * scale + shift;
            }
            *x = match (&layer.clip_max, layer.activation) {
                (Some(clip_max), Activation::Relu6) => x.clamp(0.0, clip_max[c]),
                _ => layer.activation.apply(*x),
            };
        }
    }
    output
}

/// The float forward pass of one preprocessed image [h, w, 3]: every layer's output, the logits last.
pub fn run_f32(model: &Model, image: &[f32]) -> Vec<Vec<f32>> {
    let mut outputs: Vec<Vec<f32>> = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let input = outputs.last().map_or(image, Vec::as_slice);
        outputs.push(run_layer_f32(layer, input));
    }
    outputs
}

/// One integer layer.
pub fn run_layer_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    debug_assert_eq!(input.len(), layer.input_shape.len(), "{}", layer.name);
    match layer.op {
        Op::Conv2d { .. } => conv2d_u8(layer, input),
        Op::DepthwiseConv2d { .. } => depthwise_conv2d_u8(layer, input),
        Op::PointwiseConv2d => pointwise_conv2d_u8(layer, input),
        Op::GlobalAvgPool => global_avg_pool_u8(layer, input),
        Op::Classifier => classifier_u8(layer, input),
    }
}

/// The integer forward pass of one quantized image [h, w, 3]: every layer's output, the uint8 logits last.
pub fn run_u8(model: &QuantModel, input: &[u8]) -> Vec<Vec<u8>> {
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let layer_input = outputs.last().map_or(input, Vec::as_slice);
        outputs.push(run_layer_u8(layer, layer_input));
    }
    outputs
}

/// The 3×3 window of output pixel (oy, ox) under the op's padding (TF SAME or VALID): (tap = ky·3 + kx, input
/// pixel = iy·w + ix) for the taps inside the input. Padding taps are skipped: they hold 0 (the zero point when
/// quantized) and add nothing.
fn window_3x3(input: Shape, op: Op, oy: usize, ox: usize) -> impl Iterator<Item = (usize, usize)> {
    let stride = op.stride();
    let (_, pad_y) = op.window(input.h);
    let (_, pad_x) = op.window(input.w);
    (0..9).filter_map(move |tap| {
        let iy = (oy * stride + tap / 3).checked_sub(pad_y).filter(|&iy| iy < input.h)?;
        let ix = (ox * stride + tap % 3).checked_sub(pad_x).filter(|&ix| ix < input.w)?;
        Some((tap, iy * input.w + ix))
    })
}

/// Requantize one pixel's per-channel accumulators into `out`, under the layer's mode ([`QLayer::requantize`]).
fn requantize_channels(layer: &QLayer, acc: &[i32], out: &mut [u8]) {
    for (c, (o, &a)) in out.iter_mut().zip(acc).enumerate() {
        *o = layer.requantize(c, a);
    }
}
