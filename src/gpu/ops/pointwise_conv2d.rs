//! 1×1 convolution, and the classifier (the same op on one pixel). Mirrors shaders/pointwise_conv2d.wgsl.

use super::{check_weights_len, groups, unsupported, workgroups, Channel, LayerSetup, WeightsTexture, TEXEL_CHANNELS};
use crate::gpu::shaders::Kernel;
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `PointwiseConv2dParams` in shaders/pointwise_conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PointwiseConv2dParams {
    pub width: u32,
    pub pixels: u32,
    pub height: u32,
    pub input_groups: u32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub output_groups: u32,
    pub _padding: u32,
}
const _: () = assert!(size_of::<PointwiseConv2dParams>() == 32);

/// Pixels per invocation: `TILE_PIXELS` in the shader.
const TILE_PIXELS: usize = 4;

pub(super) fn setup(layer: &QLayer, batch: usize) -> Result<LayerSetup> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    check_weights_len(layer, ins.c * outs.c)?;
    if (ins.h, ins.w) != (outs.h, outs.w) {
        return Err(unsupported(layer, format!("a 1×1 convolution cannot map {ins:?} to {outs:?}")));
    }
    let (input_groups, output_groups) = (groups(ins.c), groups(outs.c));
    let row_len = input_groups * TEXEL_CHANNELS;
    // Texel (g, c_out): input channels 16g..16g + 15 of output channel c_out, as [c_out][c_in] bytes; padded input
    // channels hold z_w (their products are 0), padded output channels 0.
    let mut weights = Vec::with_capacity(row_len * output_groups * TEXEL_CHANNELS);
    let mut channels = Vec::with_capacity(output_groups * TEXEL_CHANNELS);
    for co in 0..output_groups * TEXEL_CHANNELS {
        if co >= outs.c {
            weights.resize(weights.len() + row_len, 0);
            channels.push(Channel::PADDING);
            continue;
        }
        let pad = layer.weight_zero_points[co] as u8;
        let row = (0..row_len).map(|ci| if ci < ins.c { layer.weights[ci * outs.c + co] } else { pad });
        let weight_sum: i32 = row.clone().map(i32::from).sum();
        weights.extend(row);
        channels.push(Channel::new(layer, co, weight_sum, row_len as i32));
    }
    // One-pixel images (the classifier) stacked in y are one image of `batch` rows: one dispatch fills every
    // invocation's tile (per image it would use 1 of 4 tile pixels and 1 of 64 lanes). Rows past a run's images
    // hold stale data; their results are never read.
    let per_image = ins.h * ins.w > 1;
    let height = if per_image { ins.h } else { batch };
    let params = PointwiseConv2dParams {
        width: ins.w as u32,
        pixels: (height * ins.w) as u32,
        height: height as u32,
        input_groups: input_groups as u32,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
        output_groups: output_groups as u32,
        _padding: 0,
    };
    let weights = WeightsTexture {
        format: wgpu::TextureFormat::Rgba32Uint,
        size: [input_groups as u32, (output_groups * TEXEL_CHANNELS) as u32],
        data: weights,
    };
    Ok(LayerSetup {
        requant: layer.requant,
        kernel: Kernel::PointwiseConv2d,
        params: bytemuck::bytes_of(&params).to_vec(),
        constants: Some((weights, channels)),
        per_image,
        workgroups: [workgroups((height * ins.w).div_ceil(TILE_PIXELS)), output_groups as u32],
    })
}
