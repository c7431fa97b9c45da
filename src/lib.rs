//! mnq-gpu: 8-bit integer MobileNetV1 on GPU compute shaders, checked bit for bit against a CPU reference.
//!
//! The pipeline: [`model`] imports a TF.js layers MobileNetV1, [`preprocess`] turns images into its input,
//! [`cpu_ref`] runs the float and integer reference forward passes, [`quant`] calibrates and quantizes
//! (TF8, as in Sheng et al. 2018) and measures SQNR, [`tflite`] imports TFLite's quantized models, [`onnx`] ONNX Runtime's, and [`gpu`]
//! runs the integer pipeline in WGSL.

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
pub mod tflite;

pub use error::{Error, Result};
