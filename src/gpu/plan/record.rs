//! Recording a run: the images uploaded, one compute pass per layer, the copies of what is read back, and the
//! timestamp resolves, all in one command encoder and one submit.

use super::{Plan, Readback};
use crate::gpu::context::GpuContext;
use crate::{Error, Result};

impl Plan {
    /// Uploads `packed` ([`Plan::pack_input`] of `n` images) and submits the forward pass, copying into the
    /// staging buffer of `readback`; `timed` brackets each pass with timestamps (the plan must have them).
    pub(super) fn record(&self, ctx: &GpuContext, packed: &[u8], n: usize, readback: Readback, timed: bool) {
        let timestamps = self.timestamps.as_ref().filter(|_| timed);
        let staging = self.staging(readback);
        let shape = self.input_shape;
        let texels_per_pixel = shape.c.div_ceil(self.input_texel_channels) as u32;
        let texel_bytes = 4 * self.input_texel_channels.div_ceil(4) as u32;
        ctx.queue.write_texture(
            self.input.as_image_copy(),
            packed,
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
    }

    /// The images as `input` texels, images stacked in y: each pixel's channels padded with the input zero point
    /// to whole texels of `input_texel_channels`.
    pub(super) fn pack_input(&self, images: &[&[u8]]) -> Result<Vec<u8>> {
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
