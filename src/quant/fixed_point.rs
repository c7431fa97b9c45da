//! Integer-only requantization, exactly as gemmlowp (`fixedpoint.h`) and TFLite (`MultiplyByQuantizedMultiplier`)
//! define it. This file is the specification the WGSL helper `requantize` in `shaders/common.wgsl` must match;
//! here i64 is allowed, the shader emulates it with 16-bit halves.

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

/// The whole output stage of every integer layer: scale the i32 accumulator to the output scale, add the output
/// zero point, clamp to [act_min, act_max] (ReLU6 is that clamp in the quantized domain).
pub fn requantize(acc: i32, multiplier: i32, shift: i32, output_zero_point: i32, act_min: u8, act_max: u8) -> u8 {
    let scaled = multiply_by_quantized_multiplier(acc, multiplier, shift).saturating_add(output_zero_point);
    scaled.clamp(i32::from(act_min), i32::from(act_max)) as u8
}
