//! The classifier: a 1×1 convolution with bias from the pooled features [1, 1, c_in] to the logits
//! [1, 1, classes], no activation. Kernel [c_in, classes].

use super::pointwise_conv2d::{pointwise_conv2d_f32, pointwise_conv2d_u8};
use crate::model::Layer;
use crate::quant::QLayer;

/// Float logits.
pub fn classifier_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    pointwise_conv2d_f32(layer, input)
}

/// uint8 logits (the layer's clamp is the full [0, 255]). Same arithmetic and overflow budget as
/// [`pointwise_conv2d_u8`] on one pixel.
pub fn classifier_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    pointwise_conv2d_u8(layer, input)
}
