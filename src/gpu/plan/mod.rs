//! The execution plan: built once per [`QuantModel`] and batch size, run many times. It holds one pipeline per
//! op kernel, every layer's params buffer, constant textures (packed weights, per-channel constants) and bind group,
//! and activation textures reused by lifetime: the packed input, then as many as the graph keeps alive at once
//! (two for a chain, which ping-pongs; three for MobileNetV2's residual blocks), rgba32uint, 16 channels a texel,
//! so no layer reads a storage buffer. A run uploads a chunk of images in one
//! write, records every layer into one command encoder (one compute pass per layer, so timestamps can bracket
//! it), submits once, and copies back the logits or every layer's output texture. Building is in [`build`],
//! recording in [`record`], unpacking what comes back in [`readback`].

mod build;
mod readback;
mod record;

use super::context::GpuContext;
use super::shaders::InnerProduct;
use crate::model::Shape;
use crate::quant::QuantModel;
use crate::Result;
use web_time::Instant;

/// What a run copies back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readback {
    /// Only the logits: each image's result holds one vector.
    Logits,
    /// Every layer's output, in layer order (the logits last).
    AllLayers,
}

/// GPU time of one layer, from timestamp queries.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTime {
    pub name: String,
    pub gpu_ms: f64,
}

/// A profiled run of one chunk of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub images: usize,
    /// Upload, submit, wait and readback of the logits, measured on the host.
    pub wall_ms: f64,
    /// Per layer; empty where the adapter has no timestamp queries.
    pub layers: Vec<LayerTime>,
}

/// Per image, per layer read back, NHWC u8.
pub type Outputs = Vec<Vec<Vec<u8>>>;

/// One layer's recorded work.
struct Step {
    name: String,
    output_shape: Shape,
    /// [width, height] in texels of one image's output ([`super::ops::activation_texels`]).
    output_texels: [u32; 2],
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    /// x and y of the dispatch; z is the number of images where `per_image`, else 1.
    workgroups: [u32; 2],
    per_image: bool,
    /// Index into `Plan::activations` of the texture this layer writes.
    output: usize,
}

impl Step {
    /// Bytes of one texel row in a readback buffer: copies need a multiple of 256.
    fn row_pitch(&self) -> u64 {
        (16 * u64::from(self.output_texels[0])).next_multiple_of(u64::from(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT))
    }

    /// Bytes of `images` images' output in a readback buffer.
    fn staged_bytes(&self, images: usize) -> u64 {
        self.row_pitch() * u64::from(self.output_texels[1]) * images as u64
    }
}

struct Timestamps {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
}

/// A [`QuantModel`] ready to run on one device, `batch` images per submit.
pub struct Plan {
    batch: usize,
    input_shape: Shape,
    input_zero_point: u8,
    steps: Vec<Step>,
    /// The quantized images in the first layer's input format ([`super::ops::input_format`]), images stacked in y.
    input: wgpu::Texture,
    /// Channels of one `input` texel: 4 (r32uint) or 16 (rgba32uint).
    input_texel_channels: usize,
    /// The textures layers write, assigned by lifetime ([`build::activation_slots`]); rgba32uint, each
    /// [`super::ops::activation_texels`] with images stacked in y, sized for the largest layer output.
    activations: Vec<wgpu::Texture>,
    logits_staging: wgpu::Buffer,
    /// Every layer's output for `batch` images, layer after layer; made on the first [`Readback::AllLayers`] run.
    all_layers_staging: Option<wgpu::Buffer>,
    timestamps: Option<Timestamps>,
}

impl Plan {
    /// Builds the plan. `batch` is the most images per submit; it is lowered to what the device's buffer and
    /// dispatch limits allow ([`Plan::batch`]), and [`Plan::run`] splits larger inputs into chunks.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(ctx: &GpuContext, model: &QuantModel, batch: usize, inner: InnerProduct) -> Result<Plan> {
        super::block_on(Plan::new_async(ctx, model, batch, inner))
    }

    /// [`Plan::new`], awaited (the browser's way).
    pub async fn new_async(ctx: &GpuContext, model: &QuantModel, batch: usize, inner: InnerProduct) -> Result<Plan> {
        build::plan(ctx, model, batch, inner).await
    }

    /// Images per submit.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs `inputs` (each a quantized image [h, w, c], NHWC u8) and returns, per image, the outputs `readback`
    /// asks for, each NHWC u8.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&mut self, ctx: &GpuContext, inputs: &[&[u8]], readback: Readback) -> Result<Outputs> {
        super::block_on(self.run_async(ctx, inputs, readback))
    }

    /// [`Plan::run`], awaited.
    pub async fn run_async(&mut self, ctx: &GpuContext, inputs: &[&[u8]], readback: Readback) -> Result<Outputs> {
        let mut results = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(self.batch) {
            results.extend(self.run_chunk(ctx, chunk, readback, false).await?.0);
        }
        Ok(results)
    }

    /// Runs up to [`Plan::batch`] images once, timing each layer with timestamp queries where available.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile(&mut self, ctx: &GpuContext, inputs: &[&[u8]]) -> Result<Profile> {
        super::block_on(self.profile_async(ctx, inputs))
    }

    /// [`Plan::profile`], awaited.
    pub async fn profile_async(&mut self, ctx: &GpuContext, inputs: &[&[u8]]) -> Result<Profile> {
        let inputs = &inputs[..inputs.len().min(self.batch)];
        let start = Instant::now();
        let (_, layer_ms) = self.run_chunk(ctx, inputs, Readback::Logits, true).await?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let layers =
            self.steps.iter().zip(layer_ms).map(|(step, gpu_ms)| LayerTime { name: step.name.clone(), gpu_ms });
        Ok(Profile { images: inputs.len(), wall_ms, layers: layers.collect() })
    }

    /// One chunk of at most `batch` images: upload, record ([`record`]), submit, read back ([`readback`]).
    async fn run_chunk(
        &mut self,
        ctx: &GpuContext,
        images: &[&[u8]],
        readback: Readback,
        timed: bool,
    ) -> Result<(Outputs, Vec<f64>)> {
        let n = images.len();
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        ctx.ensure_alive()?;
        let packed = self.pack_input(images)?;
        if readback == Readback::AllLayers && self.all_layers_staging.is_none() {
            let size = self.steps.iter().map(|s| s.staged_bytes(self.batch)).sum();
            let buffer = ctx
                .checked("allocating the readback buffer", || {
                    ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("all layers readback"),
                        size,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
                .await?;
            self.all_layers_staging = Some(buffer);
        }
        let timed = timed && self.timestamps.is_some();
        ctx.checked("running the plan", || self.record(ctx, &packed, n, readback, timed)).await?;
        let outputs = self.read_outputs(ctx, n, readback).await?;
        let layer_ms = if timed { self.read_layer_times(ctx).await? } else { Vec::new() };
        Ok((outputs, layer_ms))
    }
}
