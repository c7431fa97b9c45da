//! 1×1 convolution. Mirrors shaders/pointwise_conv2d.wgsl.

use super::{
    channels_of_rows, check_multiple_of_4, check_weights_len, unsupported, workgroups, Binding,
    LayerSetup,
};
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `PointwiseConv2dParams` in shaders/pointwise_conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PointwiseConv2dParams {
    pub pixels: u32,
    pub input_words: u32,
    pub output_words: u32,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub _padding: [u32; 2],
}
const _: () = assert!(size_of::<PointwiseConv2dParams>() == 32);

pub(super) const BINDINGS: &[Binding] = &[
    Binding::Params,
    Binding::Input,
    Binding::Output,
    Binding::Weights,
    Binding::Channels,
];

/// Pixels per invocation: `TILE_PIXELS` in the shader.
const TILE_PIXELS: usize = 4;

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    check_multiple_of_4(layer, "the input", ins.c)?;
    check_multiple_of_4(layer, "the output", outs.c)?;
    check_weights_len(layer, ins.c * outs.c)?;
    if (ins.h, ins.w) != (outs.h, outs.w) {
        return Err(unsupported(
            layer,
            format!("a 1×1 convolution cannot map {ins:?} to {outs:?}"),
        ));
    }
    let (weights, channels) = transposed_rows(layer);
    let params = PointwiseConv2dParams {
        pixels: (ins.h * ins.w) as u32,
        input_words: (ins.c / 4) as u32,
        output_words: (outs.c / 4) as u32,
        input_zero_point: layer.input.zero_point,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
        _padding: [0; 2],
    };
    Ok(LayerSetup {
        stem: "pointwise_conv2d",
        bindings: BINDINGS,
        params: bytemuck::bytes_of(&params).to_vec(),
        weights,
        channels,
        textures: None,
        workgroups: [
            workgroups((ins.h * ins.w).div_ceil(TILE_PIXELS)),
            (outs.c / 4) as u32,
        ],
    })
}

/// The kernel [c_in][c_out] transposed to packed rows [c_out][c_in / 4], and the per-channel constants.
/// Shared with the classifier.
pub(super) fn transposed_rows(layer: &QLayer) -> (Vec<u32>, Vec<super::Channel>) {
    let (c_in, c_out) = (layer.input_shape.c, layer.output_shape.c);
    let weights: Vec<u32> = (0..c_out)
        .flat_map(|co| super::pack_u8x4((0..c_in).map(move |ci| layer.weights[ci * c_out + co]), 0))
        .collect();
    let channels = channels_of_rows(layer, &weights, c_in / 4);
    (weights, channels)
}
