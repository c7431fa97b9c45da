//! Building a plan: every GPU object it holds, made once (inside the caller's error scope).

use super::{Plan, Step, Timestamps};
use crate::gpu::context::GpuContext;
use crate::gpu::ops::{self, Binding, LayerSetup};
use crate::gpu::shaders::InnerProduct;
use crate::model::{last_readers, Source};
use crate::quant::QuantModel;
use crate::{Error, Result};
use wgpu::util::DeviceExt;

/// Checks that `model` fits the device's limits, lowers `batch` to what they allow, and builds the plan.
pub(super) async fn plan(ctx: &GpuContext, model: &QuantModel, batch: usize, inner: InnerProduct) -> Result<Plan> {
    if batch == 0 {
        return Err(Error::Invalid("the batch size must be at least 1".into()));
    }
    if model.layers.is_empty() {
        return Err(Error::Invalid(format!("model {} has no layers", model.name)));
    }
    ctx.ensure_alive()?;
    if !ctx.supports(inner) {
        return Err(Error::Gpu(format!(
            "{}: this WGSL has no dot4U8Packed (packed_4x8_integer_dot_product) for the {inner:?} inner product; \
             GpuContext::inner_product gives one that runs here",
            ctx.info().name
        )));
    }
    let image_format = ops::input_format(model.layers[0].op);
    for (i, layer) in model.layers.iter().enumerate() {
        for source in model.inputs_of(i) {
            let (shape, format) = match source {
                Source::Image => (model.input_shape, image_format),
                Source::Layer(j) if j < i => (model.layers[j].output_shape, wgpu::TextureFormat::Rgba32Uint),
                Source::Layer(j) => {
                    return Err(ops::unsupported(layer, format!("reads layer {j}, not an earlier one")))
                }
            };
            if layer.input_shape != shape {
                return Err(ops::unsupported(
                    layer,
                    format!("input {:?} differs from {source:?}'s output {shape:?}", layer.input_shape),
                ));
            }
            if ops::input_format(layer.op) != format {
                return Err(ops::unsupported(layer, "this op reads only the network's input image"));
            }
        }
    }
    let input_zero_point = u8::try_from(model.input.zero_point)
        .map_err(|_| Error::Invalid(format!("input zero point {} is outside [0, 255]", model.input.zero_point)))?;

    let limits = ctx.limits();
    let max_dimension = limits.max_compute_workgroups_per_dimension;
    let max_texture = limits.max_texture_dimension_2d as usize;
    for layer in &model.layers {
        let width = ops::activation_texels(layer.output_shape)[0];
        if width > max_texture {
            return Err(ops::unsupported(
                layer,
                format!("its output is {width} texels wide; the device allows {max_texture}"),
            ));
        }
    }
    let input_texel_channels = if image_format == wgpu::TextureFormat::R32Uint { 4 } else { 16 };
    let input_width = model.input_shape.w * model.input_shape.c.div_ceil(input_texel_channels);
    if input_width > max_texture {
        return Err(Error::UnsupportedShape {
            layer: model.name.clone(),
            reason: format!("the input is {input_width} texels wide; the device allows {max_texture}"),
        });
    }
    let tallest = model.layers.iter().map(|l| l.output_shape.h).max().unwrap_or(0).max(model.input_shape.h);
    // Bytes of every layer's output for one image in the readback buffer, rows padded to 256 bytes.
    let all_bytes: u64 = model
        .layers
        .iter()
        .map(|l| {
            let [width, height] = ops::activation_texels(l.output_shape);
            (16 * width as u64).next_multiple_of(256) * height as u64
        })
        .sum();
    // The batch that fits: images stacked in one texture's height, every layer's output in one readback
    // buffer, images in the z dimension of a dispatch.
    let fits = [(max_texture / tallest) as u64, limits.max_buffer_size / all_bytes, u64::from(max_dimension)];
    let batch = fits.into_iter().fold(batch as u64, u64::min) as usize;
    if batch == 0 {
        return Err(Error::UnsupportedShape {
            layer: model.name.clone(),
            reason: format!(
                "one image ({tallest} rows, {all_bytes} bytes of activations) exceeds the device's texture or \
                 buffer limits"
            ),
        });
    }
    let setups = model.layers.iter().map(|layer| ops::setup(layer, batch)).collect::<Result<Vec<_>>>()?;
    for (layer, setup) in model.layers.iter().zip(&setups) {
        if setup.workgroups.iter().any(|&n| n > max_dimension) {
            return Err(ops::unsupported(
                layer,
                format!("needs {:?} workgroups; the device allows {max_dimension} per dimension", setup.workgroups),
            ));
        }
    }

    ctx.checked(&format!("building the plan of {}", model.name), || {
        build(ctx, model, setups, batch, inner, input_texel_channels, input_zero_point)
    })
    .await
}

/// Creates every GPU object of the plan (inside the caller's error scope).
pub(super) fn build(
    ctx: &GpuContext,
    model: &QuantModel,
    setups: Vec<LayerSetup>,
    batch: usize,
    inner: InnerProduct,
    input_texel_channels: usize,
    input_zero_point: u8,
) -> Plan {
    let device = &ctx.device;
    let shape = model.input_shape;
    let input = texture(
        device,
        "input images",
        ops::input_format(model.layers[0].op),
        [(shape.w * shape.c.div_ceil(input_texel_channels)) as u32, (batch * shape.h) as u32],
        wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
    );
    let largest = |i: usize| model.layers.iter().map(|l| ops::activation_texels(l.output_shape)[i]).max().unwrap_or(1);
    let activation = |label: &str| {
        texture(
            device,
            label,
            wgpu::TextureFormat::Rgba32Uint,
            [largest(0) as u32, (batch * largest(1)) as u32],
            wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC,
        )
    };
    let (slots, textures) = activation_slots(model);
    let activations: Vec<wgpu::Texture> = (0..textures).map(|k| activation(&format!("activations {k}"))).collect();
    let input_view = input.create_view(&Default::default());
    let activation_views: Vec<_> = activations.iter().map(|t| t.create_view(&Default::default())).collect();

    let mut steps = Vec::with_capacity(setups.len());
    for (i, (layer, setup)) in model.layers.iter().zip(setups).enumerate() {
        let (layout, pipeline) = ctx.pipeline(setup.pipeline_key(inner), || ops::pipeline(device, &setup, inner));
        let output = slots[i];
        let views: Vec<&wgpu::TextureView> = model
            .inputs_of(i)
            .iter()
            .map(|&source| match source {
                Source::Image => &input_view,
                Source::Layer(j) => &activation_views[slots[j]],
            })
            .collect();
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(&format!("{} params", layer.name)),
            contents: &setup.params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let constant = |what: &str, format, size: [u32; 2], data: &[u8]| {
            let t = texture(
                device,
                &format!("{} {what}", layer.name),
                format,
                size,
                wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            );
            ctx.queue.write_texture(
                t.as_image_copy(),
                data,
                wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(16 * size[0]), rows_per_image: None },
                t.size(),
            );
            t.create_view(&Default::default())
        };
        let constants = setup.constants.as_ref().map(|(weights, channels)| {
            [
                constant("weights", weights.format, weights.size, &weights.data),
                constant(
                    "channels",
                    wgpu::TextureFormat::Rgba32Sint,
                    [1, channels.len() as u32],
                    bytemuck::cast_slice(channels),
                ),
            ]
        });
        let entries: Vec<wgpu::BindGroupEntry> = setup
            .bindings()
            .iter()
            .enumerate()
            .map(|(binding, kind)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: match kind {
                    Binding::Params => params.as_entire_binding(),
                    Binding::Input => wgpu::BindingResource::TextureView(views[0]),
                    Binding::SecondInput => wgpu::BindingResource::TextureView(views[1]),
                    Binding::Output => wgpu::BindingResource::TextureView(&activation_views[output]),
                    Binding::Weights => wgpu::BindingResource::TextureView(&constants.as_ref().expect("weights")[0]),
                    Binding::Channels => wgpu::BindingResource::TextureView(&constants.as_ref().expect("weights")[1]),
                },
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&layer.name),
            layout: &layout,
            entries: &entries,
        });
        steps.push(Step {
            name: layer.name.clone(),
            output_shape: layer.output_shape,
            output_texels: ops::activation_texels(layer.output_shape).map(|n| n as u32),
            pipeline,
            bind_group,
            workgroups: setup.workgroups,
            per_image: setup.per_image,
            output,
        });
    }

    let logits_staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("logits readback"),
        size: steps.last().map_or(0, |s| s.staged_bytes(batch)),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let timestamps = ctx.info().timestamps.then(|| {
        let count = 2 * steps.len() as u32;
        let query_set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("layer timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 8 * u64::from(count),
                usage,
                mapped_at_creation: false,
            })
        };
        Timestamps {
            query_set,
            resolve: buffer("timestamps resolve", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            staging: buffer("timestamps readback", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
        }
    });
    Plan {
        batch,
        input_shape: model.input_shape,
        input_zero_point,
        steps,
        input,
        input_texel_channels,
        activations,
        logits_staging,
        all_layers_staging: None,
        timestamps,
    }
}

/// Per layer, the activation texture it writes, and how many textures there are. A tensor lives from its layer
/// until its last reader has run; then its texture is free for the next layer that needs one. A layer never
/// writes a texture it reads (its output is placed before its inputs are released). A chain ping-pongs between
/// two textures; MobileNetV2 keeps a block's input alive across the block, three.
pub(super) fn activation_slots(model: &QuantModel) -> (Vec<usize>, usize) {
    let layers = model.layers.len();
    let last = last_readers(layers, |i| model.inputs_of(i));
    let (mut slots, mut free, mut textures) = (Vec::with_capacity(layers), Vec::new(), 0);
    for i in 0..layers {
        let slot = free.pop().unwrap_or_else(|| {
            textures += 1;
            textures - 1
        });
        slots.push(slot);
        for source in model.inputs_of(i) {
            if let Source::Layer(j) = source {
                if last[j + 1] == Some(i) && !free.contains(&slots[j]) {
                    free.push(slots[j]);
                }
            }
        }
        // Nothing reads it (the logits): it is copied out in the same encoder before any later pass writes.
        if last[i + 1].is_none() {
            free.push(slot);
        }
    }
    (slots, textures)
}

fn texture(
    device: &wgpu::Device,
    label: &str,
    format: wgpu::TextureFormat,
    [width, height]: [u32; 2],
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}
