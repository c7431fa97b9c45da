//! Quantization's data and arithmetic: parameters, fixed-point requantization, schemes (TF8 and its fixes), the
//! float transforms they use, quantizing one layer's weights, the quantized model and its file format. It sits
//! below the CPU reference, which runs what it defines; calibration ([`crate::calibrate`]) and SQNR
//! ([`crate::sqnr`]) sit above.

pub mod file;
pub mod fixed_point;
mod params;
mod qmodel;
pub mod scheme;
pub mod transform;
pub mod weights;

pub use fixed_point::Requant;
pub use params::{QuantParams, Range};
pub(crate) use qmodel::shape_in_bounds;
pub use qmodel::{AddStage, InputRounding, PoolRounding, QLayer, QuantModel, XnnpackAdd, MAX_CHANNELS, MAX_SIDE};
