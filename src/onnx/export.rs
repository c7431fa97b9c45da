//! Export as ONNX (opset 13, NCHW).
//!
//! - [`float_to_bytes`]: the float model, for ONNX Runtime's `quantize_static` and for training: BatchNorm folded
//!   into each convolution (as PyTorch's export does), Clip(0, 6) for ReLU6, TF's SAME padding as explicit pads
//!   (the extra row/column of stride 2 at the bottom/right), GlobalAveragePool, Flatten, the classifier as Gemm
//!   (transB = 1) and Softmax. It imports back as the same float model ([`super::import`]).
//! - [`qdq_to_bytes`]: a quantized model under `--requant fp32` as a QDQ file that ORT fuses into QLinearConv and
//!   QLinearGlobalAveragePool and runs to the same bytes: uint8 activations, uint8 weights (int8 where every zero
//!   point is 128, the symmetric schemes), int32 biases. Schemes ORT cannot express are refused with the reason.

use super::proto::{self, tensor_proto::DataType, NodeProto, TensorProto};
use crate::error::{Error, Result};
use crate::model::{Activation, Layer, Model, Op, Shape};
use crate::quant::transform::fold_batch_norms;
use crate::quant::{PoolRounding, QLayer, QuantModel, Requant};
use prost::Message;
use std::path::Path;

/// The graph's input and output names.
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "probabilities";

/// Write `model` as a float ONNX file at `path`.
pub fn save_float(model: &Model, path: &Path) -> Result<()> {
    let bytes = float_to_bytes(model)?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Write the quantized `model` as a QDQ ONNX file at `path` ([`qdq_to_bytes`]).
pub fn save_qdq(model: &QuantModel, path: &Path) -> Result<()> {
    let bytes = qdq_to_bytes(model)?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Why ORT would not run `model` to the same bytes, if it would not.
pub fn check_qdq(model: &QuantModel) -> Result<()> {
    let refuse = |reason: String| Error::Export {
        model: model.name.clone(),
        scheme: model.scheme.clone(),
        format: "ONNX (QDQ)",
        reason,
    };
    if model.synthetic {
        return Err(refuse("its weights are synthetic (seeded random, for benchmarks only)".into()));
    }
    model.validate().map_err(|reason| refuse(format!("not a model the engine runs: {reason}")))?;
    if !model.is_chain() {
        return Err(refuse(CHAIN_ONLY.into()));
    }
    for layer in &model.layers {
        if layer.op == Op::GlobalAvgPool {
            let positions = layer.input_shape.h * layer.input_shape.w;
            if layer.pool == PoolRounding::TfliteMean {
                return Err(refuse(format!(
                    "layer {}: TFLite's MEAN arithmetic; ORT's QLinearGlobalAveragePool requantizes in float32",
                    layer.name
                )));
            }
            // Over an odd count no exact half arises: (Σq + n/2)/n is then round_half_even(Σq/n), ORT's result.
            if layer.pool != PoolRounding::Fp32 && positions % 2 == 0 {
                return Err(refuse(format!(
                    "layer {}: a {} average over {positions} positions; ORT's QLinearGlobalAveragePool rounds ties \
                     to even, so exact halves would differ",
                    layer.name,
                    layer.pool.name()
                )));
            }
            continue;
        }
        if layer.requant != Requant::Fp32 {
            return Err(refuse(format!(
                "layer {} requantizes as `{}`; ORT's integer kernels requantize in float32: pass --requant fp32",
                layer.name, layer.requant
            )));
        }
        if layer.act_min != 0 || layer.act_max.iter().any(|&m| m != 255) {
            return Err(refuse(format!(
                "layer {} clamps its output to [{}, {}]: ORT's integer convolutions clamp only to the type's range \
                 (a ReLU6 whose range the output quantization covers, as calibrated ranges do, is no clamp)",
                layer.name,
                layer.act_min,
                layer.act_max.iter().max().copied().unwrap_or(255)
            )));
        }
        if layer.weight_zero_points.iter().any(|&z| z != layer.weight_zero_points[0]) {
            return Err(refuse(format!(
                "layer {} has per-channel weight zero points; ORT's QLinearConv takes one shared zero point",
                layer.name
            )));
        }
    }
    Ok(())
}

/// The quantized `model` as a QDQ file's bytes: every layer DequantizeLinear → Conv (or GlobalAveragePool) →
/// QuantizeLinear, the classifier a 1×1 Conv, then DequantizeLinear, Flatten and Softmax.
pub fn qdq_to_bytes(model: &QuantModel) -> Result<Vec<u8>> {
    check_qdq(model)?;
    let mut graph = Graph::default();
    let input_q = graph.quant_params("input", model.input.scale, model.input.zero_point);
    graph.node("QuantizeLinear", "input_quantize", &[INPUT, &input_q.0, &input_q.1], "input_quantized", vec![]);
    let mut current = ("input_quantized".to_string(), input_q);
    for layer in &model.layers {
        current = graph.qdq_layer(layer, &current.0, &current.1)?;
    }
    let (name, (scale, zero_point)) = current;
    graph.node("DequantizeLinear", "logits_dequantize", &[&name, &scale, &zero_point], "logits", vec![]);
    graph.node("Flatten", "logits_flatten", &["logits"], "logits_flat", vec![int("axis", 1)]);
    graph.node("Softmax", "softmax", &["logits_flat"], OUTPUT, vec![int("axis", 1)]);
    Ok(finish(graph, &model.name, model.input_shape, model.classes(), "int8 QDQ (uint8 activations)"))
}

/// Why a graph (a layer that reads anything but the layer before it, MobileNetV2's ADD) is refused.
const CHAIN_ONLY: &str = "it is a layer graph with residual ADDs: the ONNX exporter writes chains (MobileNetV1)";

/// `model` as a float ONNX file's bytes.
pub fn float_to_bytes(model: &Model) -> Result<Vec<u8>> {
    if !model.is_chain() {
        return Err(Error::Invalid(format!("model {}: {CHAIN_ONLY}", model.name)));
    }
    let folded = fold_batch_norms(model, false);
    let mut graph = Graph::default();
    let mut current = INPUT.to_string();
    for layer in &folded.layers {
        current = graph.layer(layer, &current)?;
    }
    graph.node("Softmax", "softmax", &[&current], OUTPUT, vec![int("axis", 1)]);
    let what = if model.background_class { "float, output 0: background" } else { "float" };
    Ok(finish(graph, &model.name, model.input_shape, model.classes(), what))
}

fn finish(graph: Graph, name: &str, shape: Shape, classes: usize, what: &str) -> Vec<u8> {
    let graph = proto::GraphProto {
        name: name.to_string(),
        node: graph.nodes,
        initializer: graph.initializers,
        input: vec![value_info(INPUT, &[1, 3, shape.h as i64, shape.w as i64])],
        output: vec![value_info(OUTPUT, &[1, classes as i64])],
        ..Default::default()
    };
    let file = proto::ModelProto {
        ir_version: 8,
        opset_import: vec![proto::OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "mnq-gpu".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("{name}: MobileNetV1 ({what}), input NCHW RGB in [-1, 1] (p/127.5 - 1), {classes} outputs"),
        graph: Some(graph),
        ..Default::default()
    };
    file.encode_to_vec()
}

#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    fn node(&mut self, op: &str, name: &str, inputs: &[&str], output: &str, attribute: Vec<proto::AttributeProto>) {
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute,
            ..Default::default()
        });
    }

    fn initializer(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.into()
    }

    fn raw(&mut self, name: &str, dims: &[usize], data_type: DataType, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    /// A uint8 activation's scale and zero point initializers.
    fn quant_params(&mut self, name: &str, scale: f32, zero_point: i32) -> (String, String) {
        let s = self.raw(&format!("{name}_scale"), &[], DataType::Float, scale.to_le_bytes().to_vec());
        let z = self.raw(&format!("{name}_zero_point"), &[], DataType::Uint8, vec![zero_point as u8]);
        (s, z)
    }

    /// One quantized layer reading `input` (uint8, quantized as `input_q`): returns its output and its params.
    fn qdq_layer(
        &mut self,
        layer: &QLayer,
        input: &str,
        input_q: &(String, String),
    ) -> Result<(String, (String, String))> {
        let name = &layer.name;
        let x = format!("{name}_input");
        self.node(
            "DequantizeLinear",
            &format!("{name}_input_dequantize"),
            &[input, &input_q.0, &input_q.1],
            &x,
            vec![],
        );
        let y = format!("{name}_output_float");
        let output_q = self.quant_params(&format!("{name}_output"), layer.output.scale, layer.output.zero_point);
        if layer.op == Op::GlobalAvgPool {
            self.node("GlobalAveragePool", name, &[&x], &y, vec![]);
        } else {
            let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
            // The engine's [kh, kw, c_in, c_out] ([3, 3, c] depthwise, [c_in, c_out] 1×1) to ONNX's
            // [c_out, c_in/group, kh, kw].
            let (dims, order, attributes): (Vec<usize>, Vec<usize>, Vec<proto::AttributeProto>) = match layer.op {
                Op::Conv2d { stride, .. } => (
                    vec![c_out, c_in, 3, 3],
                    (0..9 * c_in * c_out)
                        .map(|i| {
                            let (co, ci, tap) = (i / (9 * c_in), i / 9 % c_in, i % 9);
                            (tap * c_in + ci) * c_out + co
                        })
                        .collect(),
                    conv_attributes_of(layer.op, layer.input_shape, layer.output_shape, stride, 1),
                ),
                Op::DepthwiseConv2d { stride, .. } => (
                    vec![c_out, 1, 3, 3],
                    (0..9 * c_out).map(|i| (i % 9) * c_out + i / 9).collect(),
                    conv_attributes_of(layer.op, layer.input_shape, layer.output_shape, stride, c_out as i64),
                ),
                Op::PointwiseConv2d | Op::Classifier => (
                    vec![c_out, c_in, 1, 1],
                    (0..c_in * c_out).map(|i| (i % c_in) * c_out + i / c_in).collect(),
                    vec![ints("kernel_shape", &[1, 1])],
                ),
                Op::GlobalAvgPool => unreachable!("handled above"),
                Op::Add => unreachable!("check_qdq refuses graphs"),
            };
            // Symmetric weights (every zero point 128) as int8 with zero point 0, as quantize_static writes them.
            let symmetric = layer.weight_zero_points.iter().all(|&z| z == 128);
            let (weight_type, shift) = if symmetric { (DataType::Int8, 128u8) } else { (DataType::Uint8, 0) };
            let weights: Vec<u8> = order.iter().map(|&i| layer.weights[i].wrapping_sub(shift)).collect();
            let w = self.raw(&format!("{name}_weights_quantized"), &dims, weight_type, weights);
            let per_channel = layer.weight_scales.iter().any(|&s| s != layer.weight_scales[0]);
            let channels = if per_channel { c_out } else { 1 };
            let shape: &[usize] = if per_channel { &[c_out] } else { &[] };
            let scales: Vec<u8> = layer.weight_scales[..channels].iter().flat_map(|s| s.to_le_bytes()).collect();
            let ws = self.raw(&format!("{name}_weights_scale"), shape, DataType::Float, scales);
            let zero = (layer.weight_zero_points[0] as u8).wrapping_sub(shift);
            let wz = self.raw(&format!("{name}_weights_zero_point"), shape, weight_type, vec![zero; channels]);
            let w_f = format!("{name}_weights");
            self.node(
                "DequantizeLinear",
                &format!("{name}_weights_dequantize"),
                &[&w, &ws, &wz],
                &w_f,
                vec![int("axis", 0)],
            );
            let bias: Vec<u8> = layer.bias.iter().flat_map(|b| b.to_le_bytes()).collect();
            let b = self.raw(&format!("{name}_bias_quantized"), &[c_out], DataType::Int32, bias);
            // quantize_static's bias scale: s_in · s_w[c] in float32.
            let bias_scales: Vec<u8> =
                layer.weight_scales.iter().flat_map(|&s| (layer.input.scale * s).to_le_bytes()).collect();
            let bs = self.raw(&format!("{name}_bias_scale"), &[c_out], DataType::Float, bias_scales);
            let bz = self.raw(&format!("{name}_bias_zero_point"), &[c_out], DataType::Int32, vec![0; 4 * c_out]);
            let b_f = format!("{name}_bias");
            self.node(
                "DequantizeLinear",
                &format!("{name}_bias_dequantize"),
                &[&b, &bs, &bz],
                &b_f,
                vec![int("axis", 0)],
            );
            self.node("Conv", name, &[&x, &w_f, &b_f], &y, attributes);
        }
        let q = format!("{name}_quantized");
        self.node("QuantizeLinear", &format!("{name}_quantize"), &[&y, &output_q.0, &output_q.1], &q, vec![]);
        Ok((q, output_q))
    }

    /// One layer after `input`; returns its output's name.
    fn layer(&mut self, layer: &Layer, input: &str) -> Result<String> {
        let name = &layer.name;
        let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
        let refuse = |reason: &str| Error::UnsupportedShape { layer: name.clone(), reason: reason.into() };
        // One bound for every channel (an imported QDQ file's output range) is a Clip; per-channel bounds
        // (cross-layer equalization) have none.
        let clip_max = match &layer.clip_max {
            None => 6.0,
            Some(bounds) if bounds.iter().all(|&b| b == bounds[0]) => bounds[0],
            Some(_) => return Err(refuse("per-channel ReLU6 bounds (cross-layer equalization) have no ONNX Clip")),
        };
        let kernel = &layer.kernel;
        let (weights, dims, attributes): (Vec<f32>, Vec<usize>, Vec<proto::AttributeProto>) = match layer.op {
            Op::Add => unreachable!("float_to_bytes refuses graphs"),
            Op::GlobalAvgPool => {
                self.node("GlobalAveragePool", name, &[input], name, vec![]);
                return Ok(name.clone());
            }
            Op::Conv2d { stride, .. } => {
                // [3, 3, c_in, c_out] → [c_out, c_in, 3, 3].
                let w = (0..9 * c_in * c_out)
                    .map(|i| {
                        let (co, ci, tap) = (i / (9 * c_in), i / 9 % c_in, i % 9);
                        kernel[(tap * c_in + ci) * c_out + co]
                    })
                    .collect();
                (w, vec![c_out, c_in, 3, 3], conv_attributes(layer, stride, 1))
            }
            Op::DepthwiseConv2d { stride, .. } => {
                // [3, 3, c] → [c, 1, 3, 3].
                let w = (0..9 * c_out).map(|i| kernel[(i % 9) * c_out + i / 9]).collect();
                (w, vec![c_out, 1, 3, 3], conv_attributes(layer, stride, c_out as i64))
            }
            Op::PointwiseConv2d => {
                // [c_in, c_out] → [c_out, c_in, 1, 1].
                let w = (0..c_in * c_out).map(|i| kernel[(i % c_in) * c_out + i / c_in]).collect();
                (w, vec![c_out, c_in, 1, 1], vec![ints("kernel_shape", &[1, 1])])
            }
            Op::Classifier => {
                let flat = format!("{name}_flatten");
                self.node("Flatten", &flat, &[input], &flat, vec![int("axis", 1)]);
                // [c_in, classes] → B [classes, c_in] with transB = 1, as torch.nn.Linear exports.
                let w: Vec<f32> = (0..c_in * c_out).map(|i| kernel[(i % c_in) * c_out + i / c_in]).collect();
                let b = self.initializer(&format!("{name}_weights"), &[c_out, c_in], &w);
                let bias = layer.bias.clone().unwrap_or_else(|| vec![0.0; c_out]);
                let c = self.initializer(&format!("{name}_bias"), &[c_out], &bias);
                self.node("Gemm", name, &[&flat, &b, &c], name, vec![int("transB", 1)]);
                return self.activation(layer, name, clip_max);
            }
        };
        let w = self.initializer(&format!("{name}_weights"), &dims, &weights);
        let mut inputs = vec![input.to_string(), w];
        if let Some(bias) = &layer.bias {
            inputs.push(self.initializer(&format!("{name}_bias"), &[c_out], bias));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.node("Conv", name, &inputs, name, attributes);
        self.activation(layer, name, clip_max)
    }

    fn activation(&mut self, layer: &Layer, output: &str, clip_max: f32) -> Result<String> {
        let name = format!(
            "{}_{}",
            layer.name,
            match layer.activation {
                Activation::None => return Ok(output.to_string()),
                Activation::Relu => "relu",
                Activation::Relu6 => "relu6",
            }
        );
        match layer.activation {
            Activation::None => unreachable!("returned above"),
            Activation::Relu => self.node("Relu", &name, &[output], &name, vec![]),
            Activation::Relu6 => {
                if !self.initializers.iter().any(|t| t.name == "relu6_min") {
                    self.initializer("relu6_min", &[], &[0.0]);
                }
                let max = if clip_max == 6.0 { "relu6_max".to_string() } else { format!("{}_clip_max", layer.name) };
                if !self.initializers.iter().any(|t| t.name == max) {
                    self.initializer(&max, &[], &[clip_max]);
                }
                self.node("Clip", &name, &[output, "relu6_min", &max], &name, vec![]);
            }
        }
        Ok(name)
    }
}

/// A 3×3 Conv's attributes: TF's SAME as explicit pads [top, left, bottom, right], or none for VALID.
fn conv_attributes(layer: &Layer, stride: usize, group: i64) -> Vec<proto::AttributeProto> {
    conv_attributes_of(layer.op, layer.input_shape, layer.output_shape, stride, group)
}

fn conv_attributes_of(op: Op, ins: Shape, outs: Shape, stride: usize, group: i64) -> Vec<proto::AttributeProto> {
    let pads = |input: usize, output: usize, before: usize| {
        let total = ((output - 1) * stride + 3).saturating_sub(input);
        (before as i64, total.saturating_sub(before) as i64)
    };
    let (top, bottom) = pads(ins.h, outs.h, op.window(ins.h).1);
    let (left, right) = pads(ins.w, outs.w, op.window(ins.w).1);
    let padded = match op {
        Op::Conv2d { padding, .. } | Op::DepthwiseConv2d { padding, .. } => padding == crate::model::Padding::Same,
        Op::PointwiseConv2d | Op::Classifier | Op::GlobalAvgPool | Op::Add => false,
    };
    let pads = if padded { [top, left, bottom, right] } else { [0; 4] };
    vec![
        ints("kernel_shape", &[3, 3]),
        ints("strides", &[stride as i64, stride as i64]),
        ints("pads", &pads),
        int("group", group),
    ]
}

fn int(name: &str, value: i64) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        r#type: proto::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        r#type: proto::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{dimension::Value, Dimension};
    let shape = proto::TensorShapeProto {
        dim: dims.iter().map(|&d| Dimension { value: Some(Value::DimValue(d)), ..Default::default() }).collect(),
    };
    let tensor = proto::type_proto::Tensor { elem_type: DataType::Float as i32, shape: Some(shape) };
    proto::ValueInfoProto {
        name: name.into(),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
