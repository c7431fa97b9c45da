//! Asymmetric uint8 quantization parameters: real = scale · (q − zero_point); fewer-bit codes are a sub-range of u8.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QuantParams {
    /// gemmlowp `ChooseQuantizationParams` (doc/quantization_example.cc) for uint8: the range is first extended to
    /// include 0, then the zero point is nudged to an integer in [0, 255] so that 0.0 is exactly representable.
    /// A degenerate range (min = max = 0) gets scale 1, zero point 0.
    pub fn from_range(min: f32, max: f32) -> QuantParams {
        QuantParams::from_range_levels(min, max, 255)
    }

    /// [`QuantParams::from_range`] for the codes [0, `qmax`] (b-bit weights: `qmax` = 2^b − 1): scale
    /// (max − min)/qmax, the zero point nudged into [0, qmax]. `qmax` = 255 is `from_range` itself.
    pub fn from_range_levels(min: f32, max: f32, qmax: u8) -> QuantParams {
        let (qmin, qmax) = (0.0f64, f64::from(qmax));
        let min = f64::from(min.min(0.0));
        let max = f64::from(max.max(0.0));
        if max - min <= 0.0 {
            return QuantParams { scale: 1.0, zero_point: 0 };
        }
        let scale = (max - min) / (qmax - qmin);
        let zero_point_from_min = qmin - min / scale;
        let zero_point_from_max = qmax - max / scale;
        let zero_point_from_min_error = qmin.abs() + (min / scale).abs();
        let zero_point_from_max_error = qmax.abs() + (max / scale).abs();
        let zero_point = if zero_point_from_min_error < zero_point_from_max_error {
            zero_point_from_min
        } else {
            zero_point_from_max
        };
        let nudged = zero_point.round().clamp(qmin, qmax) as i32;
        QuantParams { scale: scale as f32, zero_point: nudged }
    }

    /// round(x / scale) + zero_point, clamped to [0, 255].
    pub fn quantize(&self, x: f32) -> u8 {
        self.quantize_within(x, 0, 255)
    }

    /// round(x / scale) + zero_point, clamped to the codes [`lowest`, `highest`] (those of b-bit weights).
    pub fn quantize_within(&self, x: f32, lowest: u8, highest: u8) -> u8 {
        let q = (f64::from(x) / f64::from(self.scale)).round() + f64::from(self.zero_point);
        q.clamp(f64::from(lowest), f64::from(highest)) as u8
    }

    /// The quantized bound of a fused activation, as TFLite's `CalculateActivationRangeQuantized` computes it:
    /// zero_point + round(x / scale) in float32 (ties away from zero), clamped to [0, 255].
    pub fn activation_bound(&self, x: f32) -> u8 {
        (self.zero_point + (x / self.scale).round() as i32).clamp(0, 255) as u8
    }

    pub fn dequantize(&self, q: u8) -> f32 {
        self.scale * (i32::from(q) - self.zero_point) as f32
    }

    /// The quantized value that represents 0.0.
    pub fn zero(&self) -> u8 {
        self.zero_point as u8
    }
}

/// Running min/max of a tensor over calibration images, or of a set of weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Default for Range {
    fn default() -> Self {
        Range { min: f32::INFINITY, max: f32::NEG_INFINITY }
    }
}

impl Range {
    pub fn of(values: &[f32]) -> Range {
        let mut range = Range::default();
        range.update(values);
        range
    }

    pub fn update(&mut self, values: &[f32]) {
        for &v in values {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    pub fn width(&self) -> f32 {
        self.max - self.min
    }

    pub fn merge(self, other: Range) -> Range {
        Range { min: self.min.min(other.min), max: self.max.max(other.max) }
    }
}
