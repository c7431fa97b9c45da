//! Every op shader equals the CPU integer reference (`cpu_ref::run_layer_u8`) byte for byte at every layer shape
//! of MobileNetV1 0.75 and 1.0 × 224, on seeded random data and quantization parameters (see
//! `common::random_layer`: zero points 0 and 255, multipliers up to 2^31 − 1, shifts −31..+3), for both
//! inner-product paths and under every requantization mode (`Requant`); and whole networks, batches and chunking
//! agree with the reference too.

mod common;

use mnq_gpu::cpu_ref;
use mnq_gpu::gpu::{GpuContext, InnerProduct, Plan, Readback};
use mnq_gpu::model::synthetic::mobilenet_v1;
use mnq_gpu::model::{Op, Shape, Source};
use mnq_gpu::quant::{PoolRounding, QLayer, QuantModel, QuantParams, Requant};
use std::collections::HashSet;

const SEED: u64 = 0x6d6e_7167;

/// Distinct (op, input shape, output shape) of the layers of 0.75 and 1.0 × 224 whose op matches `wanted`.
fn layer_shapes(wanted: fn(&Op) -> bool) -> Vec<(String, Op, Shape, Shape)> {
    let mut seen = HashSet::new();
    let mut shapes = Vec::new();
    for alpha in [0.75, 1.0] {
        let model = mobilenet_v1(alpha, 224, SEED);
        for layer in model.layers.iter().filter(|l| wanted(&l.op)) {
            let key = (layer.op, layer.input_shape.h, layer.input_shape.w, layer.input_shape.c, layer.output_shape.c);
            if seen.insert(format!("{key:?}")) {
                shapes.push((
                    format!("{}_{}", model.name, layer.name),
                    layer.op,
                    layer.input_shape,
                    layer.output_shape,
                ));
            }
        }
    }
    shapes
}

/// The (mode, inner product) pairs each layer runs under: both paths for `double`, the default path for the other
/// modes (the output stage does not depend on how the sums were formed).
fn variants() -> Vec<(Requant, InnerProduct)> {
    let mut variants: Vec<_> = InnerProduct::ALL.iter().map(|&inner| (Requant::Double, inner)).collect();
    variants.extend([Requant::Single, Requant::Fp32].map(|mode| (mode, InnerProduct::FASTEST)));
    variants
}

/// Runs every layer shape of `wanted` ops through [`variants`] and compares with the reference.
fn assert_op_matches_cpu_ref(gpu: &GpuContext, wanted: fn(&Op) -> bool) {
    let shapes = layer_shapes(wanted);
    assert!(!shapes.is_empty());
    for (i, (name, op, input_shape, output_shape)) in shapes.into_iter().enumerate() {
        let seed = SEED + i as u64;
        let input_params = QuantParams { scale: 0.02, zero_point: [0, 255, 97][i % 3] };
        let mut layer = common::random_layer(&name, op, input_shape, output_shape, input_params, seed);
        let input = common::random_u8(input_shape.len(), seed ^ 0xa5a5);
        for (mode, inner) in variants() {
            layer.requant = mode;
            let expected = cpu_ref::run_layer_u8(&layer, &input);
            let actual = common::run_layer_gpu(gpu, &layer, &input, inner);
            common::assert_bit_exact(&format!("{name} ({inner:?}, {mode})"), output_shape, &expected, &actual);
        }
    }
}

#[test]
fn conv2d_matches_cpu_ref_at_every_layer_shape() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    assert_op_matches_cpu_ref(&gpu, |op| matches!(op, Op::Conv2d { .. }));
}

#[test]
fn depthwise_conv2d_matches_cpu_ref_at_every_layer_shape() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    assert_op_matches_cpu_ref(&gpu, |op| matches!(op, Op::DepthwiseConv2d { .. }));
}

#[test]
fn pointwise_conv2d_matches_cpu_ref_at_every_layer_shape() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    assert_op_matches_cpu_ref(&gpu, |op| *op == Op::PointwiseConv2d);
}

#[test]
fn global_avg_pool_matches_cpu_ref_at_every_layer_shape() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    assert_op_matches_cpu_ref(&gpu, |op| *op == Op::GlobalAvgPool);
}

/// Every [`PoolRounding`] (TFLite uint8's half-up, TFLite int8's ties-away, ONNX Runtime's fp32
/// QLinearGlobalAveragePool with its own output quantization) at MobileNetV1's pool shapes and at odd and even
/// position counts (even counts make exact halves, where the roundings differ), with zero points at both ends.
#[test]
fn global_avg_pool_matches_cpu_ref_under_every_pool_rounding() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let shapes = [(7, 7, 768), (7, 7, 1024), (4, 4, 256), (6, 6, 200), (1, 1, 16), (3, 5, 37), (2, 2, 1001)];
    let params = [
        (QuantParams { scale: 0.02, zero_point: 0 }, QuantParams { scale: 0.05, zero_point: 255 }),
        (QuantParams { scale: 0.1, zero_point: 97 }, QuantParams { scale: 0.0123, zero_point: 3 }),
        (QuantParams { scale: 0.0235, zero_point: 0 }, QuantParams { scale: 0.0235, zero_point: 0 }),
        (QuantParams { scale: 0.3, zero_point: 255 }, QuantParams { scale: 0.29, zero_point: 128 }),
    ];
    for (i, &(h, w, c)) in shapes.iter().enumerate() {
        let shape = Shape::new(h, w, c);
        for (j, &(input, output)) in params.iter().enumerate() {
            let data = common::random_u8(shape.len(), SEED + (i * 10 + j) as u64);
            for pool in [PoolRounding::HalfUp, PoolRounding::TiesAway, PoolRounding::Fp32, PoolRounding::TfliteMean] {
                let name = format!("pool {h}×{w}×{c} ({}, params {j})", pool.name());
                let layer = match pool {
                    PoolRounding::Fp32 => QLayer::global_avg_pool_fp32(&name, shape, input, output),
                    PoolRounding::TfliteMean => {
                        QLayer::global_avg_pool_tflite_mean(&name, shape, input, output).expect("scales in range")
                    }
                    PoolRounding::HalfUp | PoolRounding::TiesAway => {
                        QLayer { pool, ..QLayer::global_avg_pool(&name, shape, input) }
                    }
                };
                let expected = cpu_ref::run_layer_u8(&layer, &data);
                let actual = common::run_layer_gpu(&gpu, &layer, &data, InnerProduct::FASTEST);
                common::assert_bit_exact(&name, layer.output_shape, &expected, &actual);
            }
        }
    }
}

#[test]
fn classifier_matches_cpu_ref_at_every_layer_shape() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    assert_op_matches_cpu_ref(&gpu, |op| *op == Op::Classifier);
}

/// Odd sizes: 7×7 pointwise tiles that end mid-tile, stride-2 SAME padding on odd inputs, 3-channel input.
#[test]
fn every_op_matches_cpu_ref_at_odd_spatial_sizes() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let model = mobilenet_v1(0.25, 75, SEED);
    let quant = common::random_quant_model(&model, SEED);
    let mut input = common::random_u8(quant.input_shape.len(), SEED);
    for (i, layer) in quant.layers.iter().enumerate() {
        for (mode, inner) in variants() {
            let layer = &QLayer { requant: mode, ..layer.clone() };
            let expected = cpu_ref::run_layer_u8(layer, &input);
            let actual = common::run_layer_gpu(&gpu, layer, &input, inner);
            let what = format!("{} ({inner:?}, {mode})", layer.name);
            common::assert_bit_exact(&what, layer.output_shape, &expected, &actual);
        }
        // Fresh random data for the next layer, so no layer sees only saturated values.
        input = common::random_u8(layer.output_shape.len(), SEED + i as u64);
    }
}

#[test]
fn whole_network_matches_cpu_ref_at_every_layer() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let model = mobilenet_v1(0.5, 128, SEED);
    let random = common::random_quant_model(&model, SEED);
    let images: Vec<Vec<u8>> = (0..2).map(|i| common::random_u8(random.input_shape.len(), SEED + i)).collect();
    let inputs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    for (mode, inner) in variants() {
        let quant = random.clone().with_requant(mode);
        let mut plan = Plan::new(&gpu, &quant, 2, inner).expect("plan");
        let outputs = plan.run(&gpu, &inputs, Readback::AllLayers).expect("run");
        for (image, (input, actual)) in images.iter().zip(&outputs).enumerate() {
            let expected = cpu_ref::run_u8(&quant, input);
            assert_eq!(actual.len(), expected.len());
            for ((layer, expected), actual) in quant.layers.iter().zip(&expected).zip(actual) {
                let what = format!("image {image}, {} ({inner:?}, {mode})", layer.name);
                common::assert_bit_exact(&what, layer.output_shape, expected, actual);
            }
        }
    }
}

/// The residual shapes of MobileNetV2 1.0 × 224 (each block whose input and output agree), with one odd size.
const RESIDUAL_SHAPES: [(usize, usize, usize); 6] =
    [(56, 56, 24), (28, 28, 32), (14, 14, 64), (14, 14, 96), (7, 7, 160), (9, 5, 20)];

/// A residual block in small: a depthwise convolution of the image (A), a 1×1 convolution of A (B), then
/// ADD(B, A), so A lives across B and the plan needs a third texture. Seeded random layers.
fn residual_block(shape: Shape, seed: u64) -> QuantModel {
    let input = QuantParams { scale: 0.02, zero_point: 131 };
    let depthwise = Op::DepthwiseConv2d { stride: 1, padding: Default::default() };
    let a = common::random_layer("block_input", depthwise, shape, shape, input, seed);
    let b = common::random_layer("project", Op::PointwiseConv2d, shape, shape, a.output, seed + 1);
    let mut add = common::random_add_layer("add", shape, b.output, a.output, seed + 2);
    add.inputs = vec![Source::Layer(1), Source::Layer(0)];
    QuantModel {
        name: "residual_block".into(),
        scheme: "random".into(),
        input_shape: shape,
        input,
        layers: vec![a, b, add],
        synthetic: true,
        input_rounding: Default::default(),
    }
}

#[test]
fn add_matches_cpu_ref_in_a_residual_block_at_every_v2_shape() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    for (i, &(h, w, c)) in RESIDUAL_SHAPES.iter().enumerate() {
        let shape = Shape::new(h, w, c);
        let block = residual_block(shape, SEED + 10 * i as u64);
        let images: Vec<Vec<u8>> = (0..2).map(|k| common::random_u8(shape.len(), SEED + 100 + k)).collect();
        let inputs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
        for mode in Requant::ALL {
            let quant = block.clone().with_requant(mode);
            let mut plan = Plan::new(&gpu, &quant, 2, InnerProduct::FASTEST).expect("plan");
            let outputs = plan.run(&gpu, &inputs, Readback::AllLayers).expect("run");
            for (image, (input, actual)) in images.iter().zip(&outputs).enumerate() {
                let expected = cpu_ref::run_u8(&quant, input);
                for ((layer, expected), actual) in quant.layers.iter().zip(&expected).zip(actual) {
                    let what = format!("{shape:?} image {image}, {} ({mode})", layer.name);
                    common::assert_bit_exact(&what, layer.output_shape, expected, actual);
                }
            }
        }
    }
}

/// XNNPACK takes input/output scale ratios in [2^-10, 2^8) only; outside, ADD under fp32 is refused with the reason.
#[test]
fn add_under_fp32_beyond_xnnpacks_scale_range_is_refused_with_the_reason() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let mut quant = residual_block(Shape::new(7, 7, 16), SEED).with_requant(Requant::Fp32);
    quant.layers[2].output.scale = quant.layers[2].input.scale * 2000.0;
    let error = Plan::new(&gpu, &quant, 1, InnerProduct::FASTEST).err().expect("fp32 ADD out of range is refused");
    assert!(error.to_string().contains("XNNPACK does not run"), "{error}");
}

#[test]
fn a_batch_of_n_equals_n_single_runs_and_chunks_split_cleanly() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let model = mobilenet_v1(0.25, 96, SEED);
    let quant = common::random_quant_model(&model, SEED + 1);
    let images: Vec<Vec<u8>> = (0..5).map(|i| common::random_u8(quant.input_shape.len(), SEED + 10 + i)).collect();
    let inputs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    let mut single = Plan::new(&gpu, &quant, 1, InnerProduct::FASTEST).expect("plan");
    let singles: Vec<Vec<u8>> = inputs
        .iter()
        .map(|&input| single.run(&gpu, &[input], Readback::Logits).expect("run").remove(0).remove(0))
        .collect();
    // A batch of 4 plan runs 5 images as chunks of 4 and 1.
    for batch in [5, 4] {
        let mut plan = Plan::new(&gpu, &quant, batch, InnerProduct::FASTEST).expect("plan");
        let batched = plan.run(&gpu, &inputs, Readback::Logits).expect("run");
        for (i, (logits, single)) in batched.iter().zip(&singles).enumerate() {
            assert_eq!(logits.len(), 1);
            common::assert_bit_exact(&format!("batch {batch}, image {i}"), Shape::new(1, 1, 1000), single, &logits[0]);
        }
    }
    let expected = cpu_ref::run_u8(&quant, &images[4]);
    common::assert_bit_exact("image 4 vs cpu_ref", Shape::new(1, 1, 1000), expected.last().unwrap(), &singles[4]);
}

#[test]
fn a_wrong_image_size_is_an_error_not_a_panic() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let quant = common::random_quant_model(&mobilenet_v1(0.25, 32, SEED), SEED);
    let mut plan = Plan::new(&gpu, &quant, 1, InnerProduct::FASTEST).expect("plan");
    let error = plan.run(&gpu, &[&[1u8; 10]], Readback::Logits).expect_err("10 bytes is not an image");
    assert!(error.to_string().contains("10 bytes"), "{error}");
}

#[test]
fn a_lost_device_is_an_error_not_a_panic_or_a_hang() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let quant = common::random_quant_model(&mobilenet_v1(0.25, 32, SEED), SEED);
    let image = common::random_u8(quant.input_shape.len(), SEED + 3);
    let mut plan = Plan::new(&gpu, &quant, 1, InnerProduct::Unpack).expect("plan");
    plan.run(&gpu, &[&image], Readback::Logits).expect("a run before the loss");
    gpu.device().destroy();
    let error = plan.run(&gpu, &[&image], Readback::Logits).expect_err("a run on a destroyed device fails");
    assert!(error.to_string().contains("lost"), "{error}");
    let error = Plan::new(&gpu, &quant, 1, InnerProduct::Unpack).err().expect("no plan on a destroyed device");
    assert!(error.to_string().contains("lost"), "{error}");
}

#[test]
fn a_negative_multiplier_is_refused_not_miscomputed() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let mut quant = common::random_quant_model(&mobilenet_v1(0.25, 32, SEED), SEED);
    quant.layers[3].multipliers[5] = -(1 << 30);
    let error = Plan::new(&gpu, &quant, 1, InnerProduct::FASTEST).err().expect("a negative multiplier is refused");
    assert!(error.to_string().contains("multiplier -1073741824 is negative"), "{error}");
}

#[test]
fn an_fp32_scale_the_shader_cannot_take_is_refused() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let mut quant = common::random_quant_model(&mobilenet_v1(0.25, 32, SEED), SEED).with_requant(Requant::Fp32);
    quant.layers[3].weight_scales[5] = f32::INFINITY;
    let error = Plan::new(&gpu, &quant, 1, InnerProduct::FASTEST).err().expect("an infinite scale is refused");
    assert!(error.to_string().contains("channel 5's float32 scale inf cannot requantize"), "{error}");
    assert!(quant.validate().unwrap_err().contains("channel 5's float32 scale inf cannot requantize"));
}
