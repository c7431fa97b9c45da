// Depthwise 3×3 convolution, depth multiplier 1, TF SAME padding (src/cpu_ref/depthwise_conv2d.rs). No sum runs
// across channels, so there is nothing for dot4U8Packed to do: both inner-product paths run this same code.
// With w' = w − z_w[c] and taps outside the image reading x = z_x (their products (x − z_x)·w' are 0):
//   acc[c] = bias[c] + Σ_9 (x − z_x)·w' = Σ_9 x·w' + offset[c],   offset[c] = bias[c] − z_x·Σ_9 w'.
// Each invocation computes TILE_PIXELS consecutive pixels of one output row × 16 channels.
// Activations: texel (x·groups + g, image·h + y) holds channels 16g..16g + 15 of pixel (y, x).
// Weights: rgba32sint texel (4·tap + k, g), tap = 3·ky + kx, holds w' of channels 16g + 4k..16g + 4k + 3.
// Channels: texel (0, c), `Channel` with offset as above and weight_zero_point 0.
// Dispatch (output rows × row tiles, groups, images).

// Mirrors `DepthwiseConv2dParams` in src/gpu/ops/depthwise_conv2d.rs.
struct DepthwiseConv2dParams {
    input_height: u32,
    input_width: u32,
    output_height: u32,
    output_width: u32,
    groups: u32,
    stride: u32,
    // SAME padding before the first row and column.
    pad_top: u32,
    pad_left: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    act_min: i32,
    _padding: u32,
}

@group(0) @binding(0) var<uniform> params: DepthwiseConv2dParams;
@group(0) @binding(1) var input: texture_2d<u32>;
@group(0) @binding(2) var output: texture_storage_2d<rgba32uint, write>;
@group(0) @binding(3) var weights: texture_2d<i32>;
@group(0) @binding(4) var channels: texture_2d<i32>;

override WORKGROUP_SIZE: u32 = 64u;
const TILE_PIXELS: u32 = 8u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn depthwise_conv2d(@builtin(global_invocation_id) id: vec3<u32>) {
    let tiles = (params.output_width + TILE_PIXELS - 1u) / TILE_PIXELS;
    let oy = id.x / tiles;
    if oy >= params.output_height {
        return;
    }
    let first = (id.x % tiles) * TILE_PIXELS;
    let g = id.y;
    let image = id.z;
    let groups = params.groups;
    let zero_texel = vec4<u32>(u32(params.input_zero_point) * ONES_U8X4);

    // acc[p][k]: channels 16g + 4k.. of pixel p; |acc| ≤ 2^30 + 9·255² < 2^31 (the true sum; wrapping is exact).
    var acc = array<array<vec4<i32>, 4>, TILE_PIXELS>();
    for (var ky = 0u; ky < 3u; ky++) {
        // Unsigned wrap-around makes rows above the image ≥ input_height as well.
        let iy = oy * params.stride + ky - params.pad_top;
        let row_inside = iy < params.input_height;
        let ty = image * params.input_height + min(iy, params.input_height - 1u);
        for (var kx = 0u; kx < 3u; kx++) {
            let tap = 4u * (ky * 3u + kx);
            var w = array<vec4<i32>, 4>();
            for (var k = 0u; k < 4u; k++) {
                w[k] = textureLoad(weights, vec2<u32>(tap + k, g), 0);
            }
            for (var p = 0u; p < TILE_PIXELS; p++) {
                let ix = (first + p) * params.stride + kx - params.pad_left;
                let inside = row_inside && ix < params.input_width;
                let loaded = textureLoad(input, vec2<u32>(min(ix, params.input_width - 1u) * groups + g, ty), 0);
                let xb = unpack_texel(select(zero_texel, loaded, inside));
                for (var k = 0u; k < 4u; k++) {
                    acc[p][k] += vec4<i32>(xb[k]) * w[k];
                }
            }
        }
    }

    let channel = g * 16u;
    var q = array<array<u32, 16>, TILE_PIXELS>();
    for (var j = 0u; j < 16u; j++) {
        let c = channel_from_texel(textureLoad(channels, vec2<u32>(0u, channel + j), 0));
        for (var p = 0u; p < TILE_PIXELS; p++) {
            q[p][j] = requantize_channel(acc[p][j / 4u][j % 4u] + c.offset, c, params.output_zero_point, params.act_min);
        }
    }
    let row = image * params.output_height + oy;
    for (var p = 0u; p < TILE_PIXELS; p++) {
        let ox = first + p;
        if ox >= params.output_width {
            break;
        }
        textureStore(output, vec2<u32>(ox * groups + g, row), pack_texel(q[p]));
    }
}
