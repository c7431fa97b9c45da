//! Elementwise ADD of two tensors of one shape (MobileNetV2's residual connections).

use crate::model::Layer;
use crate::quant::{QLayer, Requant, XnnpackAdd};

/// a + b, then the layer's activation (applied by the caller with BatchNorm, which ADD never has).
pub fn add_f32(_layer: &Layer, a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(&x, &y)| x + y).collect()
}

/// The quantized ADD under the layer's requantization mode, then the output zero point and the activation clamp:
/// TFLite's (`reference_ops::AddElementwise`, [`AddStage::sum`](crate::quant::AddStage::sum)) under `double` and
/// `single`, XNNPACK's ([`XnnpackAdd`]) under `fp32`.
pub fn add_u8(layer: &QLayer, a: &[u8], b: &[u8]) -> Vec<u8> {
    let add = layer.add.expect("an ADD layer has its arithmetic (QuantModel::validate)");
    let (z1, z2) = (layer.input.zero_point, add.second_input.zero_point);
    let xnnpack: Option<XnnpackAdd> = (layer.requant == Requant::Fp32)
        .then(|| add.xnnpack(layer.input, layer.output).expect("QuantModel::validate checks XNNPACK's range"));
    let c = layer.output_shape.c;
    let mut out = vec![0u8; a.len()];
    for (pixel, (pa, pb)) in out.chunks_exact_mut(c).zip(a.chunks_exact(c).zip(b.chunks_exact(c))) {
        for (channel, (o, (&x, &y))) in pixel.iter_mut().zip(pa.iter().zip(pb)).enumerate() {
            let sum = match &xnnpack {
                Some(xnnpack) => xnnpack.sum(x, y),
                None => add.sum(layer.requant, x, z1, y, z2),
            };
            let raw = sum.saturating_add(layer.output.zero_point);
            *o = raw.clamp(i32::from(layer.act_min), i32::from(layer.act_max[channel])) as u8;
        }
    }
    out
}
