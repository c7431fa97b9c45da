//! Import of an ONNX MobileNetV1: a chain of Conv (3×3 on the RGB input, 3×3 depthwise with group = channels,
//! 1×1), GlobalAveragePool, Flatten or Reshape, a classifier (Gemm, MatMul or 1×1 Conv) and Softmax, NCHW, in one
//! of three forms:
//!
//! - float: Conv, BatchNormalization, Relu or Clip(0, 6): the float [`Model`], which mnq-gpu's schemes quantize;
//! - QDQ, as ONNX Runtime's `quantize_static` writes it: DequantizeLinear → Conv/Gemm/GlobalAveragePool →
//!   QuantizeLinear around every op, int8 or uint8 activations, int8 or uint8 weights per tensor or per channel;
//! - QOperator: QLinearConv, com.microsoft.QLinearGlobalAveragePool, com.microsoft.QGemm or QLinearMatMul,
//!   QuantizeLinear/DequantizeLinear at the edges.
//!
//! A quantized file becomes an ordinary [`QuantModel`] with ONNX Runtime's arithmetic: every convolution under
//! [`Requant::Fp32`] (ORT's `MlasRequantizeOutput`: f32(acc + bias) · (X_scale · W_scale[c] / Y_scale, float32 left
//! to right), round half to even, + zero point, clamp to the type), and the pool under [`PoolRounding::Fp32`] (ORT's
//! QLinearGlobalAveragePool). int8 tensors become the engine's u8 by adding 128 to every value and zero point:
//! (x + 128) − (z + 128) = x − z, so every accumulator, and each output, is ORT's + 128.
//!
//! ORT fuses no activation into its integer convolutions: a Relu or Clip between a Conv and its QuantizeLinear is
//! dropped when the QuantizeLinear makes it a no-op (ORT's `ReluQuantFusion`, `ClipQuantFusion`), and refused
//! otherwise, since ORT then runs that Conv in float.

use super::proto::{self, NodeProto, TensorProto};
use crate::error::{Error, Result};
use crate::model::{same_padding, Activation, BatchNorm, InputRange, Layer, Model, Op, Padding, Shape};
use crate::quant::fixed_point::{effective_scale, quantize_multiplier, ScaleProduct};
use crate::quant::{
    shape_in_bounds, InputRounding, PoolRounding, QLayer, QuantModel, QuantParams, Requant, MAX_CHANNELS, MAX_SIDE,
};
use crate::tflite::import::LayerNamer;
use crate::tflite::ElementType;
use prost::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An ONNX file's model: the float model it represents and, for a quantized file, its integer model.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The file's own quantization; None for a float file (the schemes quantize `float`).
    pub model: Option<QuantModel>,
    /// The float model (a quantized file's dequantized weights and biases).
    pub float: Model,
    /// Per layer of `model`: the name of the file's tensor that layer computes (a QuantizeLinear's or QLinear op's
    /// output), so that ONNX Runtime can be asked for it.
    pub tensors: Vec<String>,
    /// The integer type of the quantized input (the first QuantizeLinear's output); None for a float file.
    pub input_type: Option<ElementType>,
}

// TensorProto.DataType codes (onnx.proto3).
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;
// TensorProto.DataLocation.EXTERNAL.
const EXTERNAL: i32 = 1;

fn type_name(code: i32) -> String {
    proto::tensor_proto::DataType::try_from(code)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| format!("type {code}"))
}

/// Read and import `path`; the model is named after the file's stem.
pub fn load(path: &Path) -> Result<Imported> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let name = path.file_stem().map_or_else(|| "onnx".to_string(), |s| s.to_string_lossy().into_owned());
    from_bytes(&bytes, &name, path)
}

/// Import the ONNX file `bytes`, naming the model `name` and the file `source` in errors.
pub fn from_bytes(bytes: &[u8], name: &str, source: &Path) -> Result<Imported> {
    let fail = |reason: String| Error::ModelFile { file: source.to_path_buf(), reason };
    let model = proto::ModelProto::decode(bytes).map_err(|e| fail(format!("not an ONNX model (protobuf: {e})")))?;
    let graph = model.graph.as_ref().ok_or_else(|| fail("not an ONNX model: it has no graph".into()))?;
    for opset in &model.opset_import {
        if !matches!(opset.domain.as_str(), "" | "ai.onnx" | "com.microsoft" | "ai.onnx.ml") {
            return Err(fail(format!("operator set `{}` is not supported", opset.domain)));
        }
    }
    let file = File::new(source, bytes.len(), graph)?;
    file.import(name)
}

/// One graph being imported, with its tensors indexed by name.
struct File<'a> {
    source: PathBuf,
    file_len: usize,
    graph: &'a proto::GraphProto,
    /// Initializers and Constant nodes' values.
    constants: HashMap<&'a str, &'a TensorProto>,
    /// The node that produces each tensor.
    producers: HashMap<&'a str, &'a NodeProto>,
    /// The nodes that read each tensor.
    consumers: HashMap<&'a str, Vec<&'a NodeProto>>,
}

/// A quantized tensor's parameters in the engine's u8 domain, and its type in the file.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Quant {
    params: QuantParams,
    element_type: ElementType,
}

/// What the tensor being chained holds.
#[derive(Clone, Copy, Debug)]
enum Value {
    Float,
    Quantized(Quant),
    /// The float output of a DequantizeLinear of a tensor quantized so.
    Dequantized(Quant),
}

/// The integer half of a QDQ op waiting for its output QuantizeLinear.
struct PendingQuant {
    input: QuantParams,
    weights: Vec<u8>,
    weight_params: Vec<QuantParams>,
    bias: Vec<i32>,
    /// A Relu or Clip(min, max) between the op and its QuantizeLinear, to be shown a no-op there.
    clip: Option<(String, f32, f32)>,
}

/// An op whose output is not complete yet: a float layer awaiting BatchNormalization or its activation, or a QDQ
/// op awaiting its QuantizeLinear.
struct Pending {
    node: String,
    layer: Layer,
    quant: Option<PendingQuant>,
}

/// The layers built so far.
#[derive(Default)]
struct Built {
    layers: Vec<QLayer>,
    float: Vec<Layer>,
    tensors: Vec<String>,
    namer: LayerNamer,
    /// Weight values copied so far, bounded by the file's size (nodes could share one initializer without limit).
    weight_values: usize,
}

fn node_label(node: &NodeProto) -> String {
    let op = if node.domain.is_empty() || node.domain == "ai.onnx" {
        node.op_type.clone()
    } else {
        format!("{}.{}", node.domain, node.op_type)
    };
    format!("node `{}` ({op})", node.name)
}

fn attribute<'n>(node: &'n NodeProto, name: &str) -> Option<&'n proto::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int_attribute(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.i)
}

fn float_attribute(node: &NodeProto, name: &str, default: f32) -> f32 {
    attribute(node, name).map_or(default, |a| a.f)
}

fn ints_attribute(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

/// The engine's zero point for a zero point of `element_type`, if it is in the type's range.
fn engine_zero_point(element_type: ElementType, zero_point: i64) -> Option<i32> {
    let shifted = match element_type {
        ElementType::Uint8 => zero_point,
        ElementType::Int8 => zero_point.checked_add(128)?,
    };
    (0..=255).contains(&shifted).then_some(shifted as i32)
}

fn engine_u8(element_type: ElementType, value: i64) -> u8 {
    match element_type {
        ElementType::Uint8 => value as u8,
        ElementType::Int8 => (value + 128) as u8,
    }
}

impl<'a> File<'a> {
    fn new(source: &Path, file_len: usize, graph: &'a proto::GraphProto) -> Result<File<'a>> {
        let mut file = File {
            source: source.to_path_buf(),
            file_len,
            graph,
            constants: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
        };
        for tensor in &graph.initializer {
            file.check_internal(tensor)?;
            file.constants.insert(tensor.name.as_str(), tensor);
        }
        if !graph.sparse_initializer.is_empty() {
            return Err(file.error("sparse initializers are not supported".into()));
        }
        for node in &graph.node {
            if node.op_type == "Constant" && (node.domain.is_empty() || node.domain == "ai.onnx") {
                let value = attribute(node, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                    file.error(format!("{}: only a `value` tensor attribute is supported", node_label(node)))
                })?;
                file.check_internal(value)?;
                if let Some(output) = node.output.first() {
                    file.constants.insert(output.as_str(), value);
                }
                continue;
            }
            for output in &node.output {
                if file.producers.insert(output.as_str(), node).is_some() {
                    return Err(file.error(format!("tensor `{output}` is produced by more than one node")));
                }
            }
            for input in node.input.iter().filter(|i| !i.is_empty()) {
                file.consumers.entry(input.as_str()).or_default().push(node);
            }
        }
        Ok(file)
    }

    fn error(&self, reason: String) -> Error {
        Error::ModelFile { file: self.source.clone(), reason }
    }

    fn node_error(&self, node: &NodeProto, reason: impl std::fmt::Display) -> Error {
        self.error(format!("{}: {reason}", node_label(node)))
    }

    /// External data lives in other files, which an importer of one file (or the browser) cannot read.
    fn check_internal(&self, tensor: &TensorProto) -> Result<()> {
        if tensor.data_location == EXTERNAL || !tensor.external_data.is_empty() {
            return Err(self.error(format!(
                "tensor `{}` keeps its data in an external file (external_data): mnq-gpu reads self-contained ONNX \
                 files; save the model with all tensors inside it (onnx.save_model(..., save_as_external_data=False))",
                tensor.name
            )));
        }
        Ok(())
    }

    /// The element count of a constant, bounded by the file's size (every stored element takes a byte or more).
    fn element_count(&self, tensor: &TensorProto) -> Result<usize> {
        let mut count: usize = 1;
        for &d in &tensor.dims {
            let d = usize::try_from(d)
                .map_err(|_| self.error(format!("tensor `{}`: negative dimension {d}", tensor.name)))?;
            count = count.checked_mul(d).filter(|&n| n <= self.file_len).ok_or_else(|| {
                self.error(format!("tensor `{}`: shape {:?} holds more values than the file", tensor.name, tensor.dims))
            })?;
        }
        Ok(count)
    }

    /// The float values of a FLOAT constant.
    fn floats(&self, tensor: &TensorProto) -> Result<Vec<f32>> {
        let fail = |reason: String| self.error(format!("tensor `{}`: {reason}", tensor.name));
        if tensor.data_type != FLOAT {
            return Err(fail(format!("is {}, expected FLOAT", type_name(tensor.data_type))));
        }
        let count = self.element_count(tensor)?;
        if !tensor.raw_data.is_empty() {
            if tensor.raw_data.len() != 4 * count {
                return Err(fail(format!("holds {} bytes, its shape needs {}", tensor.raw_data.len(), 4 * count)));
            }
            return Ok(tensor.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
        }
        if tensor.float_data.len() != count {
            return Err(fail(format!("holds {} values, its shape needs {count}", tensor.float_data.len())));
        }
        Ok(tensor.float_data.clone())
    }

    /// The values of an integer constant (UINT8, INT8, INT32 or INT64), widened to i64.
    fn ints(&self, tensor: &TensorProto) -> Result<Vec<i64>> {
        let fail = |reason: String| self.error(format!("tensor `{}`: {reason}", tensor.name));
        let width = match tensor.data_type {
            UINT8 | INT8 => 1,
            INT32 => 4,
            INT64 => 8,
            other => return Err(fail(format!("is {}, expected an integer type", type_name(other)))),
        };
        let count = self.element_count(tensor)?;
        if !tensor.raw_data.is_empty() {
            if tensor.raw_data.len() != width * count {
                return Err(fail(format!("holds {} bytes, its shape needs {}", tensor.raw_data.len(), width * count)));
            }
            return Ok(tensor
                .raw_data
                .chunks_exact(width)
                .map(|b| match tensor.data_type {
                    UINT8 => i64::from(b[0]),
                    INT8 => i64::from(b[0] as i8),
                    INT32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
                })
                .collect());
        }
        let values: Vec<i64> = match tensor.data_type {
            INT64 => tensor.int64_data.clone(),
            _ => tensor.int32_data.iter().map(|&v| i64::from(v)).collect(),
        };
        if values.len() != count {
            return Err(fail(format!("holds {} values, its shape needs {count}", values.len())));
        }
        let range = match tensor.data_type {
            UINT8 => 0..=255,
            INT8 => -128..=127,
            _ => i64::MIN..=i64::MAX,
        };
        if let Some(v) = values.iter().find(|v| !range.contains(v)) {
            return Err(fail(format!("value {v} is out of range for {}", type_name(tensor.data_type))));
        }
        Ok(values)
    }

    /// Input `index` of `node` as a constant.
    fn constant(&self, node: &NodeProto, index: usize, role: &str) -> Result<&'a TensorProto> {
        let name = node
            .input
            .get(index)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| self.node_error(node, format!("has no {role} (input {index})")))?;
        self.constants
            .get(name.as_str())
            .copied()
            .ok_or_else(|| self.node_error(node, format!("its {role} `{name}` is not a constant (initializer)")))
    }

    /// Quantization parameters from a scale and an optional zero point constant (inputs `scale` and `scale + 1` of
    /// `node`), per tensor or per channel: one (scale, zero point) per entry, and the zero point's type (uint8
    /// when it is absent, as ONNX specifies).
    fn quant_parameters(&self, node: &NodeProto, scale: usize, role: &str) -> Result<(Vec<Quant>, i32)> {
        let scales = self.floats(self.constant(node, scale, &format!("{role} scale"))?)?;
        let (zero_points, zero_type) = match node.input.get(scale + 1).filter(|n| !n.is_empty()) {
            Some(_) => {
                let tensor = self.constant(node, scale + 1, &format!("{role} zero point"))?;
                (self.ints(tensor)?, tensor.data_type)
            }
            None => (vec![0; scales.len()], UINT8),
        };
        let element_type = match zero_type {
            UINT8 => ElementType::Uint8,
            INT8 => ElementType::Int8,
            INT32 => ElementType::Int8, // only for biases, whose zero point must be 0 (checked there)
            other => {
                return Err(self.node_error(
                    node,
                    format!("{role}: {} quantization; mnq-gpu runs uint8 and int8", type_name(other)),
                ))
            }
        };
        if scales.is_empty() || scales.len() != zero_points.len() {
            return Err(
                self.node_error(node, format!("{role}: {} scales and {} zero points", scales.len(), zero_points.len()))
            );
        }
        let mut quants = Vec::with_capacity(scales.len());
        for (&scale, &zero_point) in scales.iter().zip(&zero_points) {
            if !(scale.is_finite() && scale > 0.0) {
                return Err(self.node_error(node, format!("{role}: scale {scale} is not a positive number")));
            }
            let zero_point = if zero_type == INT32 {
                0
            } else {
                engine_zero_point(element_type, zero_point).ok_or_else(|| {
                    self.node_error(node, format!("{role}: zero point {zero_point} is out of range for its type"))
                })?
            };
            quants.push(Quant { params: QuantParams { scale, zero_point }, element_type });
        }
        Ok((quants, zero_type))
    }

    /// Per-tensor activation parameters at input `scale` of `node`.
    fn activation_parameters(&self, node: &NodeProto, scale: usize, role: &str) -> Result<Quant> {
        match self.quant_parameters(node, scale, role)?.0.as_slice() {
            [one] => Ok(*one),
            many => Err(self.node_error(node, format!("{role}: activations need one scale, it has {}", many.len()))),
        }
    }

    /// The only node that reads `tensor`, if any (None: it is only a graph output).
    fn next(&self, tensor: &str) -> Result<Option<&'a NodeProto>> {
        match self.consumers.get(tensor).map(Vec::as_slice).unwrap_or_default() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(self.error(format!(
                "tensor `{tensor}` feeds {} nodes ({}): mnq-gpu runs a chain of operators",
                many.len(),
                many.iter().map(|n| format!("`{}`", n.name)).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The graph's one input that is not an initializer: its name, element type and shape [1, 3, h, w].
    fn input(&self) -> Result<(&'a str, i32, Shape)> {
        let inputs: Vec<&proto::ValueInfoProto> =
            self.graph.input.iter().filter(|i| !self.constants.contains_key(i.name.as_str())).collect();
        let [input] = inputs.as_slice() else {
            return Err(self.error(format!("the graph has {} inputs; MobileNetV1 has one", inputs.len())));
        };
        let fail = |reason: String| self.error(format!("the input `{}`: {reason}", input.name));
        let Some(proto::type_proto::Value::TensorType(tensor)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(fail("is not a tensor".into()));
        };
        let dims: Vec<Option<i64>> = tensor
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(proto::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let shape = match dims.as_slice() {
            [None | Some(1), Some(3), Some(h), Some(w)] if *h > 0 && *w > 0 => {
                Shape::new(usize::try_from(*h).unwrap_or(usize::MAX), usize::try_from(*w).unwrap_or(usize::MAX), 3)
            }
            _ => {
                return Err(fail(format!(
                    "shape {dims:?} is not [1, 3, height, width] (NCHW, RGB, fixed height and width)"
                )))
            }
        };
        if !shape_in_bounds(shape) {
            return Err(fail(format!("{}×{} is out of bounds (sides 1 to {MAX_SIDE})", shape.h, shape.w)));
        }
        Ok((&input.name, tensor.elem_type, shape))
    }

    fn import(&self, name: &str) -> Result<Imported> {
        let (input_name, input_type, input_shape) = self.input()?;
        if input_type != FLOAT {
            return Err(self.error(format!(
                "the input `{input_name}` is {}: mnq-gpu takes a float input and the model's QuantizeLinear of it",
                type_name(input_type)
            )));
        }
        let quantized = self
            .graph
            .node
            .iter()
            .any(|n| n.op_type == "QuantizeLinear" || n.op_type.starts_with("QLinear") || n.op_type == "QGemm");
        let mut current: &str = input_name;
        let mut shape = input_shape;
        let mut value = Value::Float;
        let mut input: Option<Quant> = None;
        let mut pending: Option<Pending> = None;
        let mut built = Built::default();
        let mut finished = false;
        while let Some(node) = self.next(current)? {
            let label = node_label(node);
            let op = match node.domain.as_str() {
                "" | "ai.onnx" => node.op_type.as_str(),
                "com.microsoft" => match node.op_type.as_str() {
                    "QLinearGlobalAveragePool" | "QGemm" | "QLinearSoftmax" => node.op_type.as_str(),
                    _ => return Err(self.node_error(node, "this com.microsoft operator is not supported")),
                },
                other => return Err(self.node_error(node, format!("domain `{other}` is not supported"))),
            };
            if node.input.first().map(String::as_str) != Some(current) {
                return Err(self.node_error(
                    node,
                    format!("reads `{current}` as an input other than its first (mnq-gpu runs a chain)"),
                ));
            }
            let output = match node.output.as_slice() {
                [output, ..] if !output.is_empty() => output.as_str(),
                _ => return Err(self.node_error(node, "has no output")),
            };
            if finished {
                // After the softmax only its (de)quantization may follow: the pipeline ends at the logits.
                if !matches!(op, "QuantizeLinear" | "DequantizeLinear" | "Identity") {
                    return Err(self.node_error(node, "operators after the Softmax are not supported"));
                }
                current = output;
                continue;
            }
            match op {
                "QuantizeLinear" => {
                    let quant = self.activation_parameters(node, 1, "output")?;
                    let axis_ok = node.input.len() <= 3;
                    if !axis_ok {
                        return Err(self.node_error(node, "has more than three inputs"));
                    }
                    match (value, pending.take()) {
                        (Value::Float, None) if input.is_none() && built.layers.is_empty() && !finished => {
                            input = Some(quant);
                        }
                        (Value::Dequantized(_) | Value::Float, Some(p)) if p.quant.is_some() => {
                            self.finish_qdq(p, quant, output, &mut built)?;
                        }
                        (Value::Dequantized(q), None) if finished || q == quant => {}
                        (Value::Dequantized(q), None) => {
                            return Err(self.node_error(
                                node,
                                format!(
                                    "requantizes {:?} to {:?}: mnq-gpu requantizes only in convolutions and the pool",
                                    q.params, quant.params
                                ),
                            ))
                        }
                        (Value::Float, None) if finished => {}
                        _ => return Err(self.node_error(node, "quantizes a tensor mnq-gpu does not run in float")),
                    }
                    value = Value::Quantized(quant);
                }
                "DequantizeLinear" => {
                    let Value::Quantized(q) = value else {
                        return Err(self.node_error(node, "dequantizes a tensor that is not quantized"));
                    };
                    let quant = self.activation_parameters(node, 1, "input")?;
                    if quant != q {
                        return Err(self.node_error(
                            node,
                            format!(
                                "dequantizes with {:?}, the tensor was quantized with {:?}",
                                quant.params, q.params
                            ),
                        ));
                    }
                    value = Value::Dequantized(q);
                }
                "Identity" | "Dropout" => {}
                "Conv" | "Gemm" | "MatMul" | "GlobalAveragePool" => {
                    self.flush_float(&mut pending, &mut built)?;
                    if let Some(p) = &pending {
                        return Err(self.node_error(node, format!("follows {} without its QuantizeLinear", p.node)));
                    }
                    match value {
                        Value::Float if quantized => {
                            return Err(self.node_error(
                                node,
                                "runs in float in a quantized model (no DequantizeLinear before it)",
                            ))
                        }
                        Value::Quantized(_) => return Err(self.node_error(node, "reads a quantized tensor")),
                        Value::Float | Value::Dequantized(_) => {}
                    }
                    let (layer, weights) = self.float_op(node, op, shape, value, &mut built)?;
                    shape = layer.output_shape;
                    let quant = match value {
                        Value::Dequantized(q) => Some(self.qdq_parts(node, op, &layer, q, weights)?),
                        _ => None,
                    };
                    pending = Some(Pending { node: label.clone(), layer, quant });
                    value = Value::Float;
                }
                "BatchNormalization" => {
                    let Some(p) = pending.as_mut().filter(|p| p.quant.is_none() && p.layer.batch_norm.is_none()) else {
                        return Err(
                            self.node_error(node, "mnq-gpu runs a BatchNormalization only after a float convolution")
                        );
                    };
                    if p.layer.activation != Activation::None {
                        return Err(self.node_error(node, "follows an activation"));
                    }
                    p.layer.batch_norm = Some(self.batch_norm(node, shape.c)?);
                }
                "Relu" | "Clip" => {
                    let (min, max) = self.clip_range(node, op)?;
                    // Clip(0, m) other than 6: a ReLU6 with bound m (what an exported QDQ import's range gives).
                    let (activation, clip_max) = match (min, max) {
                        (0.0, 6.0) => (Activation::Relu6, None),
                        (0.0, f32::INFINITY) => (Activation::Relu, None),
                        (0.0, m) if m > 0.0 && m.is_finite() => (Activation::Relu6, Some(m)),
                        _ => {
                            return Err(self.node_error(
                                node,
                                format!("a clip to [{min}, {max}]: mnq-gpu runs ReLU and clips to [0, m]"),
                            ))
                        }
                    };
                    let Some(p) = pending.as_mut().filter(|p| p.layer.activation == Activation::None) else {
                        return Err(self.node_error(node, "mnq-gpu runs an activation only right after a convolution"));
                    };
                    p.layer.clip_max = clip_max.map(|m| vec![m; p.layer.output_shape.c]);
                    p.layer.activation = activation;
                    if let Some(q) = p.quant.as_mut() {
                        q.clip = Some((label.clone(), min, max));
                    }
                }
                "QLinearConv" | "QLinearMatMul" | "QGemm" | "QLinearGlobalAveragePool" => {
                    let Value::Quantized(q) = value else {
                        return Err(self.node_error(node, "reads a tensor that is not quantized"));
                    };
                    let (qlayer, layer) = self.qoperator(node, op, shape, q, &mut built)?;
                    shape = qlayer.output_shape;
                    value = Value::Quantized(Quant {
                        params: qlayer.output,
                        element_type: self
                            .activation_parameters(node, qoperator_output_scale(op), "output")?
                            .element_type,
                    });
                    built.layers.push(qlayer);
                    built.float.push(layer);
                    built.tensors.push(output.to_string());
                }
                "Flatten" | "Reshape" | "Squeeze" => {
                    self.flush_float(&mut pending, &mut built)?;
                    if pending.is_some() {
                        return Err(self.node_error(node, "between a convolution and its QuantizeLinear"));
                    }
                    if (shape.h, shape.w) != (1, 1) {
                        return Err(self.node_error(
                            node,
                            format!(
                                "reshapes {}×{}×{}: mnq-gpu reshapes only 1×1×c tensors",
                                shape.c, shape.h, shape.w
                            ),
                        ));
                    }
                }
                // The pipeline ends at the logits; the probabilities are the softmax of the dequantized logits.
                "Softmax" | "QLinearSoftmax" => {
                    self.flush_float(&mut pending, &mut built)?;
                    if pending.is_some() {
                        return Err(self.node_error(node, "follows a convolution without its QuantizeLinear"));
                    }
                    if (shape.h, shape.w) != (1, 1) {
                        return Err(self.node_error(node, "mnq-gpu ends with a softmax over the logits"));
                    }
                    finished = true;
                }
                _ => return Err(self.node_error(node, "this operator is not supported in a MobileNetV1")),
            }
            current = output;
        }
        self.flush_float(&mut pending, &mut built)?;
        if let Some(p) = pending {
            return Err(self.error(format!("{}: the graph ends before its QuantizeLinear", p.node)));
        }
        if !self.graph.output.iter().any(|o| o.name == current) {
            return Err(
                self.error(format!("the chain from the input ends at `{current}`, which is not a graph output",))
            );
        }
        self.finish(name, input_shape, input, built)
    }

    /// Move a float layer waiting for BatchNormalization or an activation into the model.
    fn flush_float(&self, pending: &mut Option<Pending>, built: &mut Built) -> Result<()> {
        if pending.as_ref().is_some_and(|p| p.quant.is_none()) {
            let p = pending.take().expect("checked");
            built.float.push(p.layer);
        }
        Ok(())
    }

    /// The float layer of a Conv, Gemm, MatMul or GlobalAveragePool on `shape`, and its weights as the file
    /// holds them (float initializer values, or the quantized values of a QDQ file with their parameters).
    fn float_op(
        &self,
        node: &NodeProto,
        op: &str,
        shape: Shape,
        value: Value,
        built: &mut Built,
    ) -> Result<(Layer, Option<Weights>)> {
        if op == "GlobalAveragePool" {
            let name = built.namer.name(Op::GlobalAvgPool);
            return Ok((
                Layer {
                    name,
                    op: Op::GlobalAvgPool,
                    inputs: Vec::new(),
                    input_shape: shape,
                    output_shape: Shape::new(1, 1, shape.c),
                    kernel: Vec::new(),
                    bias: None,
                    batch_norm: None,
                    activation: Activation::None,
                    clip_max: None,
                },
                None,
            ));
        }
        let quantized = matches!(value, Value::Dequantized(_));
        let weights_name =
            node.input.get(1).filter(|n| !n.is_empty()).ok_or_else(|| self.node_error(node, "has no weights"))?;
        let weights = if quantized {
            self.dequantized(node, weights_name, "weights")?
        } else {
            let tensor = self
                .constants
                .get(weights_name.as_str())
                .ok_or_else(|| self.node_error(node, format!("its weights `{weights_name}` are not a constant")))?;
            Weights { dims: tensor.dims.clone(), values: WeightValues::Float(self.floats(tensor)?), axis: None }
        };
        let (kind, c_out) = self.kernel_kind(node, op, shape, &weights.dims)?;
        let layer = self.layer(node, kind, shape, c_out, &weights, built)?;
        Ok((layer, Some(weights)))
    }

    /// What a Conv/Gemm/MatMul with weights of `dims` computes on `shape`: the engine's op, its output channels.
    fn kernel_kind(&self, node: &NodeProto, op: &str, shape: Shape, dims: &[i64]) -> Result<(Kernel, usize)> {
        let fail = |reason: String| self.node_error(node, reason);
        let c_in = shape.c as i64;
        let channels = |c: i64| -> Result<usize> {
            usize::try_from(c)
                .ok()
                .filter(|c| (1..=MAX_CHANNELS).contains(c))
                .ok_or_else(|| self.node_error(node, format!("{c} output channels (mnq-gpu runs 1 to {MAX_CHANNELS})")))
        };
        match op {
            "Conv" => {
                let group = int_attribute(node, "group", 1);
                let strides = ints_attribute(node, "strides").unwrap_or_else(|| vec![1, 1]);
                let dilations = ints_attribute(node, "dilations").unwrap_or_else(|| vec![1, 1]);
                if dilations.iter().any(|&d| d != 1) {
                    return Err(fail(format!("dilations {dilations:?} (mnq-gpu runs 1)")));
                }
                let stride = match strides.as_slice() {
                    [s, t] if s == t && (1..=2).contains(s) => *s as usize,
                    _ => return Err(fail(format!("strides {strides:?} (mnq-gpu runs 1×1 and 2×2)"))),
                };
                match *dims {
                    [c_out, 1, 3, 3] if group == c_in && c_out == c_in => {
                        let padding = self.padding(node, shape, stride)?;
                        Ok((Kernel::Op(Op::DepthwiseConv2d { stride, padding }), channels(c_out)?))
                    }
                    [c_out, 3, 3, 3] if group == 1 && c_in == 3 => {
                        let padding = self.padding(node, shape, stride)?;
                        Ok((Kernel::Op(Op::Conv2d { stride, padding }), channels(c_out)?))
                    }
                    [c_out, c, 1, 1] if group == 1 && c == c_in && stride == 1 => {
                        let pads = ints_attribute(node, "pads").unwrap_or_default();
                        if pads.iter().any(|&p| p != 0) {
                            return Err(fail(format!("a 1×1 convolution with pads {pads:?}")));
                        }
                        Ok((Kernel::Op(Op::PointwiseConv2d), channels(c_out)?))
                    }
                    _ => Err(fail(format!(
                        "weights of shape {dims:?} with group {group} on {c_in} channels: mnq-gpu runs 3×3 convolutions \
                         of the RGB input, 3×3 depthwise (group = channels) and 1×1 convolutions at stride 1"
                    ))),
                }
            }
            "Gemm" | "MatMul" => {
                if (shape.h, shape.w) != (1, 1) {
                    return Err(fail(format!("a classifier on a {}×{} input: it needs 1×1", shape.h, shape.w)));
                }
                let trans_b = op == "Gemm" && int_attribute(node, "transB", 0) != 0;
                if op == "Gemm"
                    && (int_attribute(node, "transA", 0) != 0
                        || float_attribute(node, "alpha", 1.0) != 1.0
                        || float_attribute(node, "beta", 1.0) != 1.0)
                {
                    return Err(fail("mnq-gpu runs Gemm with transA = 0, alpha = 1 and beta = 1".into()));
                }
                match (dims, trans_b) {
                    (&[n, k], true) | (&[k, n], false) if k == c_in => {
                        Ok((Kernel::Classifier { transposed: trans_b }, channels(n)?))
                    }
                    _ => Err(fail(format!("weights of shape {dims:?} (transB {trans_b}) on {c_in} inputs"))),
                }
            }
            _ => unreachable!("kernel_kind is called for Conv, Gemm and MatMul"),
        }
    }

    /// TF's SAME (the extra row/column of stride 2 bottom/right: pads [0, 0, 1, 1] on even sides) or VALID, from
    /// `auto_pad` or `pads`.
    fn padding(&self, node: &NodeProto, shape: Shape, stride: usize) -> Result<Padding> {
        let auto_pad = attribute(node, "auto_pad").map(|a| String::from_utf8_lossy(&a.s).into_owned());
        match auto_pad.as_deref() {
            Some("SAME_UPPER") => return Ok(Padding::Same),
            Some("VALID") => return Ok(Padding::Valid),
            None | Some("NOTSET") | Some("") => {}
            Some(other) => {
                return Err(self.node_error(node, format!("auto_pad {other} (mnq-gpu runs SAME_UPPER and VALID)")))
            }
        }
        let pads = ints_attribute(node, "pads").unwrap_or_else(|| vec![0; 4]);
        if pads.iter().all(|&p| p == 0) {
            return Ok(Padding::Valid);
        }
        let same = |side: usize| {
            let (out, before) = same_padding(side, 3, stride);
            let total = ((out - 1) * stride + 3).saturating_sub(side);
            (before as i64, (total - before) as i64)
        };
        let ((top, bottom), (left, right)) = (same(shape.h), same(shape.w));
        if pads == [top, left, bottom, right] {
            return Ok(Padding::Same);
        }
        Err(self.node_error(
            node,
            format!(
                "pads {pads:?} on {}×{} at stride {stride}: mnq-gpu pads as TF's SAME ([{top}, {left}, {bottom}, \
                 {right}] here: any extra row or column at the bottom/right) or not at all",
                shape.h, shape.w
            ),
        ))
    }

    /// The float layer: weights (dequantized for a QDQ file) in the engine's layout, float bias.
    fn layer(
        &self,
        node: &NodeProto,
        kind: Kernel,
        shape: Shape,
        c_out: usize,
        weights: &Weights,
        built: &mut Built,
    ) -> Result<Layer> {
        let op = kind.op();
        let (output_shape, count) = op.output_and_weights(shape, c_out);
        if !shape_in_bounds(output_shape) {
            return Err(self.node_error(node, format!("output {output_shape:?} is out of bounds")));
        }
        if weights.len() != count {
            return Err(self.node_error(node, format!("{} weights, its shape needs {count}", weights.len())));
        }
        built.weight_values += count;
        if built.weight_values > self.file_len {
            return Err(self.node_error(
                node,
                "the layers up to here hold more weights than the file: its nodes reuse weight tensors, which a \
                 MobileNetV1 does not",
            ));
        }
        let order = kind.engine_order(shape.c, c_out);
        let kernel: Vec<f32> = order.iter().map(|&i| weights.dequantize(i, kind, shape.c, c_out)).collect();
        let bias_name = node.input.get(2).filter(|n| !n.is_empty());
        let bias = match (bias_name, &weights.values) {
            (None, _) => None,
            (Some(name), WeightValues::Float(_)) => {
                let tensor = self
                    .constants
                    .get(name.as_str())
                    .ok_or_else(|| self.node_error(node, format!("its bias `{name}` is not a constant")))?;
                let values = self.floats(tensor)?;
                if values.len() != c_out {
                    return Err(self.node_error(node, format!("{} biases for {c_out} channels", values.len())));
                }
                Some(values)
            }
            // A QDQ file's bias is read with the integer parts (qdq_parts), which set it.
            (Some(_), WeightValues::Quantized { .. }) => None,
        };
        Ok(Layer {
            name: built.namer.name(op),
            op,
            inputs: Vec::new(),
            input_shape: shape,
            output_shape,
            kernel,
            bias,
            batch_norm: None,
            activation: Activation::None,
            clip_max: None,
        })
    }

    /// The integer parts of a QDQ op whose input was dequantized from `input`.
    fn qdq_parts(
        &self,
        node: &NodeProto,
        op: &str,
        layer: &Layer,
        input: Quant,
        weights: Option<Weights>,
    ) -> Result<PendingQuant> {
        let Some(weights) = weights else {
            // The pool.
            return Ok(PendingQuant {
                input: input.params,
                weights: Vec::new(),
                weight_params: Vec::new(),
                bias: Vec::new(),
                clip: None,
            });
        };
        let c_out = layer.output_shape.c;
        let kind = Kernel::of(op, layer.op, &node.attribute);
        let (weights_u8, weight_params) = weights.engine_u8(self, node, kind, layer.input_shape.c, c_out)?;
        let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
            None => vec![0; c_out],
            Some(name) => {
                let producer = self.producers.get(name.as_str()).filter(|p| p.op_type == "DequantizeLinear");
                let Some(dq) = producer else {
                    return Err(self.node_error(
                        node,
                        format!("its bias `{name}` is not dequantized from int32 (a DequantizeLinear)"),
                    ));
                };
                let tensor = self.constant(dq, 0, "bias")?;
                if tensor.data_type != INT32 {
                    return Err(
                        self.node_error(dq, format!("the bias is {}, expected INT32", type_name(tensor.data_type)))
                    );
                }
                self.bias(dq, tensor, c_out)?
            }
        };
        Ok(PendingQuant { input: input.params, weights: weights_u8, weight_params, bias, clip: None })
    }

    fn bias(&self, node: &NodeProto, tensor: &TensorProto, c_out: usize) -> Result<Vec<i32>> {
        let values = self.ints(tensor)?;
        if tensor.data_type != INT32 || values.len() != c_out {
            return Err(self.node_error(
                node,
                format!(
                    "bias `{}`: {} values of {}, expected {c_out} INT32",
                    tensor.name,
                    values.len(),
                    type_name(tensor.data_type)
                ),
            ));
        }
        // Any int32: quantize_static saturates the biases of near-zero weight scales to ±2^31, and the engine's
        // fp32 mode then wraps the accumulator as ORT's int32 adds do.
        Ok(values.into_iter().map(|b| b as i32).collect())
    }

    /// The quantized weights that a DequantizeLinear makes of an initializer, with its parameters.
    fn dequantized(&self, node: &NodeProto, name: &str, role: &str) -> Result<Weights> {
        let producer = self.producers.get(name).filter(|p| p.op_type == "DequantizeLinear");
        let Some(dq) = producer else {
            return Err(self.node_error(
                node,
                format!("its {role} `{name}` are not dequantized from integers (a DequantizeLinear of an initializer)"),
            ));
        };
        let tensor = self.constant(dq, 0, role)?;
        if !matches!(tensor.data_type, UINT8 | INT8) {
            return Err(
                self.node_error(dq, format!("{role} of {}: mnq-gpu runs uint8 and int8", type_name(tensor.data_type)))
            );
        }
        let values = self.ints(tensor)?;
        let (params, zero_type) = self.quant_parameters(dq, 1, role)?;
        if zero_type != tensor.data_type && dq.input.get(2).is_some_and(|z| !z.is_empty()) {
            return Err(self.node_error(
                dq,
                format!("{role}: zero point of {} for data of {}", type_name(zero_type), type_name(tensor.data_type)),
            ));
        }
        let element_type = if tensor.data_type == INT8 { ElementType::Int8 } else { ElementType::Uint8 };
        let params: Vec<Quant> = params.into_iter().map(|q| Quant { element_type, ..q }).collect();
        let axis = (params.len() > 1).then(|| int_attribute(dq, "axis", 1));
        Ok(Weights {
            dims: tensor.dims.clone(),
            values: WeightValues::Quantized { values, params, element_type },
            axis,
        })
    }

    /// (min, max) of a Relu, or of a Clip from its inputs (opset 11 on) or attributes (before).
    fn clip_range(&self, node: &NodeProto, op: &str) -> Result<(f32, f32)> {
        if op == "Relu" {
            return Ok((0.0, f32::INFINITY));
        }
        let bound = |index: usize, attr: &str, default: f32| -> Result<f32> {
            match node.input.get(index).filter(|n| !n.is_empty()) {
                Some(_) => match self.floats(self.constant(node, index, attr)?)?.as_slice() {
                    [v] => Ok(*v),
                    other => Err(self.node_error(node, format!("its {attr} has {} values", other.len()))),
                },
                None => Ok(float_attribute(node, attr, default)),
            }
        };
        Ok((bound(1, "min", f32::NEG_INFINITY)?, bound(2, "max", f32::INFINITY)?))
    }

    fn batch_norm(&self, node: &NodeProto, channels: usize) -> Result<BatchNorm> {
        let mut vectors = Vec::with_capacity(4);
        for (index, role) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")] {
            let values = self.floats(self.constant(node, index, role)?)?;
            if values.len() != channels {
                return Err(
                    self.node_error(node, format!("its {role} has {} values for {channels} channels", values.len()))
                );
            }
            vectors.push(values);
        }
        let variance = vectors.pop().expect("four vectors");
        let mean = vectors.pop().expect("four vectors");
        let beta = vectors.pop().expect("four vectors");
        let gamma = vectors.pop().expect("four vectors");
        Ok(BatchNorm { gamma, beta, mean, variance, epsilon: float_attribute(node, "epsilon", 1e-5) })
    }

    /// A QDQ op complete at its QuantizeLinear (`output` its output tensor): the integer layer.
    fn finish_qdq(&self, pending: Pending, output_quant: Quant, output: &str, built: &mut Built) -> Result<()> {
        let Pending { node, mut layer, quant } = pending;
        let quant = quant.expect("a QDQ op");
        let out = output_quant.params;
        if let Some((clip_node, min, max)) = &quant.clip {
            // ORT's ReluQuantFusion and ClipQuantFusion: the activation goes when the quantized range
            // [s·(0 − z), s·(255 − z)] (the type's range, in the engine's u8 domain) lies inside it.
            let lower = out.scale * (0 - out.zero_point) as f32;
            let upper = out.scale * (255 - out.zero_point) as f32;
            let no_op = if *max == f32::INFINITY && *min == 0.0 {
                out.zero_point == 0
            } else {
                !(f32::EPSILON < min - lower || f32::EPSILON < upper - max)
            };
            if !no_op {
                return Err(self.error(format!(
                    "{clip_node}: a clip to [{min}, {max}] after {node} that its QuantizeLinear (scale {}, zero point \
                     {} as uint8) does not make a no-op: ONNX Runtime runs that convolution in float, mnq-gpu does not",
                    out.scale, out.zero_point
                )));
            }
        }
        let name = layer.name.clone();
        let qlayer = if layer.op == Op::GlobalAvgPool {
            QLayer::global_avg_pool_fp32(&name, layer.input_shape, quant.input, out)
        } else {
            layer.bias = Some(
                quant
                    .bias
                    .iter()
                    .zip(&quant.weight_params)
                    .map(|(&b, w)| (f64::from(b) * f64::from(quant.input.scale) * f64::from(w.scale)) as f32)
                    .collect(),
            );
            self.qlayer(&node, &layer, quant.input, out, quant.weights, &quant.weight_params, quant.bias)?
        };
        if layer.op != Op::GlobalAvgPool {
            output_clamp(&mut layer, out);
        }
        built.layers.push(qlayer);
        built.float.push(layer);
        built.tensors.push(output.to_string());
        Ok(())
    }

    /// The integer layer with ORT's arithmetic: fp32 requantization, clamped to the type only.
    #[allow(clippy::too_many_arguments)]
    fn qlayer(
        &self,
        node: &str,
        layer: &Layer,
        input: QuantParams,
        output: QuantParams,
        weights: Vec<u8>,
        weight_params: &[QuantParams],
        bias: Vec<i32>,
    ) -> Result<QLayer> {
        let c_out = layer.output_shape.c;
        let mut multipliers = Vec::with_capacity(c_out);
        let mut shifts = Vec::with_capacity(c_out);
        for (c, weight) in weight_params.iter().enumerate() {
            // The Q31 pair serves `--requant double|single`; ORT's own mode, fp32, uses the float32 scale.
            let real = effective_scale(input.scale, weight.scale, output.scale, ScaleProduct::Float32);
            let (multiplier, shift) = quantize_multiplier(real).ok_or_else(|| {
                self.error(format!(
                    "{node}: channel {c}: requantization scale {real:e} is out of the range the engine runs"
                ))
            })?;
            multipliers.push(multiplier);
            shifts.push(shift);
        }
        Ok(QLayer {
            name: layer.name.clone(),
            op: layer.op,
            inputs: Vec::new(),
            add: None,
            input_shape: layer.input_shape,
            output_shape: layer.output_shape,
            input,
            output,
            weights,
            weight_scales: weight_params.iter().map(|w| w.scale).collect(),
            weight_zero_points: weight_params.iter().map(|w| w.zero_point).collect(),
            bias,
            multipliers,
            shifts,
            act_min: 0,
            act_max: vec![255; c_out],
            requant: Requant::Fp32,
            pool: PoolRounding::HalfUp,
        })
    }

    /// A QOperator node on the quantized tensor `input`: its integer layer and float layer.
    fn qoperator(
        &self,
        node: &NodeProto,
        op: &str,
        shape: Shape,
        input: Quant,
        built: &mut Built,
    ) -> Result<(QLayer, Layer)> {
        let label = node_label(node);
        let x = self.activation_parameters(node, 1, "input")?;
        if x != input {
            return Err(self.node_error(
                node,
                format!("takes its input as {:?}, the tensor was quantized as {:?}", x.params, input.params),
            ));
        }
        let y = self.activation_parameters(node, qoperator_output_scale(op), "output")?;
        if op == "QLinearGlobalAveragePool" {
            if int_attribute(node, "channels_last", 0) != 0 {
                return Err(self.node_error(node, "channels_last = 1: mnq-gpu reads NCHW graphs"));
            }
            let name = built.namer.name(Op::GlobalAvgPool);
            let qlayer = QLayer::global_avg_pool_fp32(&name, shape, input.params, y.params);
            let layer = Layer::global_avg_pool(name, shape);
            return Ok((qlayer, layer));
        }
        if op == "QGemm" && node.input.get(7).is_none_or(|n| n.is_empty()) {
            return Err(self.node_error(node, "has no output scale (a float output): mnq-gpu runs integer outputs"));
        }
        let weights = self.qoperator_weights(node)?;
        let float_op = if op == "QLinearConv" {
            "Conv"
        } else if op == "QGemm" {
            "Gemm"
        } else {
            "MatMul"
        };
        let (kind, c_out) = self.kernel_kind(node, float_op, shape, &weights.dims)?;
        let mut layer = self.layer(node, kind, shape, c_out, &weights, built)?;
        let (weights_u8, weight_params) = weights.engine_u8(self, node, kind, shape.c, c_out)?;
        let bias_index = match op {
            "QLinearConv" => Some(8),
            "QGemm" => Some(6),
            _ => None,
        };
        let bias = match bias_index.and_then(|i| node.input.get(i)).filter(|n| !n.is_empty()) {
            Some(_) => {
                let tensor = self.constant(node, bias_index.expect("some"), "bias")?;
                self.bias(node, tensor, c_out)?
            }
            None => vec![0; c_out],
        };
        layer.bias = Some(
            bias.iter()
                .zip(&weight_params)
                .map(|(&b, w)| (f64::from(b) * f64::from(input.params.scale) * f64::from(w.scale)) as f32)
                .collect(),
        );
        output_clamp(&mut layer, y.params);
        let qlayer = self.qlayer(&label, &layer, input.params, y.params, weights_u8, &weight_params, bias)?;
        Ok((qlayer, layer))
    }

    /// The weights of a QLinearConv (input 3, scale 4, zero point 5), QLinearMatMul or QGemm (the same inputs).
    fn qoperator_weights(&self, node: &NodeProto) -> Result<Weights> {
        let tensor = self.constant(node, 3, "weights")?;
        if !matches!(tensor.data_type, UINT8 | INT8) {
            return Err(self
                .node_error(node, format!("weights of {}: mnq-gpu runs uint8 and int8", type_name(tensor.data_type))));
        }
        let element_type = if tensor.data_type == INT8 { ElementType::Int8 } else { ElementType::Uint8 };
        let values = self.ints(tensor)?;
        let (params, _) = self.quant_parameters(node, 4, "weights")?;
        let params: Vec<Quant> = params.into_iter().map(|q| Quant { element_type, ..q }).collect();
        // QLinearConv's per-channel scales run along the output channels (dimension 0); QGemm's and
        // QLinearMatMul's along the columns of B.
        let axis = (params.len() > 1).then_some(match node.op_type.as_str() {
            "QLinearConv" => 0,
            "QGemm" if int_attribute(node, "transB", 0) != 0 => 0,
            _ => 1,
        });
        Ok(Weights {
            dims: tensor.dims.clone(),
            values: WeightValues::Quantized { values, params, element_type },
            axis,
        })
    }

    /// The finished model.
    fn finish(&self, name: &str, input_shape: Shape, input: Option<Quant>, mut built: Built) -> Result<Imported> {
        // A 1×1 convolution on the pooled features is the classifier, named as the TF.js model's.
        let rename = |op: &mut Op, name: &mut String, input: Shape, last: bool| {
            if last && matches!(*op, Op::PointwiseConv2d | Op::Classifier) && (input.h, input.w) == (1, 1) {
                *op = Op::Classifier;
                *name = "conv_preds".into();
            }
        };
        let count = built.float.len();
        for (i, layer) in built.float.iter_mut().enumerate() {
            rename(&mut layer.op, &mut layer.name, layer.input_shape, i + 1 == count);
        }
        let count = built.layers.len();
        for (i, layer) in built.layers.iter_mut().enumerate() {
            rename(&mut layer.op, &mut layer.name, layer.input_shape, i + 1 == count);
        }
        let classes = built.float.last().map_or(0, |l| l.output_shape.c);
        if built.float.last().map(|l| l.op) != Some(Op::Classifier) {
            return Err(self.error(
                "the model does not end with a classifier (a Gemm, MatMul or 1×1 Conv on the pooled features)".into(),
            ));
        }
        let float = Model {
            name: name.to_string(),
            input_shape,
            // An ONNX file cannot say how pixels become its float input: TF-slim's [−1, 1], as the TF.js MobileNets
            // and mnq-gpu's export take it.
            input_range: InputRange::SignedUnit,
            layers: built.float,
            background_class: classes == 1001,
            synthetic: false,
        };
        let model = match input {
            None if built.layers.is_empty() => None,
            None => return Err(self.error("a quantized model without a QuantizeLinear of its input".into())),
            Some(input) => {
                let model = QuantModel {
                    name: name.to_string(),
                    scheme: super::SCHEME.to_string(),
                    input_shape,
                    input: input.params,
                    layers: built.layers,
                    synthetic: false,
                    // ORT quantizes the input with its QuantizeLinear: float32 division, ties to even.
                    input_rounding: InputRounding::Fp32,
                };
                if model.layers.len() != float.layers.len() {
                    return Err(self
                        .error("a model with both float and quantized layers: mnq-gpu runs one or the other".into()));
                }
                model
                    .validate()
                    .map_err(|reason| self.error(format!("not a MobileNetV1 the engine runs: {reason}")))?;
                Some(model)
            }
        };
        Ok(Imported { model, float, tensors: built.tensors, input_type: input.map(|q| q.element_type) })
    }
}

/// The float model's activation: what the QuantizeLinear of a layer's output applies. Where its zero point is the
/// type's lowest value (quantize_static removed a Relu or Clip(0, 6) there), the output is clamped to
/// [0, s·(255 − z)] (the engine's u8 domain): a ReLU6 with that upper bound (below 6 for a calibrated ReLU6), as the
/// dequantized graph computes it. A Relu or Clip still in the file adds its own bound.
fn output_clamp(layer: &mut Layer, output: QuantParams) {
    if output.zero_point != 0 {
        return;
    }
    let upper = output.scale * (255 - output.zero_point) as f32;
    let bound = match layer.activation {
        Activation::Relu6 => upper.min(layer.clip_max.as_ref().map_or(6.0, |bounds| bounds[0])),
        Activation::None | Activation::Relu => upper,
    };
    layer.activation = Activation::Relu6;
    layer.clip_max = Some(vec![bound; layer.output_shape.c]);
}

/// The index of a QOperator node's output scale input.
fn qoperator_output_scale(op: &str) -> usize {
    match op {
        "QLinearGlobalAveragePool" => 3,
        "QGemm" => 7,
        _ => 6, // QLinearConv, QLinearMatMul
    }
}

/// How a weighted node's weights map onto the engine's layer.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// A Conv: [c_out, c_in/group, kh, kw].
    Op(Op),
    /// A Gemm or MatMul: B [n, k] when transposed, else [k, n].
    Classifier { transposed: bool },
}

impl Kernel {
    fn of(op: &str, layer_op: Op, attributes: &[proto::AttributeProto]) -> Kernel {
        match op {
            "Gemm" => Kernel::Classifier { transposed: attributes.iter().any(|a| a.name == "transB" && a.i != 0) },
            "MatMul" => Kernel::Classifier { transposed: false },
            _ => Kernel::Op(layer_op),
        }
    }

    fn op(self) -> Op {
        match self {
            Kernel::Op(op) => op,
            Kernel::Classifier { .. } => Op::Classifier,
        }
    }

    /// For each weight of the engine's layout ([`Op`]: [3, 3, c_in, c_out], [3, 3, c], [c_in, c_out]), its index
    /// in the file's.
    fn engine_order(self, c_in: usize, c_out: usize) -> Vec<usize> {
        match self {
            Kernel::Op(Op::Conv2d { .. }) => (0..9 * c_in * c_out)
                .map(|i| {
                    let (tap, ci, co) = (i / (c_in * c_out), i / c_out % c_in, i % c_out);
                    (co * c_in + ci) * 9 + tap
                })
                .collect(),
            Kernel::Op(Op::DepthwiseConv2d { .. }) => (0..9 * c_out).map(|i| (i % c_out) * 9 + i / c_out).collect(),
            Kernel::Op(_) | Kernel::Classifier { transposed: true } => {
                (0..c_in * c_out).map(|i| (i % c_out) * c_in + i / c_out).collect()
            }
            Kernel::Classifier { transposed: false } => (0..c_in * c_out).collect(),
        }
    }

    /// The output channel of weight `index` in the file's layout.
    fn output_channel(self, index: usize, c_in: usize, c_out: usize) -> usize {
        match self {
            Kernel::Op(Op::Conv2d { .. }) => index / (9 * c_in),
            Kernel::Op(Op::DepthwiseConv2d { .. }) => index / 9,
            Kernel::Op(_) | Kernel::Classifier { transposed: true } => index / c_in,
            Kernel::Classifier { transposed: false } => index % c_out,
        }
    }

    /// The dimension of the file's weights that holds the output channels.
    fn channel_axis(self) -> i64 {
        match self {
            Kernel::Classifier { transposed: false } => 1,
            _ => 0,
        }
    }
}

/// A node's weights as the file holds them.
struct Weights {
    dims: Vec<i64>,
    values: WeightValues,
    /// The quantization axis of per-channel weights (as the file says it).
    axis: Option<i64>,
}

enum WeightValues {
    Float(Vec<f32>),
    /// Integer values with one parameter set per tensor or per output channel.
    Quantized {
        values: Vec<i64>,
        params: Vec<Quant>,
        element_type: ElementType,
    },
}

impl Weights {
    fn len(&self) -> usize {
        match &self.values {
            WeightValues::Float(v) => v.len(),
            WeightValues::Quantized { values, .. } => values.len(),
        }
    }

    /// The float value of the file's weight `index`.
    fn dequantize(&self, index: usize, kind: Kernel, c_in: usize, c_out: usize) -> f32 {
        match &self.values {
            WeightValues::Float(v) => v[index],
            WeightValues::Quantized { values, params, element_type } => {
                let q = &params[if params.len() == 1 { 0 } else { kind.output_channel(index, c_in, c_out) }];
                q.params.dequantize(engine_u8(*element_type, values[index]))
            }
        }
    }

    /// The engine's u8 weights in its layout and their per-output-channel parameters.
    fn engine_u8(
        &self,
        file: &File,
        node: &NodeProto,
        kind: Kernel,
        c_in: usize,
        c_out: usize,
    ) -> Result<(Vec<u8>, Vec<QuantParams>)> {
        let WeightValues::Quantized { values, params, element_type } = &self.values else {
            return Err(file.node_error(node, "float weights in a quantized model"));
        };
        if params.len() != 1 && params.len() != c_out {
            return Err(file.node_error(node, format!("{} weight scales for {c_out} output channels", params.len())));
        }
        if let Some(axis) = self.axis {
            let axis = if axis < 0 { axis + self.dims.len() as i64 } else { axis };
            if axis != kind.channel_axis() {
                return Err(file.node_error(
                    node,
                    format!(
                        "per-channel weights along axis {axis}; the output channels are axis {}",
                        kind.channel_axis()
                    ),
                ));
            }
        }
        // ORT's QLinearConv and QGemm take per-channel weights with one shared zero point.
        if params.iter().any(|q| q.params.zero_point != params[0].params.zero_point) {
            return Err(
                file.node_error(node, "per-channel weights with different zero points (ONNX Runtime refuses them too)")
            );
        }
        let order = kind.engine_order(c_in, c_out);
        let weights = order.iter().map(|&i| engine_u8(*element_type, values[i])).collect();
        let per_channel = (0..c_out).map(|c| params[if params.len() == 1 { 0 } else { c }].params).collect();
        Ok((weights, per_channel))
    }
}
