//! Integer-only requantization, exactly as gemmlowp (`fixedpoint.h`) and TFLite (`MultiplyByQuantizedMultiplier`)
//! define it. This file is the specification the WGSL helper `requantize` in `shaders/common.wgsl` must match;
//! here i64 is allowed, the shader emulates it with 16-bit halves. It also defines the other output stages
//! `--requant` selects ([`Requant`]): one rounding (`single`) and float32 (`fp32`, XNNPACK's).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// gemmlowp `SaturatingRoundingDoublingHighMul`: round(a·b / 2^31), ties away from zero, saturating the one
/// overflowing case (i32::MIN · i32::MIN).
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Division truncates toward zero, as in gemmlowp.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: x / 2^exponent rounded to nearest, ties away from zero. exponent in [0, 31].
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    debug_assert!(exponent <= 31);
    let mask: i32 = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite `MultiplyByQuantizedMultiplier`: x · multiplier · 2^shift / 2^31, with `shift` > 0 a left shift.
/// The left shift saturates (TFLite leaves that overflow undefined; the WGSL side saturates the same way).
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0) as u32;
    let right = (-shift).max(0) as u32;
    let shifted = (i64::from(x) << left).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)
}

/// How the input and weight scales are multiplied in a convolution's real multiplier s_in·s_w/s_out, as TFLite's
/// kernels compute it from the float32 scales of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleProduct {
    /// The product rounded to float32, then divided in double: uint8 kernels (`GetQuantizedConvolutionMultipler`).
    Float32,
    /// Everything in double: int8 kernels, per channel (`PopulateConvolutionQuantizationParams`).
    Float64,
}

/// A convolution's real multiplier s_in·s_w/s_out. The two products differ by up to 2^-24 relatively, which moves
/// about 1 accumulator in 10^4 by one step after requantization.
pub fn effective_scale(input: f32, weight: f32, output: f32, product: ScaleProduct) -> f64 {
    match product {
        ScaleProduct::Float32 => f64::from(input * weight) / f64::from(output),
        ScaleProduct::Float64 => f64::from(input) * f64::from(weight) / f64::from(output),
    }
}

/// TFLite `QuantizeMultiplier`: real = multiplier · 2^shift / 2^31 with multiplier in [2^30, 2^31).
/// Returns (0, 0) for 0. Shifts are kept in [-31, 30]: smaller multipliers round to 0, larger are refused.
pub fn quantize_multiplier(real: f64) -> Option<(i32, i32)> {
    if !real.is_finite() || real < 0.0 {
        return None;
    }
    if real == 0.0 {
        return Some((0, 0));
    }
    let (fraction, mut exponent) = frexp(real);
    let mut q = (fraction * (1i64 << 31) as f64).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        exponent += 1;
    }
    if exponent < -31 {
        return Some((0, 0));
    }
    if exponent > 30 {
        return None;
    }
    Some((q as i32, exponent))
}

/// frexp: real = fraction · 2^exponent with fraction in [0.5, 1).
fn frexp(real: f64) -> (f64, i32) {
    let exponent = real.abs().log2().floor() as i32 + 1;
    let mut fraction = real / 2f64.powi(exponent);
    let mut exponent = exponent;
    // Correct the rare off-by-one of log2 near powers of two.
    if fraction >= 1.0 {
        fraction /= 2.0;
        exponent += 1;
    } else if fraction < 0.5 {
        fraction *= 2.0;
        exponent -= 1;
    }
    (fraction, exponent)
}

/// LiteRT's multiplier of an int8 MEAN over `n` positions (`reference_ops::QuantizedMeanOrSum`): the multiplier and
/// shift of s_in/s_out with 1/n folded in, k = min(⌊log2 n⌋, 32, 31 + shift) bits at a time: ⌊multiplier·2^k / n⌋
/// and shift − k. Σ(q − z_in) times it is the mean at the output scale.
pub fn mean_multiplier(multiplier: i32, shift: i32, n: usize) -> (i32, i32) {
    let n = n.max(1) as i64;
    let k = i64::from(n.ilog2()).min(32).min(31 + i64::from(shift)).max(0);
    (((i64::from(multiplier) << k) / n) as i32, shift - k as i32)
}

/// The whole output stage of every integer layer: scale the i32 accumulator to the output scale, add the output
/// zero point, clamp to [act_min, act_max] (ReLU6 is that clamp in the quantized domain).
pub fn requantize(acc: i32, multiplier: i32, shift: i32, output_zero_point: i32, act_min: u8, act_max: u8) -> u8 {
    let scaled = multiply_by_quantized_multiplier(acc, multiplier, shift).saturating_add(output_zero_point);
    scaled.clamp(i32::from(act_min), i32::from(act_max)) as u8
}

/// How an integer layer's output stage scales its i32 accumulator to the output scale (`--requant`). The
/// integer modes use the Q31 multiplier and shift of [`quantize_multiplier`]; `fp32` uses the float32 scale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requant {
    /// Two roundings, gemmlowp's: SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT (TFLite's reference
    /// kernels, [`multiply_by_quantized_multiplier`]).
    #[default]
    Double,
    /// One rounding of the 64-bit product, ties toward +∞: TFLite built with `TFLITE_SINGLE_ROUNDING`, CMSIS-NN
    /// ([`multiply_by_quantized_multiplier_single`]).
    Single,
    /// Float: round_half_even(f32(acc) · scale), scale = s_in·s_w/s_out in float32 ([`fp32_scale`]), as
    /// XNNPACK's fp32 requantization computes it ([`requantize_fp32`]).
    Fp32,
}

impl Requant {
    pub const ALL: [Requant; 3] = [Requant::Double, Requant::Single, Requant::Fp32];

    pub fn name(self) -> &'static str {
        match self {
            Requant::Double => "double",
            Requant::Single => "single",
            Requant::Fp32 => "fp32",
        }
    }
}

impl fmt::Display for Requant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Requant {
    type Err = Error;

    fn from_str(name: &str) -> Result<Requant> {
        Requant::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| Error::Invalid(format!("unknown requantization mode `{name}`; modes: double, single, fp32")))
    }
}

/// TFLite's `MultiplyByQuantizedMultiplier` under `TFLITE_SINGLE_ROUNDING`: (x · multiplier + 2^(30 − shift))
/// shifted right by 31 − shift, one rounding with ties toward +∞. TFLite leaves a result outside i32 undefined;
/// it saturates here (and in the shader).
pub fn multiply_by_quantized_multiplier_single(x: i32, multiplier: i32, shift: i32) -> i32 {
    debug_assert!((-31..=30).contains(&shift));
    let total_shift = 31 - shift;
    // |x · multiplier| < 2^62 and the rounding term ≤ 2^61: no i64 overflow.
    let product = i64::from(x) * i64::from(multiplier) + (1i64 << (total_shift - 1));
    (product >> total_shift).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The float32 requantization scale of XNNPACK's operators: s_in · s_w / s_out, each step rounded to float32.
pub fn fp32_scale(input: f32, weight: f32, output: f32) -> f32 {
    input * weight / output
}

/// XNNPACK's fp32 requantization: round_half_even(f32(acc) · scale) + zero_point, clamped to [act_min, act_max].
/// Each float step rounds to nearest even (IEEE 754, as Rust's `as f32` and `*` do): the int-to-float
/// conversion of |acc| > 2^24, the product, then the rounding to an integer. Clamping before or after that last
/// rounding is the same, since the bounds are integers.
pub fn requantize_fp32(acc: i32, scale: f32, output_zero_point: i32, act_min: u8, act_max: u8) -> u8 {
    let scaled = (acc as f32 * scale).round_ties_even();
    let (min, max) = (f32::from(act_min) - output_zero_point as f32, f32::from(act_max) - output_zero_point as f32);
    (scaled.clamp(min, max) as i32 + output_zero_point) as u8
}

/// A float32 scale as the shader takes it, (mantissa, exponent) with scale = mantissa · 2^exponent exactly:
/// mantissa < 2^24 (with its implicit bit; a subnormal's has none). None for a negative or non-finite scale.
pub fn fp32_parts(scale: f32) -> Option<(i32, i32)> {
    if !scale.is_finite() || scale.is_sign_negative() {
        return None;
    }
    let bits = scale.to_bits();
    let (exponent_bits, fraction) = ((bits >> 23) as i32, (bits & 0x7f_ffff) as i32);
    Some(match exponent_bits {
        0 => (fraction, -149),
        _ => (fraction | 0x80_0000, exponent_bits - 150),
    })
}

/// One output channel's whole output stage under `mode` (the CPU reference of every op calls this).
#[allow(clippy::too_many_arguments)]
pub fn requantize_as(
    mode: Requant,
    acc: i32,
    multiplier: i32,
    shift: i32,
    scale: f32,
    output_zero_point: i32,
    act_min: u8,
    act_max: u8,
) -> u8 {
    let clamp =
        |scaled: i32| scaled.saturating_add(output_zero_point).clamp(i32::from(act_min), i32::from(act_max)) as u8;
    match mode {
        Requant::Double => requantize(acc, multiplier, shift, output_zero_point, act_min, act_max),
        Requant::Single => clamp(multiply_by_quantized_multiplier_single(acc, multiplier, shift)),
        Requant::Fp32 => requantize_fp32(acc, scale, output_zero_point, act_min, act_max),
    }
}
