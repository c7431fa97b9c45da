//! One module per op: the params struct mirrored from its WGSL file, the packing of its weights and per-channel
//! constants into textures, and its dispatch size. This file holds what they share: [`Channel`], the activation
//! texture layout, the bind-group layouts and pipeline creation.

mod add;
mod conv2d;
mod depthwise_conv2d;
mod global_avg_pool;
mod pointwise_conv2d;

pub use add::AddParams;
pub use conv2d::Conv2dParams;
pub use depthwise_conv2d::DepthwiseConv2dParams;
pub use global_avg_pool::GlobalAvgPoolParams;
pub use pointwise_conv2d::PointwiseConv2dParams;

use super::shaders::InnerProduct;
use super::shaders::Kernel;
use crate::model::{Op, Shape};
use crate::quant::{QLayer, Requant};
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};

/// One output channel's constants: one rgba32sint texel of an op's channels texture. Mirrors `Channel` in
/// shaders/common.wgsl (`channel_from_texel`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Channel {
    /// bias − z_x·Σw + terms·z_x·z_w, wrapping (the shader's sum wraps the same way; the true accumulator fits
    /// i32), so acc = Σxw − z_w·Σx + offset.
    pub offset: i32,
    pub multiplier: i32,
    pub shift: i32,
    /// z_w ∈ [0, 255], 0 where the op folds it into the weights (depthwise_conv2d).
    pub weight_zero_point: u16,
    /// The activation clamp's upper bound, [`QLayer::act_max`].
    pub act_max: u16,
}
const _: () = assert!(size_of::<Channel>() == 16);

impl Channel {
    /// Channel `c` of `layer`, whose packed kernel row (padding included) sums to `weight_sum` over `terms` bytes.
    /// Its multiplier and shift are the layer's output-stage constants ([`QLayer::output_stage`], checked by
    /// [`setup`]).
    fn new(layer: &QLayer, c: usize, weight_sum: i32, terms: i32) -> Channel {
        let (input_zero, weight_zero) = (layer.input.zero_point, layer.weight_zero_points[c]);
        let (multiplier, shift) = layer.output_stage(c).unwrap_or_default();
        Channel {
            offset: layer.bias[c]
                .wrapping_sub(input_zero.wrapping_mul(weight_sum))
                .wrapping_add(terms.wrapping_mul(input_zero).wrapping_mul(weight_zero)),
            multiplier,
            shift,
            weight_zero_point: weight_zero as u16,
            act_max: u16::from(layer.act_max[c]),
        }
    }

    /// A padded output channel: its values are never read as real channels.
    const PADDING: Channel = Channel { offset: 0, multiplier: 0, shift: 0, weight_zero_point: 0, act_max: 255 };
}

/// Bindings of group 0, in binding order; every op uses the first three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `var<uniform> params`: the op's params struct.
    Params,
    /// `var input: texture_2d<u32>`: activations (conv2d: the r32uint input image).
    Input,
    /// `var output: texture_storage_2d<rgba32uint, write>`: activations.
    Output,
    /// `var weights: texture_2d<u32 or i32>`: the op's packed weights.
    Weights,
    /// `var channels: texture_2d<i32>`: one [`Channel`] texel per output channel, at (0, channel).
    Channels,
    /// `var second_input: texture_2d<u32>`: ADD's second operand, activations.
    SecondInput,
}

/// The bindings of an op with weights.
const WITH_WEIGHTS: &[Binding] =
    &[Binding::Params, Binding::Input, Binding::Output, Binding::Weights, Binding::Channels];
/// The bindings of an op without (global_avg_pool).
const WITHOUT_WEIGHTS: &[Binding] = &[Binding::Params, Binding::Input, Binding::Output];
/// The bindings of an op of two activations (add).
const TWO_INPUTS: &[Binding] = &[Binding::Params, Binding::Input, Binding::Output, Binding::SecondInput];

/// An op's constant weights texture.
pub(crate) struct WeightsTexture {
    /// Rgba32Uint (packed u8) or Rgba32Sint.
    pub format: wgpu::TextureFormat,
    /// Texels in x and y.
    pub size: [u32; 2],
    /// 16 bytes a texel, rows of `size[0]` texels.
    pub data: Vec<u8>,
}

/// Everything one layer needs on the GPU besides its activation textures, computed on the host.
pub(crate) struct LayerSetup {
    pub kernel: Kernel,
    /// The bytes of the op's params struct.
    pub params: Vec<u8>,
    /// The weights texture and per-channel constants of an op with weights, None for global_avg_pool and add.
    pub constants: Option<(WeightsTexture, Vec<Channel>)>,
    /// Workgroups in x and y for one image where `per_image`, else for the whole batch.
    pub workgroups: [u32; 2],
    /// Whether the dispatch's z counts images; ops on one-pixel images instead cover the batch in x.
    pub per_image: bool,
    /// The output stage (the `REQUANT` override), [`QLayer::requant`].
    pub requant: Requant,
}

impl LayerSetup {
    pub fn bindings(&self) -> &'static [Binding] {
        match self.kernel {
            Kernel::Conv2d | Kernel::DepthwiseConv2d | Kernel::PointwiseConv2d => WITH_WEIGHTS,
            Kernel::GlobalAvgPool => WITHOUT_WEIGHTS,
            Kernel::Add => TWO_INPUTS,
        }
    }
}

/// Workgroup size of every pipeline (the `WORKGROUP_SIZE` override).
pub(crate) const WORKGROUP_SIZE: u32 = 64;

/// u8 channels of one rgba32uint activation texel.
pub(crate) const TEXEL_CHANNELS: usize = 16;

/// Texels of one channel group: 16 channels, the last group padded.
pub(crate) fn groups(channels: usize) -> usize {
    channels.div_ceil(TEXEL_CHANNELS)
}

/// [width, height] in texels of one image's activation texture region: texel (x·groups + g, y) holds channels
/// 16g..16g + 15 of pixel (y, x); images are stacked in y.
pub(crate) fn activation_texels(shape: Shape) -> [usize; 2] {
    [shape.w * groups(shape.c), shape.h]
}

/// u32 words of one pixel of conv2d's r32uint input image texture: channels padded to a multiple of 4.
pub(crate) fn input_words(shape: Shape) -> usize {
    shape.c.div_ceil(4)
}

/// The format of `op`'s input texture: Rgba32Uint (16 channels a texel, [`activation_texels`]), or R32Uint
/// (4 channels a texel, [`input_words`]) for conv2d, which reads only the network's input image.
pub(crate) fn input_format(op: Op) -> wgpu::TextureFormat {
    match Kernel::of(op) {
        Kernel::Conv2d => wgpu::TextureFormat::R32Uint,
        Kernel::DepthwiseConv2d | Kernel::PointwiseConv2d | Kernel::GlobalAvgPool | Kernel::Add => {
            wgpu::TextureFormat::Rgba32Uint
        }
    }
}

/// The host side of `layer` in a plan of `batch` images: checks its shapes and packs its weights, per-channel
/// constants and params.
pub(crate) fn setup(layer: &QLayer, batch: usize) -> Result<LayerSetup> {
    check_per_channel(layer)?;
    match Kernel::of(layer.op) {
        Kernel::Conv2d => conv2d::setup(layer),
        Kernel::DepthwiseConv2d => depthwise_conv2d::setup(layer),
        Kernel::PointwiseConv2d => pointwise_conv2d::setup(layer, batch),
        Kernel::GlobalAvgPool => global_avg_pool::setup(layer),
        Kernel::Add => add::setup(layer),
    }
}

pub(crate) fn unsupported(layer: &QLayer, reason: impl Into<String>) -> Error {
    Error::UnsupportedShape { layer: layer.name.clone(), reason: reason.into() }
}

fn check_per_channel(layer: &QLayer) -> Result<()> {
    let zero_points = [("input", layer.input.zero_point), ("output", layer.output.zero_point)];
    if let Some((what, z)) = zero_points.iter().find(|(_, z)| !(0..=255).contains(z)) {
        return Err(unsupported(layer, format!("{what} zero point {z} is outside [0, 255]")));
    }
    if !layer.op.has_weights() {
        return Ok(());
    }
    if let Some(z) = layer.weight_zero_points.iter().find(|z| !(0..=255).contains(*z)) {
        return Err(unsupported(layer, format!("weight zero point {z} is outside [0, 255]")));
    }
    let c = layer.output_shape.c;
    let lens = [layer.weight_zero_points.len(), layer.bias.len(), layer.multipliers.len(), layer.shifts.len()];
    if lens.iter().any(|&len| len != c) {
        return Err(unsupported(layer, format!("per-channel vectors have lengths {lens:?}, expected {c} each")));
    }
    // The domain of the shaders' requantize, as QuantModel::validate checks it for model files.
    if let Some(m) = layer.multipliers.iter().find(|&&m| m < 0) {
        return Err(unsupported(layer, format!("multiplier {m} is negative")));
    }
    if let Some(s) = layer.shifts.iter().find(|s| !(-31..=30).contains(*s)) {
        return Err(unsupported(layer, format!("shift {s} is outside [−31, 30]")));
    }
    if layer.requant == Requant::Fp32 {
        if layer.weight_scales.len() != c {
            return Err(unsupported(layer, format!("{} weight scales, expected {c}", layer.weight_scales.len())));
        }
        if let Some(c) = (0..c).find(|&c| layer.output_stage(c).is_none()) {
            let scale = layer.fp32_scale(c);
            return Err(unsupported(layer, format!("channel {c}'s float32 scale {scale} cannot requantize")));
        }
    }
    Ok(())
}

fn check_weights_len(layer: &QLayer, expected: usize) -> Result<()> {
    if layer.weights.len() != expected {
        return Err(unsupported(layer, format!("{} weights, expected {expected}", layer.weights.len())));
    }
    Ok(())
}

fn workgroups(invocations: usize) -> u32 {
    invocations.div_ceil(WORKGROUP_SIZE as usize) as u32
}

fn layout_entry(binding: u32, kind: Binding, weights_sint: bool) -> wgpu::BindGroupLayoutEntry {
    let buffer = |ty| wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None };
    let texture = |sample_type| wgpu::BindingType::Texture {
        sample_type,
        view_dimension: wgpu::TextureViewDimension::D2,
        multisampled: false,
    };
    let ty = match kind {
        Binding::Params => buffer(wgpu::BufferBindingType::Uniform),
        Binding::Input | Binding::SecondInput => texture(wgpu::TextureSampleType::Uint),
        Binding::Weights if weights_sint => texture(wgpu::TextureSampleType::Sint),
        Binding::Weights => texture(wgpu::TextureSampleType::Uint),
        Binding::Channels => texture(wgpu::TextureSampleType::Sint),
        Binding::Output => wgpu::BindingType::StorageTexture {
            access: wgpu::StorageTextureAccess::WriteOnly,
            format: wgpu::TextureFormat::Rgba32Uint,
            view_dimension: wgpu::TextureViewDimension::D2,
        },
    };
    wgpu::BindGroupLayoutEntry { binding, visibility: wgpu::ShaderStages::COMPUTE, ty, count: None }
}

/// What a pipeline depends on: the op, the inner product, the output stage and whether the weights texture is
/// signed. [`GpuContext`](super::GpuContext) keeps one pipeline per key for its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    kernel: Kernel,
    inner: InnerProduct,
    requant: Requant,
    weights_sint: bool,
}

impl LayerSetup {
    pub fn pipeline_key(&self, inner: InnerProduct) -> PipelineKey {
        PipelineKey { kernel: self.kernel, inner, requant: self.requant, weights_sint: self.weights_sint() }
    }

    fn weights_sint(&self) -> bool {
        self.constants.as_ref().is_some_and(|(weights, _)| weights.format == wgpu::TextureFormat::Rgba32Sint)
    }
}

/// The explicit bind-group layout and the pipeline of `setup`'s op, composed with `inner`'s inner product and
/// the setup's requantization mode as `REQUANT`.
pub(crate) fn pipeline(
    device: &wgpu::Device,
    setup: &LayerSetup,
    inner: InnerProduct,
) -> (wgpu::BindGroupLayout, wgpu::ComputePipeline) {
    let stem = setup.kernel.name();
    let weights_sint = setup.weights_sint();
    let entries: Vec<_> =
        setup.bindings().iter().enumerate().map(|(i, &kind)| layout_entry(i as u32, kind, weights_sint)).collect();
    let layout =
        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(stem), entries: &entries });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(stem),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let source = setup.kernel.source(inner);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(stem),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let requant = match setup.requant {
        Requant::Double => 0.0,
        Requant::Single => 1.0,
        Requant::Fp32 => 2.0,
    };
    let label = format!("{stem} ({inner:?}, {})", setup.requant);
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(stem),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("REQUANT", requant), ("WORKGROUP_SIZE", f64::from(WORKGROUP_SIZE))],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    (layout, pipeline)
}
