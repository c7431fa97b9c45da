//! The execution plan: built once per [`QuantModel`] and batch size, run many times. It holds one pipeline per
//! op stem, every layer's params buffer, constant textures (packed weights, per-channel constants) and bind group,
//! and three activation textures reused by lifetime: the packed input, then two that the layers ping-pong between
//! (rgba32uint, 16 channels a texel, so no layer reads a storage buffer). A run uploads a chunk of images in one
//! write, records every layer into one command encoder (one compute pass per layer, so timestamps can bracket
//! it), submits once, and copies back the logits or every layer's output texture.

use super::context::GpuContext;
use super::ops::{self, Binding, LayerSetup};
use super::shaders::InnerProduct;
use crate::model::Shape;
use crate::quant::QuantModel;
use crate::{Error, Result};
use std::time::Instant;
use wgpu::util::DeviceExt;

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
type Outputs = Vec<Vec<Vec<u8>>>;

/// One layer's recorded work.
struct Step {
    name: String,
    output_shape: Shape,
    /// [width, height] in texels of one image's output ([`ops::activation_texels`]).
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
    /// The quantized images in the first layer's input format ([`ops::input_format`]), images stacked in y.
    input: wgpu::Texture,
    /// Channels of one `input` texel: 4 (r32uint) or 16 (rgba32uint).
    input_texel_channels: usize,
    /// Layer i writes `activations[i % 2]` and reads the other (layer 0 reads `input`); rgba32uint, each
    /// [`ops::activation_texels`] with images stacked in y, sized for the largest layer output.
    activations: [wgpu::Texture; 2],
    logits_staging: wgpu::Buffer,
    /// Every layer's output for `batch` images, layer after layer; made on the first [`Readback::AllLayers`] run.
    all_layers_staging: Option<wgpu::Buffer>,
    timestamps: Option<Timestamps>,
}

impl Plan {
    /// Builds the plan. `batch` is the most images per submit; it is lowered to what the device's buffer and
    /// dispatch limits allow ([`Plan::batch`]), and [`Plan::run`] splits larger inputs into chunks.
    pub fn new(ctx: &GpuContext, model: &QuantModel, batch: usize, inner: InnerProduct) -> Result<Plan> {
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
        let mut expected_input = model.input_shape;
        for layer in &model.layers {
            if layer.input_shape != expected_input {
                return Err(ops::unsupported(
                    layer,
                    format!("input {:?} differs from the previous output {expected_input:?}", layer.input_shape),
                ));
            }
            expected_input = layer.output_shape;
        }
        let input_zero_point = u8::try_from(model.input.zero_point)
            .map_err(|_| Error::Invalid(format!("input zero point {} is outside [0, 255]", model.input.zero_point)))?;

        let limits = ctx.limits();
        let max_dimension = limits.max_compute_workgroups_per_dimension;
        let max_texture = limits.max_texture_dimension_2d as usize;
        for (i, layer) in model.layers.iter().enumerate() {
            if i > 0 && ops::input_format(layer.op) != wgpu::TextureFormat::Rgba32Uint {
                return Err(ops::unsupported(layer, "this op reads only the network's input image"));
            }
            let width = ops::activation_texels(layer.output_shape)[0];
            if width > max_texture {
                return Err(ops::unsupported(
                    layer,
                    format!("its output is {width} texels wide; the device allows {max_texture}"),
                ));
            }
        }
        let input_format = ops::input_format(model.layers[0].op);
        let input_texel_channels = if input_format == wgpu::TextureFormat::R32Uint { 4 } else { 16 };
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
    }

    /// Images per submit.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs `inputs` (each a quantized image [h, w, c], NHWC u8) and returns, per image, the outputs `readback`
    /// asks for, each NHWC u8.
    pub fn run(&mut self, ctx: &GpuContext, inputs: &[&[u8]], readback: Readback) -> Result<Vec<Vec<Vec<u8>>>> {
        let mut results = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(self.batch) {
            results.extend(self.run_chunk(ctx, chunk, readback, false)?.0);
        }
        Ok(results)
    }

    /// Runs up to [`Plan::batch`] images once, timing each layer with timestamp queries where available.
    pub fn profile(&mut self, ctx: &GpuContext, inputs: &[&[u8]]) -> Result<Profile> {
        let inputs = &inputs[..inputs.len().min(self.batch)];
        let start = Instant::now();
        let (_, layer_ms) = self.run_chunk(ctx, inputs, Readback::Logits, true)?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let layers =
            self.steps.iter().zip(layer_ms).map(|(step, gpu_ms)| LayerTime { name: step.name.clone(), gpu_ms });
        Ok(Profile { images: inputs.len(), wall_ms, layers: layers.collect() })
    }

    fn run_chunk(
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
            self.all_layers_staging = Some(ctx.checked("allocating the readback buffer", || {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("all layers readback"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })?);
        }
        let timestamps = self.timestamps.as_ref().filter(|_| timed);
        let staging = match readback {
            Readback::Logits => &self.logits_staging,
            Readback::AllLayers => self.all_layers_staging.as_ref().expect("allocated above"),
        };
        ctx.checked("running the plan", || {
            let shape = self.input_shape;
            let texels_per_pixel = shape.c.div_ceil(self.input_texel_channels) as u32;
            let texel_bytes = 4 * self.input_texel_channels.div_ceil(4) as u32;
            ctx.queue.write_texture(
                self.input.as_image_copy(),
                &packed,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(shape.w as u32 * texels_per_pixel * texel_bytes),
                    rows_per_image: None,
                },
                wgpu::Extent3d {
                    width: shape.w as u32 * texels_per_pixel,
                    height: (n * shape.h) as u32,
                    depth_or_array_layers: 1,
                },
            );
            let mut encoder =
                ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward pass") });
            let mut staging_offset = 0;
            for (i, step) in self.steps.iter().enumerate() {
                let timestamp_writes = timestamps.map(|t| wgpu::ComputePassTimestampWrites {
                    query_set: &t.query_set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                });
                {
                    let mut pass = encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&step.name), timestamp_writes });
                    pass.set_pipeline(&step.pipeline);
                    pass.set_bind_group(0, &step.bind_group, &[]);
                    let images = if step.per_image { n as u32 } else { 1 };
                    pass.dispatch_workgroups(step.workgroups[0], step.workgroups[1], images);
                }
                let is_last = i + 1 == self.steps.len();
                if readback == Readback::AllLayers || is_last {
                    encoder.copy_texture_to_buffer(
                        self.activations[step.output].as_image_copy(),
                        wgpu::TexelCopyBufferInfo {
                            buffer: staging,
                            layout: wgpu::TexelCopyBufferLayout {
                                offset: staging_offset,
                                bytes_per_row: Some(step.row_pitch() as u32),
                                rows_per_image: None,
                            },
                        },
                        wgpu::Extent3d {
                            width: step.output_texels[0],
                            height: n as u32 * step.output_texels[1],
                            depth_or_array_layers: 1,
                        },
                    );
                }
                if readback == Readback::AllLayers {
                    staging_offset += step.staged_bytes(self.batch);
                }
            }
            if let Some(t) = timestamps {
                let count = 2 * self.steps.len() as u32;
                encoder.resolve_query_set(&t.query_set, 0..count, &t.resolve, 0);
                encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.staging, 0, 8 * u64::from(count));
            }
            ctx.queue.submit([encoder.finish()]);
        })?;

        let staged_steps: Vec<&Step> = match readback {
            Readback::Logits => vec![self.steps.last().expect("a plan has steps")],
            Readback::AllLayers => self.steps.iter().collect(),
        };
        let size: u64 = match readback {
            Readback::Logits => staged_steps[0].staged_bytes(n),
            Readback::AllLayers => staged_steps.iter().map(|s| s.staged_bytes(self.batch)).sum(),
        };
        let bytes = ctx.read_buffer(staging, size)?;
        let mut results: Vec<Vec<Vec<u8>>> = vec![Vec::with_capacity(staged_steps.len()); n];
        let mut offset = 0;
        for step in staged_steps {
            let shape = step.output_shape;
            let pitch = step.row_pitch() as usize;
            let pixel_bytes = 16 * ops::groups(shape.c);
            for (i, result) in results.iter_mut().enumerate() {
                let mut nhwc = Vec::with_capacity(shape.len());
                for row in bytes[offset + i * shape.h * pitch..].chunks(pitch).take(shape.h) {
                    for pixel in row.chunks_exact(pixel_bytes).take(shape.w) {
                        nhwc.extend_from_slice(&pixel[..shape.c]);
                    }
                }
                result.push(nhwc);
            }
            offset += step.staged_bytes(self.batch) as usize;
        }

        let mut layer_ms = Vec::new();
        if let Some(t) = timestamps {
            let raw = ctx.read_buffer(&t.staging, 16 * self.steps.len() as u64)?;
            let ticks: &[u64] = bytemuck::cast_slice(&raw);
            let period_ns = f64::from(ctx.queue.get_timestamp_period());
            layer_ms = ticks.chunks_exact(2).map(|t| t[1].wrapping_sub(t[0]) as f64 * period_ns / 1e6).collect();
        }
        Ok((results, layer_ms))
    }

    /// The images as `input` texels, images stacked in y: each pixel's channels padded with the input zero point
    /// to whole texels of `input_texel_channels`.
    fn pack_input(&self, images: &[&[u8]]) -> Result<Vec<u8>> {
        let shape = self.input_shape;
        let pixel_bytes = shape.c.next_multiple_of(self.input_texel_channels);
        let mut packed = Vec::with_capacity(images.len() * shape.h * shape.w * pixel_bytes);
        for (i, image) in images.iter().enumerate() {
            if image.len() != shape.len() {
                return Err(Error::Invalid(format!(
                    "image {i} has {} bytes; the model takes {}×{}×{} = {}",
                    image.len(),
                    shape.h,
                    shape.w,
                    shape.c,
                    shape.len()
                )));
            }
            for pixel in image.chunks_exact(shape.c) {
                packed.extend_from_slice(pixel);
                packed.resize(packed.len() + pixel_bytes - shape.c, self.input_zero_point);
            }
        }
        Ok(packed)
    }
}

/// Creates every GPU object of the plan (inside the caller's error scope).
fn build(
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
    let activations = [activation("activations A"), activation("activations B")];
    let input_view = input.create_view(&Default::default());
    let activation_views = activations.each_ref().map(|t| t.create_view(&Default::default()));

    let mut steps = Vec::with_capacity(setups.len());
    for (i, (layer, setup)) in model.layers.iter().zip(setups).enumerate() {
        let (layout, pipeline) = ctx.pipeline(setup.pipeline_key(inner), || ops::pipeline(device, &setup, inner));
        let output = i % 2;
        let layer_input = if i == 0 { &input_view } else { &activation_views[1 - output] };
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
                    Binding::Input => wgpu::BindingResource::TextureView(layer_input),
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
