//! One module per op: the params struct mirrored from its WGSL file, the packing of its weights and per-channel
//! constants, and its dispatch size. This file holds what they share: [`Channel`], the bind-group layouts and
//! pipeline creation.

mod classifier;
mod conv2d;
mod depthwise_conv2d;
mod global_avg_pool;
mod pointwise_conv2d;
mod pointwise_conv2d_texture;

pub use classifier::ClassifierParams;
pub use conv2d::Conv2dParams;
pub use depthwise_conv2d::DepthwiseConv2dParams;
pub use global_avg_pool::GlobalAvgPoolParams;
pub use pointwise_conv2d::PointwiseConv2dParams;
pub use pointwise_conv2d_texture::PointwiseConv2dTextureParams;
pub(crate) use pointwise_conv2d_texture::TEXEL_CHANNELS;

use super::plan::InnerProduct;
use super::shaders;
use crate::model::{Op, Shape};
use crate::quant::QLayer;
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};

/// One output channel's constants. Mirrors `Channel` in shaders/common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Channel {
    pub bias: i32,
    pub multiplier: i32,
    pub shift: i32,
    pub weight_zero_point: i32,
    /// Σw over the channel's whole packed kernel, padding included.
    pub weight_sum: i32,
    /// The activation clamp's upper bound, [`QLayer::act_max`].
    pub act_max: i32,
}
const _: () = assert!(size_of::<Channel>() == 24);

/// Bindings of group 0, in binding order; each op lists the ones it uses (a prefix of this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `var<uniform> params`: the op's params struct.
    Params,
    /// `var<storage, read> input`: packed activations.
    Input,
    /// `var<storage, read_write> output`: packed activations.
    Output,
    /// `var<storage, read> weights`: packed u8 weights.
    Weights,
    /// `var<storage, read> channels`: `array<Channel>`.
    Channels,
    /// `var input: texture_2d<u32>`: rgba32uint activations, 16 channels a texel.
    InputTexture,
    /// `var output: texture_storage_2d<rgba32uint, write>`.
    OutputTexture,
    /// `var weights: texture_2d<u32>`: rgba32uint packed u8 weights.
    WeightsTexture,
    /// `var channels: texture_2d<i32>`: rgba32sint per-channel constants, one texel per channel.
    ChannelsTexture,
}

/// The constant textures of an op that reads textures: `LayerSetup::weights` fills the weights texture.
pub(crate) struct TextureSetup {
    /// Texels in x and y.
    pub weights_size: [u32; 2],
    /// One rgba32sint texel per output channel, at (0, channel).
    pub channels: Vec<[i32; 4]>,
}

/// Everything one layer needs on the GPU besides its activation buffers, computed on the host.
pub(crate) struct LayerSetup {
    pub stem: &'static str,
    pub bindings: &'static [Binding],
    /// The bytes of the op's params struct.
    pub params: Vec<u8>,
    pub weights: Vec<u32>,
    pub channels: Vec<Channel>,
    /// Set for ops that bind textures (the plan copies their activations between buffers and textures).
    pub textures: Option<TextureSetup>,
    /// Workgroups in x and y for one image; z counts images.
    pub workgroups: [u32; 2],
}

/// Workgroup size of every pipeline (the `WORKGROUP_SIZE` override).
pub(crate) const WORKGROUP_SIZE: u32 = 64;

/// u32 words of one image's activation tensor: channels padded to a multiple of 4.
pub(crate) fn words(shape: Shape) -> usize {
    shape.h * shape.w * shape.c.div_ceil(4)
}

/// The host side of `layer`: checks its shapes and packs its weights, per-channel constants and params.
pub(crate) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    check_per_channel(layer)?;
    match layer.op {
        Op::Conv2d { .. } => conv2d::setup(layer),
        Op::DepthwiseConv2d { .. } => depthwise_conv2d::setup(layer),
        // 1.5–2.0× less GPU time than pointwise_conv2d at conv_pw_1/2/13 of 0.75×224, batch 8, on llvmpipe (2 cores).
        Op::PointwiseConv2d if pointwise_conv2d_texture::fits(layer) => {
            pointwise_conv2d_texture::setup(layer)
        }
        Op::PointwiseConv2d => pointwise_conv2d::setup(layer),
        Op::GlobalAvgPool => global_avg_pool::setup(layer),
        Op::Classifier => classifier::setup(layer),
    }
}

pub(crate) fn unsupported(layer: &QLayer, reason: impl Into<String>) -> Error {
    Error::UnsupportedShape {
        layer: layer.name.clone(),
        reason: reason.into(),
    }
}

fn check_per_channel(layer: &QLayer) -> Result<()> {
    let zero_points = [
        ("input", layer.input.zero_point),
        ("output", layer.output.zero_point),
    ];
    if let Some((what, z)) = zero_points.iter().find(|(_, z)| !(0..=255).contains(z)) {
        return Err(unsupported(
            layer,
            format!("{what} zero point {z} is outside [0, 255]"),
        ));
    }
    if !layer.op.has_weights() {
        return Ok(());
    }
    if let Some(z) = layer
        .weight_zero_points
        .iter()
        .find(|z| !(0..=255).contains(*z))
    {
        return Err(unsupported(
            layer,
            format!("weight zero point {z} is outside [0, 255]"),
        ));
    }
    let c = layer.output_shape.c;
    let lens = [
        layer.weight_zero_points.len(),
        layer.bias.len(),
        layer.multipliers.len(),
        layer.shifts.len(),
    ];
    if lens.iter().any(|&len| len != c) {
        return Err(unsupported(
            layer,
            format!("per-channel vectors have lengths {lens:?}, expected {c} each"),
        ));
    }
    Ok(())
}

/// Channels must fill whole packed words everywhere but the network input.
fn check_multiple_of_4(layer: &QLayer, what: &str, channels: usize) -> Result<()> {
    if !channels.is_multiple_of(4) {
        return Err(unsupported(
            layer,
            format!("{what} has {channels} channels; the GPU needs a multiple of 4"),
        ));
    }
    Ok(())
}

fn check_weights_len(layer: &QLayer, expected: usize) -> Result<()> {
    if layer.weights.len() != expected {
        return Err(unsupported(
            layer,
            format!("{} weights, expected {expected}", layer.weights.len()),
        ));
    }
    Ok(())
}

/// Per-channel constants of a layer whose packed weights are rows [c_out][row_words].
fn channels_of_rows(layer: &QLayer, packed: &[u32], row_words: usize) -> Vec<Channel> {
    packed
        .chunks_exact(row_words)
        .enumerate()
        .map(|(c, row)| Channel {
            bias: layer.bias[c],
            multiplier: layer.multipliers[c],
            shift: layer.shifts[c],
            weight_zero_point: layer.weight_zero_points[c],
            weight_sum: row
                .iter()
                .flat_map(|word| word.to_le_bytes())
                .map(i32::from)
                .sum(),
            act_max: i32::from(layer.act_max[c]),
        })
        .collect()
}

/// Packs `bytes` four to a little-endian u32, the last word padded with `pad`.
fn pack_u8x4(bytes: impl ExactSizeIterator<Item = u8>, pad: u8) -> Vec<u32> {
    let bytes: Vec<u8> = bytes.collect();
    bytes
        .chunks(4)
        .map(|chunk| {
            let mut word = [pad; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            u32::from_le_bytes(word)
        })
        .collect()
}

fn workgroups(invocations: usize) -> u32 {
    invocations.div_ceil(WORKGROUP_SIZE as usize) as u32
}

fn layout_entry(binding: u32, kind: Binding) -> wgpu::BindGroupLayoutEntry {
    let buffer = |ty| wgpu::BindingType::Buffer {
        ty,
        has_dynamic_offset: false,
        min_binding_size: None,
    };
    let texture = |sample_type| wgpu::BindingType::Texture {
        sample_type,
        view_dimension: wgpu::TextureViewDimension::D2,
        multisampled: false,
    };
    let ty = match kind {
        Binding::Params => buffer(wgpu::BufferBindingType::Uniform),
        Binding::Output => buffer(wgpu::BufferBindingType::Storage { read_only: false }),
        Binding::Input | Binding::Weights | Binding::Channels => {
            buffer(wgpu::BufferBindingType::Storage { read_only: true })
        }
        Binding::InputTexture | Binding::WeightsTexture => texture(wgpu::TextureSampleType::Uint),
        Binding::ChannelsTexture => texture(wgpu::TextureSampleType::Sint),
        Binding::OutputTexture => wgpu::BindingType::StorageTexture {
            access: wgpu::StorageTextureAccess::WriteOnly,
            format: wgpu::TextureFormat::Rgba32Uint,
            view_dimension: wgpu::TextureViewDimension::D2,
        },
    };
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty,
        count: None,
    }
}

/// The explicit bind-group layout and the pipeline of one op, with `inner` as the `DOT4` override.
pub(crate) fn pipeline(
    device: &wgpu::Device,
    stem: &'static str,
    bindings: &[Binding],
    inner: InnerProduct,
) -> (wgpu::BindGroupLayout, wgpu::ComputePipeline) {
    let entries: Vec<_> = bindings
        .iter()
        .enumerate()
        .map(|(i, &kind)| layout_entry(i as u32, kind))
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(stem),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(stem),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let source = shaders::source(stem).expect("every op stem has a shader");
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(stem),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let dot4 = if inner == InnerProduct::Dot4 {
        1.0
    } else {
        0.0
    };
    let label = format!("{stem} ({inner:?})");
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(stem),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[
                ("DOT4", dot4),
                ("WORKGROUP_SIZE", f64::from(WORKGROUP_SIZE)),
            ],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    (layout, pipeline)
}
