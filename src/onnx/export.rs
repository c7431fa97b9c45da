//! Export of the float model as ONNX (opset 13, NCHW), for ONNX Runtime's `quantize_static` and for training:
//! BatchNorm folded into each convolution (as PyTorch's export does), Clip(0, 6) for ReLU6, TF's SAME padding as
//! explicit pads (the extra row/column of stride 2 at the bottom/right), GlobalAveragePool, Flatten, the
//! classifier as Gemm (transB = 1) and Softmax. It imports back as the same float model ([`super::import`]).

use super::proto::{self, tensor_proto::DataType, NodeProto, TensorProto};
use crate::error::{Error, Result};
use crate::model::{Activation, Layer, Model, Op};
use crate::quant::transform::fold_batch_norms;
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

/// `model` as a float ONNX file's bytes.
pub fn float_to_bytes(model: &Model) -> Result<Vec<u8>> {
    let folded = fold_batch_norms(model, false);
    let mut graph = Graph::default();
    let mut current = INPUT.to_string();
    for layer in &folded.layers {
        current = graph.layer(layer, &current)?;
    }
    graph.node("Softmax", "softmax", &[&current], OUTPUT, vec![int("axis", 1)]);
    let shape = model.input_shape;
    let graph = proto::GraphProto {
        name: model.name.clone(),
        node: graph.nodes,
        initializer: graph.initializers,
        input: vec![value_info(INPUT, &[1, 3, shape.h as i64, shape.w as i64])],
        output: vec![value_info(OUTPUT, &[1, model.classes() as i64])],
        ..Default::default()
    };
    let file = proto::ModelProto {
        ir_version: 8,
        opset_import: vec![proto::OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "mnq-gpu".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{}: float MobileNetV1, input NCHW RGB in [-1, 1] (p/127.5 - 1), {} outputs{}",
            model.name,
            model.classes(),
            if model.background_class { " (output 0: background)" } else { "" }
        ),
        graph: Some(graph),
        ..Default::default()
    };
    Ok(file.encode_to_vec())
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

    /// One layer after `input`; returns its output's name.
    fn layer(&mut self, layer: &Layer, input: &str) -> Result<String> {
        let name = &layer.name;
        let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
        let refuse = |reason: &str| Error::UnsupportedShape { layer: name.clone(), reason: reason.into() };
        if layer.clip_max.is_some() {
            return Err(refuse("per-channel ReLU6 bounds (cross-layer equalization) have no ONNX Clip"));
        }
        let kernel = &layer.kernel;
        let (weights, dims, attributes): (Vec<f32>, Vec<usize>, Vec<proto::AttributeProto>) = match layer.op {
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
                return self.activation(layer, name);
            }
        };
        let w = self.initializer(&format!("{name}_weights"), &dims, &weights);
        let mut inputs = vec![input.to_string(), w];
        if let Some(bias) = &layer.bias {
            inputs.push(self.initializer(&format!("{name}_bias"), &[c_out], bias));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.node("Conv", name, &inputs, name, attributes);
        self.activation(layer, name)
    }

    fn activation(&mut self, layer: &Layer, output: &str) -> Result<String> {
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
            Activation::Relu => self.node("Relu", &name, &[output], &name, vec![]),
            _ => {
                if !self.initializers.iter().any(|t| t.name == "relu6_min") {
                    self.initializer("relu6_min", &[], &[0.0]);
                    self.initializer("relu6_max", &[], &[6.0]);
                }
                self.node("Clip", &name, &[output, "relu6_min", "relu6_max"], &name, vec![]);
            }
        }
        Ok(name)
    }
}

/// A 3×3 Conv's attributes: TF's SAME as explicit pads [top, left, bottom, right], or none for VALID.
fn conv_attributes(layer: &Layer, stride: usize, group: i64) -> Vec<proto::AttributeProto> {
    let pads = |input: usize, output: usize, before: usize| {
        let total = ((output - 1) * stride + 3).saturating_sub(input);
        (before as i64, total.saturating_sub(before) as i64)
    };
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    let (top, bottom) = pads(ins.h, outs.h, layer.op.window(ins.h).1);
    let (left, right) = pads(ins.w, outs.w, layer.op.window(ins.w).1);
    let padded = match layer.op {
        Op::Conv2d { padding, .. } | Op::DepthwiseConv2d { padding, .. } => padding == crate::model::Padding::Same,
        _ => false,
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
