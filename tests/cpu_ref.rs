//! The CPU reference: each op (ADD too) on a tiny case worked out by hand, the nudged quantization parameters of known
//! ranges, the quantized-model file, and float accuracy on real images.

mod common;

use mnq_gpu::cpu_ref::{
    self, conv2d_f32, conv2d_u8, depthwise_conv2d_u8, global_avg_pool_u8, pointwise_conv2d_u8, run_f32, run_u8,
};
use mnq_gpu::labels::{read_list, top_k};
use mnq_gpu::model::{same_padding, synthetic, Activation, Layer, Op, Padding, Shape};
use mnq_gpu::preprocess::load_image;
use mnq_gpu::quant::{self, fixed_point, AddStage, PoolRounding, QLayer, QuantParams, Requant, XnnpackAdd};
use std::path::Path;

const MODEL_0_75: &str = "../shared/models/mobilenet_v1_0.75_224";
const EVALUATION: &str = "../shared/imagenet/val1300/evaluation.txt";

/// A layer with one set of quantization parameters for every channel; multiplier 2^30 with shift 0 is ×0.5.
fn qlayer(op: Op, input_shape: Shape, output_shape: Shape, weights: Vec<u8>, bias: Vec<i32>) -> QLayer {
    let c = output_shape.c;
    QLayer {
        name: "test".into(),
        op,
        inputs: Vec::new(),
        add: None,
        input_shape,
        output_shape,
        input: QuantParams { scale: 1.0, zero_point: 10 },
        output: QuantParams { scale: 1.0, zero_point: 3 },
        weights,
        weight_scales: vec![1.0; c],
        weight_zero_points: vec![2; c],
        bias,
        multipliers: vec![1 << 30; c],
        shifts: vec![0; c],
        act_min: 0,
        act_max: vec![255; c],
        requant: Requant::Double,
        pool: Default::default(),
    }
}

#[test]
fn same_padding_puts_the_extra_row_bottom_right() {
    assert_eq!(same_padding(224, 3, 2), (112, 0)); // total padding 1: none on top
    assert_eq!(same_padding(7, 3, 2), (4, 1)); // total 2: one on each side
    assert_eq!(same_padding(14, 3, 1), (14, 1));
    assert_eq!(same_padding(7, 1, 1), (7, 0));
}

#[test]
fn conv2d_f32_pads_bottom_right_at_stride_2() {
    // 4×4×1 input of ones except a 100 in the bottom-right corner; 3×3 kernel of ones, stride 2: output 2×2.
    // Output (1,1) covers rows/cols 2..=4, where 4 is padding: 2×2 real inputs = 1 + 1 + 1 + 100.
    let mut input = vec![1.0f32; 16];
    input[15] = 100.0;
    let layer = Layer {
        name: "conv".into(),
        op: Op::Conv2d { stride: 2, padding: Padding::Same },
        inputs: Vec::new(),
        input_shape: Shape::new(4, 4, 1),
        output_shape: Shape::new(2, 2, 1),
        kernel: vec![1.0; 9],
        bias: None,
        batch_norm: None,
        activation: Activation::None,
        clip_max: None,
    };
    // Output (0,0) sees 9 real inputs, (0,1) and (1,0) see 6.
    assert_eq!(conv2d_f32(&layer, &input), vec![9.0, 6.0, 6.0, 103.0]);
}

#[test]
fn conv2d_u8_sums_zero_point_corrected_products() {
    // 2×2×3 input, stride 2 → one output pixel with 2 channels covering input rows/cols 0..=2 (row/col 2 is padding).
    let input: Vec<u8> = (11..=22).collect(); // x − z_x = 1..=12
    let (ins, outs) = (Shape::new(2, 2, 3), Shape::new(1, 1, 2));
    // Weights w − z_w = 1 for output channel 0 and 2 for output channel 1, at every tap.
    let weights: Vec<u8> = (0..9 * 3).flat_map(|_| [3u8, 4]).collect();
    let layer = qlayer(Op::Conv2d { stride: 2, padding: Padding::Same }, ins, outs, weights, vec![100, -50]);
    // Σ(1..=12) = 78. Channel 0: (100 + 78) · 0.5 + 3 = 92. Channel 1: (−50 + 156) · 0.5 + 3 = 56.
    assert_eq!(conv2d_u8(&layer, &input), vec![92, 56]);
}

#[test]
fn depthwise_conv2d_u8_covers_corners_and_centre() {
    // 3×3×4 input, all x − z_x = 2 (x = 12); weights w − z_w = c + 1 for channel c; stride 1.
    let input = vec![12u8; 36];
    let weights: Vec<u8> = (0..9).flat_map(|_| [3u8, 4, 5, 6]).collect();
    let shape = Shape::new(3, 3, 4);
    let layer = qlayer(Op::DepthwiseConv2d { stride: 1, padding: Padding::Same }, shape, shape, weights, vec![0; 4]);
    let output = depthwise_conv2d_u8(&layer, &input);
    // Centre: 9 taps · 2 · (c + 1) · 0.5 + 3 = 9(c + 1) + 3. Corner: 4 taps → 4(c + 1) + 3. Edge: 6 taps.
    let at = |y: usize, x: usize, c: usize| output[(y * 3 + x) * 4 + c];
    for c in 0..4 {
        assert_eq!(at(1, 1, c) as usize, 9 * (c + 1) + 3);
        assert_eq!(at(0, 0, c) as usize, 4 * (c + 1) + 3);
        assert_eq!(at(2, 2, c) as usize, 4 * (c + 1) + 3);
        assert_eq!(at(0, 1, c) as usize, 6 * (c + 1) + 3);
    }
}

#[test]
fn pointwise_conv2d_u8_rounds_and_clamps() {
    // One pixel, 2 input channels (x − z_x = 5, −3), 3 outputs.
    let input = vec![15u8, 7];
    // [c_in][c_out]: w − z_w = [[1, 2, 100], [3, −2, 100]].
    let weights = vec![3u8, 4, 102, 5, 0, 102];
    let mut layer = qlayer(Op::PointwiseConv2d, Shape::new(1, 1, 2), Shape::new(1, 1, 3), weights, vec![0, 1, 0]);
    layer.act_max = vec![120; 3];
    // acc = [5 − 9, 10 + 6 + 1, 500 − 300] = [−4, 17, 200]; · 0.5 → [−2, 8.5 → 9, 100]; + 3 → [1, 12, 103].
    assert_eq!(pointwise_conv2d_u8(&layer, &input), vec![1, 12, 103]);
    layer.act_max = vec![100; 3]; // the clamp (ReLU6's upper bound in the quantized domain)
    layer.act_min = 2;
    assert_eq!(pointwise_conv2d_u8(&layer, &input), vec![2, 12, 100]);
}

#[test]
fn global_avg_pool_u8_rounds_half_up() {
    let shape = Shape::new(2, 2, 2);
    let mut layer = qlayer(Op::GlobalAvgPool, shape, Shape::new(1, 1, 2), vec![], vec![]);
    layer.output = layer.input;
    // Channel 0: (1 + 2 + 3 + 4) / 4 = 2.5 → 3. Channel 1: (255 · 3 + 0) / 4 = 191.25 → 191.
    assert_eq!(global_avg_pool_u8(&layer, &[1, 255, 2, 255, 3, 255, 4, 0]), vec![3, 191]);
}

/// TFLite's int8 AveragePool (`reference_integer_ops::AveragePool`): (s ± n/2) / n on the int8 sum s, truncated,
/// so exact halves go away from zero: −1.5 → −2, +1.5 → +2, −0.5 → −1, where half-up gives −1, 2, 0.
#[test]
fn global_avg_pool_u8_ties_away_rounds_int8_halves_away_from_zero() {
    let shape = Shape::new(1, 2, 3);
    let layer = QLayer {
        pool: PoolRounding::TiesAway,
        ..QLayer::global_avg_pool("pool", shape, QuantParams { scale: 1.0, zero_point: 128 })
    };
    // int8 channel sums: −2 + −1 = −3, 1 + 2 = 3, −1 + 0 = −1 over n = 2.
    let input = [126, 129, 127, 127, 130, 128];
    assert_eq!(global_avg_pool_u8(&layer, &input), vec![128 - 2, 128 + 2, 128 - 1]);
    let half_up = QLayer { pool: PoolRounding::HalfUp, ..layer };
    assert_eq!(global_avg_pool_u8(&half_up, &input), vec![128 - 1, 128 + 2, 128]);
}

/// ONNX Runtime's QLinearGlobalAveragePool (MLAS): requantize_fp32(Σq − n·z_in, s_in / (s_out · f32(n))), ties to
/// even, with an output quantization of its own. Expected values worked out by hand below.
#[test]
fn global_avg_pool_u8_fp32_is_onnx_runtimes_qlinear_global_average_pool() {
    let shape = Shape::new(2, 2, 2);
    let input = QuantParams { scale: 0.5, zero_point: 10 };
    let output = QuantParams { scale: 0.25, zero_point: 3 };
    let layer = QLayer::global_avg_pool_fp32("pool", shape, input, output);
    assert_eq!(layer.pool_scale(), 0.5); // 0.5 / (0.25 · 4)
                                         // Channel 0: Σq = 10+11+12+12 = 45, acc = 45 − 40 = 5, 5 · 0.5 = 2.5 → 2 (even) + 3 = 5.
                                         // Channel 1: Σq = 0·4 = 0, acc = −40, −20 + 3 = −17 → clamped to 0.
    assert_eq!(global_avg_pool_u8(&layer, &[10, 0, 11, 0, 12, 0, 12, 0]), vec![5, 0]);
}

/// LiteRT's int8 MEAN (`reference_ops::QuantizedMeanOrSum`): 1/n folded into the multiplier of s_in/s_out, then
/// one multiply_by_quantized_multiplier of Σ(q − z_in), whose two roundings move 11.25 to 12 (one exact rounding
/// would give 11). Worked out by hand: s_in = s_out, n = 4: multiplier 2^30 with shift 1 (×1) becomes 2^30 with
/// shift −1 (×1/4).
#[test]
fn global_avg_pool_u8_tflite_mean_folds_one_over_n_and_rounds_twice() {
    assert_eq!(fixed_point::mean_multiplier(1 << 30, 1, 4), (1 << 30, -1));
    // n = 49, s_in/s_out = 1.2333 (TF2's MobileNetV2 pool): ⌊log2 49⌋ = 5 bits at a time.
    assert_eq!(fixed_point::mean_multiplier(1_324_286_437, 1, 49), (864_840_122, -4));
    let shape = Shape::new(2, 2, 3);
    let input = QuantParams { scale: 0.5, zero_point: 20 };
    let output = QuantParams { scale: 0.5, zero_point: 100 };
    let layer = QLayer {
        output,
        multipliers: vec![1 << 30],
        shifts: vec![-1],
        pool: PoolRounding::TfliteMean,
        ..QLayer::global_avg_pool("mean", shape, input)
    };
    // Σ(q − 20) per channel: 47 − 80 = −33 (−8.25: ×½ gives −16.5, gemmlowp's high multiply rounds it toward zero
    // to −16, ÷2 gives −8), 45 (11.25: 22.5 rounds up to 23, ÷2 = 11.5 rounds away from zero to 12), 4·255 − 80 =
    // 940 (235, clamped to 255 − 100).
    let pixels = [10, 30, 255, 11, 31, 255, 12, 32, 255, 14, 32, 255];
    assert_eq!(global_avg_pool_u8(&layer, &pixels), vec![100 - 8, 100 + 12, 255]);
}

#[test]
fn quant_params_are_nudged_like_gemmlowp() {
    let p = QuantParams::from_range(-1.0, 1.0);
    assert_eq!((p.scale, p.zero_point), (2.0 / 255.0, 128)); // zero point 127.5 rounds to 128
    assert_eq!(QuantParams::from_range(0.0, 6.0), QuantParams { scale: 6.0 / 255.0, zero_point: 0 });
    assert_eq!(QuantParams::from_range(0.5, 2.0), QuantParams { scale: 2.0 / 255.0, zero_point: 0 }); // includes 0
    assert_eq!(QuantParams::from_range(-10.0, -5.0), QuantParams { scale: 10.0 / 255.0, zero_point: 255 });
    // −0.3 / (6/255) = −12.75 → zero point 13.
    assert_eq!(QuantParams::from_range(-0.3, 5.7).zero_point, 13);
    assert_eq!(QuantParams::from_range(0.0, 0.0), QuantParams { scale: 1.0, zero_point: 0 });
    // 0.0 is exactly representable.
    for (min, max) in [(-1.0, 1.0), (-0.3, 5.7), (-3.7, 0.2), (-1e-3, 17.0)] {
        let p = QuantParams::from_range(min, max);
        assert_eq!(p.dequantize(p.quantize(0.0)), 0.0, "[{min}, {max}]");
    }
}

#[test]
fn quantized_model_file_round_trips_and_refuses_corruption() {
    let model = synthetic::mobilenet_v1(0.25, 32, 7);
    let images: Vec<Vec<f32>> =
        (0..2).map(|i| (0..32 * 32 * 3).map(|j| ((i * 7 + j) % 255) as f32 / 127.5 - 1.0).collect()).collect();
    let quantized = mnq_gpu::calibrate::quantize(&model, &images).unwrap();
    let dir = std::env::temp_dir().join(format!("mnq-file-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    quant::file::save(&quantized, &path).unwrap();
    assert_eq!(quant::file::load(&path).unwrap(), quantized);
    // The file records each layer's requantization mode.
    let fp32 = quantized.clone().with_requant(Requant::Fp32);
    quant::file::save(&fp32, &path).unwrap();
    let loaded = quant::file::load(&path).unwrap();
    assert_eq!((loaded.requant(), &loaded), (Requant::Fp32, &fp32));

    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = quant::file::load(&path).unwrap_err().to_string();
    assert!(error.contains("not a quantized mnq-gpu model"), "{error}");
    std::fs::write(&path, b"hello").unwrap();
    assert!(quant::file::load(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn integer_pipeline_tracks_float_on_a_synthetic_model() {
    // A well-conditioned random model: TF8 should keep a clearly positive SQNR at the logits.
    let model = synthetic::mobilenet_v1(0.25, 64, 11);
    let images: Vec<Vec<f32>> =
        (0..3).map(|i| (0..64 * 64 * 3).map(|j| (((i * 31 + j * 7) % 251) as f32 / 125.5) - 1.0).collect()).collect();
    let quantized = mnq_gpu::calibrate::quantize(&model, &images).unwrap();
    let layers = mnq_gpu::sqnr::model_sqnr(&model, &quantized, &images);
    assert_eq!(layers.len(), model.layers.len());
    for layer in &layers {
        assert!(layer.local_db > 15.0, "{}: local SQNR {} dB", layer.layer, layer.local_db);
    }
    let float = run_f32(&model, &images[0]);
    let int8 = run_u8(&quantized, &quantized.quantize_input(&images[0]));
    assert_eq!(float.len(), int8.len());
}

#[test]
fn float_top1_of_the_0_75_model_on_100_evaluation_images_is_at_least_70_percent() {
    if !common::data_or_skip(&[MODEL_0_75, EVALUATION]) {
        return;
    }
    let model = mnq_gpu::model::tfjs::load(Path::new(MODEL_0_75)).unwrap();
    let images = read_list(Path::new(EVALUATION), 1000).unwrap();
    let correct = images
        .iter()
        .take(100)
        .filter(|labelled| {
            let input = load_image(&labelled.path, model.input_shape).unwrap();
            let logits = run_f32(&model, &input).pop().unwrap();
            top_k(&logits, 1)[0] == labelled.class
        })
        .count();
    assert!(correct >= 70, "float top-1 {correct} %");
}

/// ADD's arithmetic on values worked out by hand: inputs at scales 0.5 and 0.25 (zero points 128 and 100), output
/// at scale 1 (zero point 10), so the multipliers are exact powers of two and only the last rounding acts. A sum of
/// ±0.5 pins the rounding: `double` (TFLite's reference) rounds ties away from zero, `single` toward +∞, and `fp32`
/// (XNNPACK's: multipliers 2^20 and 2^19 at shift 21, bias 2^20 − 128·2^20 − 100·2^19, floor) toward +∞.
#[test]
fn add_sums_at_the_output_scale_and_rounds_ties_as_each_mode_does() {
    let (first, second) = (QuantParams { scale: 0.5, zero_point: 128 }, QuantParams { scale: 0.25, zero_point: 100 });
    let output = QuantParams { scale: 1.0, zero_point: 10 };
    let shape = Shape::new(1, 1, 6);
    let layer = QLayer {
        input: first,
        output,
        add: AddStage::tflite(first, second, output),
        act_min: 0,
        act_max: vec![255; shape.c],
        ..common::random_add_layer("add", shape, first, second, 1)
    };
    // 1 + 1, −0.5 − 0.5, −64 − 25 (clamped), 63.5 + 38.75, 0.5 + 0, −0.5 + 0.
    let a = [130, 127, 0, 255, 129, 127];
    let b = [104, 98, 0, 255, 100, 100];
    assert_eq!(cpu_ref::add_u8(&layer, &a, &b), [12, 9, 0, 112, 11, 9]);
    let single = QLayer { requant: Requant::Single, ..layer.clone() };
    assert_eq!(cpu_ref::add_u8(&single, &a, &b), [12, 9, 0, 112, 11, 10]);
    let xnnpack = layer.add.unwrap().xnnpack(first, output).unwrap();
    assert_eq!(xnnpack, XnnpackAdd { a_multiplier: 1 << 20, b_multiplier: 1 << 19, shift: 21, bias: -354 << 19 });
    let fp32 = QLayer { requant: Requant::Fp32, ..layer };
    assert_eq!(cpu_ref::add_u8(&fp32, &a, &b), [12, 9, 0, 112, 11, 10]);
}
