//! The WGSL int8 engine: the adapter and device ([`context`]), the WGSL sources and how they compose
//! ([`shaders`]), one module per op under `ops/` (host-side packing, params, dispatch size), and the execution
//! plan that runs a [`QuantModel`](crate::quant::QuantModel) bit-exactly with `cpu_ref::run_u8` ([`plan`]).

pub mod context;
mod ops;
pub mod plan;
pub mod shaders;

pub use context::{AdapterInfo, AdapterOptions, GpuContext};
pub use ops::{AddParams, Channel, Conv2dParams, DepthwiseConv2dParams, GlobalAvgPoolParams, PointwiseConv2dParams};
pub use plan::{LayerTime, Outputs, Plan, Profile, Readback};
pub use shaders::{InnerProduct, Kernel};

/// Runs one of the engine's futures to completion on this thread: where native callers block on the async GPU
/// path, and the only place they do.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}
