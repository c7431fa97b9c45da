//! The execution plan: built once per [`QuantModel`] and batch size, run many times. It holds one pipeline per
//! op stem, every layer's constant buffers (params, packed weights, per-channel constants) and bind group, and
//! three activation buffers reused by lifetime: the packed input, then two that the layers ping-pong between.
//! A run uploads a chunk of images in one write, records every layer into one command encoder (one compute pass
//! per layer, so timestamps can bracket it), submits once, and reads back the logits or every layer's output.

use super::context::GpuContext;
use super::ops::{self, Binding, LayerSetup};
use crate::model::Shape;
use crate::quant::QuantModel;
use crate::{Error, Result};
use std::collections::HashMap;
use std::time::Instant;
use wgpu::util::DeviceExt;

/// How the op shaders compute a sum of products of packed u8 (the `DOT4` override in shaders/common.wgsl).
/// Both are bit-exact; they differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InnerProduct {
    /// Unpack each word with shifts and masks, then an integer `dot`.
    Unpack,
    /// The WGSL built-in `dot4U8Packed`.
    Dot4,
}

impl InnerProduct {
    pub const ALL: [InnerProduct; 2] = [InnerProduct::Unpack, InnerProduct::Dot4];
    /// The default path: Dot4. On llvmpipe (2 cores) its pointwise layers took about half the GPU time of Unpack
    /// (timestamps, 1.0×224 batch 1); whole-network wall time was within noise of Unpack (`cargo bench --bench gpu`).
    pub const FASTEST: InnerProduct = InnerProduct::Dot4;
}

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
    /// u32 words of one image's output.
    output_words: usize,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    /// x and y of the dispatch; z is the number of images.
    workgroups: [u32; 2],
    /// Index into `Plan::activations` of the buffer this layer writes.
    output: usize,
    /// For ops that read and write textures: the copies around the pass.
    textures: Option<StepTextures>,
}

/// The activation textures of a texture op, [images·h][w·c/16] rgba32uint texels: the same bytes as the packed
/// activation buffers, so plain copies convert (each image row a multiple of 256 bytes, `ops` checks).
struct StepTextures {
    /// The layer's input buffer, copied into `input` before the pass.
    input_buffer: wgpu::Buffer,
    input: wgpu::Texture,
    /// Copied into the layer's output buffer after the pass.
    output: wgpu::Texture,
    /// Bytes of one image row: [input, output].
    row_bytes: [u32; 2],
    /// Rows of one image.
    height: u32,
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
    /// [batch][h][w][words] of the quantized images, channels padded to 4 with the input zero point.
    input: wgpu::Buffer,
    /// Layer i writes `activations[i % 2]` and reads the other (layer 0 reads `input`).
    activations: [wgpu::Buffer; 2],
    logits_staging: wgpu::Buffer,
    /// Every layer's output for `batch` images, layer after layer; made on the first [`Readback::AllLayers`] run.
    all_layers_staging: Option<wgpu::Buffer>,
    timestamps: Option<Timestamps>,
}

impl Plan {
    /// Builds the plan. `batch` is the most images per submit; it is lowered to what the device's buffer and
    /// dispatch limits allow ([`Plan::batch`]), and [`Plan::run`] splits larger inputs into chunks.
    pub fn new(
        ctx: &GpuContext,
        model: &QuantModel,
        batch: usize,
        inner: InnerProduct,
    ) -> Result<Plan> {
        if batch == 0 {
            return Err(Error::Invalid("the batch size must be at least 1".into()));
        }
        if model.layers.is_empty() {
            return Err(Error::Invalid(format!(
                "model {} has no layers",
                model.name
            )));
        }
        let mut expected_input = model.input_shape;
        for layer in &model.layers {
            if layer.input_shape != expected_input {
                return Err(ops::unsupported(
                    layer,
                    format!(
                        "input {:?} differs from the previous output {expected_input:?}",
                        layer.input_shape
                    ),
                ));
            }
            expected_input = layer.output_shape;
        }
        let setups = model
            .layers
            .iter()
            .map(ops::setup)
            .collect::<Result<Vec<_>>>()?;
        let input_zero_point = u8::try_from(model.input.zero_point).map_err(|_| {
            Error::Invalid(format!(
                "input zero point {} is outside [0, 255]",
                model.input.zero_point
            ))
        })?;

        let limits = ctx.limits();
        let max_dimension = limits.max_compute_workgroups_per_dimension;
        for (layer, setup) in model.layers.iter().zip(&setups) {
            if setup.workgroups.iter().any(|&n| n > max_dimension) {
                return Err(ops::unsupported(
                    layer,
                    format!(
                        "needs {:?} workgroups; the device allows {max_dimension} per dimension",
                        setup.workgroups
                    ),
                ));
            }
        }
        let input_words = ops::words(model.input_shape);
        let largest_words = model
            .layers
            .iter()
            .map(|l| ops::words(l.output_shape))
            .max()
            .unwrap_or(0)
            .max(input_words);
        let all_words: usize = model
            .layers
            .iter()
            .map(|l| ops::words(l.output_shape))
            .sum();
        // The batch that fits: the largest activation in one storage binding, every layer's output in one
        // readback buffer, images in the z dimension of a dispatch.
        let fits = [
            limits.max_storage_buffer_binding_size / (4 * largest_words as u64),
            limits.max_buffer_size / (4 * all_words as u64),
            u64::from(max_dimension),
        ];
        // Texture ops hold the batch's rows in one texture's height.
        let texture_rows = model
            .layers
            .iter()
            .zip(&setups)
            .filter(|(_, setup)| setup.textures.is_some())
            .map(|(layer, _)| {
                u64::from(limits.max_texture_dimension_2d) / layer.input_shape.h as u64
            });
        let batch = fits
            .into_iter()
            .chain(texture_rows)
            .fold(batch as u64, u64::min) as usize;
        if batch == 0 {
            return Err(Error::UnsupportedShape {
                layer: model.name.clone(),
                reason: format!(
                    "one image's activations ({} bytes) exceed the device's buffer limits",
                    4 * all_words
                ),
            });
        }

        ctx.checked(&format!("building the plan of {}", model.name), || {
            build(
                ctx,
                model,
                setups,
                batch,
                inner,
                input_words,
                largest_words,
                input_zero_point,
            )
        })
    }

    /// Images per submit.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs `inputs` (each a quantized image [h, w, c], NHWC u8) and returns, per image, the outputs `readback`
    /// asks for, each NHWC u8.
    pub fn run(
        &mut self,
        ctx: &GpuContext,
        inputs: &[&[u8]],
        readback: Readback,
    ) -> Result<Vec<Vec<Vec<u8>>>> {
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
        let layers = self
            .steps
            .iter()
            .zip(layer_ms)
            .map(|(step, gpu_ms)| LayerTime {
                name: step.name.clone(),
                gpu_ms,
            });
        Ok(Profile {
            images: inputs.len(),
            wall_ms,
            layers: layers.collect(),
        })
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
        let packed = self.pack_input(images)?;
        if readback == Readback::AllLayers && self.all_layers_staging.is_none() {
            let size = self
                .steps
                .iter()
                .map(|s| 4 * (self.batch * s.output_words) as u64)
                .sum();
            self.all_layers_staging =
                Some(ctx.checked("allocating the readback buffer", || {
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
            ctx.queue
                .write_buffer(&self.input, 0, bytemuck::cast_slice(&packed));
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("forward pass"),
                });
            let mut staging_offset = 0;
            for (i, step) in self.steps.iter().enumerate() {
                let timestamp_writes = timestamps.map(|t| wgpu::ComputePassTimestampWrites {
                    query_set: &t.query_set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                });
                if let Some(t) = &step.textures {
                    copy_rows(
                        &mut encoder,
                        &t.input_buffer,
                        &t.input,
                        t.row_bytes[0],
                        n as u32 * t.height,
                        false,
                    );
                }
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&step.name),
                        timestamp_writes,
                    });
                    pass.set_pipeline(&step.pipeline);
                    pass.set_bind_group(0, &step.bind_group, &[]);
                    pass.dispatch_workgroups(step.workgroups[0], step.workgroups[1], n as u32);
                }
                if let Some(t) = &step.textures {
                    let output = &self.activations[step.output];
                    copy_rows(
                        &mut encoder,
                        output,
                        &t.output,
                        t.row_bytes[1],
                        n as u32 * t.height,
                        true,
                    );
                }
                let bytes = 4 * (n * step.output_words) as u64;
                let is_last = i + 1 == self.steps.len();
                if readback == Readback::AllLayers || is_last {
                    encoder.copy_buffer_to_buffer(
                        &self.activations[step.output],
                        0,
                        staging,
                        staging_offset,
                        bytes,
                    );
                }
                if readback == Readback::AllLayers {
                    staging_offset += 4 * (self.batch * step.output_words) as u64;
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
            Readback::Logits => 4 * (n * staged_steps[0].output_words) as u64,
            Readback::AllLayers => staged_steps
                .iter()
                .map(|s| 4 * (self.batch * s.output_words) as u64)
                .sum(),
        };
        let bytes = ctx.read_buffer(staging, size)?;
        let mut results: Vec<Vec<Vec<u8>>> = vec![Vec::with_capacity(staged_steps.len()); n];
        let mut offset = 0;
        for step in staged_steps {
            let image_bytes = 4 * step.output_words;
            for (i, result) in results.iter_mut().enumerate() {
                // Channels are whole words past the input, so the packed words are the NHWC bytes.
                result.push(bytes[offset + i * image_bytes..][..step.output_shape.len()].to_vec());
            }
            offset += 4 * self.batch * step.output_words;
        }

        let mut layer_ms = Vec::new();
        if let Some(t) = timestamps {
            let raw = ctx.read_buffer(&t.staging, 16 * self.steps.len() as u64)?;
            let ticks: &[u64] = bytemuck::cast_slice(&raw);
            let period_ns = f64::from(ctx.queue.get_timestamp_period());
            layer_ms = ticks
                .chunks_exact(2)
                .map(|t| t[1].wrapping_sub(t[0]) as f64 * period_ns / 1e6)
                .collect();
        }
        Ok((results, layer_ms))
    }

    /// The images as [n][h][w][words], each pixel's channels padded to whole words with the input zero point.
    fn pack_input(&self, images: &[&[u8]]) -> Result<Vec<u32>> {
        let shape = self.input_shape;
        let mut packed = Vec::with_capacity(images.len() * ops::words(shape));
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
                for chunk in pixel.chunks(4) {
                    let mut word = [self.input_zero_point; 4];
                    word[..chunk.len()].copy_from_slice(chunk);
                    packed.push(u32::from_le_bytes(word));
                }
            }
        }
        Ok(packed)
    }
}

/// Creates every GPU object of the plan (inside the caller's error scope).
#[allow(clippy::too_many_arguments)]
fn build(
    ctx: &GpuContext,
    model: &QuantModel,
    setups: Vec<LayerSetup>,
    batch: usize,
    inner: InnerProduct,
    input_words: usize,
    largest_words: usize,
    input_zero_point: u8,
) -> Plan {
    let device = &ctx.device;
    let activation = |label: &str, words: usize| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: 4 * (batch * words) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    };
    let input = activation("input images", input_words);
    let activations = [
        activation("activations A", largest_words),
        activation("activations B", largest_words),
    ];

    let mut pipelines: HashMap<&'static str, (wgpu::BindGroupLayout, wgpu::ComputePipeline)> =
        HashMap::new();
    let mut steps = Vec::with_capacity(setups.len());
    for (i, (layer, setup)) in model.layers.iter().zip(setups).enumerate() {
        let (layout, pipeline) = pipelines
            .entry(setup.stem)
            .or_insert_with(|| ops::pipeline(device, setup.stem, setup.bindings, inner));
        let output = i % 2;
        let layer_input = if i == 0 {
            &input
        } else {
            &activations[1 - output]
        };
        let storage = |what: &str, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{} {what}", layer.name)),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(&format!("{} params", layer.name)),
            contents: &setup.params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let weights = storage("weights", bytemuck::cast_slice(&setup.weights));
        let channels = storage("channels", bytemuck::cast_slice(&setup.channels));
        let textures = setup.textures.as_ref().map(|t| {
            let (ins, outs) = (layer.input_shape, layer.output_shape);
            let texels = |shape: Shape| (shape.w * shape.c / ops::TEXEL_CHANNELS) as u32;
            let activation_texture = |what: &str, shape: Shape, usage| {
                texture(
                    device,
                    &format!("{} {what}", layer.name),
                    wgpu::TextureFormat::Rgba32Uint,
                    [texels(shape), (batch * shape.h) as u32],
                    usage,
                )
            };
            let input = activation_texture(
                "input texture",
                ins,
                wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            );
            let output = activation_texture(
                "output texture",
                outs,
                wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC,
            );
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
                    wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(16 * size[0]),
                        rows_per_image: None,
                    },
                    t.size(),
                );
                t.create_view(&Default::default())
            };
            let weights = constant(
                "weights texture",
                wgpu::TextureFormat::Rgba32Uint,
                t.weights_size,
                bytemuck::cast_slice(&setup.weights),
            );
            let channels = constant(
                "channels texture",
                wgpu::TextureFormat::Rgba32Sint,
                [1, t.channels.len() as u32],
                bytemuck::cast_slice(&t.channels),
            );
            let views = [
                input.create_view(&Default::default()),
                output.create_view(&Default::default()),
                weights,
                channels,
            ];
            let step = StepTextures {
                input_buffer: layer_input.clone(),
                input,
                output,
                row_bytes: [(ins.w * ins.c) as u32, (outs.w * outs.c) as u32],
                height: ins.h as u32,
            };
            (step, views)
        });
        let entries: Vec<wgpu::BindGroupEntry> = setup
            .bindings
            .iter()
            .enumerate()
            .map(|(binding, kind)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: match kind {
                    Binding::Params => params.as_entire_binding(),
                    Binding::Input => layer_input.as_entire_binding(),
                    Binding::Output => activations[output].as_entire_binding(),
                    Binding::Weights => weights.as_entire_binding(),
                    Binding::Channels => channels.as_entire_binding(),
                    Binding::InputTexture => texture_view(&textures, 0),
                    Binding::OutputTexture => texture_view(&textures, 1),
                    Binding::WeightsTexture => texture_view(&textures, 2),
                    Binding::ChannelsTexture => texture_view(&textures, 3),
                },
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&layer.name),
            layout,
            entries: &entries,
        });
        steps.push(Step {
            name: layer.name.clone(),
            output_shape: layer.output_shape,
            output_words: ops::words(layer.output_shape),
            pipeline: pipeline.clone(),
            bind_group,
            workgroups: setup.workgroups,
            output,
            textures: textures.map(|(t, _)| t),
        });
    }

    let logits_words = steps.last().map_or(0, |s| s.output_words);
    let logits_staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("logits readback"),
        size: 4 * (batch * logits_words) as u64,
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
            resolve: buffer(
                "timestamps resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            staging: buffer(
                "timestamps readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        }
    });
    Plan {
        batch,
        input_shape: model.input_shape,
        input_zero_point,
        steps,
        input,
        activations,
        logits_staging,
        all_layers_staging: None,
        timestamps,
    }
}

/// View `i` of a texture op's [input, output, weights, channels] textures.
fn texture_view(
    textures: &Option<(StepTextures, [wgpu::TextureView; 4])>,
    i: usize,
) -> wgpu::BindingResource<'_> {
    let (_, views) = textures
        .as_ref()
        .expect("an op that binds textures has a TextureSetup");
    wgpu::BindingResource::TextureView(&views[i])
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
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

/// Copies the first `rows` rows of `row_bytes` each between a packed activation buffer and a texture of the same
/// bytes: buffer to texture, or texture to buffer when `to_buffer`.
fn copy_rows(
    encoder: &mut wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    texture: &wgpu::Texture,
    row_bytes: u32,
    rows: u32,
    to_buffer: bool,
) {
    let buffer = wgpu::TexelCopyBufferInfo {
        buffer,
        layout: wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(row_bytes),
            rows_per_image: None,
        },
    };
    let size = wgpu::Extent3d {
        width: texture.width(),
        height: rows,
        depth_or_array_layers: 1,
    };
    if to_buffer {
        encoder.copy_texture_to_buffer(texture.as_image_copy(), buffer, size);
    } else {
        encoder.copy_buffer_to_texture(buffer, texture.as_image_copy(), size);
    }
}
