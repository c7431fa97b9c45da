//! The quantized-model file: safetensors with the uint8 weights (`<layer>/weights`, U8, the float kernel's
//! layout) and int32 biases (`<layer>/bias`, I32), and in the header's `__metadata__` under the key `mnq_gpu`
//! the JSON of [`QuantModel`] (every quantization parameter, per layer) with `format_version`.
//! Written by `mnq-gpu quantize`, read by every command, so calibration runs once.
//!
//! The metadata key `sha256` holds the [`checksum`] of the parameters' JSON and every layer's tensors, so a file
//! whose bytes changed is refused instead of loading as a different model. Files written before the checksum
//! existed still load, and [`load`] warns.

use super::QuantModel;
use crate::error::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

const METADATA_KEY: &str = "mnq_gpu";
const CHECKSUM_KEY: &str = "sha256";
const FORMAT_VERSION: &str = "1";

/// Whether a loaded file's checksum was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// The recorded SHA-256 matched the bytes read.
    Verified,
    /// The file records no checksum (written before it was added): its bytes could not be checked.
    Unchecked,
}

/// A model read from a file, with whether its checksum was checked.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub model: QuantModel,
    pub integrity: Integrity,
}

pub fn save(model: &QuantModel, path: &Path) -> Result<()> {
    let bytes = to_bytes(model).map_err(|reason| Error::QuantFile { file: path.to_path_buf(), reason })?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The file's bytes for `model`.
pub fn to_bytes(model: &QuantModel) -> std::result::Result<Vec<u8>, String> {
    let biases: Vec<(String, Vec<u8>)> = model
        .layers
        .iter()
        .filter(|l| !l.bias.is_empty())
        .map(|l| (format!("{}/bias", l.name), l.bias.iter().flat_map(|b| b.to_le_bytes()).collect()))
        .collect();
    let mut tensors = Vec::new();
    for layer in model.layers.iter().filter(|l| !l.weights.is_empty()) {
        let view = TensorView::new(Dtype::U8, vec![layer.weights.len()], &layer.weights);
        tensors.push((format!("{}/weights", layer.name), view.map_err(|e| e.to_string())?));
    }
    for (name, bytes) in &biases {
        let view = TensorView::new(Dtype::I32, vec![bytes.len() / 4], bytes);
        tensors.push((name.clone(), view.map_err(|e| e.to_string())?));
    }
    let json = serde_json::to_string(model).map_err(|e| e.to_string())?;
    let metadata = HashMap::from([
        (CHECKSUM_KEY.to_string(), checksum(&json, model)),
        (METADATA_KEY.to_string(), json),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
    ]);
    let bytes = safetensors::serialize(tensors, Some(metadata)).map_err(|e| e.to_string())?;
    with_sorted_header(bytes)
}

/// `bytes` with the header's keys in sorted order. safetensors writes `__metadata__` from a `HashMap`, whose
/// order changes from run to run, so the same model gave different files. Sorting only reorders the header's
/// characters (every tensor's offsets are explicit), so its length, and every byte after it, stay as written.
fn with_sorted_header(mut bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let unreadable = || "safetensors wrote an unreadable header".to_string();
    let length: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(unreadable)?;
    let end = usize::try_from(u64::from_le_bytes(length)).map_err(|_| unreadable())?.saturating_add(8);
    let header = bytes.get(8..end).ok_or_else(unreadable)?;
    let header: serde_json::Value = serde_json::from_slice(header).map_err(|_| unreadable())?;
    // serde_json's maps are ordered by key (no `preserve_order` feature).
    let mut sorted = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    if sorted.len() > end - 8 {
        return Err(format!("the sorted header is {} bytes, not {}", sorted.len(), end - 8));
    }
    sorted.resize(end - 8, b' ');
    bytes[8..end].copy_from_slice(&sorted);
    Ok(bytes)
}

/// Reads the model in `path`; warns on stderr when the file has no checksum to check.
pub fn load(path: &Path) -> Result<QuantModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let loaded = from_bytes(&bytes, path)?;
    if loaded.integrity == Integrity::Unchecked {
        eprintln!(
            "warning: {} records no checksum (written by an older mnq-gpu), so damage to it cannot be detected; \
             `mnq-gpu quantize` writes a new one",
            path.display()
        );
    }
    Ok(loaded.model)
}

/// Reads a model from the file's bytes; `source` names the file in errors.
pub fn from_bytes(bytes: &[u8], source: &Path) -> Result<Loaded> {
    let bad = |reason: String| Error::QuantFile { file: source.to_path_buf(), reason };
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let info = metadata.metadata().as_ref().ok_or_else(|| bad("no __metadata__".into()))?;
    match info.get("format_version").map(String::as_str) {
        Some(FORMAT_VERSION) => {}
        other => return Err(bad(format!("format_version {other:?}, this program reads {FORMAT_VERSION}"))),
    }
    let json = info.get(METADATA_KEY).ok_or_else(|| bad(format!("no `{METADATA_KEY}` metadata")))?;
    let mut model: QuantModel = serde_json::from_str(json).map_err(|e| bad(format!("metadata: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    for layer in model.layers.iter_mut().filter(|l| l.op.has_weights()) {
        let weights = tensors.tensor(&format!("{}/weights", layer.name)).map_err(|e| bad(e.to_string()))?;
        let bias = tensors.tensor(&format!("{}/bias", layer.name)).map_err(|e| bad(e.to_string()))?;
        if weights.dtype() != Dtype::U8 || bias.dtype() != Dtype::I32 {
            return Err(bad(format!("layer {}: weights must be U8 and bias I32", layer.name)));
        }
        layer.weights = weights.data().to_vec();
        layer.bias = bias.data().chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    }
    let integrity = match info.get(CHECKSUM_KEY) {
        None => Integrity::Unchecked,
        Some(recorded) => {
            let computed = checksum(json, &model);
            if *recorded != computed {
                return Err(Error::CorruptFile {
                    file: source.to_path_buf(),
                    reason: format!("its SHA-256 is {computed}, but {recorded} was recorded when it was written"),
                });
            }
            Integrity::Verified
        }
    };
    model.validate().map_err(bad)?;
    Ok(Loaded { model, integrity })
}

/// SHA-256, in lowercase hex, of the parameters' JSON (`json`, as stored) and then, layer by layer in model order,
/// each layer's name, weight bytes and little-endian bias bytes, every part preceded by its length as a
/// little-endian u64. It covers what the model is made of, not how safetensors lays it out.
pub fn checksum(json: &str, model: &QuantModel) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(json.as_bytes());
    for layer in &model.layers {
        part(layer.name.as_bytes());
        part(&layer.weights);
        part(&layer.bias.iter().flat_map(|b| b.to_le_bytes()).collect::<Vec<u8>>());
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}
