//! The fixed-point helpers against gemmlowp/TFLite golden values and against exact integer formulas.

use mnq_gpu::quant::fixed_point::{
    fp32_parts, fp32_scale, multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_single,
    quantize_multiplier, requantize, requantize_as, rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
    Requant,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Golden values worked out from gemmlowp's fixedpoint.h definitions (see the comment on each).
#[test]
fn saturating_rounding_doubling_high_mul_matches_gemmlowp_golden_values() {
    // The one saturating case.
    assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
    // 2^30 · 2^30 · 2 / 2^32 = 2^29.
    assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
    // 101 · 0.5 = 50.5 rounds up to 51; −101 · 0.5 = −50.5 rounds to −50 (gemmlowp's nudge rounds ties up).
    assert_eq!(saturating_rounding_doubling_high_mul(101, 1 << 30), 51);
    assert_eq!(saturating_rounding_doubling_high_mul(-101, 1 << 30), -50);
    // i32::MAX · i32::MAX / 2^31 = 2^31 − 2 + 2^-31 → 2147483646.
    assert_eq!(saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX), 2_147_483_646);
    assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX), -2_147_483_647);
    assert_eq!(saturating_rounding_doubling_high_mul(0, i32::MAX), 0);
}

#[test]
fn rounding_divide_by_pot_rounds_ties_away_from_zero() {
    assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 → 3
    assert_eq!(rounding_divide_by_pot(-5, 1), -3); // −2.5 → −3
    assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 → 2
    assert_eq!(rounding_divide_by_pot(-6, 2), -2); // −1.5 → −2
    assert_eq!(rounding_divide_by_pot(-7, 2), -2); // −1.75 → −2
    assert_eq!(rounding_divide_by_pot(1, 31), 0);
    assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
    assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
    assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
}

/// TFLite `QuantizeMultiplier`: multiplier in [2^30, 2^31), real = multiplier · 2^shift / 2^31.
#[test]
fn quantize_multiplier_matches_tflite_golden_values() {
    assert_eq!(quantize_multiplier(0.5), Some((1 << 30, 0)));
    assert_eq!(quantize_multiplier(1.0), Some((1 << 30, 1)));
    assert_eq!(quantize_multiplier(0.25), Some((1 << 30, -1)));
    assert_eq!(quantize_multiplier(0.75), Some((1_610_612_736, 0)));
    // 0.1 = 0.8 · 2^-3; round(0.8 · 2^31) = 1717986918.
    assert_eq!(quantize_multiplier(0.1), Some((1_717_986_918, -3)));
    // A fraction that rounds up to 2^31 moves to the next exponent.
    assert_eq!(quantize_multiplier(1.0 - 1e-12), Some((1 << 30, 1)));
    assert_eq!(quantize_multiplier(0.0), Some((0, 0)));
    assert_eq!(quantize_multiplier(1e-12), Some((0, 0))); // below 2^-32: flushed to zero
    assert_eq!(quantize_multiplier(-1.0), None);
    assert_eq!(quantize_multiplier(f64::NAN), None);
    assert_eq!(quantize_multiplier(1e10), None);
}

#[test]
fn multiply_by_quantized_multiplier_matches_worked_examples() {
    // 1000 · 0.5 · 2^-1 = 250.
    assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, -1), 250);
    // 1002 · 0.25 = 250.5 → 251 (away from zero); −1002 · 0.25 → −251.
    // 1001 · 0.25 = 250.25, but gemmlowp rounds twice: 1001 · 0.5 = 500.5 → 501, then 501 / 2 = 250.5 → 251.
    assert_eq!(multiply_by_quantized_multiplier(1001, 1 << 30, -1), 251);
    assert_eq!(multiply_by_quantized_multiplier(1002, 1 << 30, -1), 251);
    assert_eq!(multiply_by_quantized_multiplier(-1002, 1 << 30, -1), -251);
    // A left shift: 3 · 0.5 · 2^2 = 6; it saturates instead of wrapping.
    assert_eq!(multiply_by_quantized_multiplier(3, 1 << 30, 2), 6);
    assert_eq!(multiply_by_quantized_multiplier(1 << 30, 1 << 30, 4), 1 << 30);
    assert_eq!(requantize(1000, 1 << 30, -1, 10, 0, 255), 255);
    assert_eq!(requantize(-1000, 1 << 30, -1, 10, 0, 255), 0);
    assert_eq!(requantize(100, 1 << 30, -1, 10, 0, 255), 35);
    assert_eq!(requantize(100, 1 << 30, -1, 10, 10, 30), 30); // ReLU6 as a clamp
}

/// round(n / 2^31) with ties toward +∞, exactly, in i128: gemmlowp's SRDHM rounding.
fn exact_high_mul(a: i32, b: i32) -> i64 {
    let product = i128::from(a) * i128::from(b) * 2;
    ((product + (1i128 << 31)).div_euclid(1i128 << 32)) as i64
}

#[test]
fn fixed_point_helpers_match_exact_formulas_on_random_values() {
    let mut rng = SmallRng::seed_from_u64(0x5EED_0001);
    for _ in 0..200_000 {
        let a: i32 = rng.random();
        let b: i32 = rng.random();
        let expected = exact_high_mul(a, b).min(i64::from(i32::MAX)) as i32;
        assert_eq!(saturating_rounding_doubling_high_mul(a, b), expected, "srdhm({a}, {b})");

        let x: i32 = rng.random();
        let exponent = rng.random_range(0..=31);
        // x / 2^e is exact in f64 (|x| < 2^31), and f64::round rounds ties away from zero.
        let expected = (f64::from(x) / 2f64.powi(exponent as i32)).round() as i32;
        assert_eq!(rounding_divide_by_pot(x, exponent), expected, "rdbpot({x}, {exponent})");

        // The composite equals the exact product rounded twice, never more than one step from a single rounding.
        let acc = rng.random_range(-(1 << 28)..(1 << 28));
        let real = rng.random_range(1e-6..0.99);
        let (multiplier, shift) = quantize_multiplier(real).expect("in range");
        let result = multiply_by_quantized_multiplier(acc, multiplier, shift);
        let exact = f64::from(acc) * f64::from(multiplier) * 2f64.powi(shift) / 2f64.powi(31);
        assert!((f64::from(result) - exact).abs() <= 1.0, "{acc} · {real}: {result} vs {exact}");
    }
}

#[test]
fn quantize_multiplier_round_trips_within_half_a_unit() {
    let mut rng = SmallRng::seed_from_u64(0x5EED_0002);
    for _ in 0..100_000 {
        let real: f64 = rng.random_range(1e-9..1e3);
        let (multiplier, shift) = quantize_multiplier(real).expect("in range");
        assert!((1 << 30..=i32::MAX).contains(&multiplier), "{real}: multiplier {multiplier}");
        let back = f64::from(multiplier) * 2f64.powi(shift - 31);
        // Half a unit in the last place of a 31-bit mantissa.
        assert!((back - real).abs() <= real * 2f64.powi(-31), "{real} → ({multiplier}, {shift}) = {back}");
    }
}

/// `single` is floor((x·m + 2^(30 − shift)) / 2^(31 − shift)) exactly (TFLite's TFLITE_SINGLE_ROUNDING), checked
/// in i128 on random and extreme values, saturated to i32.
#[test]
fn single_rounding_is_one_rounding_of_the_exact_product() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_0003);
    let extremes = [0, 1, -1, i32::MAX, i32::MIN, 1 << 30, -(1 << 30)];
    for i in 0..200_000 {
        let x = if i < 49 { extremes[i % 7] } else { rng.random() };
        let m = if i < 49 {
            [0, 1, 1 << 30, i32::MAX, 1 << 29, 3, (1 << 20) + 7][i / 7]
        } else {
            rng.random_range(0..=i32::MAX)
        };
        let shift = rng.random_range(-31..=30);
        let total = 31 - shift;
        let exact = (i128::from(x) * i128::from(m) + (1i128 << (total - 1))).div_euclid(1i128 << total);
        let expected = exact.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32;
        assert_eq!(multiply_by_quantized_multiplier_single(x, m, shift), expected, "x {x}, m {m}, shift {shift}");
    }
}

/// Where the modes part. real = 0.25: multiplier 2^30 with shift −1 (the right shift rounds ties away from
/// zero), scale 0.25 for fp32 (ties to even); zero point 100, no clamp.
#[test]
fn the_three_modes_round_differently() {
    let modes = |acc: i32| Requant::ALL.map(|mode| requantize_as(mode, acc, 1 << 30, -1, 0.25, 100, 0, 255));
    // Ties: double rounds away from zero, single toward +∞, fp32 to even.
    assert_eq!(modes(2), [101, 101, 100]); // 0.5
    assert_eq!(modes(-2), [99, 100, 100]); // −0.5
    assert_eq!(modes(-6), [98, 99, 98]); // −1.5
    assert_eq!(modes(10), [103, 103, 102]); // 2.5
                                            // Not a tie, but double's first rounding makes one: 1.25 → 2.5 / 2 → 2.
    assert_eq!(modes(5), [102, 101, 101]);
    // Elsewhere they agree.
    assert_eq!(modes(4), [101, 101, 101]);
    assert_eq!(modes(-9), [98, 98, 98]);
}

/// The first rounding of `double` (SaturatingRoundingDoublingHighMul) can create a tie that the second then
/// rounds away, where `single` rounds the exact product once. real = (2^30 + 1) / 2^31 · 2^-1 ≈ 0.25 + 2^-32.
#[test]
fn double_rounding_can_differ_from_single_rounding_away_from_ties() {
    // x = 1: exact 0.25 + 2^-32 → single 0. double: high_mul(1, 2^30 + 1) = round(0.5 + 2^-31) = 1, then
    // 1 / 2^1 = 0.5 rounds away from zero to 1.
    assert_eq!(multiply_by_quantized_multiplier_single(1, (1 << 30) + 1, -1), 0);
    assert_eq!(multiply_by_quantized_multiplier(1, (1 << 30) + 1, -1), 1);
    // x = 2: exact 0.5 + 2^-31, both 1.
    assert_eq!(multiply_by_quantized_multiplier_single(2, (1 << 30) + 1, -1), 1);
    assert_eq!(multiply_by_quantized_multiplier(2, (1 << 30) + 1, -1), 1);
}

/// A float32 scale splits into (mantissa, exponent) exactly, subnormals included; negative or non-finite
/// scales are refused.
#[test]
fn fp32_parts_rebuild_every_scale_exactly() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_0004);
    for i in 0..100_000u32 {
        let scale = match i % 3 {
            0 => f32::from_bits(rng.random_range(1..0x7f80_0000)),
            1 => f32::from_bits(rng.random_range(1..0x0080_0000)),
            _ => 2f32.powf(rng.random_range(-30.0..8.0)),
        };
        let (mantissa, exponent) = fp32_parts(scale).expect("a positive finite scale");
        assert!((0..1 << 24).contains(&mantissa), "{scale:e}: mantissa {mantissa}");
        assert_eq!(f64::from(mantissa) * 2f64.powi(exponent), f64::from(scale), "{scale:e}");
    }
    assert_eq!(fp32_parts(0.0), Some((0, -149)));
    for bad in [-1.0, f32::INFINITY, f32::NAN, -0.0] {
        assert_eq!(fp32_parts(bad), None, "{bad}");
    }
}

/// XNNPACK's scale is s_in · s_w / s_out with each step in float32, which can differ from the same in double
/// rounded once.
#[test]
fn fp32_scale_rounds_each_step_to_float32() {
    let (input, weight, output) = (0.0078125f32, 0.003_921_568_6, 0.023_529_412);
    assert_eq!(fp32_scale(input, weight, output), (input * weight) / output);
    let mut rng = SmallRng::seed_from_u64(0x5eed_0005);
    let differs = (0..10_000)
        .filter(|_| {
            let (i, w, o) =
                (rng.random_range(1e-3..1.0f32), rng.random_range(1e-4..1e-1f32), rng.random_range(1e-2..1.0f32));
            fp32_scale(i, w, o) != (f64::from(i) * f64::from(w) / f64::from(o)) as f32
        })
        .count();
    assert!(differs > 0, "float32 steps never differed from one rounding in 10,000 random scales");
}

#[test]
fn requant_modes_parse_by_name() {
    for mode in Requant::ALL {
        assert_eq!(mode.to_string().parse::<Requant>().unwrap(), mode);
    }
    let error = "double-rounding".parse::<Requant>().unwrap_err().to_string();
    assert!(error.contains("modes: double, single, fp32"), "{error}");
}
