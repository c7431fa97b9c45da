//! Reading a run back: the staging buffer's texel rows unpacked into each image's NHWC u8 outputs, and the
//! per-layer timestamps into milliseconds.

use super::{Outputs, Plan, Readback, Step};
use crate::gpu::context::GpuContext;
use crate::gpu::ops;
use crate::Result;

impl Plan {
    /// The staging buffer `readback` copies into.
    pub(super) fn staging(&self, readback: Readback) -> &wgpu::Buffer {
        match readback {
            Readback::Logits => &self.logits_staging,
            Readback::AllLayers => self.all_layers_staging.as_ref().expect("run_chunk allocates it first"),
        }
    }

    /// Per image of the `n` just run, the outputs `readback` asked for, each NHWC u8.
    pub(super) async fn read_outputs(&self, ctx: &GpuContext, n: usize, readback: Readback) -> Result<Outputs> {
        let staged_steps: Vec<&Step> = match readback {
            Readback::Logits => vec![self.steps.last().expect("a plan has steps")],
            Readback::AllLayers => self.steps.iter().collect(),
        };
        let size: u64 = match readback {
            Readback::Logits => staged_steps[0].staged_bytes(n),
            Readback::AllLayers => staged_steps.iter().map(|s| s.staged_bytes(self.batch)).sum(),
        };
        let bytes = ctx.read_buffer(self.staging(readback), size).await?;
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
        Ok(results)
    }

    /// GPU milliseconds of each layer in the last timed run.
    pub(super) async fn read_layer_times(&self, ctx: &GpuContext) -> Result<Vec<f64>> {
        let t = self.timestamps.as_ref().expect("a timed run has timestamps");
        let raw = ctx.read_buffer(&t.staging, 16 * self.steps.len() as u64).await?;
        let ticks: &[u64] = bytemuck::cast_slice(&raw);
        let period_ns = f64::from(ctx.queue.get_timestamp_period());
        Ok(ticks.chunks_exact(2).map(|t| t[1].wrapping_sub(t[0]) as f64 * period_ns / 1e6).collect())
    }
}
