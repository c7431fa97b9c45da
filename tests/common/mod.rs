//! Helpers shared by the GPU tests and benches/gpu.rs: the GPU-or-skip rule, seeded random quantized layers and
//! models, and bit-exact comparison with a failure message that says where.
#![allow(dead_code)]

use mnq_gpu::gpu::{AdapterOptions, GpuContext, InnerProduct, Plan, Readback};
use mnq_gpu::model::{Model, Op, Shape};
use mnq_gpu::quant::fixed_point::{quantize_multiplier, Requant};
use mnq_gpu::quant::{AddStage, PoolRounding, QLayer, QuantModel, QuantParams};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::Write as _;
use std::path::Path;

/// The GPU context, or None after recording the skip (see [`skip`]); panics when `MNQ_REQUIRE_GPU=1`.
pub fn gpu_or_skip() -> Option<GpuContext> {
    match GpuContext::new(&AdapterOptions::default()) {
        Ok(ctx) => Some(ctx),
        Err(error) if std::env::var("MNQ_REQUIRE_GPU").as_deref() != Ok("1") => {
            skip("no GPU", &format!("no GPU adapter ({})", error.to_string().lines().next().unwrap_or_default()));
            None
        }
        Err(error) => panic!("MNQ_REQUIRE_GPU=1 but no GPU adapter: {error}"),
    }
}

/// True when every path in `paths` (relative to the repository, e.g. `../shared/models/tflite`) exists; else false
/// after recording the skip (see [`skip`]). It is for data under `../shared`, which sits beside the repository in
/// this project's workplace and CI but not in an outside clone: ImageNet's images and Google's other models, which
/// may not be redistributed. Panics when `MNQ_REQUIRE_DATA=1` (CI sets it), so CI skips nothing.
pub fn data_or_skip(paths: &[&str]) -> bool {
    let missing: Vec<&str> = paths.iter().copied().filter(|path| !Path::new(path).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let why =
        format!("needs {} (../shared: ImageNet images and published models, not redistributable)", missing.join(", "));
    assert!(std::env::var("MNQ_REQUIRE_DATA").as_deref() != Ok("1"), "MNQ_REQUIRE_DATA=1 but this test {why}");
    skip("no data", &why);
    false
}

/// Says on stderr that the running test skipped and why, and appends the same line to the file `MNQ_SKIP_LOG`
/// names, if any: `scripts/test.sh` counts those lines after `cargo test` (which hides a passing test's stderr).
pub fn skip(kind: &str, why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let line = format!("SKIPPED ({kind}): {test}: {why}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("MNQ_SKIP_LOG") {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("MNQ_SKIP_LOG opens");
        // One write of the whole line: `writeln!` writes the line and its newline apart, and tests that skip at the
        // same time then glue their lines together, which test.sh would count as one.
        file.write_all(format!("{line}\n").as_bytes()).expect("MNQ_SKIP_LOG is writable");
    }
}

/// Uniform random bytes over the full u8 range (never all zeros).
pub fn random_u8(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random()).collect()
}

/// A zero point: 0, 255 or anything between, a third of the time each.
fn random_zero_point(rng: &mut SmallRng) -> i32 {
    match rng.random_range(0..3) {
        0 => 0,
        1 => 255,
        _ => rng.random_range(1..255),
    }
}

/// A quantized layer with `op` and the given shapes: random u8 weights and zero points, and per channel either a
/// realistic multiplier (accumulators centred by the bias, their spread mapped to ~40 steps) or an extreme one
/// (2^31 − 1, 2^30, tiny; shifts from −31 to +3), so every layer exercises saturation and rounding edges. The
/// weight scales make each channel's float32 scale that same multiplier, so `Requant::Fp32` meets the edges too.
pub fn random_layer(
    name: &str,
    op: Op,
    input_shape: Shape,
    output_shape: Shape,
    input: QuantParams,
    seed: u64,
) -> QLayer {
    let mut rng = SmallRng::seed_from_u64(seed);
    let output = QuantParams { scale: 0.05, zero_point: random_zero_point(&mut rng) };
    let (c_in, c_out) = (input_shape.c, output_shape.c);
    let (weights_len, terms) = match op {
        Op::Conv2d { .. } => (9 * c_in * c_out, 9 * c_in),
        Op::DepthwiseConv2d { .. } => (9 * c_out, 9),
        Op::PointwiseConv2d | Op::Classifier => (c_in * c_out, c_in),
        Op::GlobalAvgPool | Op::Add => (0, 0),
    };
    if op == Op::GlobalAvgPool {
        return QLayer::global_avg_pool(name, input_shape, input);
    }
    if op == Op::Add {
        let second = QuantParams { scale: rng.random_range(0.01..0.2), zero_point: random_zero_point(&mut rng) };
        return random_add_layer(name, input_shape, input, second, seed);
    }
    let weights: Vec<u8> = (0..weights_len).map(|_| rng.random()).collect();
    let weight_zero_points: Vec<i32> = (0..c_out).map(|_| random_zero_point(&mut rng)).collect();
    // Uniform u8 has standard deviation 255/√12 ≈ 73.6, so a sum of `terms` products spreads ≈ √terms · 5,419.
    let spread = (terms as f64).sqrt() * 5419.0;
    let mut bias = Vec::with_capacity(c_out);
    let mut multipliers = Vec::with_capacity(c_out);
    let mut shifts = Vec::with_capacity(c_out);
    let mut weight_scales = Vec::with_capacity(c_out);
    for &zw in &weight_zero_points {
        let mean = terms as f64 * (127.5 - f64::from(input.zero_point)) * (127.5 - f64::from(zw));
        let centred = (-mean + rng.random_range(-0.5..0.5) * spread) as i32;
        let (b, m, s) = match rng.random_range(0..8) {
            0 => (rng.random_range(-(1 << 30)..=(1 << 30)), i32::MAX, rng.random_range(-31..=-20)),
            1 => (centred, 1 << 30, rng.random_range(-24..=0)),
            2 => (centred, rng.random_range(1..100), rng.random_range(0..=3)),
            3 => (centred, rng.random_range(1 << 30..=i32::MAX), -31),
            4 => (centred, rng.random_range(1 << 30..=i32::MAX), rng.random_range(1..=3)),
            _ => {
                let (m, s) = quantize_multiplier(40.0 / spread).expect("a small positive real");
                (centred, m, s)
            }
        };
        bias.push(b);
        multipliers.push(m);
        // The weight scale that makes the float32 scale (`Requant::Fp32`) the real multiplier m · 2^s / 2^31.
        let real = f64::from(m) * 2f64.powi(s) / 2f64.powi(31);
        weight_scales.push((real * f64::from(output.scale) / f64::from(input.scale)) as f32);
        shifts.push(s);
    }
    // The upper bound differs per channel, as after cross-layer equalization.
    let (act_min, act_max) = if op == Op::Classifier || rng.random_bool(0.3) {
        (0, vec![255; c_out])
    } else {
        let zero = output.zero_point as u8;
        (zero, (0..c_out).map(|_| rng.random_range(zero..=255)).collect())
    };
    QLayer {
        name: name.into(),
        op,
        inputs: Vec::new(),
        add: None,
        input_shape,
        output_shape,
        input,
        output,
        weights,
        weight_scales,
        weight_zero_points,
        bias,
        multipliers,
        shifts,
        act_min,
        act_max,
        requant: Requant::Double,
        pool: PoolRounding::HalfUp,
    }
}

/// `model`'s architecture with random quantized layers (see [`random_layer`]), each layer's input parameters
/// its predecessor's output parameters.
pub fn random_quant_model(model: &Model, seed: u64) -> QuantModel {
    let mut rng = SmallRng::seed_from_u64(seed);
    let input = QuantParams { scale: 1.0 / 128.0, zero_point: random_zero_point(&mut rng) };
    let mut params = input;
    let mut layers = Vec::new();
    for layer in &model.layers {
        let q = random_layer(&layer.name, layer.op, layer.input_shape, layer.output_shape, params, rng.random());
        params = q.output;
        layers.push(q);
    }
    QuantModel {
        name: model.name.clone(),
        scheme: "random".into(),
        input_shape: model.input_shape,
        input,
        layers,
        synthetic: true,
        input_rounding: Default::default(),
    }
}

/// A one-layer model, to run a single layer through a [`Plan`].
pub fn single_layer_model(layer: &QLayer) -> QuantModel {
    QuantModel {
        name: layer.name.clone(),
        scheme: "random".into(),
        input_shape: layer.input_shape,
        input: layer.input,
        layers: vec![layer.clone()],
        synthetic: true,
        input_rounding: Default::default(),
    }
}

/// One layer on the GPU: a single-layer plan run on one image.
pub fn run_layer_gpu(gpu: &GpuContext, layer: &QLayer, input: &[u8], inner: InnerProduct) -> Vec<u8> {
    let mut plan = Plan::new(gpu, &single_layer_model(layer), 1, inner)
        .unwrap_or_else(|e| panic!("{} ({inner:?}): cannot build the plan: {e}", layer.name));
    let mut outputs = plan
        .run(gpu, &[input], Readback::Logits)
        .unwrap_or_else(|e| panic!("{} ({inner:?}): run failed: {e}", layer.name));
    outputs.remove(0).remove(0)
}

/// Panics unless `actual == expected` (through the engine's one comparison routine), saying how many bytes
/// differ and where the first is: `conv_pw_3: 17 of 802816 bytes differ; first at (y=4, x=111, c=63): expected
/// 12, got 11`.
pub fn assert_bit_exact(what: &str, shape: Shape, expected: &[u8], actual: &[u8]) {
    if let Some(mismatch) = mnq_gpu::engine::compare(what, shape, expected, actual) {
        panic!("{mismatch}");
    }
}

/// A quantized ADD of inputs quantized as `input` and `second` (its operands are the previous layer's output and
/// `second`'s tensor; the caller sets `inputs`), with a random output quantization whose scale is within a factor
/// of 4 of the inputs' (as MobileNetV2's are) or 200 times finer (XNNPACK takes ratios up to 256), and a ReLU clamp
/// in a third of the layers.
pub fn random_add_layer(name: &str, shape: Shape, input: QuantParams, second: QuantParams, seed: u64) -> QLayer {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xadd);
    let larger = input.scale.max(second.scale);
    let scale = if rng.random_bool(0.8) { larger * rng.random_range(0.25..4.0) } else { larger * 0.005 };
    let output = QuantParams { scale, zero_point: random_zero_point(&mut rng) };
    let add = AddStage::tflite(input, second, output).expect("positive scales");
    let act_min = if rng.random_bool(0.3) { output.zero_point as u8 } else { 0 };
    QLayer::add(name, Vec::new(), shape, input, output, add, act_min, 255)
}
