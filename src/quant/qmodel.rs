//! The quantized model: what the CPU integer reference and the GPU shaders both execute.

use crate::model::{Op, Shape};
use crate::quant::QuantParams;
use serde::{Deserialize, Serialize};

/// One integer layer. Every per-channel vector has one entry per output channel; a per-tensor scheme repeats
/// the same value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QLayer {
    pub name: String,
    pub op: Op,
    pub input_shape: Shape,
    pub output_shape: Shape,
    pub input: QuantParams,
    pub output: QuantParams,
    /// uint8 weights in the float kernel's layout (see [`Op`]); empty for [`Op::GlobalAvgPool`].
    #[serde(skip)]
    pub weights: Vec<u8>,
    pub weight_scales: Vec<f32>,
    pub weight_zero_points: Vec<i32>,
    /// int32 bias with scale input.scale · weight_scales[c] and zero point 0; |bias| ≤ 2^30.
    #[serde(skip)]
    pub bias: Vec<i32>,
    /// Q31 multipliers and shifts (> 0: left) of input.scale · weight_scales[c] / output.scale.
    pub multipliers: Vec<i32>,
    pub shifts: Vec<i32>,
    /// The activation as a clamp in the quantized domain (ReLU6 → [zp, q(6.0)]).
    pub act_min: u8,
    pub act_max: u8,
}

impl QLayer {
    pub fn output_channels(&self) -> usize {
        self.output_shape.c
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantModel {
    /// The float model's name, e.g. `mobilenet_v1_0.75_224`.
    pub name: String,
    /// The quantization scheme that produced it, e.g. `tf8`.
    pub scheme: String,
    pub input_shape: Shape,
    /// Quantization of the preprocessed float image.
    pub input: QuantParams,
    pub layers: Vec<QLayer>,
    /// True for seeded random weights (benchmarks only).
    pub synthetic: bool,
}

impl QuantModel {
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |layer| layer.output_shape.c)
    }

    /// Quantize a preprocessed float image [h, w, 3] to the model's uint8 input.
    pub fn quantize_input(&self, image: &[f32]) -> Vec<u8> {
        image.iter().map(|&x| self.input.quantize(x)).collect()
    }

    /// Dequantize the logits (the last layer's output).
    pub fn dequantize_logits(&self, logits: &[u8]) -> Vec<f32> {
        let output = self.layers.last().expect("a model has layers").output;
        logits.iter().map(|&q| output.dequantize(q)).collect()
    }
}
