//! Export of a [`QuantModel`] as a TFLite flatbuffer, the exact inverse of [`super::import`]: a classifier graph
//! laid out like Google's files — input [1, h, w, 3] → one CONV_2D or DEPTHWISE_CONV_2D per convolution →
//! AVERAGE_POOL_2D over the whole image (VALID, the output quantized as its input) → the classifier as a 1×1
//! CONV_2D → RESHAPE to [1, classes] → SOFTMAX (beta 1, output scale 1/256) — with the `mnq_gpu`
//! [metadata](super::metadata) entry.
//!
//! The file says what TFLite's reference kernels compute: they derive each layer's multipliers from the scales
//! and its clamp from the fused activation. A model is written only where that arithmetic is the model's own, in
//! the first of TFLite's two integer conventions that expresses it:
//!
//! - uint8: every weight tensor per tensor (one scale and zero point), multipliers from s_in·s_w rounded to
//!   float32 ([`ScaleProduct::Float32`]);
//! - int8: weights symmetric (zero point 128 in the engine's u8, 0 in the file), per tensor or per output channel,
//!   multipliers in double ([`ScaleProduct::Float64`]); every value and zero point is the engine's − 128.
//!
//! Everything else is refused with the layer and the reason: per-channel activation clamps (cross-layer
//! equalization's rescaled ReLU6), asymmetric per-channel weights, a clamp that no fused activation gives,
//! multipliers TFLite would derive differently (a model written by an older mnq-gpu), synthetic models.

use super::codes;
use super::import::{activation_clamp, ElementType};
use super::metadata::{self, Metadata};
use super::schema_generated::tflite as fb;
use crate::error::{Error, Result};
use crate::model::{Model, Op, Padding, Shape};
use crate::quant::fixed_point::{effective_scale, quantize_multiplier, Requant};
use crate::quant::{PoolRounding, QLayer, QuantModel, QuantParams};
use std::path::Path;

/// The softmax output TFLite requires: scale 1/256, zero point 0 in uint8 (−128 in int8; 0 in the engine's u8).
const SOFTMAX_OUTPUT: QuantParams = QuantParams { scale: 1.0 / 256.0, zero_point: 0 };

/// The fused activations tried for a layer's clamp, the most specific first (Google's files fuse RELU6 into
/// every convolution, even where its bound is clamped to 255 by the output range).
const FUSED_ACTIVATIONS: [i8; 3] = [codes::RELU6, codes::RELU, codes::NONE];

/// Write `model` as a TFLite file at `path`; `float` is the float model it quantizes (its input range and
/// background class go into the metadata).
pub fn save(model: &QuantModel, float: &Model, path: &Path) -> Result<()> {
    let bytes = to_bytes(model, float)?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The TFLite file of `model`; `float` is the float model it quantizes (its input range and background class go
/// into the metadata).
pub fn to_bytes(model: &QuantModel, float: &Model) -> Result<Vec<u8>> {
    let checked = check(model)?;
    let element_type = checked.element_type;
    let mut graph = Graph::new(element_type);
    let input_shape = model.input_shape;
    let input = graph.activation("input".into(), input_shape, model.input);
    let mut current = input;
    for (layer, &activation) in model.layers.iter().zip(&checked.activations) {
        current = match layer.op {
            Op::GlobalAvgPool => graph.average_pool(layer, current),
            Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::PointwiseConv2d | Op::Classifier => {
                graph.convolution(layer, current, activation)
            }
            Op::Add => unreachable!("check refuses ADD"),
        };
    }
    let classes = model.classes();
    let logits = model.layers.last().expect("validated: a model has layers").output;
    let reshaped = graph.reshape(current, classes, logits);
    let probabilities = graph.softmax(reshaped, classes);
    let info = Metadata {
        generator: format!("mnq-gpu {}", env!("CARGO_PKG_VERSION")),
        name: model.name.clone(),
        scheme: model.scheme.clone(),
        input_range: float.input_range,
        background_class: float.background_class,
    };
    let description = format!(
        "{} quantized by mnq-gpu {} with scheme {} ({})",
        model.name,
        env!("CARGO_PKG_VERSION"),
        model.scheme,
        match element_type {
            ElementType::Uint8 => "uint8",
            ElementType::Int8 => "int8",
        }
    );
    Ok(graph.finish(input, probabilities, description, &info))
}

/// The convention `model` exports in, or why TFLite cannot express it.
pub fn element_type(model: &QuantModel) -> Result<ElementType> {
    check(model).map(|checked| checked.element_type)
}

/// What the checks found: the convention, and per layer the fused activation that gives its clamp (NONE for the
/// pool).
struct Checked {
    element_type: ElementType,
    activations: Vec<i8>,
}

fn check(model: &QuantModel) -> Result<Checked> {
    let refuse = |reason: String| Error::Export {
        model: model.name.clone(),
        scheme: model.scheme.clone(),
        format: "TFLite",
        reason,
    };
    if model.synthetic {
        return Err(refuse("its weights are synthetic (seeded random, for benchmarks only)".into()));
    }
    model.validate().map_err(|reason| refuse(format!("not a model the engine runs: {reason}")))?;
    if !model.is_chain() {
        return Err(refuse(
            "it is a layer graph with residual ADDs: the TFLite exporter writes chains (MobileNetV1)".into(),
        ));
    }
    if let Some(layer) = model.layers.iter().find(|l| l.requant != Requant::Double) {
        return Err(refuse(format!(
            "layer {} requantizes as `{}`, which a TFLite file cannot record: LiteRT's reference kernels run every \
             file as `double` (its XNNPACK path as `fp32`); export the model without --requant",
            layer.name, layer.requant
        )));
    }
    let convolutions = || model.layers.iter().filter(|l| l.op.has_weights());
    let per_channel = convolutions().find(|l| !is_per_tensor(l));
    let asymmetric = convolutions().find(|l| l.weight_zero_points.iter().any(|&z| z != 128));
    let candidates = match (per_channel, asymmetric) {
        (None, None) => vec![ElementType::Uint8, ElementType::Int8],
        (None, Some(_)) => vec![ElementType::Uint8],
        (Some(_), None) => vec![ElementType::Int8],
        (Some(p), Some(a)) if p.name == a.name => {
            let (low, high) = min_max(&p.weight_zero_points);
            return Err(refuse(format!(
                "layer {}: asymmetric per-channel weights (zero points {low} to {high}): TFLite's uint8 kernels take \
                 one weight scale and zero point per tensor, and its int8 kernels take per-channel weights only \
                 symmetric (zero point 0, 128 here); the scheme modifier +sym quantizes weights so",
                p.name
            )));
        }
        (Some(p), Some(a)) => {
            return Err(refuse(format!(
                "layer {}: per-channel weights need TFLite's int8 kernels, which take only symmetric weights, but \
                 layer {} has asymmetric weights (zero point {}); the scheme modifier +sym quantizes every layer so",
                p.name, a.name, a.weight_zero_points[0]
            )))
        }
    };
    let mut first_reason = None;
    for element_type in candidates {
        match check_as(model, element_type) {
            Ok(activations) => return Ok(Checked { element_type, activations }),
            Err(reason) => {
                first_reason.get_or_insert(reason);
            }
        }
    }
    Err(refuse(first_reason.expect("at least one candidate")))
}

/// Whether every layer of `model` runs in TFLite's `element_type` kernels exactly as in the engine: per layer,
/// the fused activation that gives its clamp, or the reason (naming the layer) why not.
fn check_as(model: &QuantModel, element_type: ElementType) -> std::result::Result<Vec<i8>, String> {
    model
        .layers
        .iter()
        .map(|layer| check_layer(layer, element_type).map_err(|e| format!("layer {}: {e}", layer.name)))
        .collect()
}

fn check_layer(layer: &QLayer, element_type: ElementType) -> std::result::Result<i8, String> {
    match layer.op {
        Op::GlobalAvgPool => check_pool(layer, element_type),
        Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::PointwiseConv2d | Op::Classifier => {
            check_convolution(layer, element_type)
        }
        Op::Add => unreachable!("check refuses graphs"),
    }
}

fn check_pool(layer: &QLayer, element_type: ElementType) -> std::result::Result<i8, String> {
    // The pool's rounding is the element type's in TFLite: half-up for uint8, ties away from zero for int8.
    let native = match element_type {
        ElementType::Uint8 => PoolRounding::HalfUp,
        ElementType::Int8 => PoolRounding::TiesAway,
    };
    let count = layer.input_shape.h * layer.input_shape.w;
    // Over an odd count no exact half arises, and the two TFLite roundings agree.
    let same =
        layer.pool == native || (count % 2 == 1 && matches!(layer.pool, PoolRounding::HalfUp | PoolRounding::TiesAway));
    if !same {
        return Err(format!(
            "a {} average pool over {count} positions: TFLite's {} AVERAGE_POOL_2D rounds {}{}",
            layer.pool.name(),
            if element_type == ElementType::Uint8 { "uint8" } else { "int8" },
            native.name(),
            if matches!(layer.pool, PoolRounding::Fp32 | PoolRounding::TfliteMean) {
                " and does not requantize (the exporter writes no MEAN)"
            } else {
                ""
            },
        ));
    }
    Ok(codes::NONE)
}

fn check_convolution(layer: &QLayer, element_type: ElementType) -> std::result::Result<i8, String> {
    let (low, high) = min_max(&layer.act_max);
    if low != high {
        return Err(format!(
            "per-channel activation clamps (upper bounds {low} to {high} across channels, as cross-layer \
             equalization's rescaled ReLU6 leaves them): TFLite fuses one activation per tensor"
        ));
    }
    let output = layer.output;
    let activation = FUSED_ACTIVATIONS
        .into_iter()
        .find(|&a| activation_clamp(a, output).is_some_and(|(min, max, _)| (min, max) == (layer.act_min, high)))
        .ok_or_else(|| {
            format!(
                "the clamp [{}, {high}] is none of TFLite's fused activations on an output of scale {} and zero \
                 point {} (NONE gives [0, 255], RELU [{z}, 255], RELU6 [{z}, {}])",
                layer.act_min,
                output.scale,
                output.zero_point,
                output.activation_bound(6.0),
                z = output.activation_bound(0.0),
            )
        })?;
    for c in 0..layer.output_shape.c {
        let real =
            effective_scale(layer.input.scale, layer.weight_scales[c], output.scale, element_type.scale_product());
        let derived = quantize_multiplier(real);
        if derived != Some((layer.multipliers[c], layer.shifts[c])) {
            let convention = match element_type {
                ElementType::Uint8 => "uint8 kernels derive from the stored scales (s_in·s_w rounded to float32)",
                ElementType::Int8 => "int8 kernels derive from the stored scales (in double)",
            };
            let derived = derived.map_or("none".to_string(), |(m, s)| format!("{m} with shift {s}"));
            return Err(format!(
                "channel {c}: multiplier {} with shift {} is not the {derived} that TFLite's {convention} for \
                 s_in·s_w/s_out = {real:e}; was it written by an older mnq-gpu? Quantize it again",
                layer.multipliers[c], layer.shifts[c]
            ));
        }
    }
    Ok(activation)
}

/// One weight scale and zero point for the whole tensor.
fn is_per_tensor(layer: &QLayer) -> bool {
    layer.weight_scales.windows(2).all(|w| w[0] == w[1]) && layer.weight_zero_points.windows(2).all(|w| w[0] == w[1])
}

fn min_max<T: Copy + Ord>(values: &[T]) -> (T, T) {
    let low = *values.iter().min().expect("one value per channel");
    let high = *values.iter().max().expect("one value per channel");
    (low, high)
}

/// The subgraph being written, with the model's buffers and operator codes.
struct Graph {
    element_type: ElementType,
    tensors: Vec<fb::Tensor>,
    /// Buffer 0 is the empty buffer of the activations (TFLite requires it).
    buffers: Vec<fb::Buffer>,
    operators: Vec<fb::Operator>,
    operator_codes: Vec<fb::OperatorCode>,
}

impl Graph {
    fn new(element_type: ElementType) -> Graph {
        Graph {
            element_type,
            tensors: Vec::new(),
            buffers: vec![fb::Buffer { data: None, offset: 0, size: 0 }],
            operators: Vec::new(),
            operator_codes: Vec::new(),
        }
    }

    /// The file's zero point of an engine zero point.
    fn zero_point(&self, zero_point: i32) -> i64 {
        match self.element_type {
            ElementType::Uint8 => i64::from(zero_point),
            ElementType::Int8 => i64::from(zero_point) - 128,
        }
    }

    /// A new tensor; its index.
    fn tensor(&mut self, name: String, shape: Vec<i32>, type_: i8, buffer: u32, quantization: Quantization) -> i32 {
        self.tensors.push(fb::Tensor {
            shape: Some(shape),
            type_,
            buffer,
            name: Some(name),
            quantization: quantization.into_fb(),
        });
        (self.tensors.len() - 1) as i32
    }

    /// An activation [1, h, w, c] quantized per tensor.
    fn activation(&mut self, name: String, shape: Shape, params: QuantParams) -> i32 {
        let quantization = Quantization::per_tensor(params.scale, self.zero_point(params.zero_point));
        let shape = vec![1, shape.h as i32, shape.w as i32, shape.c as i32];
        self.tensor(name, shape, self.element_type.code(), 0, quantization)
    }

    /// A constant tensor with its own buffer.
    fn constant(&mut self, name: String, shape: Vec<i32>, type_: i8, data: Vec<u8>, quantization: Quantization) -> i32 {
        self.buffers.push(fb::Buffer { data: Some(data), offset: 0, size: 0 });
        let buffer = (self.buffers.len() - 1) as u32;
        self.tensor(name, shape, type_, buffer, quantization)
    }

    /// Append an operator; operator codes are listed in order of first use.
    fn operator(&mut self, code: i32, inputs: Vec<i32>, output: i32, options: Option<fb::BuiltinOptions>) {
        // Versions as TFLite's converter sets them (`op_version.cc`): the int8 kernels came later.
        let version = match (self.element_type, code) {
            (ElementType::Int8, codes::CONV_2D | codes::DEPTHWISE_CONV_2D) => 3,
            (ElementType::Int8, codes::AVERAGE_POOL_2D | codes::SOFTMAX) => 2,
            _ => 1,
        };
        let index = match self.operator_codes.iter().position(|c| c.builtin_code == code) {
            Some(index) => index,
            None => {
                self.operator_codes.push(fb::OperatorCode {
                    // Every code written here is below 127, so the deprecated int8 field holds it too.
                    deprecated_builtin_code: code as i8,
                    custom_code: None,
                    version,
                    builtin_code: code,
                });
                self.operator_codes.len() - 1
            }
        };
        self.operators.push(fb::Operator {
            opcode_index: index as u32,
            inputs: Some(inputs),
            outputs: Some(vec![output]),
            builtin_options: options,
        });
    }

    /// CONV_2D (3×3 or 1×1, the classifier too) or DEPTHWISE_CONV_2D with weights, bias and the fused activation;
    /// the output tensor's index.
    fn convolution(&mut self, layer: &QLayer, input: i32, activation: i8) -> i32 {
        let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
        let element_type = self.element_type;
        let per_tensor = is_per_tensor(layer);
        let (code, kernel_shape, quantized_dimension, taps, stride, padding) = match layer.op {
            Op::DepthwiseConv2d { stride, padding } => {
                (codes::DEPTHWISE_CONV_2D, vec![1, 3, 3, c_out as i32], 3, 9, stride, padding)
            }
            Op::Conv2d { stride, padding } => {
                (codes::CONV_2D, vec![c_out as i32, 3, 3, c_in as i32], 0, 9, stride, padding)
            }
            Op::PointwiseConv2d | Op::Classifier => {
                (codes::CONV_2D, vec![c_out as i32, 1, 1, c_in as i32], 0, 1, 1, Padding::Same)
            }
            Op::GlobalAvgPool => unreachable!("the pool is written by average_pool"),
            Op::Add => unreachable!("check refuses graphs"),
        };
        let depthwise = code == codes::DEPTHWISE_CONV_2D;
        // The engine's u8 to the file's type: itself, or − 128 (x ^ 0x80, which `to_u8` also is).
        let raw = |q: u8| element_type.to_u8(q);
        let weights: Vec<u8> = if depthwise {
            // [3, 3, c] is TFLite's [1, 3, 3, c].
            layer.weights.iter().map(|&q| raw(q)).collect()
        } else {
            // The engine's [kh, kw, c_in, c_out] to TFLite's [c_out, kh, kw, c_in].
            let mut reordered = vec![0u8; layer.weights.len()];
            for co in 0..c_out {
                for tap in 0..taps {
                    for ci in 0..c_in {
                        reordered[(co * taps + tap) * c_in + ci] = raw(layer.weights[(tap * c_in + ci) * c_out + co]);
                    }
                }
            }
            reordered
        };
        let channels = if per_tensor { 1 } else { c_out };
        let weight_quantization = Quantization {
            scales: layer.weight_scales[..channels].to_vec(),
            zero_points: layer.weight_zero_points[..channels].iter().map(|&z| self.zero_point(z)).collect(),
            // Per tensor the dimension is 0, as TFLite's converter writes it: XNNPACK's delegate refuses a
            // per-tensor depthwise filter that names dimension 3 (the reference kernels do not read it).
            quantized_dimension: if per_tensor { 0 } else { quantized_dimension },
        };
        let weights = self.constant(
            format!("{}/weights", layer.name),
            kernel_shape,
            element_type.code(),
            weights,
            weight_quantization,
        );
        // int32 with scale s_in·s_w (the float32 product, as TFLite's converter writes it) and zero point 0.
        let bias_quantization = Quantization {
            scales: layer.weight_scales[..channels].iter().map(|&s| layer.input.scale * s).collect(),
            zero_points: vec![0; channels],
            quantized_dimension: 0,
        };
        let bias_data = layer.bias.iter().flat_map(|b| b.to_le_bytes()).collect();
        let bias = self.constant(
            format!("{}/bias", layer.name),
            vec![c_out as i32],
            codes::INT32,
            bias_data,
            bias_quantization,
        );
        let output = self.activation(format!("{}/output", layer.name), layer.output_shape, layer.output);
        let padding = match padding {
            Padding::Same => codes::SAME,
            Padding::Valid => codes::VALID,
        };
        let options = if depthwise {
            fb::BuiltinOptions::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptions {
                padding,
                stride_w: stride as i32,
                stride_h: stride as i32,
                depth_multiplier: 1,
                fused_activation_function: activation,
                dilation_w_factor: 1,
                dilation_h_factor: 1,
            }))
        } else {
            fb::BuiltinOptions::Conv2DOptions(Box::new(fb::Conv2DOptions {
                padding,
                stride_w: stride as i32,
                stride_h: stride as i32,
                fused_activation_function: activation,
                dilation_w_factor: 1,
                dilation_h_factor: 1,
            }))
        };
        self.operator(code, vec![input, weights, bias], output, Some(options));
        output
    }

    /// AVERAGE_POOL_2D over the whole image, VALID, its output quantized as its input.
    fn average_pool(&mut self, layer: &QLayer, input: i32) -> i32 {
        let output = self.activation(format!("{}/output", layer.name), layer.output_shape, layer.output);
        let options = fb::Pool2DOptions {
            padding: codes::VALID,
            stride_w: 1,
            stride_h: 1,
            filter_width: layer.input_shape.w as i32,
            filter_height: layer.input_shape.h as i32,
            fused_activation_function: codes::NONE,
        };
        self.operator(
            codes::AVERAGE_POOL_2D,
            vec![input],
            output,
            Some(fb::BuiltinOptions::Pool2DOptions(Box::new(options))),
        );
        output
    }

    /// RESHAPE of the logits [1, 1, 1, classes] to [1, classes], the new shape both as an input tensor and in the
    /// options (as Google's files have it).
    fn reshape(&mut self, input: i32, classes: usize, params: QuantParams) -> i32 {
        let new_shape = vec![1, classes as i32];
        let data = new_shape.iter().flat_map(|d: &i32| d.to_le_bytes()).collect();
        let shape = self.constant("reshape/shape".into(), vec![2], codes::INT32, data, Quantization::none());
        let quantization = Quantization::per_tensor(params.scale, self.zero_point(params.zero_point));
        let output = self.tensor("reshape/output".into(), new_shape.clone(), self.element_type.code(), 0, quantization);
        let options = fb::ReshapeOptions { new_shape: Some(new_shape) };
        self.operator(
            codes::RESHAPE,
            vec![input, shape],
            output,
            Some(fb::BuiltinOptions::ReshapeOptions(Box::new(options))),
        );
        output
    }

    /// SOFTMAX with beta 1 to the probabilities, quantized as TFLite requires.
    fn softmax(&mut self, input: i32, classes: usize) -> i32 {
        let quantization = Quantization::per_tensor(SOFTMAX_OUTPUT.scale, self.zero_point(SOFTMAX_OUTPUT.zero_point));
        let output =
            self.tensor("softmax/output".into(), vec![1, classes as i32], self.element_type.code(), 0, quantization);
        let options = fb::SoftmaxOptions { beta: 1.0 };
        self.operator(codes::SOFTMAX, vec![input], output, Some(fb::BuiltinOptions::SoftmaxOptions(Box::new(options))));
        output
    }

    /// The flatbuffer: schema version 3, one subgraph, the `mnq_gpu` metadata in the last buffer.
    fn finish(mut self, input: i32, output: i32, description: String, info: &Metadata) -> Vec<u8> {
        self.buffers.push(fb::Buffer { data: Some(info.to_json()), offset: 0, size: 0 });
        let metadata = fb::Metadata { name: Some(metadata::NAME.into()), buffer: (self.buffers.len() - 1) as u32 };
        let graph = fb::SubGraph {
            tensors: Some(self.tensors),
            inputs: Some(vec![input]),
            outputs: Some(vec![output]),
            operators: Some(self.operators),
            name: Some("main".into()),
        };
        let model = fb::Model {
            version: 3,
            operator_codes: Some(self.operator_codes),
            subgraphs: Some(vec![graph]),
            description: Some(description),
            buffers: Some(self.buffers),
            metadata_buffer: None,
            metadata: Some(vec![metadata]),
        };
        let mut builder = planus::Builder::new();
        let bytes = builder.finish(&model, Some(IDENTIFIER)).to_vec();
        identifier_after_root_offset(bytes)
    }
}

/// TFLite's flatbuffer file identifier.
const IDENTIFIER: [u8; 4] = *b"TFL3";

/// The file of a whole `model` table, with TFLite's identifier.
pub fn serialize(model: &fb::Model) -> Vec<u8> {
    let mut builder = planus::Builder::new();
    identifier_after_root_offset(builder.finish(model, Some(IDENTIFIER)).to_vec())
}

/// The flatbuffers layout puts the root table's offset at bytes 0..4 and the file identifier at 4..8. planus
/// 1.3.0's `Builder::finish` writes them the other way round (the identifier first, then the offset, counted
/// from byte 4): swap them, keeping the root where it is. A file already in order is returned as it is.
fn identifier_after_root_offset(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes[..4] == IDENTIFIER && bytes[4..8] != IDENTIFIER {
        let from_byte_4 = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        bytes[..4].copy_from_slice(&(from_byte_4 + 4).to_le_bytes());
        bytes[4..8].copy_from_slice(&IDENTIFIER);
    }
    bytes
}

/// A tensor's quantization: per tensor (one entry) or per channel along `quantized_dimension`; none when empty.
struct Quantization {
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    quantized_dimension: i32,
}

impl Quantization {
    fn per_tensor(scale: f32, zero_point: i64) -> Quantization {
        Quantization { scales: vec![scale], zero_points: vec![zero_point], quantized_dimension: 0 }
    }

    fn none() -> Quantization {
        Quantization { scales: Vec::new(), zero_points: Vec::new(), quantized_dimension: 0 }
    }

    fn into_fb(self) -> Option<Box<fb::QuantizationParameters>> {
        if self.scales.is_empty() {
            return None;
        }
        Some(Box::new(fb::QuantizationParameters {
            min: None,
            max: None,
            scale: Some(self.scales),
            zero_point: Some(self.zero_points),
            quantized_dimension: self.quantized_dimension,
        }))
    }
}
