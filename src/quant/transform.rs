//! Float-model transforms that prepare a quantization scheme: BatchNorm folding, the zero-variance fix,
//! cross-layer equalization and the study's architecture changes. Each returns a new float [`Model`]; the exact
//! ones (folding, zero-variance fix, equalization) compute the same function as their input.

use crate::model::{Activation, Layer, Model, Op, Source};

/// A BatchNorm channel whose moving variance is below this saw a constant during training (MobileNetV1's dead
/// channels have variance ≈ 4e-35; the smallest live one in the 0.75 model is 1.4e-4, epsilon is 1e-3).
pub const ZERO_VARIANCE: f32 = 1e-10;

/// Channels of `layer`'s BatchNorm with zero variance.
pub fn zero_variance_channels(layer: &Layer) -> Vec<usize> {
    layer.batch_norm.as_ref().map_or_else(Vec::new, |bn| {
        bn.variance.iter().enumerate().filter(|(_, &v)| v < ZERO_VARIANCE).map(|(c, _)| c).collect()
    })
}

/// Every kernel layout of MobileNetV1 has the output channel fastest: weight i belongs to channel i % c_out.
fn scale_output_channels(kernel: &mut [f32], scales: &[f32]) {
    for (i, w) in kernel.iter_mut().enumerate() {
        *w *= scales[i % scales.len()];
    }
}

/// BatchNorm folded into each convolution: BN(conv(x) + b) = conv'(x) + b'. With `zero_variance_fix`, the
/// folded weights of zero-variance channels are set to 0: such a channel's input is constant (the dead channels
/// of MobileNetV1 see exactly 0 after the previous ReLU6), so its output is the constant folded bias and the
/// weights, blown up by gamma/sqrt(epsilon), only widen the layer's weight range.
pub fn fold_batch_norms(model: &Model, zero_variance_fix: bool) -> Model {
    let mut folded = model.clone();
    for layer in &mut folded.layers {
        let Some(bn) = layer.batch_norm.take() else { continue };
        let channels = layer.output_shape.c;
        let (mut scales, shifts): (Vec<f32>, Vec<f32>) = (0..channels).map(|c| bn.scale_shift(c)).unzip();
        let bias = layer.bias.take().unwrap_or_else(|| vec![0.0; channels]);
        layer.bias = Some(bias.iter().zip(&scales).zip(&shifts).map(|((b, s), t)| b * s + t).collect());
        if zero_variance_fix {
            for c in bn.variance.iter().enumerate().filter(|(_, &v)| v < ZERO_VARIANCE).map(|(c, _)| c) {
                scales[c] = 0.0;
            }
        }
        scale_output_channels(&mut layer.kernel, &scales);
    }
    folded
}

/// The study's ReLU instead of ReLU6, everywhere (without the retraining the study did).
pub fn relu_everywhere(model: &Model) -> Model {
    let mut changed = model.clone();
    for layer in changed.layers.iter_mut().filter(|l| l.activation == Activation::Relu6) {
        layer.activation = Activation::Relu;
    }
    changed
}

/// The study's depthwise layers without BatchNorm and ReLU6 (without retraining): the activation is dropped,
/// and the BatchNorm (y = s·z + t) folds forward into the next pointwise layer: pw(s·z + t) = (diag(s)·W)ᵀz + Wᵀt.
/// With `zero_variance_fix`, s = 0 for zero-variance channels (their z is 0, the constant t still flows).
pub fn depthwise_linear(model: &Model, zero_variance_fix: bool) -> Model {
    let mut changed = model.clone();
    for i in 0..changed.layers.len().saturating_sub(1) {
        let sole = sole_reader(model, i, i + 1);
        let (head, tail) = changed.layers.split_at_mut(i + 1);
        let (dw, pw) = (&mut head[i], &mut tail[0]);
        if !matches!(dw.op, Op::DepthwiseConv2d { .. }) || pw.op != Op::PointwiseConv2d || !sole {
            continue;
        }
        dw.activation = Activation::None;
        let Some(bn) = dw.batch_norm.take() else { continue };
        let (c_in, c_out) = (pw.input_shape.c, pw.output_shape.c);
        let mut bias = pw.bias.take().unwrap_or_else(|| vec![0.0; c_out]);
        for c in 0..c_in {
            let (mut scale, shift) = bn.scale_shift(c);
            if zero_variance_fix && bn.variance[c] < ZERO_VARIANCE {
                scale = 0.0;
            }
            let row = &mut pw.kernel[c * c_out..][..c_out];
            for (b, w) in bias.iter_mut().zip(row.iter()) {
                *b += w * shift;
            }
            row.iter_mut().for_each(|w| *w *= scale);
        }
        pw.bias = Some(bias);
    }
    changed
}

/// Whether layer `second` reads layer `first`'s output alone and nothing else reads it: a pair a transform may
/// rescale between (in MobileNetV2, a residual ADD also reads some outputs).
fn sole_reader(model: &Model, first: usize, second: usize) -> bool {
    let reads_first = |i: usize| model.inputs_of(i).contains(&Source::Layer(first));
    model.inputs_of(second) == [Source::Layer(first)]
        && (0..model.layers.len()).filter(|&i| reads_first(i)).count() == 1
}

/// max |w| of each output channel of a kernel (output channel fastest).
fn output_channel_ranges(kernel: &[f32], channels: usize) -> Vec<f32> {
    let mut ranges = vec![0.0f32; channels];
    for (i, w) in kernel.iter().enumerate() {
        ranges[i % channels] = ranges[i % channels].max(w.abs());
    }
    ranges
}

/// max |w| over the weights that read each input channel.
fn input_channel_ranges(layer: &Layer) -> Vec<f32> {
    let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
    let mut ranges = vec![0.0f32; c_in];
    for (i, w) in layer.kernel.iter().enumerate() {
        let c = layer.op.weight_input_channel(i, c_in, c_out);
        ranges[c] = ranges[c].max(w.abs());
    }
    ranges
}

/// Multiply the weights that read input channel c by scales[c].
fn scale_input_channels(layer: &mut Layer, scales: &[f32]) {
    let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
    for (i, w) in layer.kernel.iter_mut().enumerate() {
        *w *= scales[layer.op.weight_input_channel(i, c_in, c_out)];
    }
}

/// Sweeps over the chain of convolutions; the scales converge in a few.
const EQUALIZATION_SWEEPS: usize = 20;

/// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization", §4.1) of a BatchNorm-folded model:
/// for each pair of consecutive convolutions, output channel c of the first is divided by s_c and the weights
/// reading it in the second multiplied by s_c, with s_c = sqrt(r1_c / r2_c) so both ranges become sqrt(r1_c·r2_c).
/// ReLU commutes with a positive scale but ReLU6 does not: its bound becomes 6/s_c per channel
/// ([`Layer::clip_max`]), which the integer kernels apply as a per-channel clamp, so the function is unchanged.
pub fn equalize(model: &Model) -> Model {
    let mut equalized = model.clone();
    let convs: Vec<usize> =
        (0..equalized.layers.len()).filter(|&i| equalized.layers[i].op.is_feature_convolution()).collect();
    // Only a pair where the second convolution is the first's one reader: rescaling an output that a residual ADD
    // also reads (MobileNetV2) would change the sum.
    for _ in 0..EQUALIZATION_SWEEPS {
        for pair in convs.windows(2).filter(|p| p[1] == p[0] + 1 && sole_reader(model, p[0], p[1])) {
            let (head, tail) = equalized.layers.split_at_mut(pair[1]);
            let (first, second) = (&mut head[pair[0]], &mut tail[0]);
            let channels = first.output_shape.c;
            let r1 = output_channel_ranges(&first.kernel, channels);
            let r2 = input_channel_ranges(second);
            let scales: Vec<f32> =
                r1.iter().zip(&r2).map(|(&a, &b)| if a > 0.0 && b > 0.0 { (a / b).sqrt() } else { 1.0 }).collect();
            let inverse: Vec<f32> = scales.iter().map(|s| 1.0 / s).collect();
            scale_output_channels(&mut first.kernel, &inverse);
            if let Some(bias) = &mut first.bias {
                bias.iter_mut().zip(&inverse).for_each(|(b, s)| *b *= s);
            }
            if first.activation == Activation::Relu6 {
                let clip = first.clip_max.get_or_insert_with(|| vec![6.0; channels]);
                clip.iter_mut().zip(&inverse).for_each(|(m, s)| *m *= s);
            }
            scale_input_channels(second, &scales);
        }
    }
    equalized
}
