//! Import of a TFLite flatbuffer holding MobileNetV1 or V2: a graph of CONV_2D, DEPTHWISE_CONV_2D (depth multiplier
//! 1), ADD (V2's residual connections), AVERAGE_POOL_2D or MEAN over the whole image, RESHAPE and SOFTMAX, with fused
//! RELU6, RELU or no activation and SAME or VALID padding, and QUANTIZE between uint8 and int8 at the edges (TF2's
//! converter), in one of TFLite's two integer conventions:
//!
//! - uint8, per-tensor asymmetric weights and activations (Google's quantization-aware-trained MobileNets);
//! - int8, per-channel symmetric weights (zero point 0) and per-tensor asymmetric activations (what today's
//!   TFLite converter writes). They map exactly onto the engine's u8 arithmetic by adding 128 to every value and
//!   zero point: (x + 128) − (z_x + 128) = x − z_x, so every accumulator, and each output (clamped to the limits
//!   + 128), is TFLite's + 128.
//!
//! The result is an ordinary [`QuantModel`], with the requantization constants TFLite's kernels derive from the
//! file's scales, and the float [`Model`] the file represents: its dequantized weights and biases, for SQNR.

use super::codes;
use super::metadata::{self, Metadata};
use super::schema_generated::tflite as fb;
use crate::error::{Error, Result};
use crate::model::{Activation, InputRange, Layer, Model, Op, Padding, Shape, Source};
use crate::quant::fixed_point::{effective_scale, quantize_multiplier, ScaleProduct};
use crate::quant::weights::BIAS_LIMIT;
use crate::quant::{
    shape_in_bounds, AddStage, PoolRounding, QLayer, QuantModel, QuantParams, Requant, MAX_CHANNELS, MAX_SIDE,
};
use planus::ReadAsRoot;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A TFLite file's model, in both forms, and where each layer's output is in the file.
#[derive(Clone, Debug)]
pub struct Imported {
    pub model: QuantModel,
    /// The float model the file represents (dequantized weights and biases).
    pub float: Model,
    /// Per layer of `model`: the index in the file's subgraph of the tensor that layer computes.
    pub tensors: Vec<usize>,
    pub element_type: ElementType,
}

/// The integer type of a file's activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    Uint8,
    Int8,
}

impl ElementType {
    /// The engine's u8 for a raw byte of this type: itself, or the int8 value + 128.
    pub(super) fn to_u8(self, raw: u8) -> u8 {
        match self {
            ElementType::Uint8 => raw,
            ElementType::Int8 => raw ^ 0x80,
        }
    }

    /// The engine's zero point for a zero point of this type, if it is in the type's range.
    fn zero_point(self, zero_point: i64) -> Option<i32> {
        let shifted = match self {
            ElementType::Uint8 => zero_point,
            ElementType::Int8 => zero_point.checked_add(128)?,
        };
        (0..=255).contains(&shifted).then_some(shifted as i32)
    }

    /// How TFLite's kernels for this type multiply the scales.
    pub(super) fn scale_product(self) -> ScaleProduct {
        match self {
            ElementType::Uint8 => ScaleProduct::Float32,
            ElementType::Int8 => ScaleProduct::Float64,
        }
    }

    pub(super) fn code(self) -> i8 {
        match self {
            ElementType::Uint8 => codes::UINT8,
            ElementType::Int8 => codes::INT8,
        }
    }
}

/// Read and import `path`; the model is named after the file's stem.
pub fn load(path: &Path) -> Result<Imported> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let name = path.file_stem().map_or_else(|| "tflite".to_string(), |s| s.to_string_lossy().into_owned());
    from_bytes(&bytes, &name, path)
}

/// Import the TFLite file `bytes`, naming the model `name` and the file `source` in errors.
pub fn from_bytes(bytes: &[u8], name: &str, source: &Path) -> Result<Imported> {
    let fail = |reason: String| Error::ModelFile { file: source.to_path_buf(), reason };
    if bytes.len() < 8 || &bytes[4..8] != b"TFL3" {
        return Err(fail("not a TFLite file: no `TFL3` flatbuffer identifier at bytes 4..8".into()));
    }
    let root = fb::ModelRef::read_as_root(bytes).map_err(|e| fail(format!("malformed TFLite flatbuffer: {e}")))?;
    super::sharing::check(root, bytes.len()).map_err(fail)?;
    let model = fb::Model::try_from(root).map_err(|e| fail(format!("malformed TFLite flatbuffer: {e}")))?;
    if model.version != 3 {
        return Err(fail(format!("TFLite schema version {}, this program reads version 3", model.version)));
    }
    let subgraphs = model.subgraphs.as_deref().unwrap_or_default();
    let [graph] = subgraphs else {
        return Err(fail(format!("{} subgraphs; a MobileNetV1 file has exactly one", subgraphs.len())));
    };
    let file = File { source: source.to_path_buf(), bytes, model: &model, graph };
    file.import(name)
}

/// One file being imported.
struct File<'a> {
    source: PathBuf,
    bytes: &'a [u8],
    model: &'a fb::Model,
    graph: &'a fb::SubGraph,
}

/// A tensor with its parsed quantization.
struct Quantized<'a> {
    index: usize,
    tensor: &'a fb::Tensor,
    scales: Vec<f32>,
    zero_points: Vec<i64>,
}

impl Quantized<'_> {
    fn name(&self) -> &str {
        self.tensor.name.as_deref().unwrap_or("")
    }

    fn shape(&self) -> &[i32] {
        self.tensor.shape.as_deref().unwrap_or_default()
    }
}

/// An activation tensor computed so far: the graph's input or a layer's output (a RESHAPE's output is its
/// input's bytes, so it maps to the same source).
#[derive(Clone, Copy)]
struct Current {
    tensor: usize,
    source: Source,
    shape: Shape,
    params: QuantParams,
}

impl File<'_> {
    fn error(&self, reason: String) -> Error {
        Error::ModelFile { file: self.source.clone(), reason }
    }

    fn tensors(&self) -> &[fb::Tensor] {
        self.graph.tensors.as_deref().unwrap_or_default()
    }

    /// Tensor `index` with its quantization, named `role` in errors.
    fn tensor(&self, index: i32, role: &str) -> Result<Quantized<'_>> {
        let tensor = usize::try_from(index)
            .ok()
            .and_then(|i| self.tensors().get(i).map(|t| (i, t)))
            .ok_or_else(|| self.error(format!("{role} refers to tensor {index}, which does not exist")))?;
        let (index, tensor) = tensor;
        let quantization = tensor.quantization.as_deref();
        let scales = quantization.and_then(|q| q.scale.clone()).unwrap_or_default();
        let zero_points = quantization.and_then(|q| q.zero_point.clone()).unwrap_or_default();
        Ok(Quantized { index, tensor, scales, zero_points })
    }

    /// The constant data of `tensor`: the bytes of its buffer, which must hold exactly `len` bytes.
    fn data(&self, tensor: &Quantized, len: usize) -> Result<&[u8]> {
        let fail = |reason: String| self.error(format!("tensor `{}`: {reason}", tensor.name()));
        let buffers = self.model.buffers.as_deref().unwrap_or_default();
        let buffer = buffers.get(tensor.tensor.buffer as usize).ok_or_else(|| {
            fail(format!("buffer {} does not exist ({} buffers)", tensor.tensor.buffer, buffers.len()))
        })?;
        let data: &[u8] = match &buffer.data {
            Some(data) if !data.is_empty() => data,
            // Files over 2 GB keep buffers outside the flatbuffer, `offset` bytes from the start of the file.
            _ if buffer.offset > 1 => {
                let start = usize::try_from(buffer.offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(usize::try_from(buffer.size).unwrap_or(usize::MAX));
                self.bytes.get(start..end).ok_or_else(|| {
                    fail(format!("its data at bytes {start}..{end} lies outside the file ({} bytes)", self.bytes.len()))
                })?
            }
            _ => &[],
        };
        if data.len() != len {
            return Err(fail(format!("holds {} bytes of data, its shape needs {len}", data.len())));
        }
        Ok(data)
    }

    /// Check that `tensor` is an activation of `element_type`, quantized per tensor, of 4-D shape [1, h, w, c].
    fn activation(&self, tensor: &Quantized, element_type: ElementType) -> Result<(Shape, QuantParams)> {
        let fail = |reason: String| self.error(format!("tensor `{}`: {reason}", tensor.name()));
        self.check_type(tensor, element_type)?;
        let shape = match *tensor.shape() {
            [1, h, w, c] if h > 0 && w > 0 && c > 0 => Shape::new(h as usize, w as usize, c as usize),
            [1, c] if c > 0 => Shape::new(1, 1, c as usize),
            ref other => return Err(fail(format!("shape {other:?} is not [1, height, width, channels]"))),
        };
        // Before anything is sized by it: the per-channel vectors of the next convolution are allocated from c.
        if !shape_in_bounds(shape) {
            return Err(fail(format!(
                "shape {:?} is out of bounds (sides 1 to {MAX_SIDE}, channels 1 to {MAX_CHANNELS})",
                tensor.shape()
            )));
        }
        let (&[scale], &[zero_point]) = (tensor.scales.as_slice(), tensor.zero_points.as_slice()) else {
            return Err(fail(format!(
                "activations need one scale and zero point, it has {} and {}",
                tensor.scales.len(),
                tensor.zero_points.len()
            )));
        };
        let zero_point = element_type
            .zero_point(zero_point)
            .ok_or_else(|| fail(format!("zero point {zero_point} is out of range for its type")))?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(fail(format!("scale {scale} is not a positive number")));
        }
        Ok((shape, QuantParams { scale, zero_point }))
    }

    fn check_type(&self, tensor: &Quantized, element_type: ElementType) -> Result<()> {
        let found = tensor.tensor.type_;
        if found == element_type.code() {
            return Ok(());
        }
        let hint = if found == codes::FLOAT32 {
            "; this is a float model: mnq-gpu runs quantized (uint8 or int8) TFLite models"
        } else {
            ""
        };
        Err(self.error(format!(
            "tensor `{}` is {}, expected {} like the model's input{hint}",
            tensor.name(),
            codes::tensor_type_name(found),
            codes::tensor_type_name(element_type.code()),
        )))
    }

    fn import(&self, name: &str) -> Result<Imported> {
        let inputs = self.graph.inputs.as_deref().unwrap_or_default();
        let outputs = self.graph.outputs.as_deref().unwrap_or_default();
        let (&[input], &[output]) = (inputs, outputs) else {
            return Err(self.error(format!(
                "the graph has {} inputs and {} outputs; MobileNetV1 has one of each",
                inputs.len(),
                outputs.len()
            )));
        };
        let input = self.tensor(input, "the graph's input")?;
        // The activations' type: the input's, or the type a QUANTIZE right after the input changes it to.
        let mut element_type = self.element_type(&input, "the input")?;
        let (input_shape, input_params) = self.activation(&input, element_type)?;
        if input_shape.c != 3 {
            return Err(self.error(format!(
                "the input `{}` has {} channels, not 3 (RGB)",
                input.name(),
                input_shape.c
            )));
        }
        let mut current =
            Current { tensor: input.index, source: Source::Image, shape: input_shape, params: input_params };
        // Every activation computed so far, by tensor index in the file.
        let mut computed: HashMap<usize, Current> = HashMap::from([(input.index, current)]);
        let mut layers = Vec::new();
        let mut float_layers = Vec::new();
        let mut tensors = Vec::new();
        let mut namer = LayerNamer::default();
        let operators = self.graph.operators.as_deref().unwrap_or_default();
        let mut finished = false;
        // Layers copy their weights; operators that reuse one weight tensor could make a small file hold many
        // copies of it, so the copies may not add up to more than the file (a MobileNetV1 reuses none).
        let mut weight_bytes = 0;
        for (position, operator) in operators.iter().enumerate() {
            let code = self.operator_code(operator, position)?;
            let context = OperatorContext { position, name: codes::operator_name(code) };
            let op_inputs = operator.inputs.as_deref().unwrap_or_default();
            let op_outputs = operator.outputs.as_deref().unwrap_or_default();
            let (Some(&first), &[out]) = (op_inputs.first(), op_outputs) else {
                return Err(self.error(format!("{context}: needs an input and exactly one output")));
            };
            if code == codes::QUANTIZE {
                let from = usize::try_from(first).ok().and_then(|i| computed.get(&i).copied()).ok_or_else(|| {
                    self.error(format!("{context}: its input is tensor {first}, which no earlier operator computes"))
                })?;
                let (to, to_type) = self.type_change(&context, from, out)?;
                if from.source == Source::Image && layers.is_empty() {
                    element_type = to_type;
                }
                computed.insert(to.tensor, to);
                current = to;
                continue;
            }
            if finished {
                return Err(self.error(format!("{context}: operators after the SOFTMAX are not supported")));
            }
            let activation_input = |index: i32| {
                usize::try_from(index).ok().and_then(|i| computed.get(&i).copied()).ok_or_else(|| {
                    self.error(format!(
                        "{context}: its input is tensor {index}, which neither the graph's input nor an earlier \
                         operator computes"
                    ))
                })
            };
            let input_activation = activation_input(first)?;
            let output = self.tensor(out, &format!("{context}'s output"))?;
            let (output_shape, output_params) = self.activation(&output, element_type)?;
            let step = Step {
                context: &context,
                operator,
                inputs: op_inputs,
                input: input_activation,
                output_shape,
                output_params,
            };
            let layer = match code {
                codes::CONV_2D | codes::DEPTHWISE_CONV_2D => {
                    Some(self.convolution(&step, code == codes::DEPTHWISE_CONV_2D, element_type, &mut namer)?)
                }
                codes::AVERAGE_POOL_2D => Some(self.average_pool(&step, element_type, &mut namer)?),
                codes::MEAN => Some(self.mean(&step, &mut namer)?),
                codes::ADD => {
                    let &[_, second] = op_inputs else {
                        return Err(self.error(format!("{context}: has {} inputs, ADD needs 2", op_inputs.len())));
                    };
                    Some(self.add(&step, activation_input(second)?, &mut namer)?)
                }
                codes::RESHAPE => {
                    self.reshape(&step)?;
                    None
                }
                codes::SOFTMAX => {
                    self.softmax(&step)?;
                    finished = true;
                    None
                }
                _ => {
                    return Err(self.error(format!(
                        "{context} is not supported: mnq-gpu imports CONV_2D, DEPTHWISE_CONV_2D, ADD, \
                         AVERAGE_POOL_2D, MEAN, RESHAPE, SOFTMAX and QUANTIZE"
                    )))
                }
            };
            let mut source = input_activation.source;
            if let Some((mut qlayer, mut layer)) = layer {
                // A layer that reads the one before it keeps the chain's empty input list.
                let index = layers.len();
                if qlayer.inputs.is_empty() && input_activation.source != Source::previous(index) {
                    qlayer.inputs = vec![input_activation.source];
                }
                if qlayer.inputs == [Source::previous(index)] {
                    qlayer.inputs.clear();
                }
                layer.inputs.clone_from(&qlayer.inputs);
                weight_bytes += qlayer.weights.len();
                if weight_bytes > self.bytes.len() {
                    return Err(self.error(format!(
                        "{context}: the layers up to here hold {weight_bytes} bytes of weights, more than the \
                         file's {}: its operators reuse weight tensors, which a MobileNetV1 does not",
                        self.bytes.len()
                    )));
                }
                source = Source::Layer(index);
                layers.push(qlayer);
                float_layers.push(layer);
                tensors.push(output.index);
            }
            current = Current { tensor: output.index, source, shape: output_shape, params: output_params };
            computed.insert(output.index, current);
        }
        if usize::try_from(output).ok() != Some(current.tensor) {
            return Err(self.error(format!(
                "the graph's output is tensor {output}, not the last operator's output {}",
                current.tensor
            )));
        }
        if let Some(last) = layers.last_mut() {
            if last.op == Op::PointwiseConv2d && last.input_shape.h == 1 && last.input_shape.w == 1 {
                last.op = Op::Classifier;
                last.name = "conv_preds".into();
                let float = float_layers.last_mut().expect("one float layer per layer");
                float.op = Op::Classifier;
                float.name = last.name.clone();
            }
        }
        let mut model = QuantModel {
            name: name.to_string(),
            scheme: super::SCHEME.to_string(),
            input_shape,
            input: input_params,
            layers,
            synthetic: false,
            input_rounding: Default::default(),
        };
        model.validate().map_err(|reason| self.error(format!("not a network the engine runs: {reason}")))?;
        let classes = model.classes();
        let mut float = Model {
            name: name.to_string(),
            input_shape,
            input_range: InputRange::Pixels { scale: input_params.scale, zero_point: input_params.zero_point },
            layers: float_layers,
            // TF-slim's classifiers have a background class first: 1,001 outputs.
            background_class: classes == 1001,
            synthetic: false,
        };
        // A file mnq-gpu exported says what the flatbuffer cannot.
        if let Some(info) = self.metadata()? {
            model.name.clone_from(&info.name);
            model.scheme = info.scheme;
            float.name = info.name;
            float.input_range = info.input_range;
            float.background_class = info.background_class;
        }
        Ok(Imported { model, float, tensors, element_type })
    }

    /// The `mnq_gpu` metadata entry ([`metadata`]), if the file has one.
    fn metadata(&self) -> Result<Option<Metadata>> {
        let entries = self.model.metadata.as_deref().unwrap_or_default();
        let Some(entry) = entries.iter().find(|m| m.name.as_deref() == Some(metadata::NAME)) else {
            return Ok(None);
        };
        let fail = |reason: String| self.error(format!("metadata `{}`: {reason}", metadata::NAME));
        let buffers = self.model.buffers.as_deref().unwrap_or_default();
        let data = buffers
            .get(entry.buffer as usize)
            .and_then(|b| b.data.as_deref())
            .ok_or_else(|| fail(format!("buffer {} does not exist or is empty", entry.buffer)))?;
        Metadata::from_json(data).map(Some).map_err(fail)
    }

    /// The operator code of `operator`: `builtin_code`, or for older files (which hold only codes below 127)
    /// `deprecated_builtin_code`.
    fn operator_code(&self, operator: &fb::Operator, position: usize) -> Result<i32> {
        let codes = self.model.operator_codes.as_deref().unwrap_or_default();
        let code = codes.get(operator.opcode_index as usize).ok_or_else(|| {
            self.error(format!(
                "operator {position}: operator code {} does not exist ({} codes)",
                operator.opcode_index,
                codes.len()
            ))
        })?;
        if let Some(custom) = &code.custom_code {
            return Err(self.error(format!("operator {position}: custom operator `{custom}` is not supported")));
        }
        Ok(code.builtin_code.max(i32::from(code.deprecated_builtin_code)))
    }

    /// CONV_2D (3×3 on the RGB input, or 1×1) or DEPTHWISE_CONV_2D (3×3, depth multiplier 1).
    fn convolution(
        &self,
        step: &Step,
        depthwise: bool,
        element_type: ElementType,
        namer: &mut LayerNamer,
    ) -> Result<(QLayer, Layer)> {
        let context = step.context;
        let fail = |reason: String| self.error(format!("{context}: {reason}"));
        let (ins, outs) = (step.input.shape, step.output_shape);
        let (padding, stride_w, stride_h, activation, dilation) = match (&step.operator.builtin_options, depthwise) {
            (Some(fb::BuiltinOptions::Conv2DOptions(o)), false) => (
                o.padding,
                o.stride_w,
                o.stride_h,
                o.fused_activation_function,
                (o.dilation_w_factor, o.dilation_h_factor),
            ),
            (Some(fb::BuiltinOptions::DepthwiseConv2DOptions(o)), true) => {
                if o.depth_multiplier != 1 && !(o.depth_multiplier == 0 && ins.c == outs.c) {
                    return Err(fail(format!("depth multiplier {} (mnq-gpu runs 1)", o.depth_multiplier)));
                }
                (
                    o.padding,
                    o.stride_w,
                    o.stride_h,
                    o.fused_activation_function,
                    (o.dilation_w_factor, o.dilation_h_factor),
                )
            }
            _ => return Err(fail("missing or mismatched builtin options".into())),
        };
        if dilation != (1, 1) {
            return Err(fail(format!("dilation {dilation:?} is not supported (only 1)")));
        }
        if stride_w != stride_h || !(1..=2).contains(&stride_h) {
            return Err(fail(format!("strides {stride_h}×{stride_w} are not supported (1×1 or 2×2)")));
        }
        let stride = stride_h as usize;
        let padding = match padding {
            codes::SAME => Padding::Same,
            codes::VALID => Padding::Valid,
            other => return Err(fail(format!("unknown padding {other}"))),
        };
        let &[_, weights_index, bias_index] = step.inputs else {
            return Err(fail(format!("has {} inputs, expected input, weights and bias", step.inputs.len())));
        };
        let weights = self.tensor(weights_index, &format!("{context}'s weights"))?;
        let bias = self.tensor(bias_index, &format!("{context}'s bias"))?;
        let kernel_shape: Vec<i32> = weights.shape().to_vec();
        let (op, c_out, kernel_len, quantized_dimension) = match (depthwise, kernel_shape.as_slice()) {
            (true, &[1, 3, 3, c]) if c as usize == ins.c && c as usize == outs.c => {
                (Op::DepthwiseConv2d { stride, padding }, outs.c, 9 * ins.c, 3)
            }
            (false, &[c_out, 3, 3, c_in]) if c_in == 3 && c_in as usize == ins.c && c_out as usize == outs.c => {
                (Op::Conv2d { stride, padding }, outs.c, 9 * ins.c * outs.c, 0)
            }
            (false, &[c_out, 1, 1, c_in]) if c_in as usize == ins.c && c_out as usize == outs.c && stride == 1 => {
                (Op::PointwiseConv2d, outs.c, ins.c * outs.c, 0)
            }
            (_, shape) => {
                return Err(fail(format!(
                    "weights `{}` of shape {shape:?} on input {ins:?} → output {outs:?}: mnq-gpu runs 3×3 \
                     convolutions of the RGB input, 3×3 depthwise and 1×1 convolutions at stride 1",
                    weights.name()
                )))
            }
        };
        let (h, _) = op.window(ins.h);
        let (w, _) = op.window(ins.w);
        if (h, w) != (outs.h, outs.w) {
            return Err(fail(format!(
                "output {}×{} does not follow from input {}×{} at stride {stride} with {padding:?} padding",
                outs.h, outs.w, ins.h, ins.w
            )));
        }
        let weight_params = self.weight_params(&weights, element_type, c_out, quantized_dimension, context)?;
        // TFLite's order, [c_out, kh, kw, c_in] ([1, kh, kw, c] for depthwise), to the engine's [kh, kw, c_in, c_out].
        let raw = self.data(&weights, kernel_len)?;
        let weights_u8: Vec<u8> = if depthwise {
            raw.iter().map(|&b| element_type.to_u8(b)).collect()
        } else {
            let taps = kernel_len / (c_out * ins.c);
            let mut reordered = vec![0u8; kernel_len];
            for co in 0..c_out {
                for tap in 0..taps {
                    for ci in 0..ins.c {
                        reordered[(tap * ins.c + ci) * c_out + co] =
                            element_type.to_u8(raw[(co * taps + tap) * ins.c + ci]);
                    }
                }
            }
            reordered
        };
        let bias_values = self.bias(&bias, c_out, context)?;
        let input = step.input.params;
        let output = step.output_params;
        let mut multipliers = Vec::with_capacity(c_out);
        let mut shifts = Vec::with_capacity(c_out);
        for (c, weight) in weight_params.iter().enumerate() {
            let real = effective_scale(input.scale, weight.scale, output.scale, element_type.scale_product());
            let (multiplier, shift) = quantize_multiplier(real).ok_or_else(|| {
                fail(format!("channel {c}: requantization multiplier {real:e} is out of the range the engine runs"))
            })?;
            multipliers.push(multiplier);
            shifts.push(shift);
        }
        let (act_min, act_max, float_activation) = activation_clamp(activation, output)
            .ok_or_else(|| fail(format!("fused activation {} is not supported", codes::activation_name(activation))))?;
        let name = namer.name(op);
        let qlayer = QLayer {
            name: name.clone(),
            op,
            inputs: Vec::new(),
            add: None,
            input_shape: ins,
            output_shape: outs,
            input,
            output,
            weights: weights_u8,
            weight_scales: weight_params.iter().map(|w| w.scale).collect(),
            weight_zero_points: weight_params.iter().map(|w| w.zero_point).collect(),
            bias: bias_values,
            multipliers,
            shifts,
            act_min,
            act_max: vec![act_max; c_out],
            requant: Requant::Double,
            pool: PoolRounding::HalfUp,
        };
        let bias_scales = self.bias_scales(&bias, &qlayer);
        let float = Layer {
            name,
            op,
            inputs: Vec::new(),
            input_shape: ins,
            output_shape: outs,
            kernel: qlayer.weights.iter().enumerate().map(|(i, &q)| weight_params[i % c_out].dequantize(q)).collect(),
            bias: Some(qlayer.bias.iter().zip(&bias_scales).map(|(&b, &s)| (f64::from(b) * s) as f32).collect()),
            batch_norm: None,
            activation: float_activation,
            clip_max: None,
        };
        Ok((qlayer, float))
    }

    /// Per output channel weight quantization, as the engine's u8 parameters.
    fn weight_params(
        &self,
        weights: &Quantized,
        element_type: ElementType,
        channels: usize,
        quantized_dimension: i32,
        context: &OperatorContext,
    ) -> Result<Vec<QuantParams>> {
        let fail = |reason: String| self.error(format!("{context}: weights `{}`: {reason}", weights.name()));
        self.check_type(weights, element_type)?;
        let per_channel = weights.scales.len() > 1;
        if weights.scales.len() != weights.zero_points.len() || !(weights.scales.len() == 1 || per_channel) {
            return Err(fail(format!("{} scales and {} zero points", weights.scales.len(), weights.zero_points.len())));
        }
        if per_channel {
            let dimension = weights.tensor.quantization.as_ref().map_or(0, |q| q.quantized_dimension);
            if element_type == ElementType::Uint8 {
                return Err(fail("uint8 weights quantized per channel: TFLite's uint8 kernels take one scale".into()));
            }
            if weights.scales.len() != channels || dimension != quantized_dimension {
                return Err(fail(format!(
                    "{} scales along dimension {dimension}; per-channel weights need {channels} along dimension \
                     {quantized_dimension}",
                    weights.scales.len()
                )));
            }
        }
        if element_type == ElementType::Int8 && weights.zero_points.iter().any(|&z| z != 0) {
            return Err(fail("int8 weights must be symmetric (zero point 0), as TFLite's int8 kernels require".into()));
        }
        (0..channels)
            .map(|c| {
                let i = if per_channel { c } else { 0 };
                let scale = weights.scales[i];
                let zero_point = element_type
                    .zero_point(weights.zero_points[i])
                    .ok_or_else(|| fail(format!("zero point {} is out of range", weights.zero_points[i])))?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(fail(format!("scale {scale} is not a positive number")));
                }
                Ok(QuantParams { scale, zero_point })
            })
            .collect()
    }

    /// The int32 bias, one per output channel, within the engine's accumulator budget.
    fn bias(&self, bias: &Quantized, channels: usize, context: &OperatorContext) -> Result<Vec<i32>> {
        let fail = |reason: String| self.error(format!("{context}: bias `{}`: {reason}", bias.name()));
        if bias.tensor.type_ != codes::INT32 {
            return Err(fail(format!("is {}, expected INT32", codes::tensor_type_name(bias.tensor.type_))));
        }
        if bias.shape() != [channels as i32] {
            return Err(fail(format!("shape {:?}, expected [{channels}]", bias.shape())));
        }
        let values: Vec<i32> = self
            .data(bias, 4 * channels)?
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(b) = values.iter().find(|b| i64::from(**b).abs() > BIAS_LIMIT) {
            return Err(fail(format!("value {b} is beyond ±2^30, the range the engine's accumulator budget allows")));
        }
        Ok(values)
    }

    /// The real value of one bias unit per channel: the bias tensor's own scales, or s_in·s_w where it has none.
    fn bias_scales(&self, bias: &Quantized, layer: &QLayer) -> Vec<f64> {
        let channels = layer.output_shape.c;
        (0..channels)
            .map(|c| match bias.scales.as_slice() {
                [] => f64::from(layer.input.scale) * f64::from(layer.weight_scales[c]),
                [scale] => f64::from(*scale),
                scales => f64::from(scales.get(c).copied().unwrap_or(scales[0])),
            })
            .collect()
    }

    /// AVERAGE_POOL_2D over the whole image: the global average pool.
    fn average_pool(&self, step: &Step, element_type: ElementType, namer: &mut LayerNamer) -> Result<(QLayer, Layer)> {
        let context = step.context;
        let fail = |reason: String| self.error(format!("{context}: {reason}"));
        let (ins, outs) = (step.input.shape, step.output_shape);
        let Some(fb::BuiltinOptions::Pool2DOptions(options)) = &step.operator.builtin_options else {
            return Err(fail("missing or mismatched builtin options".into()));
        };
        let whole_image = options.filter_height as usize == ins.h && options.filter_width as usize == ins.w;
        if !whole_image || (outs.h, outs.w, outs.c) != (1, 1, ins.c) {
            return Err(fail(format!(
                "a {}×{} pool of {ins:?} → {outs:?}: mnq-gpu runs the average pool over the whole image",
                options.filter_height, options.filter_width
            )));
        }
        if options.fused_activation_function != codes::NONE {
            return Err(fail(format!(
                "fused activation {} after the pool is not supported",
                codes::activation_name(options.fused_activation_function)
            )));
        }
        if step.output_params != step.input.params {
            return Err(fail(format!(
                "the output's quantization {:?} differs from the input's {:?}; TFLite's uint8 average pool does \
                 not requantize",
                step.output_params, step.input.params
            )));
        }
        let name = namer.name(Op::GlobalAvgPool);
        // TFLite's uint8 pool rounds ties up, its int8 pool away from zero. They differ only on negative exact
        // halves, which only an even count of positions gives; over an odd count the default is kept, so that a
        // model exported as int8 imports back equal.
        let positions = ins.h * ins.w;
        let pool = match element_type {
            ElementType::Int8 if positions % 2 == 0 => PoolRounding::TiesAway,
            _ => PoolRounding::HalfUp,
        };
        let qlayer = QLayer { pool, ..QLayer::global_avg_pool(&name, ins, step.input.params) };
        let float = Layer::global_avg_pool(name, ins);
        Ok((qlayer, float))
    }

    /// The activations' element type of `tensor` (named `role` in errors): uint8 or int8.
    fn element_type(&self, tensor: &Quantized, role: &str) -> Result<ElementType> {
        match tensor.tensor.type_ {
            codes::UINT8 => Ok(ElementType::Uint8),
            codes::INT8 => Ok(ElementType::Int8),
            codes::FLOAT32 => Err(self.error(format!(
                "{role} `{}` is FLOAT32: this is a float model; mnq-gpu runs quantized (uint8 or int8) TFLite models",
                tensor.name()
            ))),
            other => Err(self.error(format!(
                "{role} `{}` is {}; mnq-gpu runs uint8 or int8 models",
                tensor.name(),
                codes::tensor_type_name(other)
            ))),
        }
    }

    /// A QUANTIZE of `from` into tensor `out` that changes only the type, uint8 ↔ int8 with the same scale and the
    /// zero point moved by 128 (TF2's converter at a model's edges): in the engine's u8 (int8 + 128) every value
    /// stays, so no layer runs, and `out` is `from` again. Returns it and its type.
    fn type_change(&self, context: &OperatorContext, from: Current, out: i32) -> Result<(Current, ElementType)> {
        let output = self.tensor(out, &format!("{context}'s output"))?;
        let to_type = self.element_type(&output, &format!("{context}'s output"))?;
        let (shape, params) = self.activation(&output, to_type)?;
        if shape != from.shape || params != from.params {
            return Err(self.error(format!(
                "{context}: a QUANTIZE from {:?} {:?} to {shape:?} {params:?} (in uint8 terms) requantizes; mnq-gpu \
                 reads QUANTIZE only as a change between uint8 and int8 that keeps every value",
                from.shape, from.params
            )));
        }
        Ok((Current { tensor: output.index, ..from }, to_type))
    }

    /// MEAN over height and width (TF2's converter's global pool), with its own output quantization and LiteRT's
    /// arithmetic ([`PoolRounding::TfliteMean`]).
    fn mean(&self, step: &Step, namer: &mut LayerNamer) -> Result<(QLayer, Layer)> {
        let fail = |reason: String| self.error(format!("{}: {reason}", step.context));
        let (ins, outs) = (step.input.shape, step.output_shape);
        let &[_, axis_index] = step.inputs else {
            return Err(fail(format!("has {} inputs, MEAN needs the input and its axes", step.inputs.len())));
        };
        let axis = self.tensor(axis_index, &format!("{}'s axes", step.context))?;
        if axis.tensor.type_ != codes::INT32 || axis.shape() != [2] {
            return Err(fail("its axes are not a constant INT32 tensor of 2 values".into()));
        }
        let axes: Vec<i32> =
            self.data(&axis, 8)?.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if !(axes == [1, 2] || axes == [2, 1]) || (outs.h, outs.w, outs.c) != (1, 1, ins.c) {
            return Err(fail(format!(
                "a mean over axes {axes:?} of {ins:?} → {outs:?}: mnq-gpu runs the mean over height and width"
            )));
        }
        let name = namer.name(Op::GlobalAvgPool);
        let qlayer = QLayer::global_avg_pool_tflite_mean(&name, ins, step.input.params, step.output_params)
            .ok_or_else(|| fail("the ratio of its input and output scales is beyond the engine's range".into()))?;
        let float = Layer::global_avg_pool(name, ins);
        Ok((qlayer, float))
    }

    /// ADD of the step's input and `second`, both [1, h, w, c] of the output's shape, with a fused activation.
    fn add(&self, step: &Step, second: Current, namer: &mut LayerNamer) -> Result<(QLayer, Layer)> {
        let fail = |reason: String| self.error(format!("{}: {reason}", step.context));
        let (first, shape) = (step.input, step.output_shape);
        if first.shape != shape || second.shape != shape {
            return Err(fail(format!(
                "adds {:?} and {:?} into {shape:?}: mnq-gpu adds tensors of one shape (no broadcasting)",
                first.shape, second.shape
            )));
        }
        let Some(fb::BuiltinOptions::AddOptions(options)) = &step.operator.builtin_options else {
            return Err(fail("missing or mismatched builtin options".into()));
        };
        let activation = options.fused_activation_function;
        let (act_min, act_max, float_activation) = activation_clamp(activation, step.output_params)
            .ok_or_else(|| fail(format!("fused activation {} is not supported", codes::activation_name(activation))))?;
        let add = AddStage::tflite(first.params, second.params, step.output_params)
            .ok_or_else(|| fail("the scales of its inputs and output give no multiplier below one".into()))?;
        let name = namer.name(Op::Add);
        let inputs = vec![first.source, second.source];
        let qlayer = QLayer::add(&name, inputs.clone(), shape, first.params, step.output_params, add, act_min, act_max);
        let float = Layer {
            name,
            op: Op::Add,
            inputs,
            input_shape: shape,
            output_shape: shape,
            kernel: Vec::new(),
            bias: None,
            batch_norm: None,
            activation: float_activation,
            clip_max: None,
        };
        Ok((qlayer, float))
    }

    /// RESHAPE of a [1, 1, 1, c] tensor to [1, c] (or back): the same bytes, so no layer.
    fn reshape(&self, step: &Step) -> Result<()> {
        let (ins, outs) = (step.input.shape, step.output_shape);
        if ins.h * ins.w != 1 || outs != ins || step.output_params != step.input.params {
            return Err(self.error(format!(
                "{}: a reshape of {ins:?} to {outs:?} (or with another quantization): mnq-gpu reshapes only 1×1×c \
                 tensors, which keeps their bytes",
                step.context
            )));
        }
        Ok(())
    }

    /// The final SOFTMAX: mnq-gpu's int8 pipeline ends at the uint8 logits before it, and the probabilities are
    /// the softmax of the dequantized logits.
    fn softmax(&self, step: &Step) -> Result<()> {
        let Some(fb::BuiltinOptions::SoftmaxOptions(options)) = &step.operator.builtin_options else {
            return Err(self.error(format!("{}: missing or mismatched builtin options", step.context)));
        };
        if options.beta != 1.0 || step.output_shape != step.input.shape {
            return Err(self.error(format!(
                "{}: a softmax with beta {} of {:?} → {:?} (mnq-gpu takes beta 1 over the logits)",
                step.context, options.beta, step.input.shape, step.output_shape
            )));
        }
        Ok(())
    }
}

/// The fused activation as TFLite's `CalculateActivationRangeQuantized` computes it, in the engine's u8 domain:
/// (act_min, act_max, the float activation), with [`QuantParams::activation_bound`].
pub(super) fn activation_clamp(activation: i8, output: QuantParams) -> Option<(u8, u8, Activation)> {
    match activation {
        codes::NONE => Some((0, 255, Activation::None)),
        codes::RELU => Some((output.activation_bound(0.0), 255, Activation::Relu)),
        codes::RELU6 => Some((output.activation_bound(0.0), output.activation_bound(6.0), Activation::Relu6)),
        _ => None,
    }
}

/// Where an operator is in the file, for errors: `operator 3 (DEPTHWISE_CONV_2D)`.
struct OperatorContext {
    position: usize,
    name: String,
}

impl std::fmt::Display for OperatorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "operator {} ({})", self.position, self.name)
    }
}

/// One operator being imported: its input activation and its output.
struct Step<'a> {
    context: &'a OperatorContext,
    operator: &'a fb::Operator,
    inputs: &'a [i32],
    input: Current,
    output_shape: Shape,
    output_params: QuantParams,
}

/// The layer names of the TF.js MobileNetV1 (`conv1`, `conv_dw_1`, `conv_pw_1`, …), so that reports line the two
/// kinds of model up; the classifier is renamed `conv_preds` once it is known to be last.
#[derive(Default)]
pub(crate) struct LayerNamer {
    depthwise: usize,
    pointwise: usize,
    adds: usize,
    others: usize,
}

impl LayerNamer {
    pub(crate) fn name(&mut self, op: Op) -> String {
        match op {
            Op::Conv2d { .. } if self.others == 0 && self.depthwise == 0 => {
                self.others += 1;
                "conv1".into()
            }
            Op::DepthwiseConv2d { .. } => {
                self.depthwise += 1;
                format!("conv_dw_{}", self.depthwise)
            }
            Op::PointwiseConv2d | Op::Classifier => {
                self.pointwise += 1;
                format!("conv_pw_{}", self.pointwise)
            }
            Op::GlobalAvgPool => "global_average_pooling2d_1".into(),
            Op::Add => {
                self.adds += 1;
                format!("add_{}", self.adds)
            }
            Op::Conv2d { .. } => {
                self.others += 1;
                format!("conv_{}", self.others)
            }
        }
    }
}
