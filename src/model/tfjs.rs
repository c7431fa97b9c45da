//! Import of a TF.js *layers* model directory (`model.json` + binary shards), as Google publishes MobileNetV1.
//!
//! `model.json` = `{"modelTopology": <Keras model config>, "weightsManifest": [{"paths": [...], "weights":
//! [{"name", "shape", "dtype"}...]}...]}`. Each group's shards, concatenated, hold its tensors in manifest order as
//! little-endian float32. The layer list, widths, strides and BatchNorm epsilon come from the topology, so every
//! published MobileNetV1 width and input size loads. Every defect is an [`Error`] naming the file and tensor.

use super::{same_padding, Activation, BatchNorm, InputRange, Layer, Model, Op, Padding, Shape};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// No MobileNetV1 tensor comes near this; larger declared shapes are corrupt files (1 GiB of float32).
const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// Where one tensor lives: its group's shard files and its byte offset in their concatenation.
#[derive(Clone, Debug)]
struct TensorEntry {
    shape: Vec<usize>,
    group: usize,
    offset_bytes: usize,
}

#[derive(Clone, Debug)]
struct Group {
    /// The manifest's `paths`, as written (the keys of [`Shards::Bytes`]).
    names: Vec<String>,
    /// Those files beside `model.json`.
    paths: Vec<PathBuf>,
    total_bytes: usize,
}

/// Where the shards' bytes come from.
#[derive(Debug)]
enum Shards {
    /// The files beside `model.json`, read when a tensor is.
    Files,
    /// In memory, by the name `model.json` gives each shard ([`TfjsModel::from_bytes`]).
    Bytes(HashMap<String, Vec<u8>>),
}

/// A parsed `model.json`: the Keras layer configs and where each tensor is. Tensors are read on demand, so a
/// model with a missing shard still serves every tensor it has (weight analysis needs no inference).
#[derive(Debug)]
pub struct TfjsModel {
    pub dir: PathBuf,
    json_path: PathBuf,
    layers: Vec<Value>,
    tensors: HashMap<String, TensorEntry>,
    groups: Vec<Group>,
    shards: Shards,
}

/// Load the whole model for inference: every tensor must be present and valid.
pub fn load(dir: &Path) -> Result<Model> {
    TfjsModel::open(dir)?.model()
}

impl TfjsModel {
    /// Parse `dir/model.json`; shards are read from `dir` when a tensor is.
    pub fn open(dir: &Path) -> Result<TfjsModel> {
        let json_path = dir.join("model.json");
        if !json_path.is_file() {
            return Err(Error::ModelNotFound { path: dir.to_path_buf() });
        }
        let text = std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?;
        TfjsModel::parse(dir, json_path, &text, Shards::Files)
    }

    /// The model whose `model.json` holds `json` and whose shards are `shards`, by the name `model.json` gives
    /// each; `dir` names the model and its files in errors. A shard missing from `shards` is a missing file.
    pub fn from_bytes(dir: &Path, json: &[u8], shards: HashMap<String, Vec<u8>>) -> Result<TfjsModel> {
        let json_path = dir.join("model.json");
        let text = std::str::from_utf8(json)
            .map_err(|e| Error::ModelFile { file: json_path.clone(), reason: format!("not UTF-8 text: {e}") })?;
        TfjsModel::parse(dir, json_path, text, Shards::Bytes(shards))
    }

    fn parse(dir: &Path, json_path: PathBuf, text: &str, shards: Shards) -> Result<TfjsModel> {
        let bad = |reason: String| Error::ModelFile { file: json_path.clone(), reason };
        let json: Value = serde_json::from_str(text).map_err(|e| bad(format!("malformed JSON: {e}")))?;
        let topology = json.get("modelTopology").ok_or_else(|| bad("no `modelTopology`".into()))?;
        let config = topology.get("model_config").unwrap_or(topology).get("config");
        let layers = config
            .and_then(|c| c.get("layers"))
            .and_then(Value::as_array)
            .ok_or_else(|| bad("`modelTopology` has no `model_config.config.layers` list".into()))?
            .clone();
        let manifest = json
            .get("weightsManifest")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `weightsManifest` list".into()))?;

        let mut tensors = HashMap::new();
        let mut groups = Vec::new();
        for (group_index, group) in manifest.iter().enumerate() {
            let names = group
                .get("paths")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("weightsManifest[{group_index}] has no `paths`")))?
                .iter()
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("weightsManifest[{group_index}].paths holds a non-string")))?;
            let paths = names.iter().map(|name| dir.join(name)).collect();
            let weights = group
                .get("weights")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("weightsManifest[{group_index}] has no `weights`")))?;
            let mut offset_bytes = 0usize;
            for weight in weights {
                let name = weight
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("weightsManifest[{group_index}] has a weight without a name")))?;
                let tensor_error =
                    |reason: String| Error::Tensor { file: json_path.clone(), tensor: name.to_string(), reason };
                let dtype = weight.get("dtype").and_then(Value::as_str).unwrap_or("<missing>");
                if dtype != "float32" {
                    return Err(tensor_error(format!("unsupported dtype `{dtype}` (only float32 is supported)")));
                }
                if weight.get("quantization").is_some() {
                    return Err(tensor_error(
                        "TF.js-quantized weights are not supported; use the float32 model".into(),
                    ));
                }
                let shape = weight
                    .get("shape")
                    .and_then(Value::as_array)
                    .and_then(|dims| dims.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| tensor_error("`shape` is not a list of non-negative integers".into()))?;
                let elements = shape
                    .iter()
                    .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                    .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
                    .ok_or_else(|| tensor_error(format!("absurd shape {shape:?}")))?;
                tensors.insert(name.to_string(), TensorEntry { shape, group: group_index, offset_bytes });
                offset_bytes += elements * 4;
            }
            groups.push(Group { names, paths, total_bytes: offset_bytes });
        }
        Ok(TfjsModel { dir: dir.to_path_buf(), json_path, layers, tensors, groups, shards })
    }

    /// Names of the tensors the manifest lists.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Read one tensor, checking its shard sizes and its values (no NaN or infinity).
    pub fn tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let entry = self.tensors.get(name).ok_or_else(|| Error::Tensor {
            file: self.json_path.clone(),
            tensor: name.to_string(),
            reason: "not in the weights manifest".into(),
        })?;
        let group = &self.groups[entry.group];
        // Grown to what the shards hold: the manifest may claim any number of tensors of up to 1 GiB each.
        let mut bytes = Vec::new();
        for (shard_name, path) in group.names.iter().zip(&group.paths) {
            let missing = || Error::Tensor {
                file: path.clone(),
                tensor: name.to_string(),
                reason: "shard file is missing (model.json lists it; download it beside model.json)".into(),
            };
            match &self.shards {
                Shards::Files => {
                    let shard = std::fs::read(path).map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => missing(),
                        _ => Error::Tensor { file: path.clone(), tensor: name.to_string(), reason: e.to_string() },
                    })?;
                    bytes.extend_from_slice(&shard);
                }
                Shards::Bytes(shards) => bytes.extend_from_slice(shards.get(shard_name).ok_or_else(missing)?),
            }
        }
        if bytes.len() != group.total_bytes {
            return Err(Error::Tensor {
                file: group.paths.last().cloned().unwrap_or_else(|| self.json_path.clone()),
                tensor: name.to_string(),
                reason: format!(
                    "shards hold {} bytes, the manifest's tensors need {} (truncated or wrong file?)",
                    bytes.len(),
                    group.total_bytes
                ),
            });
        }
        let elements: usize = entry.shape.iter().product();
        let values: Vec<f32> = bytes[entry.offset_bytes..][..elements * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Tensor {
                file: group.paths[0].clone(),
                tensor: name.to_string(),
                reason: format!("value {index} is {} (weights must be finite)", values[index]),
            });
        }
        Ok((entry.shape.clone(), values))
    }

    /// Read a tensor that must have `shape` (what the topology implies).
    fn tensor_shaped(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (actual, values) = self.tensor(name)?;
        if actual != shape {
            return Err(Error::Tensor {
                file: self.json_path.clone(),
                tensor: name.to_string(),
                reason: format!("shape {actual:?} does not fit the topology, which needs {shape:?}"),
            });
        }
        Ok(values)
    }

    fn batch_norm(&self, name: &str, channels: usize, config: &Value) -> Result<BatchNorm> {
        let epsilon = config.get("epsilon").and_then(Value::as_f64).unwrap_or(1e-3) as f32;
        let read = |param: &str, enabled: bool, default: f32| -> Result<Vec<f32>> {
            if enabled {
                self.tensor_shaped(&format!("{name}/{param}"), &[channels])
            } else {
                Ok(vec![default; channels])
            }
        };
        let flag = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(true);
        Ok(BatchNorm {
            gamma: read("gamma", flag("scale"), 1.0)?,
            beta: read("beta", flag("center"), 0.0)?,
            mean: read("moving_mean", true, 0.0)?,
            variance: read("moving_variance", true, 1.0)?,
            epsilon,
        })
    }

    /// The `epsilon` of the layer named `layer` in the topology (a BatchNormalization, e.g. `conv_dw_1_bn`).
    pub fn batch_norm_epsilon(&self, layer: &str) -> Option<f32> {
        let config = self
            .layers
            .iter()
            .filter_map(|l| l.get("config"))
            .find(|c| c.get("name").and_then(Value::as_str) == Some(layer))?;
        config.get("epsilon").and_then(Value::as_f64).map(|e| e as f32)
    }

    /// The input shape from the InputLayer's `batch_input_shape` [null, h, w, 3].
    pub fn input_shape(&self) -> Result<Shape> {
        let bad = |reason: &str| Error::ModelFile { file: self.json_path.clone(), reason: reason.to_string() };
        let input = self
            .layers
            .iter()
            .find(|l| l.get("class_name").and_then(Value::as_str) == Some("InputLayer"))
            .ok_or_else(|| bad("topology has no InputLayer"))?;
        let dims = input
            .pointer("/config/batch_input_shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("InputLayer has no batch_input_shape"))?;
        let dim = |i: usize| dims.get(i).and_then(Value::as_u64).map(|d| d as usize);
        match (dim(1), dim(2), dim(3)) {
            (Some(h @ 1..=4096), Some(w @ 1..=4096), Some(3)) => Ok(Shape::new(h, w, 3)),
            _ => Err(bad("InputLayer's batch_input_shape must be [null, h, w, 3] with 1 ≤ h, w ≤ 4096")),
        }
    }

    /// Build the float model from the topology, reading every tensor.
    pub fn model(&self) -> Result<Model> {
        let topology_error = |layer: &str, reason: String| Error::ModelFile {
            file: self.json_path.clone(),
            reason: format!("layer `{layer}`: {reason}"),
        };
        let input_shape = self.input_shape()?;
        let mut shape = input_shape;
        let mut layers: Vec<Layer> = Vec::new();
        let mut finished = false;
        for config_layer in &self.layers {
            let class = config_layer.get("class_name").and_then(Value::as_str).unwrap_or("");
            let config = config_layer.get("config").cloned().unwrap_or(Value::Null);
            let name = config.get("name").and_then(Value::as_str).unwrap_or("<unnamed>").to_string();
            let get_pair = |key: &str| -> Option<(usize, usize)> {
                let v = config.get(key)?.as_array()?;
                Some((v.first()?.as_u64()? as usize, v.get(1)?.as_u64()? as usize))
            };
            let previous = layers.last_mut();
            if finished && !matches!(class, "Reshape" | "Activation") {
                return Err(topology_error(&name, format!("`{class}` after the classifier is not supported")));
            }
            match class {
                "InputLayer" | "Dropout" | "Reshape" => {}
                "Conv2D" | "DepthwiseConv2D" => {
                    let kernel = get_pair("kernel_size").unwrap_or((0, 0));
                    let (sy, sx) = get_pair("strides").unwrap_or((1, 1));
                    let dilation = get_pair("dilation_rate").unwrap_or((1, 1));
                    let padding = config.get("padding").and_then(Value::as_str).unwrap_or("");
                    let use_bias = config.get("use_bias").and_then(Value::as_bool).unwrap_or(false);
                    let activation = config.get("activation").and_then(Value::as_str).unwrap_or("linear");
                    if sy != sx || !(1..=2).contains(&sy) || dilation != (1, 1) {
                        return Err(topology_error(&name, "only equal strides of 1 or 2 without dilation".into()));
                    }
                    if activation != "linear" {
                        return Err(topology_error(&name, format!("fused activation `{activation}` unsupported")));
                    }
                    let is_classifier = layers.last().is_some_and(|l| l.op == Op::GlobalAvgPool);
                    let op = match (class, kernel) {
                        ("Conv2D", (3, 3)) if layers.is_empty() => Op::Conv2d { stride: sy, padding: Padding::Same },
                        ("DepthwiseConv2D", (3, 3)) => Op::DepthwiseConv2d { stride: sy, padding: Padding::Same },
                        ("Conv2D", (1, 1)) if is_classifier => Op::Classifier,
                        ("Conv2D", (1, 1)) => Op::PointwiseConv2d,
                        _ => return Err(topology_error(&name, format!("{class} with kernel {kernel:?} here"))),
                    };
                    if op.stride() != sy {
                        return Err(topology_error(&name, "1×1 convolutions must have stride 1".into()));
                    }
                    if kernel == (3, 3) && padding != "same" {
                        return Err(topology_error(&name, format!("padding `{padding}` (only `same`)")));
                    }
                    let depth_multiplier = config.get("depth_multiplier").and_then(Value::as_u64).unwrap_or(1);
                    if depth_multiplier != 1 {
                        return Err(topology_error(&name, "depth_multiplier must be 1".into()));
                    }
                    // TF.js's class, not the op, names the kernel tensor and says where the filter count is.
                    let depthwise = class == "DepthwiseConv2D";
                    let filters = if depthwise {
                        shape.c
                    } else {
                        config.get("filters").and_then(Value::as_u64).unwrap_or(0) as usize
                    };
                    if filters == 0 || filters > 65_536 {
                        return Err(topology_error(&name, format!("absurd number of filters {filters}")));
                    }
                    let (h, _) = same_padding(shape.h, kernel.0, sy);
                    let (w, _) = same_padding(shape.w, kernel.1, sy);
                    let output_shape = Shape::new(h, w, filters);
                    let (tensor, kernel_shape) = if depthwise {
                        ("depthwise_kernel", vec![3, 3, shape.c, 1])
                    } else {
                        ("kernel", vec![kernel.0, kernel.1, shape.c, filters])
                    };
                    let kernel = self.tensor_shaped(&format!("{name}/{tensor}"), &kernel_shape)?;
                    let bias =
                        if use_bias { Some(self.tensor_shaped(&format!("{name}/bias"), &[filters])?) } else { None };
                    finished = op == Op::Classifier;
                    layers.push(Layer {
                        name: name.clone(),
                        op,
                        inputs: Vec::new(),
                        input_shape: shape,
                        output_shape,
                        kernel,
                        bias,
                        batch_norm: None,
                        activation: Activation::None,
                        clip_max: None,
                    });
                    shape = output_shape;
                }
                "BatchNormalization" => {
                    let layer = previous
                        .filter(|l| l.batch_norm.is_none() && l.activation == Activation::None && l.op.has_weights())
                        .ok_or_else(|| topology_error(&name, "BatchNormalization must follow a convolution".into()))?;
                    layer.batch_norm = Some(self.batch_norm(&name, shape.c, &config)?);
                }
                "Activation" | "ReLU" => {
                    let activation = match (class, config.get("activation").and_then(Value::as_str)) {
                        ("Activation", Some("relu6")) => Activation::Relu6,
                        ("Activation", Some("relu")) => Activation::Relu,
                        ("Activation", Some("softmax")) if finished => continue,
                        ("ReLU", _) => match config.get("max_value").and_then(Value::as_f64) {
                            Some(6.0) => Activation::Relu6,
                            None => Activation::Relu,
                            Some(v) => return Err(topology_error(&name, format!("ReLU max_value {v} unsupported"))),
                        },
                        (_, a) => return Err(topology_error(&name, format!("activation {a:?} unsupported here"))),
                    };
                    let layer = previous
                        .filter(|l| l.activation == Activation::None)
                        .ok_or_else(|| topology_error(&name, "activation must follow a layer".into()))?;
                    layer.activation = activation;
                }
                "GlobalAveragePooling2D" => {
                    let output_shape = Shape::new(1, 1, shape.c);
                    layers.push(Layer::global_avg_pool(name.clone(), shape));
                    shape = output_shape;
                }
                other => return Err(topology_error(&name, format!("unsupported layer class `{other}`"))),
            }
        }
        if !finished {
            return Err(Error::ModelFile {
                file: self.json_path.clone(),
                reason: "topology does not end in a classifier (global average pool → 1×1 convolution)".into(),
            });
        }
        let name = self.dir.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        Ok(Model {
            name,
            input_shape,
            input_range: InputRange::SignedUnit,
            layers,
            background_class: false,
            synthetic: false,
        })
    }
}
