//! The classifier: 1×1 convolution of the pooled features to the logits. Mirrors shaders/classifier.wgsl.

use super::{check_multiple_of_4, check_weights_len, unsupported, workgroups, Binding, LayerSetup};
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `ClassifierParams` in shaders/classifier.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ClassifierParams {
    pub input_words: u32,
    pub output_words: u32,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub _padding: [u32; 3],
}
const _: () = assert!(size_of::<ClassifierParams>() == 32);

pub(super) const BINDINGS: &[Binding] = &[
    Binding::Params,
    Binding::Input,
    Binding::Output,
    Binding::Weights,
    Binding::Channels,
];

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    check_multiple_of_4(layer, "the input", ins.c)?;
    check_multiple_of_4(layer, "the output", outs.c)?;
    check_weights_len(layer, ins.c * outs.c)?;
    if (ins.h, ins.w, outs.h, outs.w) != (1, 1, 1, 1) {
        return Err(unsupported(
            layer,
            format!("the classifier maps [1, 1, c] to [1, 1, classes], not {ins:?} to {outs:?}"),
        ));
    }
    let (weights, channels) = super::pointwise_conv2d::transposed_rows(layer);
    let params = ClassifierParams {
        input_words: (ins.c / 4) as u32,
        output_words: (outs.c / 4) as u32,
        input_zero_point: layer.input.zero_point,
        output_zero_point: layer.output.zero_point,
        act_min: i32::from(layer.act_min),
        _padding: [0; 3],
    };
    Ok(LayerSetup {
        stem: "classifier",
        bindings: BINDINGS,
        params: bytemuck::bytes_of(&params).to_vec(),
        weights,
        channels,
        textures: None,
        workgroups: [workgroups(outs.c / 4), 1],
    })
}
