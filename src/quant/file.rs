//! The quantized-model file: safetensors with the uint8 weights (`<layer>/weights`, U8, the float kernel's
//! layout) and int32 biases (`<layer>/bias`, I32), and in the header's `__metadata__` under the key `mnq_gpu`
//! the JSON of [`QuantModel`] (every quantization parameter, per layer) with `format_version`.
//! Written by `mnq-gpu quantize`, read by every command, so calibration runs once.

use super::QuantModel;
use crate::error::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

const METADATA_KEY: &str = "mnq_gpu";
const FORMAT_VERSION: &str = "1";

pub fn save(model: &QuantModel, path: &Path) -> Result<()> {
    let failed = |reason: String| Error::QuantFile { file: path.to_path_buf(), reason };
    let biases: Vec<(String, Vec<u8>)> = model
        .layers
        .iter()
        .filter(|l| !l.bias.is_empty())
        .map(|l| (format!("{}/bias", l.name), l.bias.iter().flat_map(|b| b.to_le_bytes()).collect()))
        .collect();
    let mut tensors = Vec::new();
    for layer in model.layers.iter().filter(|l| !l.weights.is_empty()) {
        let view = TensorView::new(Dtype::U8, vec![layer.weights.len()], &layer.weights);
        tensors.push((format!("{}/weights", layer.name), view.map_err(|e| failed(e.to_string()))?));
    }
    for (name, bytes) in &biases {
        let view = TensorView::new(Dtype::I32, vec![bytes.len() / 4], bytes);
        tensors.push((name.clone(), view.map_err(|e| failed(e.to_string()))?));
    }
    let json = serde_json::to_string(model).map_err(|e| failed(e.to_string()))?;
    let metadata =
        HashMap::from([(METADATA_KEY.to_string(), json), ("format_version".to_string(), FORMAT_VERSION.to_string())]);
    safetensors::serialize_to_file(tensors, Some(metadata), path).map_err(|e| failed(e.to_string()))
}

pub fn load(path: &Path) -> Result<QuantModel> {
    let bad = |reason: String| Error::QuantFile { file: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let info = metadata.metadata().as_ref().ok_or_else(|| bad("no __metadata__".into()))?;
    match info.get("format_version").map(String::as_str) {
        Some(FORMAT_VERSION) => {}
        other => return Err(bad(format!("format_version {other:?}, this program reads {FORMAT_VERSION}"))),
    }
    let json = info.get(METADATA_KEY).ok_or_else(|| bad(format!("no `{METADATA_KEY}` metadata")))?;
    let mut model: QuantModel = serde_json::from_str(json).map_err(|e| bad(format!("metadata: {e}")))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    for layer in model.layers.iter_mut().filter(|l| l.op.has_weights()) {
        let weights = tensors.tensor(&format!("{}/weights", layer.name)).map_err(|e| bad(e.to_string()))?;
        let bias = tensors.tensor(&format!("{}/bias", layer.name)).map_err(|e| bad(e.to_string()))?;
        if weights.dtype() != Dtype::U8 || bias.dtype() != Dtype::I32 {
            return Err(bad(format!("layer {}: weights must be U8 and bias I32", layer.name)));
        }
        layer.weights = weights.data().to_vec();
        layer.bias = bias.data().chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    }
    model.validate().map_err(bad)?;
    Ok(model)
}
