//! pointwise_conv2d (rgba32uint textures) in a standalone harness at conv_pw_1, conv_pw_2 and conv_pw_13 of 0.75×224,
//! bit-exact with the CPU reference, timed against the same layer run through a Plan.

mod common;
const TILE: usize = 8;

use mnq_gpu::cpu_ref;
use mnq_gpu::gpu::{shaders, InnerProduct, Plan};
use mnq_gpu::model::synthetic::mobilenet_v1;
use mnq_gpu::quant::QLayer;
use std::time::Instant;
use wgpu::util::DeviceExt;

fn texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    format: wgpu::TextureFormat,
    width: usize,
    height: usize,
    data: Option<&[u8]>,
) -> wgpu::Texture {
    let desc = wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::COPY_SRC
            | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    };
    match data {
        Some(d) => device.create_texture_with_data(queue, &desc, Default::default(), d),
        None => device.create_texture(&desc),
    }
}

fn run_texture(
    gpu: &mnq_gpu::gpu::GpuContext,
    layer: &QLayer,
    images: &[Vec<u8>],
    inner: InnerProduct,
) -> (Vec<Vec<u8>>, f64) {
    let device = gpu.device();
    let queue = gpu.queue();
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    let (gi, go) = (ins.c.div_ceil(16), outs.c.div_ceil(16));
    let n = images.len();
    let zx = layer.input.zero_point;
    // activations
    let mut act = Vec::new();
    for img in images {
        for pixel in img.chunks_exact(ins.c) {
            for g in 0..gi {
                for k in 0..16 {
                    act.push(*pixel.get(16 * g + k).unwrap_or(&(zx as u8)));
                }
            }
        }
    }
    let mut w = Vec::new();
    let mut ch: Vec<i32> = Vec::new();
    for co in 0..16 * go {
        let mut sum = 0i32;
        let zw = if co < outs.c { layer.weight_zero_points[co] } else { 0 };
        for ci in 0..16 * gi {
            let v = if co >= outs.c {
                0
            } else if ci < ins.c {
                layer.weights[ci * outs.c + co]
            } else {
                zw as u8
            };
            sum += i32::from(v);
            w.push(v);
        }
        if co < outs.c {
            let terms = (16 * gi) as i32;
            let offset =
                layer.bias[co].wrapping_sub(zx.wrapping_mul(sum)).wrapping_add(terms.wrapping_mul(zx).wrapping_mul(zw));
            ch.extend([offset, layer.multipliers[co], layer.shifts[co], zw | (i32::from(layer.act_max[co]) << 16)]);
        } else {
            ch.extend([0, 0, 0, 0]);
        }
    }
    let u = wgpu::TextureFormat::Rgba32Uint;
    let input = texture(device, queue, u, ins.w * gi, n * ins.h, Some(&act));
    let output = texture(device, queue, u, outs.w * go, n * outs.h, None);
    let weights = texture(device, queue, u, gi, 16 * go, Some(&w));
    let channels = texture(device, queue, wgpu::TextureFormat::Rgba32Sint, 1, 16 * go, Some(bytemuck::cast_slice(&ch)));
    let params: [u32; 8] = [
        ins.w as u32,
        (ins.h * ins.w) as u32,
        ins.h as u32,
        gi as u32,
        layer.output.zero_point as u32,
        u32::from(layer.act_min),
        go as u32,
        0,
    ];
    let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let source = shaders::compose(include_str!("../shaders/pointwise_conv2d.wgsl"));
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let dot4 = if inner == InnerProduct::Dot4 { 1.0 } else { 0.0 };
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("pointwise_conv2d"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("DOT4", dot4), ("WORKGROUP_SIZE", 64.0)],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    let view = |t: &wgpu::Texture| t.create_view(&Default::default());
    let (vi, vo, vw, vc) = (view(&input), view(&output), view(&weights), view(&channels));
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&vi) },
            wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&vo) },
            wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&vw) },
            wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(&vc) },
        ],
    });
    let row_bytes = (16 * outs.w * go).next_multiple_of(256);
    let rows = n * outs.h;
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (row_bytes * rows) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut best = f64::MAX;
    for rep in 0..4 {
        let start = Instant::now();
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(((ins.h * ins.w).div_ceil(TILE)).div_ceil(64) as u32, go as u32, n as u32);
        }
        if rep == 3 {
            encoder.copy_texture_to_buffer(
                output.as_image_copy(),
                wgpu::TexelCopyBufferInfo {
                    buffer: &staging,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(row_bytes as u32),
                        rows_per_image: None,
                    },
                },
                output.size(),
            );
        }
        queue.submit([encoder.finish()]);
        device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    let bytes = gpu.read_buffer(&staging, (row_bytes * rows) as u64).unwrap();
    let mut result = vec![Vec::new(); n];
    for (i, r) in result.iter_mut().enumerate() {
        for y in 0..outs.h {
            let row = &bytes[(i * outs.h + y) * row_bytes..];
            for x in 0..outs.w {
                r.extend_from_slice(&row[16 * go * x..][..outs.c]);
            }
        }
    }
    (result, best)
}

#[test]
fn pointwise_texture_prototype() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let model = common::random_quant_model(&mobilenet_v1(0.75, 224, 7), 7);
    for name in ["conv_pw_1", "conv_pw_2", "conv_pw_13"] {
        let layer = model.layers.iter().find(|l| l.name == name).unwrap();
        let images: Vec<Vec<u8>> = (0..8).map(|i| common::random_u8(layer.input_shape.len(), i)).collect();
        let expected: Vec<Vec<u8>> = images.iter().map(|im| cpu_ref::run_layer_u8(layer, im)).collect();
        for inner in InnerProduct::ALL {
            let (actual, tex_ms) = run_texture(&gpu, layer, &images, inner);
            for (e, a) in expected.iter().zip(&actual) {
                common::assert_bit_exact(name, layer.output_shape, e, a);
            }
            let mut plan = Plan::new(&gpu, &common::single_layer_model(layer), 8, inner).unwrap();
            let inputs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
            let mut old = f64::MAX;
            for _ in 0..3 {
                old = old.min(plan.profile(&gpu, &inputs).unwrap().layers[0].gpu_ms);
            }
            eprintln!(
                "{name} {inner:?}: plan {old:.2} ms (timestamps), harness {tex_ms:.2} ms (wall), ratio {:.2}",
                old / tex_ms
            );
        }
    }
}
