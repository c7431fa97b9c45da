// Global average pool (src/cpu_ref/global_avg_pool.rs): [h, w, c] → [1, 1, c], (Σq + n/2) / n per channel.
// One invocation per packed word (4 channels) of one image. Input [images][pixels][words], output [images][words].

// Mirrors `GlobalAvgPoolParams` in src/gpu/ops/global_avg_pool.rs.
struct GlobalAvgPoolParams {
    // h·w of one image; Σq ≤ 255·pixels fits u32 for any pixels < 16.8 million.
    pixels: u32,
    words: u32,
    _padding: vec2<u32>,
}

@group(0) @binding(0) var<uniform> params: GlobalAvgPoolParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn global_avg_pool(@builtin(global_invocation_id) id: vec3<u32>) {
    let word = id.x;
    if word >= params.words {
        return;
    }
    let base = id.z * params.pixels * params.words + word;
    var sum = vec4<u32>();
    for (var p = 0u; p < params.pixels; p++) {
        sum += unpack_u8x4(input[base + p * params.words]);
    }
    let n = params.pixels;
    output[id.z * params.words + word] = pack_u8x4((sum + n / 2u) / n);
}
