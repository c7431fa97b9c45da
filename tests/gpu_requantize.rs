//! The WGSL `requantize` (shaders/common.wgsl, 32-bit arithmetic) equals `fixed_point::requantize` (i64) on
//! edge values and on random ones (multipliers ≥ 0, the shader's domain), run through a tiny test shader.

mod common;

use mnq_gpu::gpu::{shaders, GpuContext};
use mnq_gpu::quant::fixed_point::requantize;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;

/// One requantize call: the arguments of `requantize` in order (act_min/act_max widened to i32).
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

fn run_cases(gpu: &GpuContext, cases: &[Case]) -> Vec<u8> {
    let device = gpu.device();
    let source = shaders::compose(TEST_SHADER);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("requantize test"),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("requantize test"),
        layout: None,
        module: &module,
        entry_point: Some("requantize_cases"),
        compilation_options: Default::default(),
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
    let bytes = gpu.read_buffer(&staging, size).expect("readback");
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

#[test]
fn wgsl_requantize_matches_fixed_point_requantize_on_edge_and_random_values() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let cases = edge_and_random_cases();
    let actual = run_cases(&gpu, &cases);
    let mismatches: Vec<(Case, u8, u8)> = cases
        .iter()
        .zip(&actual)
        .map(|(c, &got)| {
            let expected =
                requantize(c.acc, c.multiplier, c.shift, c.output_zero_point, c.act_min as u8, c.act_max as u8);
            (*c, expected, got)
        })
        .filter(|(_, expected, got)| expected != got)
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ; first: {:?}: expected {}, got {}",
        mismatches.len(),
        cases.len(),
        mismatches[0].0,
        mismatches[0].1,
        mismatches[0].2
    );
}
