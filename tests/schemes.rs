//! Quantization schemes: names parse, the exact transforms keep the float function, and each scheme does what
//! it claims on small inputs.

mod common;

use mnq_gpu::calibrate::{mse_range, prepare};
use mnq_gpu::cpu_ref::run_f32;
use mnq_gpu::labels::read_list;
use mnq_gpu::model::{synthetic, tfjs, Activation, Model, Op};
use mnq_gpu::preprocess::load_image;
use mnq_gpu::quant::scheme::{Architecture, RangeMethod, Scheme};
use mnq_gpu::quant::transform::{depthwise_linear, equalize, fold_batch_norms, zero_variance_channels};
use mnq_gpu::quant::Range;
use std::path::Path;

/// Float transforms reorder arithmetic; outputs agree to this fraction of the output's largest magnitude.
const FLOAT_REORDERING: f32 = 1e-4;

/// Every layer's output agrees (`layers`), or only the logits (equalization rescales the layers in between).
fn assert_same_function(a: &Model, b: &Model, images: &[Vec<f32>], layers: bool) {
    for image in images {
        let (mut x, mut y) = (run_f32(a, image), run_f32(b, image));
        if !layers {
            x.drain(..x.len() - 1);
            y.drain(..y.len() - 1);
        }
        let names = a.layers.iter().skip(a.layers.len() - x.len());
        for ((layer, x), y) in names.zip(&x).zip(&y) {
            let scale = x.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(worst <= FLOAT_REORDERING * scale, "{}: differs by {worst} (largest |x| {scale})", layer.name);
        }
    }
}

fn synthetic_images(size: usize, count: usize) -> Vec<Vec<f32>> {
    (0..count).map(|i| (0..size * size * 3).map(|j| ((i * 37 + j * 11) % 253) as f32 / 126.5 - 1.0).collect()).collect()
}

/// Google's TF.js 0.75 model and the first `count` calibration images, or None after recording the skip: both are
/// in ../shared only.
fn real_images(count: usize) -> Option<(Model, Vec<Vec<f32>>)> {
    let (model, calibration) = ("../shared/models/mobilenet_v1_0.75_224", "../shared/imagenet/val1300/calibration.txt");
    if !common::data_or_skip(&[model, calibration]) {
        return None;
    }
    let model = tfjs::load(Path::new(model)).unwrap();
    let list = read_list(Path::new(calibration), 1000).unwrap();
    let images = list.iter().take(count).map(|l| load_image(&l.path, model.input_shape).unwrap()).collect();
    Some((model, images))
}

#[test]
fn scheme_names_parse_into_their_steps() {
    let tf8: Scheme = "tf8".parse().unwrap();
    assert!(!tf8.zero_variance_fix && !tf8.per_channel && !tf8.equalize && tf8.ranges == RangeMethod::MinMax);
    let cle: Scheme = "cle-bc+mse".parse().unwrap();
    assert!(cle.zero_variance_fix && cle.equalize && cle.bias_correction && cle.ranges == RangeMethod::Mse);
    assert!("per-channel".parse::<Scheme>().unwrap().per_channel);
    let sym: Scheme = "per-channel+sym".parse().unwrap();
    assert!(sym.per_channel && sym.symmetric && !tf8.symmetric);
    assert_eq!("tf8+relu".parse::<Scheme>().unwrap().architecture, Architecture::Relu);
    assert_eq!("tf8-zero-var+dw-linear".parse::<Scheme>().unwrap().architecture, Architecture::DwLinear);
    // Both, in either order: the study's block (one used to replace the other).
    for name in ["tf8+dw-linear+relu", "tf8+relu+dw-linear", "per-channel+relu+dw-linear+relu"] {
        assert_eq!(name.parse::<Scheme>().unwrap().architecture, Architecture::DwLinearRelu, "{name}");
    }
    for bad in ["tf9", "tf8+fast", "cle+dw-linear", "cle+relu+dw-linear", ""] {
        assert!(bad.parse::<Scheme>().is_err(), "{bad}");
    }
}

#[test]
fn weight_widths_parse_per_model_and_per_layer() {
    let tf8 = Scheme::tf8();
    assert_eq!((tf8.weight_bits, tf8.weight_bits_of("conv1"), tf8.has_weight_bits()), (8, 8, false));
    let w4: Scheme = "per-channel+sym+w4".parse().unwrap();
    assert!(w4.per_channel && w4.symmetric && w4.weight_bits == 4 && w4.has_weight_bits());
    let mixed: Scheme = "tf8-zero-var+w4+w8@conv1@conv_pw_13+w6@conv_preds".parse().unwrap();
    let widths = ["conv1", "conv_dw_1", "conv_pw_13", "conv_preds"].map(|layer| mixed.weight_bits_of(layer));
    assert_eq!(widths, [8, 4, 8, 6]);
    assert_eq!(mixed.to_string(), "tf8-zero-var+w4+w8@conv1@conv_pw_13+w6@conv_preds");
    // Left to right: a later default replaces the earlier one, not the layers named before it.
    let later: Scheme = "tf8+w5@conv1+w6".parse().unwrap();
    assert_eq!((later.weight_bits_of("conv1"), later.weight_bits_of("conv_dw_1")), (5, 6));
    assert!(!"tf8+w8".parse::<Scheme>().unwrap().has_weight_bits());
}

#[test]
fn bad_weight_widths_say_what_is_allowed() {
    let message = |name: &str| name.parse::<Scheme>().expect_err(name).to_string();
    for name in ["tf8+w9", "tf8+w1", "tf8+w0", "tf8+w300", "tf8+w16@conv1"] {
        assert!(message(name).contains("weights take 2 to 8 bits"), "{name}: {}", message(name));
    }
    assert!(message("tf8+w4@").contains("an empty layer name"), "{}", message("tf8+w4@"));
    assert!(message("tf8+w4@conv1@@conv_dw_1").contains("an empty layer name"));
    for name in ["tf8+wide", "tf8+w", "tf8+w4x"] {
        let text = message(name);
        assert!(text.contains("unknown scheme modifier") && text.contains("+w2 … +w8, +wB@LAYER"), "{name}: {text}");
    }
}

#[test]
fn folding_and_equalization_keep_the_float_function_of_a_synthetic_model() {
    let model = synthetic::mobilenet_v1(0.25, 64, 3);
    let images = synthetic_images(64, 2);
    let folded = fold_batch_norms(&model, false);
    assert!(folded.layers.iter().all(|l| l.batch_norm.is_none()));
    assert_same_function(&model, &folded, &images, true);
    assert_same_function(&model, &equalize(&folded), &images, false);
}

#[test]
fn equalization_balances_the_ranges_of_each_channel_pair() {
    let model = fold_batch_norms(&synthetic::mobilenet_v1(0.25, 32, 5), false);
    let equalized = equalize(&model);
    // conv_dw_1 → conv_pw_1: output channel c's range in the first equals input channel c's range in the second.
    let (dw, pw) = (&equalized.layers[1], &equalized.layers[2]);
    let (c_in, c_out) = (pw.input_shape.c, pw.output_shape.c);
    for c in 0..c_in {
        let r1 = (0..9).map(|tap| dw.kernel[tap * c_in + c].abs()).fold(0.0f32, f32::max);
        let r2 = pw.kernel[c * c_out..][..c_out].iter().fold(0.0f32, |m, w| m.max(w.abs()));
        // The chain is equalized pair by pair, so the last sweep leaves each pair within a few per cent.
        assert!((r1 / r2 - 1.0).abs() < 0.05, "channel {c}: {r1} vs {r2}");
    }
    assert!(dw.clip_max.as_ref().is_some_and(|clip| clip.iter().any(|&m| m != 6.0)), "ReLU6 bounds rescaled");
}

#[test]
fn the_zero_variance_fix_keeps_the_real_model_float_function() {
    let Some((model, images)) = real_images(3) else { return };
    let dead: usize = model.layers.iter().map(|l| zero_variance_channels(l).len()).sum();
    assert!(dead > 10, "the 0.75 model has dead BatchNorm channels ({dead})");
    assert_same_function(&fold_batch_norms(&model, false), &fold_batch_norms(&model, true), &images, true);
    let cle = prepare(&model, &"cle".parse().unwrap());
    assert_same_function(&model, &cle, &images, false);
}

#[test]
fn depthwise_linear_folds_batch_norm_forward_exactly() {
    // Without the activation between them, moving the depthwise BatchNorm into the pointwise layer is exact.
    let mut model = synthetic::mobilenet_v1(0.25, 32, 9);
    for layer in model.layers.iter_mut().filter(|l| matches!(l.op, Op::DepthwiseConv2d { .. })) {
        layer.activation = Activation::None;
    }
    let moved = depthwise_linear(&model, false);
    assert!(moved.layers.iter().filter(|l| matches!(l.op, Op::DepthwiseConv2d { .. })).all(|l| l.batch_norm.is_none()));
    assert_same_function(&model, &moved, &synthetic_images(32, 2), false);
}

#[test]
fn mse_clipping_cuts_rare_outliers_and_keeps_a_uniform_range() {
    let range = Range { min: 0.0, max: 100.0 };
    // Ten million values below 5 and one at 100: the rounding noise of the full range costs more than
    // clipping the outlier.
    let mut outliers = vec![100_000u64; 2048];
    outliers[100..].fill(0);
    outliers[2047] = 1;
    assert!(mse_range(range, &outliers).max < 50.0);
    assert_eq!(mse_range(range, &[1000; 2048]).max, 100.0);
}

/// What the zero-variance channels carry, which is why `tf8-zero-var` may zero their folded weights: a
/// depthwise channel with zero variance reads a channel of the previous layer that is dead too (its weights
/// are ~1e-14 and its BatchNorm beta negative, so ReLU6 gives exactly 0), so its convolution output is exactly 0
/// and its output the constant ReLU6(beta).
#[test]
fn zero_variance_depthwise_channels_see_exactly_zero_on_calibration_images() {
    let Some((model, images)) = real_images(3) else { return };
    let mut checked = 0;
    for image in &images {
        let outputs = run_f32(&model, image);
        for (i, layer) in model.layers.iter().enumerate().filter(|(_, l)| matches!(l.op, Op::DepthwiseConv2d { .. })) {
            let c = layer.input_shape.c;
            for dead in zero_variance_channels(layer) {
                assert!(outputs[i - 1].chunks(c).all(|pixel| pixel[dead] == 0.0), "{} channel {dead}", layer.name);
                checked += 1;
            }
        }
    }
    assert!(checked >= 3 * 20, "{checked} dead depthwise channels checked");
}

/// `+sym` is TFLite's int8 weight convention: s = max|w|/127 per channel, round(w/s) ∈ [−127, 127] stored + 128.
#[test]
fn symmetric_weights_use_the_largest_magnitude_and_127_steps() {
    use mnq_gpu::quant::weights::symmetric_params;
    let params = symmetric_params(Range { min: -0.5, max: 0.25 }, 8);
    assert_eq!((params.scale, params.zero_point), (0.5 / 127.0, 128));
    assert_eq!((params.quantize(-0.5), params.quantize(0.0), params.quantize(0.125)), (1, 128, 160));
    // An all-zero channel (the zero-variance fix) gets scale 1, as in TFLite.
    assert_eq!(symmetric_params(Range { min: 0.0, max: 0.0 }, 8).scale, 1.0);
}

/// Google's MobileNetV2 QAT file (../shared only): the float model it represents, a graph with residual ADDs.
const V2_QAT: &str = "../shared/models/tflite/mobilenet_v2_1.0_224_quant.tflite";

/// Our schemes on MobileNetV2's float model: each ADD is calibrated with its operands quantized as the layers it
/// reads (TFLite's arithmetic, `AddStage::tflite`); equalization keeps the float function though it may not
/// rescale across a residual branch (only pairs whose second convolution is the first's one reader).
#[test]
fn schemes_quantize_mobilenet_v2_with_calibrated_adds_and_equalize_around_residuals() {
    if !common::data_or_skip(&[V2_QAT]) {
        return;
    }
    let float = mnq_gpu::tflite::load(Path::new(V2_QAT)).unwrap().float;
    let images = [mnq_gpu::preprocess::load_model_input(Path::new("assets/grace_hopper.jpg"), &float).unwrap()];
    assert_same_function(&float, &equalize(&float), &images, false);
    for name in ["tf8", "per-channel", "cle-bc"] {
        let scheme: Scheme = name.parse().unwrap();
        let (_, quantized) = mnq_gpu::calibrate::quantize_scheme(&float, &scheme, &images).unwrap();
        quantized.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, layer) in quantized.layers.iter().enumerate().filter(|(_, l)| l.op == Op::Add) {
            let sources = quantized.inputs_of(i);
            let add = layer.add.expect("an ADD's arithmetic");
            let output_of = |s| match s {
                mnq_gpu::model::Source::Layer(j) => quantized.layers[j].output,
                mnq_gpu::model::Source::Image => quantized.input,
            };
            assert_eq!((layer.input, add.second_input), (output_of(sources[0]), output_of(sources[1])), "{name}");
        }
    }
}
