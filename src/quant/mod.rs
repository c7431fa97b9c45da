//! Quantization: parameters, fixed-point requantization, schemes (TF8 and its fixes), the float transforms they
//! use, calibration and quantization, the quantized model and its file format, and SQNR.

pub mod file;
pub mod fixed_point;
mod params;
mod qmodel;
pub mod quantize;
pub mod scheme;
pub mod sqnr;
pub mod transform;

pub use fixed_point::Requant;
pub use params::{QuantParams, Range};
pub use qmodel::{QLayer, QuantModel};
