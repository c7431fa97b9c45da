// The inner product of `InnerProduct::Unpack` (src/gpu/shaders.rs composes it between common.wgsl and an op
// file): plain WGSL for adapters without the packed_4x8_integer_dot_product language feature. Exact, like
// dot_u8x4_dot4.wgsl.

// Σ x_j·w_j over the four bytes of two words (≤ 4·255² = 260,100), from their bytes (unpacked once by the caller,
// not once per product).
fn dot_u8x4(x: u32, x_bytes: vec4<u32>, w: u32, w_bytes: vec4<u32>) -> u32 {
    return dot(x_bytes, w_bytes);
}
