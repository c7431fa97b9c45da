//! Standard 3×3 convolution (the first layer). Mirrors shaders/conv2d.wgsl.

use super::{
    check_weights_len, groups, input_words, unsupported, workgroups, Channel, LayerSetup, WeightsTexture,
    TEXEL_CHANNELS,
};
use crate::gpu::shaders::Kernel;
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `Conv2dParams` in shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Conv2dParams {
    pub input_height: u32,
    pub input_width: u32,
    pub input_words: u32,
    pub output_height: u32,
    pub output_width: u32,
    pub output_groups: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub act_min: i32,
}
const _: () = assert!(size_of::<Conv2dParams>() == 48);

/// Output pixels of one row per invocation: `TILE_PIXELS` in the shader.
const TILE_PIXELS: usize = 8;

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs, stride) = (layer.input_shape, layer.output_shape, layer.op.stride());
    check_weights_len(layer, 9 * ins.c * outs.c)?;
    let (output_height, pad_top) = layer.op.window(ins.h);
    let (output_width, pad_left) = layer.op.window(ins.w);
    if (output_height, output_width) != (outs.h, outs.w) {
        return Err(unsupported(layer, format!("output {outs:?} is not the {:?} convolution of {ins:?}", layer.op)));
    }
    let words = input_words(ins);
    let output_groups = groups(outs.c);
    let padded = output_groups * TEXEL_CHANNELS;
    // The word of input channels 4k..4k + 3 of output channel co at `tap`: input channels padded to whole words
    // with the channel's weight zero point; padded output channels 0.
    let word = |co: usize, tap: usize, k: usize| -> [u8; 4] {
        if co >= outs.c {
            return [0; 4];
        }
        std::array::from_fn(|j| {
            let ci = 4 * k + j;
            if ci < ins.c {
                layer.weights[(tap * ins.c + ci) * outs.c + co]
            } else {
                layer.weight_zero_points[co] as u8
            }
        })
    };
    // Texel (tap·words + k, row): word j for output channel 4·row + j.
    let mut weights = Vec::with_capacity(padded * 9 * words * 4);
    for row in 0..padded / 4 {
        for tap in 0..9 {
            for k in 0..words {
                for j in 0..4 {
                    weights.extend(word(4 * row + j, tap, k));
                }
            }
        }
    }
    let terms = (9 * 4 * words) as i32;
    let channels = (0..padded)
        .map(|co| {
            if co >= outs.c {
                return Channel::PADDING;
            }
            let weight_sum = (0..9).flat_map(|tap| (0..words).flat_map(move |k| word(co, tap, k))).map(i32::from).sum();
            Channel::new(layer, co, weight_sum, terms)
        })
        .collect();
    let params = Conv2dParams {
        input_height: ins.h as u32,
        input_width: ins.w as u32,
        input_words: words as u32,
        output_height: outs.h as u32,
        output_width: outs.w as u32,
        output_groups: output_groups as u32,
        stride: stride as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        input_zero_point: layer.input.zero_point,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
    };
    let weights = WeightsTexture {
        format: wgpu::TextureFormat::Rgba32Uint,
        size: [(9 * words) as u32, (padded / 4) as u32],
        data: weights,
    };
    Ok(LayerSetup {
        requant: layer.requant,
        kernel: Kernel::Conv2d,
        params: bytemuck::bytes_of(&params).to_vec(),
        constants: Some((weights, channels)),
        per_image: true,
        workgroups: [workgroups(outs.h * outs.w.div_ceil(TILE_PIXELS)), output_groups as u32],
    })
}
