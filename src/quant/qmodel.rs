//! The quantized model: what the CPU integer reference and the GPU shaders both execute.

use crate::model::{resolve_inputs, Op, Shape, Source};
use crate::quant::fixed_point::{self, Requant};
use crate::quant::QuantParams;
use serde::{Deserialize, Serialize};

/// One integer layer. Every per-channel vector has one entry per output channel; a per-tensor scheme repeats
/// the same value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QLayer {
    pub name: String,
    pub op: Op,
    /// The tensors the op reads, in its operand order; empty for the chain (the previous layer's output, as every
    /// file written before the graph holds), see [`resolve_inputs`]. Not written when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Source>,
    /// The shape of the first input (every input of an ADD has it).
    pub input_shape: Shape,
    pub output_shape: Shape,
    /// The first input's quantization.
    pub input: QuantParams,
    pub output: QuantParams,
    /// uint8 weights in the float kernel's layout (see [`Op`]); empty for [`Op::GlobalAvgPool`].
    #[serde(skip)]
    pub weights: Vec<u8>,
    pub weight_scales: Vec<f32>,
    pub weight_zero_points: Vec<i32>,
    /// int32 bias with scale input.scale · weight_scales[c] and zero point 0; |bias| ≤ 2^30 except under
    /// [`Requant::Fp32`], where any i32 (ONNX Runtime's files) and the accumulator wraps mod 2^32 as ORT's does.
    #[serde(skip)]
    pub bias: Vec<i32>,
    /// Q31 multipliers and shifts (> 0: left) of input.scale · weight_scales[c] / output.scale, computed as TFLite
    /// does ([`effective_scale`](crate::quant::fixed_point::effective_scale)).
    pub multipliers: Vec<i32>,
    pub shifts: Vec<i32>,
    /// The activation as a clamp in the quantized domain: ReLU6 → [z_out, q(6.0)]. The upper bound is per output
    /// channel because cross-layer equalization rescales each channel's ReLU6 bound (6/s_c); empty for the pool.
    pub act_min: u8,
    pub act_max: Vec<u8>,
    /// How the output stage rounds (`--requant`); files written before it existed hold `double`.
    #[serde(default)]
    pub requant: Requant,
    /// How the global average pool averages ([`PoolRounding`]); `--requant` leaves it as it is. Other ops ignore it.
    /// Not written when it is the default, so files of models without it keep their bytes (and checksum).
    #[serde(default, skip_serializing_if = "PoolRounding::is_half_up")]
    pub pool: PoolRounding,
    /// [`Op::Add`]'s second input and arithmetic; `None` for every other op (and not written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<AddStage>,
}

/// The integer arithmetic of a quantized ADD, TFLite's `ArithmeticParams` as `add.cc`'s `Prepare` forms them for
/// uint8 and int8: each input minus its zero point is shifted left by `left_shift` (20) and scaled by its own
/// multiplier into a common scale 2·max(s1, s2)/2^20; the sum is scaled by the output multiplier, the output zero
/// point added, then clamped. Every multiplier scales by less than one (shift ≤ 0).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddStage {
    /// The quantization of the second input (the first's is [`QLayer::input`]).
    pub second_input: QuantParams,
    pub left_shift: i32,
    pub input1_multiplier: i32,
    pub input1_shift: i32,
    pub input2_multiplier: i32,
    pub input2_shift: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
}

impl AddStage {
    /// TFLite's constants for inputs quantized as `input1` and `input2` and an output as `output` (`add.cc`,
    /// `Prepare`: the doubled larger scale in float32, the ratios in double, `QuantizeMultiplierSmallerThanOneExp`).
    /// None where a ratio cannot be represented (a scale that is not a positive number).
    pub fn tflite(input1: QuantParams, input2: QuantParams, output: QuantParams) -> Option<AddStage> {
        const LEFT_SHIFT: i32 = 20;
        let twice_max_input_scale = f64::from(2.0 * input1.scale.max(input2.scale));
        let real_input1 = f64::from(input1.scale) / twice_max_input_scale;
        let real_input2 = f64::from(input2.scale) / twice_max_input_scale;
        let real_output = twice_max_input_scale / f64::from((1 << LEFT_SHIFT) as f32 * output.scale);
        let smaller_than_one = |real: f64| fixed_point::quantize_multiplier(real).filter(|&(_, shift)| shift <= 0);
        let (input1_multiplier, input1_shift) = smaller_than_one(real_input1)?;
        let (input2_multiplier, input2_shift) = smaller_than_one(real_input2)?;
        let (output_multiplier, output_shift) = smaller_than_one(real_output)?;
        Some(AddStage {
            second_input: input2,
            left_shift: LEFT_SHIFT,
            input1_multiplier,
            input1_shift,
            input2_multiplier,
            input2_shift,
            output_multiplier,
            output_shift,
        })
    }

    /// One output value of u8 inputs `a` and `b` (zero points `z1`, `z2`) under `mode`, before the output zero
    /// point and clamp: TFLite's `AddElementwise`. |a − z1|·2^20 < 2^28, and each scaled input is at most that,
    /// so the sum fits i32.
    pub fn sum(&self, mode: Requant, a: u8, z1: i32, b: u8, z2: i32) -> i32 {
        let scale = |x: i32, multiplier: i32, shift: i32| match mode {
            Requant::Double => fixed_point::multiply_by_quantized_multiplier(x, multiplier, shift),
            Requant::Single => fixed_point::multiply_by_quantized_multiplier_single(x, multiplier, shift),
            Requant::Fp32 => unreachable!("under fp32 ADD runs XNNPACK's arithmetic, XnnpackAdd"),
        };
        let scaled1 = scale((i32::from(a) - z1) << self.left_shift, self.input1_multiplier, self.input1_shift);
        let scaled2 = scale((i32::from(b) - z2) << self.left_shift, self.input2_multiplier, self.input2_shift);
        scale(scaled1 + scaled2, self.output_multiplier, self.output_shift)
    }

    /// XNNPACK's constants for this ADD from a first input quantized as `first` into `output`
    /// ([`XnnpackAdd`]); None where a scale ratio is outside the [2^-10, 2^8) XNNPACK accepts.
    pub fn xnnpack(&self, first: QuantParams, output: QuantParams) -> Option<XnnpackAdd> {
        let (a_ratio, b_ratio) = (first.scale / output.scale, self.second_input.scale / output.scale);
        let in_range = |ratio: f32| (1.0 / 1024.0..256.0).contains(&ratio);
        if !(in_range(a_ratio) && in_range(b_ratio)) {
            return None;
        }
        // The larger ratio's exponent e: shift = 20 − e scales it into [2^20, 2^21), as XNNPACK's
        // `xnn_init_qu8_add_minmax_scalar_params` does, by adding the shift to the float's exponent bits.
        let exponent = ((a_ratio.max(b_ratio).to_bits() >> 23) & 0xff) as i32 - 127;
        let shift = 20 - exponent;
        let multiplier = |ratio: f32| f32::from_bits(ratio.to_bits() + ((shift as u32) << 23)).round_ties_even() as i32;
        let (a_multiplier, b_multiplier) = (multiplier(a_ratio), multiplier(b_ratio));
        let bias = (1i32 << (shift - 1))
            .wrapping_sub(a_multiplier.wrapping_mul(first.zero_point))
            .wrapping_sub(b_multiplier.wrapping_mul(self.second_input.zero_point));
        Some(XnnpackAdd { a_multiplier, b_multiplier, shift, bias })
    }
}

/// XNNPACK's quantized ADD (the `qu8_vadd` kernels), which LiteRT's default path runs: out = (bias + a·a_multiplier +
/// b·b_multiplier) >> shift (arithmetic), before the output zero point and clamp. The multipliers are each input's
/// scale ratio to the output's (float32) times 2^shift, rounded to nearest even; the bias holds the rounding
/// 2^(shift − 1) and both zero points. The sum wraps in i32 as XNNPACK's does. Established against LiteRT's AUTO
/// path: 0 of 432,768 ADD outputs differ on both MobileNetV2 files (docs/mobilenet-v2.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XnnpackAdd {
    pub a_multiplier: i32,
    pub b_multiplier: i32,
    /// In [13, 30].
    pub shift: i32,
    pub bias: i32,
}

impl XnnpackAdd {
    /// One output value of u8 inputs `a` and `b`, before the output zero point and clamp.
    pub fn sum(&self, a: u8, b: u8) -> i32 {
        let acc = self
            .bias
            .wrapping_add(i32::from(a).wrapping_mul(self.a_multiplier))
            .wrapping_add(i32::from(b).wrapping_mul(self.b_multiplier));
        acc >> self.shift
    }
}

/// How the global average pool of n positions turns Σq into its output: a runtime's convention, which
/// `--requant` does not change (the pool is not a layer's output stage in TFLite or ONNX Runtime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolRounding {
    /// (Σq + n/2) / n, ties up, keeping the input's quantization: TFLite's uint8 AVERAGE_POOL_2D
    /// (`reference_ops::AveragePool`).
    #[default]
    HalfUp,
    /// TFLite's int8 AVERAGE_POOL_2D (`reference_integer_ops::AveragePool`), keeping the input's quantization:
    /// s = Σ(q − 128) in the int8 domain, then (s ± n/2) / n truncated, ties away from zero.
    TiesAway,
    /// ONNX Runtime's `com.microsoft.QLinearGlobalAveragePool` (MLAS `MlasQLinearGlobalAveragePoolNhwc`): acc = Σq −
    /// n·z_in, scale = s_in / (s_out · f32(n)) in float32, then [`fixed_point::requantize_fp32`] (ties to even,
    /// + z_out, clamp to [0, 255]); the output has its own quantization.
    Fp32,
    /// TFLite's int8 MEAN over height and width as LiteRT computes it (`reference_ops::QuantizedMeanOrSum`):
    /// [`multiply_by_quantized_multiplier`](fixed_point::multiply_by_quantized_multiplier)(Σq − n·z_in,
    /// multipliers[0], shifts[0]) + z_out, clamped, with 1/n folded into the multiplier of s_in/s_out
    /// ([`fixed_point::mean_multiplier`]); the output has its own quantization. Under `--requant fp32` it is
    /// XNNPACK's MEAN instead, which LiteRT's default path runs: [`PoolRounding::Fp32`]'s arithmetic (measured:
    /// 0 of 3,840 outputs of TF2's MobileNetV2 pool differ, docs/mobilenet-v2.md).
    TfliteMean,
}

impl PoolRounding {
    pub fn is_half_up(&self) -> bool {
        *self == PoolRounding::HalfUp
    }

    pub fn name(self) -> &'static str {
        match self {
            PoolRounding::HalfUp => "half-up",
            PoolRounding::TiesAway => "ties-away",
            PoolRounding::Fp32 => "fp32",
            PoolRounding::TfliteMean => "tflite-mean",
        }
    }
}

impl QLayer {
    /// The quantization of each operand, in the op's order: the input's, and ADD's second input's.
    pub fn input_params(&self) -> Vec<QuantParams> {
        std::iter::once(self.input).chain(self.add.map(|add| add.second_input)).collect()
    }

    /// Channel `c`'s float32 requantization scale, used by [`Requant::Fp32`] ([`fixed_point::fp32_scale`]).
    pub fn fp32_scale(&self, c: usize) -> f32 {
        fixed_point::fp32_scale(self.input.scale, self.weight_scales[c], self.output.scale)
    }

    /// Channel `c`'s output-stage constants as the shaders take them: the Q31 multiplier and shift, or under
    /// [`Requant::Fp32`] the float32 scale as (mantissa, exponent) ([`fixed_point::fp32_parts`]). None for a
    /// float32 scale that is negative or not finite.
    pub fn output_stage(&self, c: usize) -> Option<(i32, i32)> {
        match self.requant {
            Requant::Double | Requant::Single => Some((self.multipliers[c], self.shifts[c])),
            Requant::Fp32 => fixed_point::fp32_parts(self.fp32_scale(c)),
        }
    }

    /// Channel `c`'s output stage: requantize one accumulator under the layer's mode.
    pub fn requantize(&self, c: usize, acc: i32) -> u8 {
        let scale = if self.requant == Requant::Fp32 { self.fp32_scale(c) } else { 0.0 };
        fixed_point::requantize_as(
            self.requant,
            acc,
            self.multipliers[c],
            self.shifts[c],
            scale,
            self.output.zero_point,
            self.act_min,
            self.act_max[c],
        )
    }

    /// Whether the pool requantizes in float32: an ONNX Runtime pool, or a TFLite MEAN under `--requant fp32`
    /// (XNNPACK's).
    pub fn pool_runs_fp32(&self) -> bool {
        match self.pool {
            PoolRounding::Fp32 => true,
            PoolRounding::TfliteMean => self.requant == Requant::Fp32,
            PoolRounding::HalfUp | PoolRounding::TiesAway => false,
        }
    }

    /// The float32 scale of a [`PoolRounding::Fp32`] pool: s_in / (s_out · f32(n)), as MLAS's
    /// `CheckQLinearGlobalAveragePoolScaleAndSize` forms it.
    pub fn pool_scale(&self) -> f32 {
        let positions = (self.input_shape.h * self.input_shape.w) as f32;
        self.input.scale / (self.output.scale * positions)
    }

    /// A layer without weights (a pool or an ADD) from `input_shape` to `output_shape`: no weights, multipliers or
    /// clamp, the default arithmetic; each constructor below sets what its op has.
    fn weightless(name: &str, op: Op, input_shape: Shape, output_shape: Shape, input: QuantParams) -> QLayer {
        QLayer {
            name: name.to_string(),
            op,
            inputs: Vec::new(),
            add: None,
            input_shape,
            output_shape,
            input,
            output: input,
            weights: Vec::new(),
            weight_scales: Vec::new(),
            weight_zero_points: Vec::new(),
            bias: Vec::new(),
            multipliers: Vec::new(),
            shifts: Vec::new(),
            act_min: 0,
            act_max: Vec::new(),
            requant: Requant::Double,
            pool: PoolRounding::HalfUp,
        }
    }

    /// The global average pool: it keeps its input's quantization (TFLite requires it), so it has no weights,
    /// multipliers or clamp.
    pub fn global_avg_pool(name: &str, input_shape: Shape, input: QuantParams) -> QLayer {
        let output_shape = Shape::new(1, 1, input_shape.c);
        QLayer::weightless(name, Op::GlobalAvgPool, input_shape, output_shape, input)
    }

    /// An ADD of `inputs` (two sources) of `shape`, the first quantized as `first`, into `output`, with `add`'s
    /// arithmetic and the activation clamp [act_min, act_max] for every channel.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        name: &str,
        inputs: Vec<Source>,
        shape: Shape,
        first: QuantParams,
        output: QuantParams,
        add: AddStage,
        act_min: u8,
        act_max: u8,
    ) -> QLayer {
        QLayer {
            inputs,
            add: Some(add),
            output,
            act_min,
            act_max: vec![act_max; shape.c],
            ..QLayer::weightless(name, Op::Add, shape, shape, first)
        }
    }

    /// LiteRT's int8 MEAN over height and width ([`PoolRounding::TfliteMean`]), from `input` to `output`: the
    /// multiplier of s_in/s_out (in double, as `PrepareMeanOrSum` forms it) with 1/n folded in
    /// ([`fixed_point::mean_multiplier`]). None where s_in/s_out is beyond the multiplier's range.
    pub fn global_avg_pool_tflite_mean(
        name: &str,
        input_shape: Shape,
        input: QuantParams,
        output: QuantParams,
    ) -> Option<QLayer> {
        let real = f64::from(input.scale) / f64::from(output.scale);
        let (multiplier, shift) = fixed_point::quantize_multiplier(real)?;
        let (multiplier, shift) = fixed_point::mean_multiplier(multiplier, shift, input_shape.h * input_shape.w);
        Some(QLayer {
            output,
            multipliers: vec![multiplier],
            shifts: vec![shift],
            pool: PoolRounding::TfliteMean,
            ..QLayer::global_avg_pool(name, input_shape, input)
        })
    }

    /// ONNX Runtime's global average pool ([`PoolRounding::Fp32`]), from `input` to `output`.
    pub fn global_avg_pool_fp32(name: &str, input_shape: Shape, input: QuantParams, output: QuantParams) -> QLayer {
        QLayer { output, pool: PoolRounding::Fp32, ..QLayer::global_avg_pool(name, input_shape, input) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantModel {
    /// The float model's name, e.g. `mobilenet_v1_0.75_224`.
    pub name: String,
    /// The quantization scheme that produced it, e.g. `tf8`.
    pub scheme: String,
    pub input_shape: Shape,
    /// Quantization of the preprocessed float image.
    pub input: QuantParams,
    pub layers: Vec<QLayer>,
    /// True for seeded random weights (benchmarks only).
    pub synthetic: bool,
    /// How the float input is rounded to its u8 codes ([`InputRounding`]); not written when it is the default.
    #[serde(default, skip_serializing_if = "InputRounding::is_default")]
    pub input_rounding: InputRounding,
}

/// How [`QuantModel::quantize_input`] rounds the preprocessed float image, as the runtime whose file it is does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputRounding {
    /// round(x / s) in f64, ties away from zero, + z ([`QuantParams::quantize`]).
    #[default]
    TiesAway,
    /// ONNX Runtime's QuantizeLinear (MLAS `MlasQuantizeLinear`): x / s in float32, rounded half to even, + z,
    /// clamped. It differs from `ties-away` on exact halves, which the TF-slim input p/127.5 − 1 at a scale of
    /// 2/255 makes common (0.23 % of the pixels of 100 evaluation images).
    Fp32,
}

impl InputRounding {
    pub fn is_default(&self) -> bool {
        *self == InputRounding::TiesAway
    }
}

impl QuantModel {
    /// The tensors layer `index` reads ([`resolve_inputs`]).
    pub fn inputs_of(&self, index: usize) -> Vec<Source> {
        resolve_inputs(index, &self.layers[index].inputs)
    }

    /// Whether every layer reads only the one before it (MobileNetV1).
    pub fn is_chain(&self) -> bool {
        (0..self.layers.len()).all(|i| self.inputs_of(i) == [Source::previous(i)])
    }

    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |layer| layer.output_shape.c)
    }

    /// Quantize a preprocessed float image [h, w, 3] to the model's uint8 input.
    pub fn quantize_input(&self, image: &[f32]) -> Vec<u8> {
        match self.input_rounding {
            InputRounding::TiesAway => image.iter().map(|&x| self.input.quantize(x)).collect(),
            InputRounding::Fp32 => {
                let (scale, zero_point) = (self.input.scale, self.input.zero_point as f32);
                image.iter().map(|&x| ((x / scale).round_ties_even() + zero_point).clamp(0.0, 255.0) as u8).collect()
            }
        }
    }

    /// The requantization mode of the model's layers: the first one's (`with_requant` sets them all alike).
    pub fn requant(&self) -> Requant {
        self.layers.first().map_or(Requant::Double, |layer| layer.requant)
    }

    /// The same model with every layer's output stage rounding under `mode`; its parameters are unchanged.
    pub fn with_requant(mut self, mode: Requant) -> QuantModel {
        for layer in &mut self.layers {
            layer.requant = mode;
        }
        self
    }

    /// Dequantize the logits (the last layer's output).
    pub fn dequantize_logits(&self, logits: &[u8]) -> Vec<f32> {
        let output = self.layers.last().expect("a model has layers").output;
        logits.iter().map(|&q| output.dequantize(q)).collect()
    }
}

/// The largest height or width of any activation, as the TF.js importer takes inputs (1 to 4,096).
pub const MAX_SIDE: usize = 4096;
/// The most channels of any activation, as the TF.js importer takes filters (1 to 65,536).
pub const MAX_CHANNELS: usize = 65_536;

/// Whether every side of `shape` is in bounds, so that the products [`QuantModel::validate`] and the kernels form
/// fit a usize: h·w·c ≤ 2^40, 9·c_in·c_out < 2^36.
pub(crate) fn shape_in_bounds(shape: Shape) -> bool {
    (1..=MAX_SIDE).contains(&shape.h) && (1..=MAX_SIDE).contains(&shape.w) && (1..=MAX_CHANNELS).contains(&shape.c)
}

impl QuantModel {
    /// Check every invariant the integer kernels rely on (shapes chain, vector lengths, parameter ranges), so a
    /// corrupt file is an error rather than a panic or a wrong answer.
    pub fn validate(&self) -> Result<(), String> {
        if self.input_shape.c != 3 || !shape_in_bounds(self.input_shape) || !(0..=255).contains(&self.input.zero_point)
        {
            return Err(format!("bad input shape {:?} or zero point {}", self.input_shape, self.input.zero_point));
        }
        // Per tensor (the image, then each layer's output): its shape and quantization.
        let mut tensors = vec![(self.input_shape, self.input)];
        for (index, layer) in self.layers.iter().enumerate() {
            let fail = |reason: String| Err(format!("layer {}: {reason}", layer.name));
            let sources = self.inputs_of(index);
            if sources.len() != layer.op.arity() {
                return fail(format!("{} inputs, its op reads {}", sources.len(), layer.op.arity()));
            }
            if let Some(source) = sources.iter().find(|s| matches!(s, Source::Layer(j) if *j >= index)) {
                return fail(format!("reads {source:?}, which is not an earlier layer"));
            }
            if layer.add.is_some() != (layer.op == Op::Add) {
                return fail("ADD's arithmetic belongs to ADD layers only".into());
            }
            let operand_params = [Some(layer.input), layer.add.map(|add| add.second_input)];
            for (operand, (&source, params)) in sources.iter().zip(operand_params).enumerate() {
                let (shape, quantization) = tensors[crate::model::tensor_index(source)];
                if layer.input_shape != shape {
                    return fail(format!("input shape {:?} does not match {source:?}'s {shape:?}", layer.input_shape));
                }
                if params != Some(quantization) {
                    return fail(format!("input {operand}'s quantization differs from {source:?}'s output"));
                }
            }
            let (ins, outs) = (layer.input_shape, layer.output_shape);
            // Before any arithmetic on them: the window divides by the stride, the weight count multiplies channels.
            if !shape_in_bounds(outs) || !(1..=2).contains(&layer.op.stride()) {
                return fail(format!(
                    "output shape {outs:?} or stride {} out of bounds (sides 1 to {MAX_SIDE}, channels 1 to \
                     {MAX_CHANNELS}, stride 1 or 2)",
                    layer.op.stride()
                ));
            }
            let (expected_out, weights) = layer.op.output_and_weights(ins, outs.c);
            if outs != expected_out {
                return fail(format!("output shape {outs:?} does not fit op {:?} on {ins:?}", layer.op));
            }
            // The accumulator overflow budgets in cpu_ref hold for at most 16,000 products per output.
            if layer.op.has_weights() && weights / outs.c.max(1) > 16_000 {
                return fail("too many products per output for an i32 accumulator".into());
            }
            if layer.op == Op::Classifier && (ins.h, ins.w) != (1, 1) {
                return fail("the classifier needs a 1×1 input".into());
            }
            match layer.op {
                Op::GlobalAvgPool => {
                    let requantizes = matches!(layer.pool, PoolRounding::Fp32 | PoolRounding::TfliteMean);
                    if !requantizes && layer.output != layer.input {
                        return fail(format!(
                            "a {} average pool must keep its input's quantization",
                            layer.pool.name()
                        ));
                    }
                    // The shader forms Σq − 128·n and Σq − n·z_in in 32 bits: |…| ≤ 255·n < 2^31.
                    if layer.pool != PoolRounding::HalfUp && 255 * ins.h * ins.w >= 1 << 31 {
                        return fail(format!(
                            "a {} pool of {} positions overflows i32",
                            layer.pool.name(),
                            ins.h * ins.w
                        ));
                    }
                    if layer.pool_runs_fp32() {
                        let scale = layer.pool_scale();
                        if !(layer.output.scale > 0.0 && fixed_point::fp32_parts(scale).is_some()) {
                            return fail(format!("the pool's float32 scale {scale} cannot requantize"));
                        }
                    }
                    let mean_stage = (layer.multipliers.as_slice(), layer.shifts.as_slice());
                    let mean_ok = matches!(mean_stage, (&[m], &[s]) if m >= 0 && (-31..=30).contains(&s));
                    if (layer.pool == PoolRounding::TfliteMean) != mean_ok {
                        return fail("a MEAN pool has one multiplier and shift in range, other pools none".into());
                    }
                }
                Op::Add => {
                    let add = layer.add.expect("checked above");
                    let pairs = [
                        (add.input1_multiplier, add.input1_shift),
                        (add.input2_multiplier, add.input2_shift),
                        (add.output_multiplier, add.output_shift),
                    ];
                    // |q − z|·2^20 < 2^28, so the shifted inputs and their scaled sum fit i32.
                    if !(0..=20).contains(&add.left_shift)
                        || pairs.iter().any(|&(m, s)| m < 0 || !(-31..=0).contains(&s))
                        || !(0..=255).contains(&add.second_input.zero_point)
                    {
                        return fail("ADD's left shift, a multiplier, shift or zero point is out of range".into());
                    }
                    if layer.requant == Requant::Fp32 && add.xnnpack(layer.input, layer.output).is_none() {
                        return fail(
                            "ADD under fp32: a ratio of its input and output scales is outside [2^-10, 2^8), which \
                             XNNPACK does not run (run it under double or single)"
                                .into(),
                        );
                    }
                }
                Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::PointwiseConv2d | Op::Classifier => {
                    let channels = outs.c;
                    let lengths = [
                        layer.weight_scales.len(),
                        layer.weight_zero_points.len(),
                        layer.bias.len(),
                        layer.multipliers.len(),
                        layer.shifts.len(),
                    ];
                    if layer.weights.len() != weights || lengths.iter().any(|&n| n != channels) {
                        return fail(format!(
                            "{} weights (needs {weights}) or per-channel vectors not of {channels}",
                            layer.weights.len()
                        ));
                    }
                    // Under fp32 a bias may be any int32: quantize_static saturates the biases of dead channels.
                    if layer.weight_zero_points.iter().any(|z| !(0..=255).contains(z))
                        || layer.multipliers.iter().any(|&m| m < 0)
                        || layer.shifts.iter().any(|s| !(-31..=30).contains(s))
                        || (layer.requant != Requant::Fp32
                            && layer.bias.iter().any(|b| i64::from(*b).abs() > super::weights::BIAS_LIMIT))
                    {
                        return fail("a zero point, multiplier, shift or bias is out of range".into());
                    }
                    if let Some(c) = (0..channels).find(|&c| layer.output_stage(c).is_none()) {
                        return fail(format!("channel {c}'s float32 scale {} cannot requantize", layer.fp32_scale(c)));
                    }
                }
            }
            let clamped = layer.op.has_weights() || layer.op == Op::Add;
            let clamp_ok = layer.act_max.iter().all(|&max| max >= layer.act_min)
                && layer.act_max.len() == if clamped { outs.c } else { 0 };
            if !(0..=255).contains(&layer.output.zero_point) || !clamp_ok {
                return fail("output zero point or activation clamp out of range".into());
            }
            tensors.push((outs, layer.output));
        }
        if self.layers.last().map(|l| l.op) != Some(Op::Classifier) {
            return Err("the last layer must be the classifier".into());
        }
        Ok(())
    }
}
