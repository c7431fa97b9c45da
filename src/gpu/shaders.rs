//! The WGSL sources and the one place they are composed: `shaders/common.wgsl`, then the inner-product file of
//! an [`InnerProduct`], then one op's file. Each composition is valid WGSL (tests/shaders_are_valid.rs checks
//! every one with naga).

use crate::model::Op;

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

/// The op kernels: each is `shaders/<name>.wgsl`, its entry point, and `src/gpu/ops/<name>.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Conv2d,
    DepthwiseConv2d,
    PointwiseConv2d,
    GlobalAvgPool,
    Add,
}

impl Kernel {
    pub const ALL: [Kernel; 5] =
        [Kernel::Conv2d, Kernel::DepthwiseConv2d, Kernel::PointwiseConv2d, Kernel::GlobalAvgPool, Kernel::Add];

    /// The kernel that runs `op`. The classifier is a 1×1 convolution of one pixel, as in
    /// src/cpu_ref/classifier.rs.
    pub fn of(op: Op) -> Kernel {
        match op {
            Op::Conv2d { .. } => Kernel::Conv2d,
            Op::DepthwiseConv2d { .. } => Kernel::DepthwiseConv2d,
            Op::PointwiseConv2d | Op::Classifier => Kernel::PointwiseConv2d,
            Op::GlobalAvgPool => Kernel::GlobalAvgPool,
            Op::Add => Kernel::Add,
        }
    }

    /// The file stem and entry point: `depthwise_conv2d`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Conv2d => "conv2d",
            Kernel::DepthwiseConv2d => "depthwise_conv2d",
            Kernel::PointwiseConv2d => "pointwise_conv2d",
            Kernel::GlobalAvgPool => "global_avg_pool",
            Kernel::Add => "add",
        }
    }

    /// The op file, on its own (it needs [`COMMON`] and an inner product: [`Kernel::source`]).
    pub fn op_source(self) -> &'static str {
        match self {
            Kernel::Conv2d => include_str!("../../shaders/conv2d.wgsl"),
            Kernel::DepthwiseConv2d => include_str!("../../shaders/depthwise_conv2d.wgsl"),
            Kernel::PointwiseConv2d => include_str!("../../shaders/pointwise_conv2d.wgsl"),
            Kernel::GlobalAvgPool => include_str!("../../shaders/global_avg_pool.wgsl"),
            Kernel::Add => include_str!("../../shaders/add.wgsl"),
        }
    }

    /// The composed module a pipeline of this kernel is built from.
    pub fn source(self, inner: InnerProduct) -> String {
        compose(inner, self.op_source())
    }
}

/// [`COMMON`], then `inner`'s file, then an op's file (`op_source`): a module a pipeline can be built from.
pub fn compose(inner: InnerProduct, op_source: &str) -> String {
    format!("{COMMON}\n{}\n{op_source}", inner.source())
}
