//! Global average pool. Mirrors shaders/global_avg_pool.wgsl.

use super::{groups, unsupported, workgroups, LayerSetup};
use crate::gpu::shaders::Kernel;
use crate::quant::QLayer;
use crate::Result;
use bytemuck::{Pod, Zeroable};

/// Mirrors `GlobalAvgPoolParams` in shaders/global_avg_pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GlobalAvgPoolParams {
    pub height: u32,
    pub width: u32,
    pub groups: u32,
    pub _padding: u32,
}
const _: () = assert!(size_of::<GlobalAvgPoolParams>() == 16);

pub(super) fn setup(layer: &QLayer) -> Result<LayerSetup> {
    let (ins, outs) = (layer.input_shape, layer.output_shape);
    if (outs.h, outs.w, outs.c) != (1, 1, ins.c) {
        return Err(unsupported(
            layer,
            format!("a global average pool maps {ins:?} to [1, 1, {}], not {outs:?}", ins.c),
        ));
    }
    let params =
        GlobalAvgPoolParams { height: ins.h as u32, width: ins.w as u32, groups: groups(ins.c) as u32, _padding: 0 };
    Ok(LayerSetup {
        requant: layer.requant,
        kernel: Kernel::GlobalAvgPool,
        params: bytemuck::bytes_of(&params).to_vec(),
        constants: None,
        per_image: true,
        workgroups: [workgroups(groups(ins.c)), 1],
    })
}
