//! Standard 3×3 convolution (the first layer). Mirrors shaders/conv2d.wgsl.

use super::{
    channels_of_rows, check_multiple_of_4, check_weights_len, unsupported, workgroups, Binding,
    LayerSetup,
};
use crate::model::same_padding;
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
    pub output_words: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub _padding0: u32,
    pub _padding3: u32,
    pub _padding1: u32,
    pub _padding2: u32,
}
const _: () = assert!(size_of::<Conv2dParams>() == 64);

pub(super) const BINDINGS: &[Binding] = &[
    Binding::Params,
    Binding::Input,
    Binding::Output,
    Binding::Weights,
    Binding::Channels,
];

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs, stride) = (layer.input_shape, layer.output_shape, layer.op.stride());
    check_multiple_of_4(layer, "the output", outs.c)?;
    check_weights_len(layer, 9 * ins.c * outs.c)?;
    let (output_height, pad_top) = same_padding(ins.h, 3, stride);
    let (output_width, pad_left) = same_padding(ins.w, 3, stride);
    if (output_height, output_width) != (outs.h, outs.w) {
        return Err(unsupported(
            layer,
            format!("output {outs:?} is not the SAME convolution of {ins:?}"),
        ));
    }
    let input_words = ins.c.div_ceil(4);
    // [c_out][3][3][input_words]: input channels padded to whole words with the channel's weight zero point.
    let row_words = 9 * input_words;
    let weights: Vec<u32> = (0..outs.c)
        .flat_map(|co| {
            let pad = layer.weight_zero_points[co] as u8;
            let bytes = (0..9).flat_map(move |tap| {
                (0..4 * input_words).map(move |ci| {
                    if ci < ins.c {
                        layer.weights[(tap * ins.c + ci) * outs.c + co]
                    } else {
                        pad
                    }
                })
            });
            super::pack_u8x4(bytes.collect::<Vec<_>>().into_iter(), pad)
        })
        .collect();
    let channels = channels_of_rows(layer, &weights, row_words);
    let params = Conv2dParams {
        input_height: ins.h as u32,
        input_width: ins.w as u32,
        input_words: input_words as u32,
        output_height: outs.h as u32,
        output_width: outs.w as u32,
        output_words: (outs.c / 4) as u32,
        stride: stride as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        input_zero_point: layer.input.zero_point,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
        ..Default::default()
    };
    Ok(LayerSetup {
        stem: "conv2d",
        bindings: BINDINGS,
        params: bytemuck::bytes_of(&params).to_vec(),
        weights,
        channels,
        textures: None,
        workgroups: [workgroups(outs.h * outs.w), (outs.c / 4) as u32],
    })
}
