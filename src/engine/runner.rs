//! Where the int8 pipeline runs: the CPU integer reference, or one GPU plan per model on one device.

use crate::cpu_ref;
use crate::gpu::{AdapterInfo, AdapterOptions, GpuContext, Outputs, Plan, Readback};
use crate::quant::QuantModel;
use crate::{Error, Result};

/// Images per GPU submit unless told otherwise.
pub const DEFAULT_BATCH: usize = 8;

/// Where the int8 pipeline runs.
#[derive(Clone, Debug)]
pub enum Target {
    /// The CPU integer reference (in parallel over images natively).
    Cpu,
    /// A GPU adapter: natively Vulkan, Metal, DX12 or GL; in the browser WebGPU.
    Gpu(AdapterOptions),
}

/// The int8 executor for a set of models: the CPU reference, or one GPU plan per model.
pub struct Engine {
    models: Vec<QuantModel>,
    gpu: Option<(GpuContext, Vec<Plan>)>,
    /// GPU runs so far, and after how many the device is destroyed ([`Engine::lose_device_after`]).
    runs: usize,
    lose_device_after: Option<usize>,
}

impl Engine {
    /// [`Engine::new_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(target: &Target, models: &[&QuantModel], batch: usize) -> Result<Engine> {
        crate::gpu::block_on(Engine::new_async(target, models, batch))
    }

    /// Opens the device and builds one plan per model, `batch` images per submit (lowered where the device's
    /// limits require). Nothing is opened for [`Target::Cpu`].
    pub async fn new_async(target: &Target, models: &[&QuantModel], batch: usize) -> Result<Engine> {
        let gpu = match target {
            Target::Cpu => None,
            Target::Gpu(options) => {
                let ctx = GpuContext::new_async(options).await?;
                let mut plans = Vec::with_capacity(models.len());
                for model in models {
                    plans.push(Plan::new_async(&ctx, model, batch, ctx.inner_product()).await?);
                }
                Some((ctx, plans))
            }
        };
        let models = models.iter().map(|&model| model.clone()).collect();
        Ok(Engine { models, gpu, runs: 0, lose_device_after: None })
    }

    /// `cpu` or `gpu`, for reports.
    pub fn device(&self) -> &'static str {
        if self.gpu.is_some() {
            "gpu"
        } else {
            "cpu"
        }
    }

    /// The GPU adapter, when there is one.
    pub fn adapter(&self) -> Option<&AdapterInfo> {
        self.gpu.as_ref().map(|(ctx, _)| ctx.info())
    }

    /// For tests: destroy the GPU device before GPU run number `runs` (0-based), as a device loss would.
    pub fn lose_device_after(&mut self, runs: usize) {
        self.lose_device_after = Some(runs);
    }

    /// [`Engine::run_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&mut self, index: usize, inputs: &[Vec<u8>], readback: Readback) -> Result<Outputs> {
        crate::gpu::block_on(self.run_async(index, inputs, readback))
    }

    /// The outputs of model `index` (in the order [`Engine::new`] was given them) for quantized `inputs`, each
    /// [h, w, c] u8 ([`QuantModel::quantize_input`]).
    pub async fn run_async(&mut self, index: usize, inputs: &[Vec<u8>], readback: Readback) -> Result<Outputs> {
        let model = self
            .models
            .get(index)
            .ok_or_else(|| Error::Invalid(format!("model {index} of {} does not exist", self.models.len())))?;
        match &mut self.gpu {
            Some((ctx, plans)) => {
                if self.lose_device_after == Some(self.runs) {
                    ctx.device().destroy();
                }
                self.runs += 1;
                let inputs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                plans[index].run_async(ctx, &inputs, readback).await
            }
            None => Ok(crate::par::map(inputs, |input| {
                let mut outputs = cpu_ref::run_u8(model, input);
                if readback == Readback::Logits {
                    outputs.drain(..outputs.len() - 1);
                }
                outputs
            })),
        }
    }
}
