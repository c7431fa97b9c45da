//! The WGSL sources and the one place they are composed: `shaders/common.wgsl` followed by one op's file.
//! Each op file is valid WGSL after that concatenation (tests/shaders_are_valid.rs checks it with naga).

/// Packing helpers, `requantize` and the per-channel `Channel` struct shared by every op.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// Op stems: each names `shaders/<stem>.wgsl`, its entry point and `src/gpu/ops/<stem>.rs`.
pub const STEMS: [&str; 4] = ["conv2d", "depthwise_conv2d", "pointwise_conv2d", "global_avg_pool"];

/// The op file of a stem in [`STEMS`].
pub fn op_source(stem: &str) -> Option<&'static str> {
    Some(match stem {
        "conv2d" => include_str!("../../shaders/conv2d.wgsl"),
        "depthwise_conv2d" => include_str!("../../shaders/depthwise_conv2d.wgsl"),
        "pointwise_conv2d" => include_str!("../../shaders/pointwise_conv2d.wgsl"),
        "global_avg_pool" => include_str!("../../shaders/global_avg_pool.wgsl"),
        _ => return None,
    })
}

/// [`COMMON`] followed by `op_source`: the module a pipeline is built from.
pub fn compose(op_source: &str) -> String {
    format!("{COMMON}\n{op_source}")
}

/// The composed module of a stem in [`STEMS`].
pub fn source(stem: &str) -> Option<String> {
    op_source(stem).map(compose)
}
