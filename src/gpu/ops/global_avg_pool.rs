//! Global average pool. Mirrors shaders/global_avg_pool.wgsl.

use super::{check_multiple_of_4, unsupported, workgroups, Binding, LayerSetup};
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `GlobalAvgPoolParams` in shaders/global_avg_pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GlobalAvgPoolParams {
    pub pixels: u32,
    pub words: u32,
    pub _padding: [u32; 2],
}
const _: () = assert!(size_of::<GlobalAvgPoolParams>() == 16);

pub(super) const BINDINGS: &[Binding] = &[Binding::Params, Binding::Input, Binding::Output];

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    check_multiple_of_4(layer, "the input", ins.c)?;
    if (outs.h, outs.w, outs.c) != (1, 1, ins.c) {
        return Err(unsupported(
            layer,
            format!(
                "a global average pool maps {ins:?} to [1, 1, {}], not {outs:?}",
                ins.c
            ),
        ));
    }
    let params = GlobalAvgPoolParams {
        pixels: (ins.h * ins.w) as u32,
        words: (ins.c / 4) as u32,
        _padding: [0; 2],
    };
    Ok(LayerSetup {
        stem: "global_avg_pool",
        bindings: BINDINGS,
        params: bytemuck::bytes_of(&params).to_vec(),
        weights: Vec::new(),
        channels: Vec::new(),
        textures: None,
        workgroups: [workgroups(ins.c / 4), 1],
    })
}
