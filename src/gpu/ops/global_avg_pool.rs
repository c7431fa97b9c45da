//! Global average pool. Mirrors shaders/global_avg_pool.wgsl.

use super::{groups, unsupported, workgroups, LayerSetup};
use crate::gpu::shaders::Kernel;
use crate::quant::fixed_point::fp32_parts;
use crate::quant::{PoolRounding, QLayer};
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `GlobalAvgPoolParams` in shaders/global_avg_pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GlobalAvgPoolParams {
    pub height: u32,
    pub width: u32,
    pub groups: u32,
    /// 0 half-up, 1 ties-away, 2 float32 ([`QLayer::pool_runs_fp32`]), 3 tflite-mean.
    pub rounding: u32,
    /// fp32 and tflite-mean: n·z_in, wrapping (the shader subtracts it from Σq in u32).
    pub input_offset: u32,
    pub output_zero_point: i32,
    /// fp32: the float32 scale [`QLayer::pool_scale`] as (mantissa, exponent) ([`fp32_parts`]); tflite-mean: the
    /// Q31 multiplier and shift (`QLayer::multipliers[0]`, `shifts[0]`).
    pub scale_mantissa: u32,
    pub scale_exponent: i32,
}
const _: () = assert!(size_of::<GlobalAvgPoolParams>() == 32);

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    if (outs.h, outs.w, outs.c) != (1, 1, ins.c) {
        return Err(unsupported(
            layer,
            format!("a global average pool maps {ins:?} to [1, 1, {}], not {outs:?}", ins.c),
        ));
    }
    let positions = (ins.h * ins.w) as u32;
    // The shader's rounding: 0 half-up, 1 ties-away, 2 float32 (ONNX Runtime's pool, XNNPACK's MEAN under fp32),
    // 3 TFLite's MEAN; and its constants.
    let (rounding, (scale_mantissa, scale_exponent)) = match layer.pool {
        PoolRounding::HalfUp => (0, (0, 0)),
        PoolRounding::TiesAway => (1, (0, 0)),
        PoolRounding::Fp32 | PoolRounding::TfliteMean if layer.pool_runs_fp32() => {
            let parts = fp32_parts(layer.pool_scale()).ok_or_else(|| {
                unsupported(layer, format!("the pool's float32 scale {} is not finite", layer.pool_scale()))
            })?;
            (2, parts)
        }
        PoolRounding::Fp32 | PoolRounding::TfliteMean => {
            match (layer.multipliers.as_slice(), layer.shifts.as_slice()) {
                (&[multiplier], &[shift]) if multiplier >= 0 && (-31..=30).contains(&shift) => (3, (multiplier, shift)),
                _ => return Err(unsupported(layer, "a MEAN pool needs one multiplier ≥ 0 and a shift in [−31, 30]")),
            }
        }
    };
    let params = GlobalAvgPoolParams {
        height: ins.h as u32,
        width: ins.w as u32,
        groups: groups(ins.c) as u32,
        rounding,
        input_offset: positions.wrapping_mul(layer.input.zero_point as u32),
        output_zero_point: layer.output.zero_point,
        scale_mantissa: scale_mantissa as u32,
        scale_exponent,
    };
    Ok(LayerSetup {
        requant: layer.requant,
        kernel: Kernel::GlobalAvgPool,
        params: bytemuck::bytes_of(&params).to_vec(),
        constants: None,
        per_image: true,
        workgroups: [workgroups(groups(ins.c)), 1],
    })
}
