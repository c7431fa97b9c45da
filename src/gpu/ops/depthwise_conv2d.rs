//! Depthwise 3×3 convolution. Mirrors shaders/depthwise_conv2d.wgsl.

use super::{check_weights_len, groups, unsupported, workgroups, Channel, LayerSetup, WeightsTexture, TEXEL_CHANNELS};
use crate::gpu::shaders::Kernel;
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
    pub groups: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub _padding: u32,
}
const _: () = assert!(size_of::<DepthwiseConv2dParams>() == 48);

/// Output pixels of one row per invocation: `TILE_PIXELS` in the shader.
const TILE_PIXELS: usize = 8;

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs, stride) = (layer.input_shape, layer.output_shape, layer.op.stride());
    check_weights_len(layer, 9 * outs.c)?;
    let (output_height, pad_top) = layer.op.window(ins.h);
    let (output_width, pad_left) = layer.op.window(ins.w);
    if (output_height, output_width, ins.c) != (outs.h, outs.w, outs.c) {
        return Err(unsupported(layer, format!("output {outs:?} is not the {:?} convolution of {ins:?}", layer.op)));
    }
    let groups = groups(outs.c);
    let padded = groups * TEXEL_CHANNELS;
    // w' = w − z_w[c], as i32: texel (4·tap + k, g) holds channels 16g + 4k..16g + 4k + 3 of tap (ky·3 + kx);
    // padded channels 0. The CPU layout is [3][3][c].
    let folded = |tap: usize, c: usize| {
        if c < outs.c {
            i32::from(layer.weights[tap * outs.c + c]) - layer.weight_zero_points[c]
        } else {
            0
        }
    };
    let weights: Vec<i32> = (0..groups)
        .flat_map(|g| (0..9).flat_map(move |tap| (0..16).map(move |j| (tap, 16 * g + j))))
        .map(|(tap, c)| folded(tap, c))
        .collect();
    // acc = bias + Σ(x − z_x)·w' = Σx·w' + (bias − z_x·Σw'): Channel::new with Σw' and z_w 0 gives that offset.
    let channels = (0..padded)
        .map(|c| {
            if c >= outs.c {
                return Channel::PADDING;
            }
            let weight_sum = (0..9).map(|tap| folded(tap, c)).sum();
            Channel { weight_zero_point: 0, ..Channel::new(layer, c, weight_sum, 0) }
        })
        .collect();
    let params = DepthwiseConv2dParams {
        input_height: ins.h as u32,
        input_width: ins.w as u32,
        output_height: outs.h as u32,
        output_width: outs.w as u32,
        groups: groups as u32,
        stride: stride as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        input_zero_point: layer.input.zero_point,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
        _padding: 0,
    };
    let weights = WeightsTexture {
        format: wgpu::TextureFormat::Rgba32Sint,
        size: [36, groups as u32],
        data: bytemuck::cast_slice(&weights).to_vec(),
    };
    Ok(LayerSetup {
        requant: layer.requant,
        kernel: Kernel::DepthwiseConv2d,
        params: bytemuck::bytes_of(&params).to_vec(),
        constants: Some((weights, channels)),
        per_image: true,
        workgroups: [workgroups(outs.h * outs.w.div_ceil(TILE_PIXELS)), groups as u32],
    })
}
