//! The fixed-point helpers against gemmlowp/TFLite golden values and against exact integer formulas.

use mnq_gpu::quant::fixed_point::{
    multiply_by_quantized_multiplier, quantize_multiplier, requantize, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
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
