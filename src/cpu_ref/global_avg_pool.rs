//! Global average pool: [h, w, c] → [1, 1, c].

use crate::model::Layer;
use crate::quant::QLayer;

pub fn global_avg_pool_f32(layer: &Layer, input: &[f32]) -> Vec<f32> {
    let c = layer.input_shape.c;
    let count = (layer.input_shape.h * layer.input_shape.w) as f32;
    let mut sum = vec![0.0f32; c];
    for pixel in input.chunks_exact(c) {
        for (s, &x) in sum.iter_mut().zip(pixel) {
            *s += x;
        }
    }
    sum.iter().map(|&s| s / count).collect()
}

/// Integer average with round half up, as TFLite's uint8 AveragePool: (Σq + n/2) / n. The output keeps the
/// input's scale and zero point (the mean of values in a range stays in it), so no requantization is needed.
pub fn global_avg_pool_u8(layer: &QLayer, input: &[u8]) -> Vec<u8> {
    // Overflow budget: Σq ≤ 255·h·w; 255·7·7 = 12,495 here, and i32 holds any h·w ≤ 8.4 million.
    let c = layer.input_shape.c;
    let count = (layer.input_shape.h * layer.input_shape.w) as u32;
    let mut sum = vec![0u32; c];
    for pixel in input.chunks_exact(c) {
        for (s, &q) in sum.iter_mut().zip(pixel) {
            *s += u32::from(q);
        }
    }
    sum.iter().map(|&s| ((s + count / 2) / count) as u8).collect()
}
