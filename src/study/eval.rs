//! `eval`'s measurement: top-1/top-5 of the float model and of every quantized model's int8 pipeline over a
//! labelled list, in one pass, optionally with every int8 layer checked against the CPU integer reference.

use super::{classes, load_images, paths, Device, List, Progress, CHUNK};
use crate::engine::{self, Accuracy, Evaluation, ModeDifference, Quantized};
use crate::model::Model;
use crate::quant::Requant;
use crate::Result;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Serialize)]
pub struct SchemeReport {
    pub scheme: String,
    /// The output stage's rounding (`--requant`).
    pub requant: Requant,
    pub device: &'static str,
    /// The float model this scheme quantizes (differs from the original only for architecture changes).
    pub float: Accuracy,
    pub int8: Accuracy,
    /// With checking: bytes of every layer's output compared with the CPU integer reference, and how many differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differing_bytes: Option<usize>,
    /// Under a mode other than `double`, when the same scheme also ran under `double`: how its logits differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_double: Option<ModeDifference>,
}

impl SchemeReport {
    /// The scheme, with its requantization mode unless it is the default (as [`Quantized::label`]).
    pub fn label(&self) -> String {
        engine::label(&self.scheme, self.requant)
    }
}

#[derive(Serialize)]
pub struct Report {
    pub model: String,
    pub list: PathBuf,
    pub images: usize,
    pub threads: usize,
    pub device: &'static str,
    /// The GPU adapter, when the int8 pipeline ran there.
    pub adapter: Option<String>,
    /// The original float model.
    pub float: Accuracy,
    pub schemes: Vec<SchemeReport>,
}

impl Report {
    /// Whether a checked int8 result differed from the CPU integer reference.
    pub fn mismatched(&self) -> bool {
        self.schemes.iter().any(|s| s.differing_bytes.is_some_and(|d| d > 0))
    }
}

/// Evaluates `float` and the int8 pipeline of each of `quantized` (on `device`) over `list`; with `check`, every
/// int8 layer is compared with the CPU integer reference.
pub fn evaluate(
    float: &Model,
    quantized: &[Quantized],
    device: &Device,
    list: &List,
    check: bool,
    progress: &dyn Progress,
) -> Result<Report> {
    let mut engine = device.engine(&quantized.iter().map(|q| &q.model).collect::<Vec<_>>(), progress)?;
    let mut evaluation = Evaluation::new(quantized, check);
    let bar = progress.bar(list.images.len(), "evaluating");
    for chunk in list.images.chunks(CHUNK) {
        let inputs = load_images(&paths(chunk), float, "decoding", progress)?;
        evaluation.add(&mut engine, float, quantized, &inputs, &classes(float, chunk))?;
        bar.advance(chunk.len());
    }
    drop(bar);

    let schemes = quantized
        .iter()
        .enumerate()
        .map(|(index, q)| {
            let result = evaluation.scheme(index);
            SchemeReport {
                scheme: q.scheme_name(),
                requant: q.model.requant(),
                device: engine.device(),
                float: result.float,
                int8: result.int8,
                checked_bytes: result.checked.map(|(compared, _)| compared),
                differing_bytes: result.checked.map(|(_, differing)| differing),
                vs_double: result.vs_double,
            }
        })
        .collect();
    Ok(Report {
        model: float.name.clone(),
        list: list.path.clone(),
        images: evaluation.images(),
        threads: rayon::current_num_threads(),
        device: engine.device(),
        adapter: engine.adapter().map(ToString::to_string),
        float: evaluation.float(),
        schemes,
    })
}
