// Global average pool (src/cpu_ref/global_avg_pool.rs): [h, w, c] → [1, 1, c], (Σq + n/2) / n per channel.
// One invocation per texel (16 channels) of one image. Input texel (x·groups + g, image·h + y), output texel
// (g, image).

// Mirrors `GlobalAvgPoolParams` in src/gpu/ops/global_avg_pool.rs.
struct GlobalAvgPoolParams {
    height: u32,
    width: u32,
    groups: u32,
    _padding: u32,
}

@group(0) @binding(0) var<uniform> params: GlobalAvgPoolParams;
@group(0) @binding(1) var input: texture_2d<u32>;
@group(0) @binding(2) var output: texture_storage_2d<rgba32uint, write>;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn global_avg_pool(@builtin(global_invocation_id) id: vec3<u32>) {
    let g = id.x;
    if g >= params.groups {
        return;
    }
    let image = id.z;
    // Σq ≤ 255·h·w fits u32 for any h·w < 16.8 million.
    var sum = array<vec4<u32>, 4>();
    for (var y = 0u; y < params.height; y++) {
        for (var x = 0u; x < params.width; x++) {
            let bytes = unpack_texel(textureLoad(input, vec2<u32>(x * params.groups + g, image * params.height + y), 0));
            for (var k = 0u; k < 4u; k++) {
                sum[k] += bytes[k];
            }
        }
    }
    let n = params.height * params.width;
    var texel = vec4<u32>();
    for (var k = 0u; k < 4u; k++) {
        texel[k] = pack_u8x4((sum[k] + n / 2u) / n);
    }
    textureStore(output, vec2<u32>(g, image), texel);
}
