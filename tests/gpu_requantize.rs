//! The WGSL `requantize` (shaders/common.wgsl, 32-bit integer arithmetic) equals `fixed_point::requantize_as`
//! (i64, and native float32 for `fp32`) under every `Requant` mode, on edge values and on random ones
//! (multipliers ≥ 0, the shader's domain), run through a tiny test shader.

mod common;

use mnq_gpu::gpu::{shaders, GpuContext, InnerProduct};
use mnq_gpu::quant::fixed_point::{fp32_parts, requantize_as, Requant};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;

/// One requantize call: the arguments of `requantize` in order (act_min/act_max widened to i32). Under
/// `Requant::Fp32`, multiplier and shift are the float32 scale's mantissa and exponent (`fp32_parts`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Case {
    acc: i32,
    multiplier: i32,
    shift: i32,
    output_zero_point: i32,
    act_min: i32,
    act_max: i32,
}
const _: () = assert!(size_of::<Case>() == 24);

const TEST_SHADER: &str = r#"
struct Case {
    acc: i32,
    multiplier: i32,
    shift: i32,
    output_zero_point: i32,
    act_min: i32,
    act_max: i32,
}
@group(0) @binding(0) var<storage, read> cases: array<Case>;
@group(0) @binding(1) var<storage, read_write> results: array<u32>;

@compute @workgroup_size(64)
fn requantize_cases(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.y * 65535u * 64u + id.x;
    if i >= arrayLength(&cases) {
        return;
    }
    let c = cases[i];
    results[i] = requantize(c.acc, c.multiplier, c.shift, c.output_zero_point, c.act_min, c.act_max);
}
"#;

fn run_cases(gpu: &GpuContext, cases: &[Case], mode: Requant) -> Vec<u8> {
    let device = gpu.device();
    let source = shaders::compose(InnerProduct::Unpack, TEST_SHADER);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("requantize test"),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("requantize test"),
        layout: None,
        module: &module,
        entry_point: Some("requantize_cases"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("REQUANT", Requant::ALL.iter().position(|&m| m == mode).expect("a mode") as f64)],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("requantize cases"),
        contents: bytemuck::cast_slice(cases),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let size = 4 * cases.len() as u64;
    let output = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("requantize results"),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("requantize readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("requantize test"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: input.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: output.as_entire_binding() },
        ],
    });
    let workgroups = cases.len().div_ceil(64) as u32;
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("requantize test") });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("requantize test"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups.min(65535), workgroups.div_ceil(65535), 1);
    }
    encoder.copy_buffer_to_buffer(&output, 0, &staging, 0, size);
    gpu.queue().submit([encoder.finish()]);
    let bytes = mnq_gpu::gpu::block_on(gpu.read_buffer(&staging, size)).expect("readback");
    bytemuck::cast_slice::<u8, u32>(&bytes).iter().map(|&q| u8::try_from(q).expect("a u8 result")).collect()
}

fn edge_and_random_cases() -> Vec<Case> {
    let accs = [
        0,
        1,
        -1,
        2,
        -2,
        127,
        -128,
        1 << 15,
        -(1 << 15),
        1 << 30,
        -(1 << 30),
        i32::MAX,
        i32::MIN,
        i32::MAX - 1,
        i32::MIN + 1,
    ];
    // The shader's domain is multiplier ≥ 0: QuantModel::validate and the GPU plan refuse negative ones.
    let multipliers = [0, 1, 2, 0xffff, 0x10000, 1 << 30, (1 << 30) + 1, i32::MAX, i32::MAX - 1, 1_500_000_000];
    let shifts = [-31, -30, -20, -16, -8, -2, -1, 0, 1, 2, 3, 8, 30, 31];
    let zero_points = [0, 255, 128, 3];
    let ranges = [(0, 255), (0, 0), (255, 255), (10, 200)];
    let mut cases = Vec::new();
    for &acc in &accs {
        for &multiplier in &multipliers {
            for &shift in &shifts {
                for (&output_zero_point, &(act_min, act_max)) in zero_points.iter().zip(&ranges) {
                    cases.push(Case { acc, multiplier, shift, output_zero_point, act_min, act_max });
                }
            }
        }
    }
    let mut rng = SmallRng::seed_from_u64(0x5eed_0001);
    for _ in 0..200_000 {
        let acc = match rng.random_range(0..3) {
            0 => rng.random(),
            1 => rng.random_range(-(1 << 20)..(1 << 20)),
            _ => rng.random_range(-300..300),
        };
        let multiplier =
            if rng.random_bool(0.8) { rng.random_range(1 << 30..=i32::MAX) } else { rng.random_range(0..=i32::MAX) };
        let shift = rng.random_range(-31..=4);
        let output_zero_point = rng.random_range(0..=255);
        let act_min = rng.random_range(0..=255);
        let act_max = rng.random_range(act_min..=255);
        cases.push(Case { acc, multiplier, shift, output_zero_point, act_min, act_max });
    }
    // Exact ties of the rounding steps: acc·multiplier a multiple of 2^30 (odd), then remainders at 2^(e−1).
    for e in 1..=31 {
        for sign in [1, -1] {
            let acc = sign * (1 << (e - 1));
            cases.push(Case { acc, multiplier: 1 << 30, shift: -e, output_zero_point: 128, act_min: 0, act_max: 255 });
            cases.push(Case {
                acc: acc | 1,
                multiplier: 1 << 30,
                shift: -e,
                output_zero_point: 128,
                act_min: 0,
                act_max: 255,
            });
            cases.push(Case {
                acc,
                multiplier: 1 << 30,
                shift: 1 - e,
                output_zero_point: 128,
                act_min: 0,
                act_max: 255,
            });
        }
    }
    cases
}

/// Float32 scales and accumulators for `fp32`: realistic scales (2^-20 to 4) and extremes (0, subnormal, 2^-32,
/// just below 256), accumulators past 2^24 (where f32(acc) rounds), and products that are exact ties at every
/// rounding step: x.5 after the product, and a half unit in the 24th bit of the product.
fn fp32_cases() -> Vec<Case> {
    let mut rng = SmallRng::seed_from_u64(0x5eed_0002);
    let case = |acc: i32, scale: f32, rng: &mut SmallRng| {
        let (multiplier, shift) = fp32_parts(scale).expect("a non-negative finite scale");
        let output_zero_point = rng.random_range(0..=255);
        let act_min = rng.random_range(0..=128);
        let act_max = rng.random_range(act_min.max(output_zero_point)..=255);
        Case { acc, multiplier, shift, output_zero_point, act_min, act_max }
    };
    let mut cases = Vec::new();
    let scales = [0.0, f32::from_bits(1), f32::MIN_POSITIVE, 2f32.powi(-32), 2f32.powi(-24), 0.5, 1.0, 255.99998];
    for &scale in &scales {
        for acc in [0, 1, -1, 3, -3, 1 << 24, (1 << 24) + 1, (1 << 25) + 3, i32::MAX, i32::MIN, i32::MIN + 1] {
            cases.push(case(acc, scale, &mut rng));
        }
    }
    for _ in 0..300_000 {
        let scale = 2f32.powf(rng.random_range(-20.0..2.0));
        let acc = match rng.random_range(0..4) {
            0 => rng.random(),
            1 => rng.random_range(-(1 << 26)..(1 << 26)),
            2 => rng.random_range(-(1 << 16)..(1 << 16)),
            _ => rng.random_range(-300..300),
        };
        cases.push(case(acc, scale, &mut rng));
    }
    // ONNX Runtime's QLinearGlobalAveragePool: scale s_in / (s_out · f32(n)) in float32 for MobileNetV1's pool
    // counts (7×7, 6×6, 5×5, 4×4, 1) on accumulators Σq − n·z_in, |·| ≤ 255·n (PoolRounding::Fp32).
    for _ in 0..20_000 {
        let n = [49u32, 36, 25, 16, 1][rng.random_range(0..5)];
        let (s_in, s_out) = (2f32.powf(rng.random_range(-8.0..0.0)), 2f32.powf(rng.random_range(-8.0..0.0)));
        let acc = rng.random_range(-255 * n as i32..=255 * n as i32);
        cases.push(case(acc, s_in / (s_out * n as f32), &mut rng));
    }
    for _ in 0..50_000 {
        // Ties of the final rounding: acc = odd · 2^(k−1), scale 2^-k, so acc · scale = odd / 2, within ±512.
        let k = rng.random_range(1..=21);
        let odd = rng.random_range(-512..512) * 2 + 1;
        cases.push(case(odd << (k - 1), 2f32.powi(-k), &mut rng));
        // Double rounding: an exact product q + 1/2 + 2^-n (q ≤ 300) whose rounding to 24 bits is a tie, between
        // q + 1/2 (even mantissa, chosen) and q + 1/2 + 2^(1−n); so the result is q or q + 1, whichever is even,
        // where rounding the product up would give q + 1. Built as acc = ±3·2^j (exact in float32) times a
        // mantissa m = P/3 with P = (2q + 1)·2^(n−1) + 1 of 25 bits.
        let q = rng.random_range(0..=300i64);
        if let Some((n, mantissa)) = (2..40).find_map(|n| {
            let p = (2 * q + 1) * (1 << (n - 1)) + 1;
            let m = p / 3;
            (p % 3 == 0 && (1 << 23..1 << 24).contains(&m)).then_some((n, m))
        }) {
            let j = rng.random_range(0..=20);
            let scale = (mantissa as f64 * 2f64.powi(-n - j)) as f32;
            let acc = 3 << j;
            cases.push(case(if rng.random_bool(0.5) { acc } else { -acc }, scale, &mut rng));
        }
    }
    cases
}

/// What the CPU reference computes for `case` under `mode`.
fn expected(case: &Case, mode: Requant) -> u8 {
    // mantissa · 2^exponent is exact in f64 and, being a float32 to begin with, converts back exactly.
    let scale = (f64::from(case.multiplier) * 2f64.powi(case.shift)) as f32;
    requantize_as(
        mode,
        case.acc,
        case.multiplier,
        case.shift,
        scale,
        case.output_zero_point,
        case.act_min as u8,
        case.act_max as u8,
    )
}

fn assert_shader_matches(mode: Requant, cases: &[Case]) {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let actual = run_cases(&gpu, cases, mode);
    let mismatches: Vec<(Case, u8, u8)> = cases
        .iter()
        .zip(&actual)
        .map(|(c, &got)| (*c, expected(c, mode), got))
        .filter(|(_, expected, got)| expected != got)
        .collect();
    assert!(
        mismatches.is_empty(),
        "{mode}: {} of {} cases differ; first: {:?}: expected {}, got {}",
        mismatches.len(),
        cases.len(),
        mismatches[0].0,
        mismatches[0].1,
        mismatches[0].2
    );
}

#[test]
fn wgsl_requantize_matches_fixed_point_requantize_on_edge_and_random_values() {
    assert_shader_matches(Requant::Double, &edge_and_random_cases());
}

/// `single` takes shifts up to 30 (TFLite's range; 31 would shift by nothing).
#[test]
fn wgsl_single_rounding_matches_the_i64_reference() {
    let cases: Vec<Case> = edge_and_random_cases().into_iter().filter(|c| c.shift <= 30).collect();
    assert_shader_matches(Requant::Single, &cases);
}

#[test]
fn wgsl_fp32_requantization_matches_native_float32() {
    assert_shader_matches(Requant::Fp32, &fp32_cases());
}

/// The fp32 emulation's subtle cases can be seen on the CPU too: the conversion of an accumulator past 2^24 and
/// the product each round half to even, so the result differs from one rounding of the exact product.
#[test]
fn fp32_requantization_rounds_at_each_float_step() {
    // 2^24 + 1 converts to 2^24 (a tie, to even); times 2^-25 that is exactly 0.5, which rounds to 0, where the
    // exact product 0.5 + 2^-25 would round to 1.
    assert_eq!(requantize_as(Requant::Fp32, (1 << 24) + 1, 0, 0, 2f32.powi(-25), 0, 0, 255), 0);
    assert_eq!(requantize_as(Requant::Fp32, (1 << 24) + 3, 0, 0, 2f32.powi(-25), 0, 0, 255), 1);
    // Ties to even after the product: 2.5 → 2, 3.5 → 4, −2.5 → −2.
    assert_eq!(requantize_as(Requant::Fp32, 5, 0, 0, 0.5, 10, 0, 255), 12);
    assert_eq!(requantize_as(Requant::Fp32, 7, 0, 0, 0.5, 10, 0, 255), 14);
    assert_eq!(requantize_as(Requant::Fp32, -5, 0, 0, 0.5, 10, 0, 255), 8);
    // Against double rounding's ties away from zero: 5 · 2^-1 is 3 there.
    assert_eq!(requantize_as(Requant::Double, 5, 1 << 30, 0, 0.0, 10, 0, 255), 13);
}
