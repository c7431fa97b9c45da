//! Quantization: parameters, fixed-point requantization, TF8 calibration, the quantized model and its file
//! format, and SQNR.

pub mod file;
pub mod fixed_point;
mod params;
mod qmodel;
pub mod scheme;
pub mod sqnr;
pub mod tf8;
pub mod transform;

pub use params::{QuantParams, Range};
pub use qmodel::{QLayer, QuantModel};
