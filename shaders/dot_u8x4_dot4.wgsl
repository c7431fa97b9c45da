// The inner product of `InnerProduct::Dot4` (src/gpu/shaders.rs composes it between common.wgsl and an op file):
// the WGSL built-in of the packed_4x8_integer_dot_product language feature. Exact, like dot_u8x4_unpack.wgsl.

// Σ x_j·w_j over the four bytes of two words (≤ 4·255² = 260,100), from the packed words.
fn dot_u8x4(x: u32, x_bytes: vec4<u32>, w: u32, w_bytes: vec4<u32>) -> u32 {
    return dot4U8Packed(x, w);
}
