//! Fewer weight bits (`+wB`, `+wB@layer`): b-bit weights take at most 2^b codes in the right range, 8 bits is
//! today's quantization, bias correction uses the b-bit error, the logits lose SQNR as bits go, and a layer
//! quantized alone (`mnq-gpu sensitivity`) is exactly that layer of the fully quantized model.

mod common;

use mnq_gpu::calibrate::{calibrate, prepare, quantize_calibrated, Calibration};
use mnq_gpu::cpu_ref::run_u8;
use mnq_gpu::labels::read_list;
use mnq_gpu::model::{tfjs, Model, Op};
use mnq_gpu::preprocess::load_image;
use mnq_gpu::quant::scheme::{RangeMethod, Scheme};
use mnq_gpu::sqnr::{model_sqnr, run_layer_alone};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

/// Calibration images: enough for realistic ranges, few enough to keep the tests fast.
const CALIBRATION_IMAGES: usize = 3;

fn images(list: &str, count: usize, model: &Model) -> Vec<Vec<f32>> {
    let list = read_list(Path::new(list), 1000).unwrap();
    list.iter().take(count).map(|l| load_image(&l.path, model.input_shape).unwrap()).collect()
}

const MODEL_0_75: &str = "../shared/models/mobilenet_v1_0.75_224";
const CALIBRATION: &str = "../shared/imagenet/val1300/calibration.txt";
const EVALUATION: &str = "../shared/imagenet/val1300/evaluation.txt";

/// True when the 0.75 model and the ImageNet images every test here reads are beside the repository; else records
/// the skip.
fn have_data() -> bool {
    common::data_or_skip(&[MODEL_0_75, CALIBRATION, EVALUATION])
}

/// The 0.75 × 224 TF.js model and its first calibration images; call [`have_data`] first.
fn model_and_images() -> &'static (Model, Vec<Vec<f32>>) {
    static DATA: OnceLock<(Model, Vec<Vec<f32>>)> = OnceLock::new();
    DATA.get_or_init(|| {
        let model = tfjs::load(Path::new(MODEL_0_75)).unwrap();
        let calibration = images(CALIBRATION, CALIBRATION_IMAGES, &model);
        (model, calibration)
    })
}

/// (the prepared float model, its calibration) for the base of `scheme`: widths do not change either.
fn calibrated(scheme: &Scheme) -> (Model, Calibration) {
    let (model, images) = model_and_images();
    let prepared = prepare(model, scheme);
    let calibration = calibrate(&prepared, images, scheme.ranges == RangeMethod::Mse);
    (prepared, calibration)
}

/// (lowest, highest) code of b-bit weights: [0, 2^b − 1], or 128 ± (2^(b−1) − 1) symmetric.
fn codes(bits: u8, symmetric: bool) -> (u8, u8) {
    if symmetric {
        let levels = (1u8 << (bits - 1)) - 1;
        (128 - levels, 128 + levels)
    } else {
        (0, ((1u16 << bits) - 1) as u8)
    }
}

#[test]
fn b_bit_weights_take_at_most_2_to_the_b_codes_in_their_range() {
    if !have_data() {
        return;
    }
    for base in ["tf8-zero-var", "per-channel", "tf8-zero-var+sym", "per-channel+sym"] {
        let scheme: Scheme = base.parse().unwrap();
        let (prepared, calibration) = calibrated(&scheme);
        for bits in [8, 6, 5, 4] {
            let name = format!("{base}+w{bits}");
            let model = quantize_calibrated(&prepared, &name.parse().unwrap(), &calibration).unwrap();
            let (lowest, highest) = codes(bits, scheme.symmetric);
            for layer in model.layers.iter().filter(|l| l.op.has_weights()) {
                let c_out = layer.output_shape.c;
                let groups = if scheme.per_channel { c_out } else { 1 };
                let mut codes_of = vec![BTreeSet::new(); groups];
                for (i, &q) in layer.weights.iter().enumerate() {
                    codes_of[i % c_out % groups].insert(q);
                }
                for (group, values) in codes_of.iter().enumerate() {
                    let (&low, &high) = (values.first().unwrap(), values.last().unwrap());
                    let what = format!("{name}: {} group {group}", layer.name);
                    assert!(
                        low >= lowest && high <= highest,
                        "{what}: codes {low}..={high} outside {lowest}..={highest}"
                    );
                    assert!(values.len() <= 1 << bits, "{what}: {} distinct codes", values.len());
                    let zero_point = layer.weight_zero_points[group];
                    assert!(
                        (i32::from(lowest)..=i32::from(highest)).contains(&zero_point),
                        "{what}: zero point {zero_point}"
                    );
                    if scheme.symmetric {
                        assert_eq!(zero_point, 128, "{what}");
                    }
                }
                // The range is used, not just clamped into: the extreme weights reach (within a nudge) the end codes.
                let low = i32::from(*layer.weights.iter().min().unwrap());
                let high = i32::from(*layer.weights.iter().max().unwrap());
                let span = if scheme.symmetric { (high - 128).max(128 - low) } else { high - low };
                let full = i32::from(if scheme.symmetric { highest - 128 } else { highest });
                assert!(span + 1 >= full, "{name}: {} spans {low}..={high} of {lowest}..={highest}", layer.name);
            }
        }
    }
}

/// `+w8` (the default) is today's quantization, byte for byte, and a per-layer assignment quantizes each layer as
/// the uniform scheme of its width does.
#[test]
fn eight_bits_is_unchanged_and_an_assignment_takes_each_layer_from_its_width() {
    if !have_data() {
        return;
    }
    for base in ["tf8-zero-var", "per-channel+sym", "cle-bc"] {
        let scheme: Scheme = base.parse().unwrap();
        let (prepared, calibration) = calibrated(&scheme);
        let quantize = |name: &str| quantize_calibrated(&prepared, &name.parse().unwrap(), &calibration).unwrap();
        let (eight, explicit) = (quantize(base), quantize(&format!("{base}+w8")));
        assert_eq!(eight.layers, explicit.layers, "{base}+w8");
        let four = quantize(&format!("{base}+w4"));
        let mixed = quantize(&format!("{base}+w4+w8@conv1@conv_pw_13@conv_preds"));
        assert_eq!(mixed.scheme, format!("{base}+w4+w8@conv1@conv_pw_13@conv_preds"));
        for ((m, e), f) in mixed.layers.iter().zip(&eight.layers).zip(&four.layers) {
            let expected = if ["conv1", "conv_pw_13", "conv_preds"].contains(&m.name.as_str()) { e } else { f };
            assert_eq!(m, expected, "{base}: layer {}", m.name);
        }
        assert_ne!(four.layers[1].weights, eight.layers[1].weights, "{base}: 4 bits changes conv_dw_1");
    }
}

#[test]
fn an_assignment_naming_no_weighted_layer_is_refused() {
    if !have_data() {
        return;
    }
    let scheme: Scheme = "tf8+w4+w8@conv_pw_14".parse().unwrap();
    let (prepared, calibration) = calibrated(&scheme);
    let message = quantize_calibrated(&prepared, &scheme, &calibration).unwrap_err().to_string();
    assert!(message.contains("`@conv_pw_14` is no layer with weights") && message.contains("conv_preds"), "{message}");
    let pool: Scheme = "tf8+w8@global_average_pooling2d_1".parse().unwrap();
    assert!(quantize_calibrated(&prepared, &pool, &calibration).is_err());
}

/// Bias correction subtracts Σ ε·E[x] with ε the error of the layer's own b-bit codes (their clamp included),
/// not the 8-bit error.
#[test]
fn bias_correction_uses_the_b_bit_weight_error() {
    if !have_data() {
        return;
    }
    let scheme: Scheme = "cle-bc+w4".parse().unwrap();
    let (prepared, calibration) = calibrated(&scheme);
    let model = quantize_calibrated(&prepared, &scheme, &calibration).unwrap();
    let mut beyond_8_bit_error = 0;
    for ((layer, qlayer), means) in prepared.layers.iter().zip(&model.layers).zip(&calibration.input_means) {
        if !layer.op.has_weights() {
            continue;
        }
        let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
        let mut correction = vec![0.0f64; c_out];
        for (i, (&w, &q)) in layer.kernel.iter().zip(&qlayer.weights).enumerate() {
            let c = i % c_out;
            let dequantized = qlayer.weight_scales[c] * (i32::from(q) - qlayer.weight_zero_points[c]) as f32;
            let input_channel = if matches!(layer.op, Op::DepthwiseConv2d { .. }) { c } else { i / c_out % c_in };
            correction[c] += (f64::from(dequantized) - f64::from(w)) * means[input_channel];
        }
        let bias = layer.bias.clone().unwrap_or_else(|| vec![0.0; c_out]);
        for c in 0..c_out {
            let step = f64::from(qlayer.input.scale) * f64::from(qlayer.weight_scales[c]);
            let expected = ((f64::from(bias[c]) - correction[c]) / step).round();
            let uncorrected = (f64::from(bias[c]) / step).round();
            let got = f64::from(qlayer.bias[c]);
            // f32 accumulation of the correction: a step, or a 1e-5 fraction of a large bias.
            let tolerance = 1.0f64.max(1e-5 * expected.abs());
            assert!((got - expected).abs() <= tolerance, "{} channel {c}: bias {got}, expected {expected}", layer.name);
            beyond_8_bit_error += usize::from((expected - uncorrected).abs() > 2.0 * tolerance);
        }
    }
    assert!(beyond_8_bit_error > 100, "the 4-bit correction moves only {beyond_8_bit_error} biases");
}

/// Fewer weight bits lose logit SQNR: per-channel (77 % top-1 at 8 bits), 4 evaluation images.
#[test]
fn logit_sqnr_falls_from_8_to_4_weight_bits_on_real_images() {
    if !have_data() {
        return;
    }
    let (model, _) = model_and_images();
    let evaluation = images(EVALUATION, 4, model);
    let scheme: Scheme = "per-channel".parse().unwrap();
    let (prepared, calibration) = calibrated(&scheme);
    let sqnr: Vec<f64> = [8, 6, 5, 4]
        .iter()
        .map(|bits| {
            let quantized =
                quantize_calibrated(&prepared, &format!("per-channel+w{bits}").parse().unwrap(), &calibration).unwrap();
            model_sqnr(&prepared, &quantized, &evaluation).last().unwrap().accumulated_db
        })
        .collect();
    eprintln!("logit SQNR at 8, 6, 5, 4 weight bits: {sqnr:.2?} dB");
    // Monotone up to 0.5 dB of image noise at each step, and clearly lower at 4 bits than at 8.
    assert!(sqnr.windows(2).all(|w| w[1] < w[0] + 0.5), "logit SQNR 8, 6, 5, 4 bits: {sqnr:?} dB");
    assert!(sqnr[3] < sqnr[0] - 3.0, "logit SQNR 8, 6, 5, 4 bits: {sqnr:?} dB");
}

/// What `mnq-gpu sensitivity` runs for layer i — the layer's float input quantized with its input parameters,
/// then the integer layer ([`run_layer_alone`]) — is the fully quantized model's layer i: fed the dequantized
/// output of layer i − 1 of the integer pass, it reproduces layer i's bytes, for every layer.
#[test]
fn a_layer_quantized_alone_is_that_layer_of_the_quantized_model() {
    if !have_data() {
        return;
    }
    let (model, images) = model_and_images();
    for name in ["tf8-zero-var+w4", "per-channel+sym+w5+w8@conv1"] {
        let quantized = {
            let scheme: Scheme = name.parse().unwrap();
            let prepared = prepare(model, &scheme);
            quantize_calibrated(&prepared, &scheme, &calibrate(&prepared, images, false)).unwrap()
        };
        let input = quantized.quantize_input(&images[0]);
        let outputs = run_u8(&quantized, &input);
        for (i, layer) in quantized.layers.iter().enumerate() {
            let (previous, params) = match i {
                0 => (&input, quantized.input),
                _ => (&outputs[i - 1], quantized.layers[i - 1].output),
            };
            let float_input: Vec<f32> = previous.iter().map(|&q| params.dequantize(q)).collect();
            assert!(float_input.iter().any(|&x| x != 0.0), "{name}: {} sees no signal", layer.name);
            assert_eq!(run_layer_alone(layer, &float_input), outputs[i], "{name}: layer {}", layer.name);
        }
    }
}
