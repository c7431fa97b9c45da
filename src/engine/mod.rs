//! The library's front door: load a model from a path or from bytes ([`Loaded`]), quantize it under schemes
//! ([`Loaded::quantize`]), run it on the GPU or the CPU integer reference ([`Engine`]), check one against the
//! other ([`check_layers`]), evaluate labelled images ([`Evaluation`]) and measure SQNR ([`crate::sqnr`]). The
//! CLI, the tests, the benchmarks and the browser page all go through it.
//!
//! The GPU path is async at its core, as the browser needs (`Engine::new_async`, `Engine::run_async`); native
//! callers use the blocking `Engine::new` and `Engine::run`.
//!
//! ```no_run
//! use mnq_gpu::engine::{Engine, Loaded, SchemeChoice, Target};
//! use mnq_gpu::gpu::Readback;
//!
//! let loaded = Loaded::built_in()?;
//! let quantized = loaded.quantize(&[SchemeChoice::File], &[])?;
//! let mut engine = Engine::new(&Target::Gpu(Default::default()), &[&quantized[0].model], 8)?;
//! # Ok::<(), mnq_gpu::Error>(())
//! ```

mod check;
mod evaluate;
mod load;
mod runner;

pub use crate::gpu::Outputs;
pub use check::{check_layers, compare, Check, Mismatch};
pub use evaluate::{Accuracy, Evaluation, ModeDifference, SchemeResult, Tally};
pub use load::{label, needs_calibration, with_requant, Loaded, Quantized, SchemeChoice};
pub use runner::{Engine, Target, DEFAULT_BATCH};
