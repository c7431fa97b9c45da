// Depthwise 3×3 convolution, depth multiplier 1, TF SAME padding (src/cpu_ref/depthwise_conv2d.rs). No sum runs
// across channels, so there is nothing for dot4U8Packed to do: both inner-product paths run this same code.
// With w' = w − z_w[c] and taps outside the image reading x = z_x (their products (x − z_x)·w' are 0):
//   acc[c] = bias[c] + Σ_9 (x − z_x)·w' = Σ_9 x·w' + offset[c],   offset[c] = bias[c] − z_x·Σ_9 w'.
// Each invocation computes TILE_PIXELS consecutive pixels of one output row × 16 channels, written out rather
// than looped over (see requantize_texel).
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
// Output pixels per invocation, written out one statement each below.
const TILE_PIXELS: u32 = 8u;

// The texel of column ix (of the padded image) in `row`: the zero point's outside the image.
fn load_input(row: InputRow, ix: u32, g: u32) -> vec4<u32> {
    let inside = row.inside && ix < params.input_width;
    let texel = textureLoad(input, vec2<u32>(min(ix, params.input_width - 1u) * params.groups + g, row.ty), 0);
    return select(vec4<u32>(u32(params.input_zero_point) * ONES_U8X4), texel, inside);
}

// acc + one tap's products for one pixel: input texel x times the tap's w' (channel 4k + j in w[k][j]).
fn accumulate_tap(acc: array<vec4<i32>, 4>, x: vec4<u32>, w: array<vec4<i32>, 4>) -> array<vec4<i32>, 4> {
    let xb = unpack_texel(x);
    return array<vec4<i32>, 4>(
        acc[0] + vec4<i32>(xb[0]) * w[0],
        acc[1] + vec4<i32>(xb[1]) * w[1],
        acc[2] + vec4<i32>(xb[2]) * w[2],
        acc[3] + vec4<i32>(xb[3]) * w[3],
    );
}

// Requantize and store output pixel first + p of row `row` unless it is past the row's end.
fn store_pixel(first: u32, p: u32, row: u32, g: u32, acc: array<vec4<i32>, 4>, c: array<Channel, 16>) {
    let ox = first + p;
    if ox >= params.output_width {
        return;
    }
    let q = requantize_texel(acc, 0, c, params.output_zero_point, params.act_min);
    textureStore(output, vec2<u32>(ox * params.groups + g, row), q);
}

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
    let stride = params.stride;

    // acc[p][k]: channels 16g + 4k.. of pixel p; |acc| ≤ 2^30 + 9·255² < 2^31 (the true sum; wrapping is exact).
    var acc = array<array<vec4<i32>, 4>, TILE_PIXELS>();
    for (var ky = 0u; ky < 3u; ky++) {
        let row = input_row(image, oy * stride + ky - params.pad_top, params.input_height);
        for (var kx = 0u; kx < 3u; kx++) {
            let tap = 4u * (ky * 3u + kx);
            let w = array<vec4<i32>, 4>(
                textureLoad(weights, vec2<u32>(tap, g), 0),
                textureLoad(weights, vec2<u32>(tap + 1u, g), 0),
                textureLoad(weights, vec2<u32>(tap + 2u, g), 0),
                textureLoad(weights, vec2<u32>(tap + 3u, g), 0),
            );
            let ix = first * stride + kx - params.pad_left;
            acc[0] = accumulate_tap(acc[0], load_input(row, ix, g), w);
            acc[1] = accumulate_tap(acc[1], load_input(row, ix + stride, g), w);
            acc[2] = accumulate_tap(acc[2], load_input(row, ix + 2u * stride, g), w);
            acc[3] = accumulate_tap(acc[3], load_input(row, ix + 3u * stride, g), w);
            acc[4] = accumulate_tap(acc[4], load_input(row, ix + 4u * stride, g), w);
            acc[5] = accumulate_tap(acc[5], load_input(row, ix + 5u * stride, g), w);
            acc[6] = accumulate_tap(acc[6], load_input(row, ix + 6u * stride, g), w);
            acc[7] = accumulate_tap(acc[7], load_input(row, ix + 7u * stride, g), w);
        }
    }

    let c = load_channels(channels, g * 16u);
    let row = image * params.output_height + oy;
    store_pixel(first, 0u, row, g, acc[0], c);
    store_pixel(first, 1u, row, g, acc[1], c);
    store_pixel(first, 2u, row, g, acc[2], c);
    store_pixel(first, 3u, row, g, acc[3], c);
    store_pixel(first, 4u, row, g, acc[4], c);
    store_pixel(first, 5u, row, g, acc[5], c);
    store_pixel(first, 6u, row, g, acc[6], c);
    store_pixel(first, 7u, row, g, acc[7], c);
}
