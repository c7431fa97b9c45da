//! The MobileNetV1 architecture for any width and input size, with seeded random weights: benchmarks of
//! architectures whose weights are not here (e.g. 1.0 × 224). Never used for accuracy.

use super::{same_padding, Activation, BatchNorm, InputRange, Layer, Model, Op, Padding, Shape};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// (output channels at width 1.0, stride) of the 13 depthwise-separable blocks; the depthwise layer's stride.
pub const BLOCKS: [(usize, usize); 13] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
];

pub const CLASSES: usize = 1000;

/// Channels of a layer at width `alpha`, as Keras computes them: int(filters · alpha).
pub fn scaled_channels(filters: usize, alpha: f32) -> usize {
    (filters as f32 * alpha) as usize
}

/// MobileNetV1 at width `alpha` and square input `input_size`, with random weights from `seed`.
pub fn mobilenet_v1(alpha: f32, input_size: usize, seed: u64) -> Model {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut layers = Vec::new();
    let mut shape = Shape::new(input_size, input_size, 3);
    let push = |name: String, op: Op, out_c: usize, shape: &mut Shape, rng: &mut SmallRng| {
        let input_shape = *shape;
        let (h, _) = same_padding(input_shape.h, 3, op.stride());
        let (w, _) = same_padding(input_shape.w, 3, op.stride());
        let (output_shape, fan_in, kernel_len) = match op {
            Op::Conv2d { .. } => (Shape::new(h, w, out_c), 9 * input_shape.c, 9 * input_shape.c * out_c),
            Op::DepthwiseConv2d { .. } => (Shape::new(h, w, out_c), 9, 9 * out_c),
            Op::PointwiseConv2d | Op::Classifier => {
                (Shape::new(input_shape.h, input_shape.w, out_c), input_shape.c, input_shape.c * out_c)
            }
            Op::GlobalAvgPool => (Shape::new(1, 1, input_shape.c), 1, 0),
            Op::Add => unreachable!("the synthetic MobileNetV1 is a chain"),
        };
        let limit = (6.0 / fan_in as f32).sqrt();
        let kernel = (0..kernel_len).map(|_| rng.random_range(-limit..limit)).collect();
        let is_conv = op.is_feature_convolution();
        let batch_norm = is_conv.then(|| BatchNorm {
            gamma: (0..out_c).map(|_| rng.random_range(0.5..1.5)).collect(),
            beta: (0..out_c).map(|_| rng.random_range(-0.5..0.5)).collect(),
            mean: (0..out_c).map(|_| rng.random_range(-0.1..0.1)).collect(),
            variance: (0..out_c).map(|_| rng.random_range(0.5..1.5)).collect(),
            epsilon: 1e-3,
        });
        let bias = (op == Op::Classifier).then(|| (0..out_c).map(|_| rng.random_range(-0.1..0.1)).collect());
        let activation = if is_conv { Activation::Relu6 } else { Activation::None };
        *shape = output_shape;
        Layer {
            name,
            op,
            inputs: Vec::new(),
            input_shape,
            output_shape,
            kernel,
            bias,
            batch_norm,
            activation,
            clip_max: None,
        }
    };
    let mut channels = scaled_channels(32, alpha);
    layers.push(push("conv1".into(), Op::Conv2d { stride: 2, padding: Padding::Same }, channels, &mut shape, &mut rng));
    for (i, &(filters, stride)) in BLOCKS.iter().enumerate() {
        let dw = Op::DepthwiseConv2d { stride, padding: Padding::Same };
        layers.push(push(format!("conv_dw_{}", i + 1), dw, channels, &mut shape, &mut rng));
        channels = scaled_channels(filters, alpha);
        layers.push(push(format!("conv_pw_{}", i + 1), Op::PointwiseConv2d, channels, &mut shape, &mut rng));
    }
    layers.push(push("global_avg_pool".into(), Op::GlobalAvgPool, channels, &mut shape, &mut rng));
    layers.push(push("conv_preds".into(), Op::Classifier, CLASSES, &mut shape, &mut rng));
    Model {
        name: format!("mobilenet_v1_{}_{input_size}", width_label(alpha)),
        input_shape: Shape::new(input_size, input_size, 3),
        input_range: InputRange::SignedUnit,
        layers,
        background_class: false,
        synthetic: true,
    }
}

/// Google's spelling of a width in model names: 1.0, 0.75, 0.50, 0.25.
pub fn width_label(alpha: f32) -> String {
    if alpha == 1.0 {
        "1.0".to_string()
    } else {
        format!("{alpha:.2}")
    }
}
