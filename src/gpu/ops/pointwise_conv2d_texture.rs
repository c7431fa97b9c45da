//! 1×1 convolution on rgba32uint textures (16 channels a texel). Mirrors shaders/pointwise_conv2d_texture.wgsl.
//! The plan copies the layer's input buffer into a texture and the output texture back into a buffer; with
//! channels a multiple of 16 the two layouts are the same bytes ([images·h][w·c/16] texels).

use super::{check_weights_len, unsupported, workgroups, Binding, LayerSetup, TextureSetup};
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `PointwiseConv2dTextureParams` in shaders/pointwise_conv2d_texture.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PointwiseConv2dTextureParams {
    pub width: u32,
    pub pixels: u32,
    pub height: u32,
    pub input_groups: u32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub output_groups: u32,
    pub _padding: u32,
}
const _: () = assert!(size_of::<PointwiseConv2dTextureParams>() == 32);

pub(super) const BINDINGS: &[Binding] = &[
    Binding::Params,
    Binding::InputTexture,
    Binding::OutputTexture,
    Binding::WeightsTexture,
    Binding::ChannelsTexture,
];

/// Pixels per invocation: `TILE_PIXELS` in the shader.
const TILE_PIXELS: usize = 8;
/// u8 channels of one rgba32uint texel.
pub(crate) const TEXEL_CHANNELS: usize = 16;

/// Whether the texture variant takes `layer`: channels in whole texels, and image rows whose bytes are a
/// multiple of the 256 a buffer-texture copy needs per row.
pub(super) fn fits(layer: &QLayer) -> bool {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    ins.c.is_multiple_of(TEXEL_CHANNELS)
        && outs.c.is_multiple_of(TEXEL_CHANNELS)
        && (ins.w * ins.c).is_multiple_of(256)
        && (outs.w * outs.c).is_multiple_of(256)
}

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    check_weights_len(layer, ins.c * outs.c)?;
    if (ins.h, ins.w) != (outs.h, outs.w) {
        return Err(unsupported(
            layer,
            format!("a 1×1 convolution cannot map {ins:?} to {outs:?}"),
        ));
    }
    let (input_groups, output_groups) = (ins.c / TEXEL_CHANNELS, outs.c / TEXEL_CHANNELS);
    let input_zero = layer.input.zero_point;
    let terms = ins.c as i32;
    // Texel (g, c_out): input channels 16g..16g + 15 of output channel c_out, as [c_out][c_in] bytes.
    let mut weights = Vec::with_capacity(ins.c * outs.c);
    let mut channels = Vec::with_capacity(outs.c);
    for co in 0..outs.c {
        let row = (0..ins.c).map(|ci| layer.weights[ci * outs.c + co]);
        let weight_sum: i32 = row.clone().map(i32::from).sum();
        weights.extend(row);
        let weight_zero = layer.weight_zero_points[co];
        // bias − z_x·Σw + terms·z_x·z_w: wrapping, as the shader's sum (the true accumulator fits i32).
        let offset = layer.bias[co]
            .wrapping_sub(input_zero.wrapping_mul(weight_sum))
            .wrapping_add(terms.wrapping_mul(input_zero).wrapping_mul(weight_zero));
        channels.push([
            offset,
            layer.multipliers[co],
            layer.shifts[co],
            weight_zero | (i32::from(layer.act_max[co]) << 16),
        ]);
    }
    let params = PointwiseConv2dTextureParams {
        width: ins.w as u32,
        pixels: (ins.h * ins.w) as u32,
        height: ins.h as u32,
        input_groups: input_groups as u32,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
        output_groups: output_groups as u32,
        _padding: 0,
    };
    Ok(LayerSetup {
        stem: "pointwise_conv2d_texture",
        bindings: BINDINGS,
        params: bytemuck::bytes_of(&params).to_vec(),
        weights: super::pack_u8x4(weights.into_iter(), 0),
        channels: Vec::new(),
        textures: Some(TextureSetup {
            weights_size: [input_groups as u32, outs.c as u32],
            channels,
        }),
        workgroups: [
            workgroups((ins.h * ins.w).div_ceil(TILE_PIXELS)),
            output_groups as u32,
        ],
    })
}
