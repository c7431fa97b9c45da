//! Elementwise ADD of two activations. Mirrors shaders/add.wgsl.

use super::{activation_texels, unsupported, workgroups, LayerSetup};
use crate::gpu::shaders::Kernel;
use crate::quant::{QLayer, Requant, XnnpackAdd};
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `AddParams` in shaders/add.wgsl; the constants of [`AddStage`](crate::quant::AddStage).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AddParams {
    pub width_texels: u32,
    pub height: u32,
    pub input1_zero_point: i32,
    pub input2_zero_point: i32,
    pub output_zero_point: i32,
    pub left_shift: u32,
    pub input1_multiplier: i32,
    pub input1_shift: i32,
    pub input2_multiplier: i32,
    pub input2_shift: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub act_min: i32,
    pub act_max: i32,
    /// fp32: XNNPACK's constants ([`XnnpackAdd`]).
    pub xnnpack_a_multiplier: i32,
    pub xnnpack_b_multiplier: i32,
    pub xnnpack_shift: u32,
    pub xnnpack_bias: i32,
}
const _: () = assert!(size_of::<AddParams>() == 72);

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let Some(add) = layer.add else {
        return Err(unsupported(layer, "an ADD layer without its arithmetic"));
    };
    if layer.output_shape != layer.input_shape {
        return Err(unsupported(layer, format!("ADD maps {:?} to {:?}", layer.input_shape, layer.output_shape)));
    }
    let xnnpack = match layer.requant {
        Requant::Fp32 => add.xnnpack(layer.input, layer.output).ok_or_else(|| {
            unsupported(layer, "ADD under fp32: a scale ratio is outside [2^-10, 2^8), which XNNPACK does not run")
        })?,
        Requant::Double | Requant::Single => XnnpackAdd { a_multiplier: 0, b_multiplier: 0, shift: 0, bias: 0 },
    };
    // TFLite clamps a whole tensor to one range; the shader takes one upper bound.
    let act_max = layer.act_max.first().copied().unwrap_or(255);
    if layer.act_max.iter().any(|&m| m != act_max) {
        return Err(unsupported(layer, "ADD with per-channel clamp bounds"));
    }
    if !(0..=255).contains(&add.second_input.zero_point) {
        return Err(unsupported(
            layer,
            format!("second input zero point {} is outside [0, 255]", add.second_input.zero_point),
        ));
    }
    if !(0..=20).contains(&add.left_shift) {
        return Err(unsupported(layer, format!("left shift {} is outside [0, 20]", add.left_shift)));
    }
    let [width_texels, height] = activation_texels(layer.output_shape);
    let params = AddParams {
        width_texels: width_texels as u32,
        height: height as u32,
        input1_zero_point: layer.input.zero_point,
        input2_zero_point: add.second_input.zero_point,
        output_zero_point: layer.output.zero_point,
        left_shift: add.left_shift as u32,
        input1_multiplier: add.input1_multiplier,
        input1_shift: add.input1_shift,
        input2_multiplier: add.input2_multiplier,
        input2_shift: add.input2_shift,
        output_multiplier: add.output_multiplier,
        output_shift: add.output_shift,
        act_min: i32::from(layer.act_min),
        act_max: i32::from(act_max),
        xnnpack_a_multiplier: xnnpack.a_multiplier,
        xnnpack_b_multiplier: xnnpack.b_multiplier,
        xnnpack_shift: xnnpack.shift as u32,
        xnnpack_bias: xnnpack.bias,
    };
    Ok(LayerSetup {
        requant: layer.requant,
        kernel: Kernel::Add,
        params: bytemuck::bytes_of(&params).to_vec(),
        constants: None,
        per_image: true,
        workgroups: [workgroups(width_texels * height), 1],
    })
}
