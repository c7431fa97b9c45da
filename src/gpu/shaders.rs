//! The WGSL sources and the one place they are composed: `shaders/common.wgsl`, then the inner-product file of
//! an [`InnerProduct`], then one op's file. Each composition is valid WGSL (tests/shaders_are_valid.rs checks
//! every one with naga).

/// Packing helpers, `requantize` and the per-channel `Channel` struct shared by every op. It calls `dot_u8x4`,
/// which the inner-product file defines.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// How the op shaders compute a sum of products of packed u8: which file defines `dot_u8x4`. Both are
/// bit-exact; they differ only in speed and in what the adapter's WGSL offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InnerProduct {
    /// Unpack each word with shifts and masks, then an integer `dot` (shaders/dot_u8x4_unpack.wgsl): plain WGSL.
    Unpack,
    /// The WGSL built-in `dot4U8Packed` (shaders/dot_u8x4_dot4.wgsl): needs the
    /// `packed_4x8_integer_dot_product` language feature, which some browsers lack.
    Dot4,
}

impl InnerProduct {
    pub const ALL: [InnerProduct; 2] = [InnerProduct::Unpack, InnerProduct::Dot4];
    /// The default path where the adapter has it: Dot4. On llvmpipe (2 shared cores) with texture activations
    /// the two are within noise: 0.75×224 batch 8 485 vs 490 ms, 1.0×224 711 vs 709 ms (`cargo bench --bench
    /// gpu`, Dot4 vs Unpack). `GpuContext::inner_product` falls back to Unpack where Dot4 is missing.
    pub const FASTEST: InnerProduct = InnerProduct::Dot4;

    /// The file that defines `dot_u8x4` for this path.
    pub fn source(self) -> &'static str {
        match self {
            InnerProduct::Unpack => include_str!("../../shaders/dot_u8x4_unpack.wgsl"),
            InnerProduct::Dot4 => include_str!("../../shaders/dot_u8x4_dot4.wgsl"),
        }
    }
}

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

/// [`COMMON`], then `inner`'s file, then `op_source`: the module a pipeline is built from.
pub fn compose(inner: InnerProduct, op_source: &str) -> String {
    format!("{COMMON}\n{}\n{op_source}", inner.source())
}

/// The composed module of a stem in [`STEMS`].
pub fn source(stem: &str, inner: InnerProduct) -> Option<String> {
    op_source(stem).map(|op| compose(inner, op))
}
