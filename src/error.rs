//! The library's one error type. Each variant tells the user what went wrong and, where it helps, what to do next.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no MobileNetV1 model found at {path}\n\
         hint: `mnq-gpu download --list` lists Google's published models and `mnq-gpu download NAME` fetches one; \
         then pass --model NAME (or --model with a TF.js folder or a .tflite file)"
    )]
    ModelNotFound { path: PathBuf },

    #[error("{file}: {reason}")]
    ModelFile { file: PathBuf, reason: String },

    #[error("{file}: tensor `{tensor}`: {reason}")]
    Tensor { file: PathBuf, tensor: String, reason: String },

    #[error("{file}: not a quantized mnq-gpu model: {reason}")]
    QuantFile { file: PathBuf, reason: String },

    #[error("{file}: the file is damaged: {reason}; write it again with `mnq-gpu quantize`")]
    CorruptFile { file: PathBuf, reason: String },

    #[error("cannot read image {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{0}")]
    Invalid(String),

    #[error("layer {layer}: {reason}")]
    UnsupportedShape { layer: String, reason: String },

    #[error("cannot export {model} (scheme {scheme}) as {format}: {reason}")]
    Export { model: String, scheme: String, format: &'static str, reason: String },

    #[error("no GPU adapter found{filter}\nhint: {hint}")]
    NoAdapter { filter: String, hint: &'static str },

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("cannot draw chart {path}: {reason}")]
    Plot { path: PathBuf, reason: String },

    #[error("cannot download {url}: {reason}")]
    Download { url: String, reason: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
