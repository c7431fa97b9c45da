//! The CPU reference: float and integer forward passes, one file per op. Written for clarity and exactness;
//! the integer pass is the specification the GPU shaders must match bit for bit.

mod add;
mod classifier;
mod conv2d;
mod depthwise_conv2d;
mod global_avg_pool;
mod pointwise_conv2d;

pub use add::{add_f32, add_u8};
pub use classifier::{classifier_f32, classifier_u8};
pub use conv2d::{conv2d_f32, conv2d_u8};
pub use depthwise_conv2d::{depthwise_conv2d_f32, depthwise_conv2d_u8};
pub use global_avg_pool::{global_avg_pool_f32, global_avg_pool_u8};
pub use pointwise_conv2d::{pointwise_conv2d_f32, pointwise_conv2d_u8};

use crate::model::{Activation, Layer, Model, Op, Shape, Source};
use crate::quant::{QLayer, QuantModel};

/// One float layer of one input (every op but ADD): op, then BatchNorm, then activation.
pub fn run_layer_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    run_node_f32(layer, &[input])
}

/// One float layer on its inputs, in the op's operand order ([`Op::arity`] of them).
pub fn run_node_f32(layer: &Layer, inputs: &[&[f32]]) -> Vec<f32> {
    assert_eq!(inputs.len(), layer.op.arity(), "{}: inputs", layer.name);
    let input = inputs[0];
    debug_assert_eq!(input.len(), layer.input_shape.len(), "{}", layer.name);
    let mut output = match layer.op {
        Op::Conv2d { .. } => conv2d_f32(layer, input),
        Op::DepthwiseConv2d { .. } => depthwise_conv2d_f32(layer, input),
        Op::PointwiseConv2d => pointwise_conv2d_f32(layer, input),
        Op::GlobalAvgPool => global_avg_pool_f32(layer, input),
        Op::Classifier => classifier_f32(layer, input),
        Op::Add => add_f32(layer, input, inputs[1]),
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

/// The float forward pass of one preprocessed image [h, w, 3]: every layer's output, the logits last. Layers
/// run in order; each reads the tensors it names ([`Model::inputs_of`]).
pub fn run_f32(model: &Model, image: &[f32]) -> Vec<Vec<f32>> {
    let mut outputs: Vec<Vec<f32>> = Vec::with_capacity(model.layers.len());
    for (index, layer) in model.layers.iter().enumerate() {
        let output = {
            let inputs: Vec<&[f32]> = model.inputs_of(index).iter().map(|&s| tensor(image, &outputs, s)).collect();
            run_node_f32(layer, &inputs)
        };
        outputs.push(output);
    }
    outputs
}

/// One integer layer of one input (every op but ADD).
pub fn run_layer_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    run_node_u8(layer, &[input])
}

/// One integer layer on its inputs, in the op's operand order ([`Op::arity`] of them).
pub fn run_node_u8(layer: &QLayer, inputs: &[&[u8]]) -> Vec<u8> {
    assert_eq!(inputs.len(), layer.op.arity(), "{}: inputs", layer.name);
    let input = inputs[0];
    debug_assert_eq!(input.len(), layer.input_shape.len(), "{}", layer.name);
    match layer.op {
        Op::Conv2d { .. } => conv2d_u8(layer, input),
        Op::DepthwiseConv2d { .. } => depthwise_conv2d_u8(layer, input),
        Op::PointwiseConv2d => pointwise_conv2d_u8(layer, input),
        Op::GlobalAvgPool => global_avg_pool_u8(layer, input),
        Op::Classifier => classifier_u8(layer, input),
        Op::Add => add_u8(layer, input, inputs[1]),
    }
}

/// The integer forward pass of one quantized image [h, w, 3]: every layer's output, the uint8 logits last.
pub fn run_u8(model: &QuantModel, input: &[u8]) -> Vec<Vec<u8>> {
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(model.layers.len());
    for (index, layer) in model.layers.iter().enumerate() {
        let output = {
            let inputs: Vec<&[u8]> = model.inputs_of(index).iter().map(|&s| tensor(input, &outputs, s)).collect();
            run_node_u8(layer, &inputs)
        };
        outputs.push(output);
    }
    outputs
}

/// The tensor `source` among the network's input and the outputs computed so far.
fn tensor<'a, T>(image: &'a [T], outputs: &'a [Vec<T>], source: Source) -> &'a [T] {
    match source {
        Source::Image => image,
        Source::Layer(i) => &outputs[i],
    }
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
