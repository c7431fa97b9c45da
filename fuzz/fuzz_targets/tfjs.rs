//! The TF.js layers loader: any `model.json` and shards give a model, tensors or an `Error`.
//!
//! Input: the `model.json` bytes, a NUL byte, then shards, each a little-endian u32 length and that many bytes
//! (the last one cut short where the input ends), given to the manifest's `paths` in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mnq_gpu::model::tfjs::TfjsModel;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// The manifest's shard names in order, where the JSON has them.
fn shard_names(json: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(json) else { return Vec::new() };
    let groups = value.get("weightsManifest").and_then(Value::as_array).cloned().unwrap_or_default();
    groups
        .iter()
        .filter_map(|group| group.get("paths").and_then(Value::as_array))
        .flatten()
        .filter_map(|path| path.as_str().map(str::to_string))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, mut rest) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let mut shards = HashMap::new();
    for name in shard_names(json) {
        if rest.len() < 4 {
            break;
        }
        let len = (u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize).min(rest.len() - 4);
        shards.insert(name, rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    let Ok(model) = TfjsModel::from_bytes(Path::new("fuzz"), json, shards) else { return };
    let _ = model.input_shape();
    let _ = model.batch_norm_epsilon("conv1_bn");
    let mut names: Vec<&str> = model.tensor_names().collect();
    names.sort_unstable();
    for name in names {
        if let Ok((shape, values)) = model.tensor(name) {
            assert_eq!(shape.iter().product::<usize>(), values.len());
            assert!(values.iter().all(|v| v.is_finite()));
        }
    }
    if let Ok(float) = model.model() {
        assert!(!float.layers.is_empty());
    }
});
