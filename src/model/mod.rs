//! The layer graph in float: tensors, layers and their shapes, which tensors each layer reads ([`Source`]), and the
//! input range a model takes. MobileNetV1 is a chain; MobileNetV2's residual ADDs read two earlier tensors. Import
//! lives in [`tfjs`].

pub mod synthetic;
pub mod tfjs;

use serde::{Deserialize, Serialize};

/// Height, width, channels of one image's activation tensor, stored NHWC (channels fastest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn new(h: usize, w: usize, c: usize) -> Shape {
        Shape { h, w, c }
    }

    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (y, x, c) of a flat NHWC index.
    pub fn coordinate(&self, index: usize) -> (usize, usize, usize) {
        (index / (self.w * self.c), index / self.c % self.w, index % self.c)
    }
}

/// How a 3×3 window meets the border (TF's padding modes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Output size ⌈input / stride⌉, padded with zeros (the zero point when quantized); the extra row/column at
    /// stride 2 goes bottom/right. MobileNetV1's padding everywhere.
    #[default]
    Same,
    /// No padding: only windows inside the input, output size ⌊(input − 3) / stride⌋ + 1.
    Valid,
}

/// The operations of MobileNetV1. Kernel layouts are channels-last as in the TF.js files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// Standard 3×3 convolution (the first layer), kernel [3, 3, c_in, c_out].
    Conv2d {
        stride: usize,
        #[serde(default)]
        padding: Padding,
    },
    /// Depthwise 3×3 convolution, depth multiplier 1, kernel [3, 3, c].
    DepthwiseConv2d {
        stride: usize,
        #[serde(default)]
        padding: Padding,
    },
    /// 1×1 convolution, kernel [c_in, c_out].
    PointwiseConv2d,
    /// Global average pool over height and width: [h, w, c] → [1, 1, c].
    GlobalAvgPool,
    /// 1×1 convolution with bias on the pooled features, kernel [c_in, classes]; its output is the logits.
    Classifier,
    /// Elementwise sum of two tensors of one shape (MobileNetV2's residual connections), then the activation.
    Add,
}

impl Op {
    pub fn stride(&self) -> usize {
        match self {
            Op::Conv2d { stride, .. } | Op::DepthwiseConv2d { stride, .. } => *stride,
            Op::PointwiseConv2d | Op::GlobalAvgPool | Op::Classifier | Op::Add => 1,
        }
    }

    /// Output size along one axis of `input` and the padding before its first row/column: the 3×3 window of
    /// the convolutions, and the identity for the others (the pool's output size is 1 whatever this says).
    pub fn window(&self, input: usize) -> (usize, usize) {
        match *self {
            Op::Conv2d { stride, padding } | Op::DepthwiseConv2d { stride, padding } => match padding {
                Padding::Same => same_padding(input, 3, stride),
                Padding::Valid => (input.saturating_sub(3) / stride + usize::from(input >= 3), 0),
            },
            Op::PointwiseConv2d | Op::GlobalAvgPool | Op::Classifier | Op::Add => (input, 0),
        }
    }

    pub fn has_weights(&self) -> bool {
        match self {
            Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::PointwiseConv2d | Op::Classifier => true,
            Op::GlobalAvgPool | Op::Add => false,
        }
    }

    /// How many tensors the op reads.
    pub fn arity(&self) -> usize {
        match self {
            Op::Conv2d { .. }
            | Op::DepthwiseConv2d { .. }
            | Op::PointwiseConv2d
            | Op::GlobalAvgPool
            | Op::Classifier => 1,
            Op::Add => 2,
        }
    }

    /// The convolutions before the pool, which BatchNorm follows and equalization rescales.
    pub fn is_feature_convolution(&self) -> bool {
        match self {
            Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::PointwiseConv2d => true,
            Op::GlobalAvgPool | Op::Classifier | Op::Add => false,
        }
    }

    /// The output shape on `input` with `channels` output channels (the depthwise and pool ops keep the input's),
    /// and the number of weights.
    pub fn output_and_weights(&self, input: Shape, channels: usize) -> (Shape, usize) {
        let (h, _) = self.window(input.h);
        let (w, _) = self.window(input.w);
        match self {
            Op::Conv2d { .. } => (Shape::new(h, w, channels), 9 * input.c * channels),
            Op::DepthwiseConv2d { .. } => (Shape::new(h, w, input.c), 9 * input.c),
            Op::PointwiseConv2d => (Shape::new(input.h, input.w, channels), input.c * channels),
            Op::Classifier => (Shape::new(1, 1, channels), input.c * channels),
            Op::GlobalAvgPool => (Shape::new(1, 1, input.c), 0),
            Op::Add => (input, 0),
        }
    }

    /// The input channel that weight `index` of the kernel reads: kernels are [.., c_in, c_out] (HWIO), the
    /// depthwise one [3, 3, c].
    pub fn weight_input_channel(&self, index: usize, c_in: usize, c_out: usize) -> usize {
        match self {
            Op::DepthwiseConv2d { .. } => index % c_out,
            Op::Conv2d { .. } | Op::PointwiseConv2d | Op::Classifier | Op::GlobalAvgPool | Op::Add => {
                index / c_out % c_in
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    None,
    Relu,
    Relu6,
}

impl Activation {
    pub fn apply(&self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
    pub epsilon: f32,
}

impl BatchNorm {
    /// Per channel (scale, shift) such that BN(x) = scale·x + shift.
    pub fn scale_shift(&self, channel: usize) -> (f32, f32) {
        let scale = self.gamma[channel] / (self.variance[channel] + self.epsilon).sqrt();
        (scale, self.beta[channel] - self.mean[channel] * scale)
    }
}

impl Layer {
    /// The float global average pool of `input_shape`: [h, w, c] → [1, 1, c], no weights, no activation.
    pub fn global_avg_pool(name: String, input_shape: Shape) -> Layer {
        Layer {
            name,
            op: Op::GlobalAvgPool,
            inputs: Vec::new(),
            input_shape,
            output_shape: Shape::new(1, 1, input_shape.c),
            kernel: Vec::new(),
            bias: None,
            batch_norm: None,
            activation: Activation::None,
            clip_max: None,
        }
    }
}

/// A tensor a layer reads: the network's input image or an earlier layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Image,
    /// The output of layer i (an index into the model's layers, smaller than the reader's).
    Layer(usize),
}

impl Source {
    /// The chain's input of layer `index`: the previous layer's output, the image for the first.
    pub fn previous(index: usize) -> Source {
        index.checked_sub(1).map_or(Source::Image, Source::Layer)
    }
}

/// The sources of layer `index` given its `inputs` field: the chain's one input when the field is empty (every
/// MobileNetV1 layer, and every quantized-model file written before the graph), else the field itself.
pub fn resolve_inputs(index: usize, inputs: &[Source]) -> Vec<Source> {
    if inputs.is_empty() {
        vec![Source::previous(index)]
    } else {
        inputs.to_vec()
    }
}

/// Per tensor (index 0 the image, i + 1 layer i's output): the index of the last layer that reads it, `None`
/// for a tensor nobody reads (the logits). `inputs(i)` gives layer i's resolved sources.
pub fn last_readers(layers: usize, inputs: impl Fn(usize) -> Vec<Source>) -> Vec<Option<usize>> {
    let mut last = vec![None; layers + 1];
    for reader in 0..layers {
        for source in inputs(reader) {
            last[tensor_index(source)] = Some(reader);
        }
    }
    last
}

/// The position of `source` in [`last_readers`]' tensor numbering.
pub fn tensor_index(source: Source) -> usize {
    match source {
        Source::Image => 0,
        Source::Layer(i) => i + 1,
    }
}

/// One layer: an op, then BatchNorm (if any), then the activation.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub op: Op,
    /// The tensors the op reads, in its operand order; empty for the chain (the previous layer's output), see
    /// [`resolve_inputs`].
    pub inputs: Vec<Source>,
    /// The shape of the first input (every input of an ADD has it).
    pub input_shape: Shape,
    pub output_shape: Shape,
    /// Layout per op: see [`Op`]. Empty for [`Op::GlobalAvgPool`].
    pub kernel: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub batch_norm: Option<BatchNorm>,
    pub activation: Activation,
    /// Per-channel upper bound of a ReLU6 whose channels were rescaled by cross-layer equalization (6/s_c);
    /// `None` is the plain bound 6.
    pub clip_max: Option<Vec<f32>>,
}

/// Output size of a TF "SAME" convolution and the padding before the first row/column
/// (the extra row/column at stride 2 goes bottom/right).
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(input);
    (output, total / 2)
}

/// How the decoded pixels p ∈ [0, 255] (after the central crop and the resize) become the model's float input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRange {
    /// p/127.5 − 1 ∈ [−1, 1]: TF-slim's `preprocess_for_eval`, as the TF.js models were trained.
    #[default]
    SignedUnit,
    /// scale·(p − zero_point): a quantized model's input quantization applied to the pixels, so that its uint8
    /// input is the (resized, rounded) pixel itself, as TFLite's image classifiers take it (Google's quantized
    /// MobileNets: scale 1/128, zero point 128).
    Pixels { scale: f32, zero_point: i32 },
}

impl InputRange {
    /// The float input of one channel value v = p/255 ∈ [0, 1].
    pub fn apply(&self, value: f32) -> f32 {
        match *self {
            InputRange::SignedUnit => value * 2.0 - 1.0,
            InputRange::Pixels { scale, zero_point } => scale * (value * 255.0 - zero_point as f32),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Model {
    /// e.g. `mobilenet_v1_0.75_224`.
    pub name: String,
    pub input_shape: Shape,
    /// How decoded pixels become the input.
    pub input_range: InputRange,
    pub layers: Vec<Layer>,
    /// Output 0 is TF-slim's background class and output i + 1 is ImageNet class i (Google's TFLite models,
    /// 1,001 outputs); false: output i is class i (the TF.js models, 1,000 outputs).
    pub background_class: bool,
    /// True for seeded random weights (benchmarks only).
    pub synthetic: bool,
}

impl Model {
    /// The tensors layer `index` reads ([`resolve_inputs`]).
    pub fn inputs_of(&self, index: usize) -> Vec<Source> {
        resolve_inputs(index, &self.layers[index].inputs)
    }

    /// Whether every layer reads only the one before it (MobileNetV1): what the studies that walk a line
    /// (cross-layer equalization, sensitivity, TF.js and ONNX export) require.
    pub fn is_chain(&self) -> bool {
        (0..self.layers.len()).all(|i| self.inputs_of(i) == [Source::previous(i)])
    }

    /// Outputs of the classifier.
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |layer| layer.output_shape.c)
    }

    /// ImageNet classes the outputs cover (the background output excluded).
    pub fn imagenet_classes(&self) -> usize {
        self.classes() - usize::from(self.background_class)
    }

    /// The output index of ImageNet class `class`.
    pub fn output_of_class(&self, class: usize) -> usize {
        class + usize::from(self.background_class)
    }

    /// The ImageNet class of output `index`; `None` for the background output.
    pub fn class_of_output(&self, index: usize) -> Option<usize> {
        index.checked_sub(usize::from(self.background_class))
    }
}
