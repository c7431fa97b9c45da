//! Depthwise 3×3 convolution. Mirrors shaders/depthwise_conv2d.wgsl.

use super::{
    check_multiple_of_4, check_weights_len, unsupported, workgroups, Binding, Channel, LayerSetup,
};
use crate::model::same_padding;
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `DepthwiseConv2dParams` in shaders/depthwise_conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DepthwiseConv2dParams {
    pub input_height: u32,
    pub input_width: u32,
    pub output_height: u32,
    pub output_width: u32,
    pub words: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub _padding: u32,
}
const _: () = assert!(size_of::<DepthwiseConv2dParams>() == 48);

pub(super) const BINDINGS: &[Binding] = &[
    Binding::Params,
    Binding::Input,
    Binding::Output,
    Binding::Weights,
    Binding::Channels,
];

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs, stride) = (layer.input_shape, layer.output_shape, layer.op.stride());
    check_multiple_of_4(layer, "the input", ins.c)?;
    check_weights_len(layer, 9 * outs.c)?;
    let (output_height, pad_top) = same_padding(ins.h, 3, stride);
    let (output_width, pad_left) = same_padding(ins.w, 3, stride);
    if (output_height, output_width, ins.c) != (outs.h, outs.w, outs.c) {
        return Err(unsupported(
            layer,
            format!("output {outs:?} is not the SAME depthwise convolution of {ins:?}"),
        ));
    }
    // The CPU layout [3][3][c] is already channels-last: pack it as is, [3][3][words].
    let weights = super::pack_u8x4(layer.weights.iter().copied(), 0);
    let channels = (0..outs.c)
        .map(|c| Channel {
            bias: layer.bias[c],
            multiplier: layer.multipliers[c],
            shift: layer.shifts[c],
            weight_zero_point: layer.weight_zero_points[c],
            weight_sum: (0..9)
                .map(|tap| i32::from(layer.weights[tap * outs.c + c]))
                .sum(),
            act_max: i32::from(layer.act_max[c]),
        })
        .collect();
    let params = DepthwiseConv2dParams {
        input_height: ins.h as u32,
        input_width: ins.w as u32,
        output_height: outs.h as u32,
        output_width: outs.w as u32,
        words: (outs.c / 4) as u32,
        stride: stride as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        input_zero_point: layer.input.zero_point,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
        _padding: 0,
    };
    Ok(LayerSetup {
        stem: "depthwise_conv2d",
        bindings: BINDINGS,
        params: bytemuck::bytes_of(&params).to_vec(),
        weights,
        channels,
        textures: None,
        workgroups: [workgroups(outs.h * outs.w), (outs.c / 4) as u32],
    })
}
