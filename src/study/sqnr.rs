//! `sqnr`'s measurement: per-layer SQNR ([`crate::sqnr`]) of each scheme's int8 pipeline against its float model,
//! accumulated and local, averaged over images. Computed with the CPU integer reference, which the GPU matches bit
//! for bit.

use super::{load_images, paths, List, Progress};
use crate::engine::Quantized;
use crate::model::Model;
use crate::sqnr::{model_sqnr, LayerSqnr};
use crate::Result;
use serde::Serialize;

#[derive(Serialize)]
pub struct SchemeSqnr {
    pub scheme: String,
    pub layers: Vec<LayerSqnr>,
}

#[derive(Serialize)]
pub struct Report {
    pub model: String,
    pub images: usize,
    pub schemes: Vec<SchemeSqnr>,
}

/// Per-layer SQNR of each of `quantized` against its own float model, averaged over the images of `list`; `float`
/// is the original model, which decodes them.
pub fn measure(float: &Model, quantized: &[Quantized], list: &List, progress: &dyn Progress) -> Result<Report> {
    let inputs = load_images(&paths(&list.images), float, "decoding", progress)?;
    let schemes = quantized
        .iter()
        .map(|q| SchemeSqnr { scheme: q.label(), layers: model_sqnr(&q.float, &q.model, &inputs) })
        .collect();
    Ok(Report { model: float.name.clone(), images: inputs.len(), schemes })
}
