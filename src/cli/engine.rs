//! Runs quantized models on the chosen device, and checks GPU results against the CPU integer reference.

use super::{Device, DeviceArgs};
use anyhow::Result;
use mnq_gpu::cpu_ref;
use mnq_gpu::gpu::{AdapterOptions, GpuContext, Plan, Readback};
use mnq_gpu::quant::QuantModel;
use rayon::prelude::*;
use serde::Serialize;

/// Images per GPU submit in run and eval.
const BATCH: usize = 8;

/// The int8 executor for a set of models: the CPU reference, or one GPU plan per model.
pub struct Engine {
    gpu: Option<(GpuContext, Vec<Plan>)>,
    /// GPU runs so far, and after how many the device is destroyed (`--lose-device-after`, for tests).
    runs: usize,
    lose_device_after: Option<usize>,
}

impl Engine {
    pub fn new(device: &DeviceArgs, models: &[&QuantModel]) -> Result<Engine> {
        if device.device == Device::Cpu {
            return Ok(Engine { gpu: None, runs: 0, lose_device_after: None });
        }
        let ctx = GpuContext::new(&AdapterOptions { name_filter: device.adapter.clone(), backends: None })?;
        eprintln!("GPU: {}", ctx.info());
        let plans = models
            .iter()
            .map(|model| Plan::new(&ctx, model, BATCH, ctx.inner_product()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Engine { gpu: Some((ctx, plans)), runs: 0, lose_device_after: device.lose_device_after })
    }

    pub fn device(&self) -> &'static str {
        if self.gpu.is_some() {
            "gpu"
        } else {
            "cpu"
        }
    }

    /// The GPU adapter's description, when there is one.
    pub fn adapter(&self) -> Option<String> {
        self.gpu.as_ref().map(|(ctx, _)| ctx.info().to_string())
    }

    /// Model `index`'s outputs for quantized `inputs`: per image, every layer's output (`all_layers`) or only
    /// the logits.
    pub fn run(
        &mut self,
        index: usize,
        model: &QuantModel,
        inputs: &[Vec<u8>],
        all_layers: bool,
    ) -> Result<Vec<Vec<Vec<u8>>>> {
        match &mut self.gpu {
            Some((ctx, plans)) => {
                if self.lose_device_after == Some(self.runs) {
                    ctx.device().destroy();
                }
                self.runs += 1;
                let inputs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                let readback = if all_layers { Readback::AllLayers } else { Readback::Logits };
                Ok(plans[index].run(ctx, &inputs, readback)?)
            }
            None => Ok(inputs
                .par_iter()
                .map(|input| {
                    let mut outputs = cpu_ref::run_u8(model, input);
                    if !all_layers {
                        outputs.drain(..outputs.len() - 1);
                    }
                    outputs
                })
                .collect()),
        }
    }
}

/// The first differing byte of a layer's output.
#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    pub layer: String,
    pub differing_bytes: usize,
    pub total_bytes: usize,
    /// (y, x, c) of the first difference.
    pub first_at: (usize, usize, usize),
    pub expected: u8,
    pub got: u8,
}

/// Compare every layer's output with the CPU integer reference's: (bytes compared, mismatching layers).
pub fn check_layers(model: &QuantModel, input: &[u8], outputs: &[Vec<u8>]) -> (usize, Vec<Mismatch>) {
    let expected = cpu_ref::run_u8(model, input);
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for ((layer, want), got) in model.layers.iter().zip(&expected).zip(outputs) {
        compared += want.len();
        let differing: Vec<usize> = (0..want.len()).filter(|&i| got.get(i) != Some(&want[i])).collect();
        if let Some(&first) = differing.first() {
            mismatches.push(Mismatch {
                layer: layer.name.clone(),
                differing_bytes: differing.len().max(want.len().abs_diff(got.len())),
                total_bytes: want.len(),
                first_at: layer.output_shape.coordinate(first),
                expected: want[first],
                got: got.get(first).copied().unwrap_or(0),
            });
        }
    }
    (compared, mismatches)
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, x, c) = self.first_at;
        write!(
            f,
            "{}: {} of {} bytes differ; first at (y={y}, x={x}, c={c}): expected {}, got {}",
            self.layer, self.differing_bytes, self.total_bytes, self.expected, self.got
        )
    }
}
