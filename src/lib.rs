//! mnq-gpu: 8-bit integer MobileNetV1 and V2 on GPU compute shaders, checked bit for bit against a CPU reference.
//!
//! The layers, bottom up; each module uses only those above it:
//!
//! - [`error`]: the one error type, whose variants say what to do next.
//! - [`par`]: data parallelism over images (rayon natively, a plain loop in the browser).
//! - [`assets`]: the files built into the binary: Google's uint8 MobileNetV1 1.0 × 224 TFLite file and an example photo.
//! - [`model`]: the float layer graph (shapes, ops, layers, the input range a model takes); import from TF.js.
//! - [`labels`]: ImageNet class names, labelled image lists, top-k.
//! - [`preprocess`]: decode an image and make it a model's float input (TF-slim's evaluation preprocessing).
//! - [`quant`]: quantization's data and arithmetic: parameters, fixed-point requantization, schemes, the float
//!   transforms they use, quantized weights, the quantized model and its file format.
//! - [`cpu_ref`]: the float and integer reference forward passes, one file per op; the integer pass is the
//!   specification.
//! - [`calibrate`]: activation ranges over calibration images, and a float model quantized under a scheme (TF8,
//!   as in Sheng et al. 2018, and its fixes).
//! - [`sqnr`]: SQNR per layer, accumulated and local.
//! - [`analysis`]: weight ranges before and after folding BatchNorm, dead channels (no inference).
//! - [`tflite`]: TFLite's quantized models in and out.
//! - [`onnx`]: ONNX models in (float, QDQ and QOperator, with ONNX Runtime's arithmetic) and out (float and QDQ).
//! - [`gpu`]: the integer pipeline in WGSL through wgpu: context, shaders, one module per op, the plan.
//! - [`engine`]: the front door: load a model, quantize it, run it on the GPU or the CPU reference, check one
//!   against the other, evaluate labelled images. The CLI, the tests, the benchmarks and the browser page go
//!   through it.
//! - [`study`]: the studies over labelled images behind `eval`, `sqnr`, `sensitivity` and `report` (native only).
//!
//! Beside them, used by the CLI: [`plot`] draws charts and [`download`] fetches Google's models (native only).

pub mod analysis;
pub mod assets;
pub mod calibrate;
pub mod cpu_ref;
#[cfg(not(target_arch = "wasm32"))]
pub mod download;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod labels;
pub mod model;
pub mod onnx;
pub mod par;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
pub mod preprocess;
pub mod quant;
pub mod sqnr;
#[cfg(not(target_arch = "wasm32"))]
pub mod study;
pub mod tflite;

pub use error::{Error, Result};
