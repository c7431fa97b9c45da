// Standard 3×3 convolution, TF SAME padding (src/cpu_ref/conv2d.rs): MobileNetV1's first layer, whose 3 input
// channels are padded to 4 (pad activation = z_x, pad weight = z_w[c]: the pad products are 0). Taps outside the
// image read the word of four z_x, which also contributes 0, so every pixel sums the same 9·4·input_words terms.
// Each invocation computes TILE_PIXELS consecutive pixels of one output row × 16 output channels, written out
// rather than looped over (see requantize_texel).
// Input: r32uint texel (x·input_words + k, image·h + y) holds channels 4k..4k + 3 of pixel (y, x).
// Output: rgba32uint texel (x·output_groups + g, image·h' + y) holds channels 16g..16g + 15.
// Weights: rgba32uint texel (tap·input_words + k, 4·g + i), tap = 3·ky + kx, holds in word j the input channels
// 4k..4k + 3 of output channel 16g + 4i + j. Channels: texel (0, c_out), `Channel` with terms = 36·input_words.
// Dispatch (output rows × row tiles, output groups, images).

// Mirrors `Conv2dParams` in src/gpu/ops/conv2d.rs.
struct Conv2dParams {
    input_height: u32,
    input_width: u32,
    input_words: u32,
    output_height: u32,
    output_width: u32,
    output_groups: u32,
    stride: u32,
    // SAME padding before the first row and column.
    pad_top: u32,
    pad_left: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    act_min: i32,
}

@group(0) @binding(0) var<uniform> params: Conv2dParams;
@group(0) @binding(1) var input: texture_2d<u32>;
@group(0) @binding(2) var output: texture_storage_2d<rgba32uint, write>;
@group(0) @binding(3) var weights: texture_2d<u32>;
@group(0) @binding(4) var channels: texture_2d<i32>;

override WORKGROUP_SIZE: u32 = 64u;
// Output pixels per invocation, written out one statement each below.
const TILE_PIXELS: u32 = 8u;

// One tap's weights for input word k: the words of the 16 output channels (channel 4i + j in texels[i][j]).
struct Weights {
    texels: array<vec4<u32>, 4>,
    bytes: array<array<vec4<u32>, 4>, 4>,
}

// One output pixel's sums: Σ x·w of channel 4i + j in acc[i][j], and Σ x.
struct PixelSums {
    acc: array<vec4<u32>, 4>,
    sum_x: u32,
}

// Word k of column ix (of the padded image) in `row`: four z_x outside the image.
fn load_input(row: InputRow, ix: u32, k: u32) -> u32 {
    let inside = row.inside && ix < params.input_width;
    let tx = min(ix, params.input_width - 1u) * params.input_words + k;
    return select(u32(params.input_zero_point) * ONES_U8X4, textureLoad(input, vec2<u32>(tx, row.ty), 0).x, inside);
}

// The loop is short enough for drivers to unroll, which makes its indices constants (see requantize_texel).
fn load_weights(tap: u32, out_group: u32) -> Weights {
    var w: Weights;
    for (var i = 0u; i < 4u; i++) {
        w.texels[i] = textureLoad(weights, vec2<u32>(tap, 4u * out_group + i), 0);
        w.bytes[i] = unpack_texel(w.texels[i]);
    }
    return w;
}

// Four output channels' Σ x·w over one input word x (bytes xb), from their weight words w (bytes wb).
fn dot_channels(x: u32, xb: vec4<u32>, w: vec4<u32>, wb: array<vec4<u32>, 4>) -> vec4<u32> {
    return vec4<u32>(dot_u8x4(x, xb, w.x, wb[0]), dot_u8x4(x, xb, w.y, wb[1]), dot_u8x4(x, xb, w.z, wb[2]),
                     dot_u8x4(x, xb, w.w, wb[3]));
}

// s + one input word's products for one pixel.
fn accumulate(s: PixelSums, x: u32, w: Weights) -> PixelSums {
    let xb = unpack_u8x4(x);
    let acc = array<vec4<u32>, 4>(
        s.acc[0] + dot_channels(x, xb, w.texels[0], w.bytes[0]),
        s.acc[1] + dot_channels(x, xb, w.texels[1], w.bytes[1]),
        s.acc[2] + dot_channels(x, xb, w.texels[2], w.bytes[2]),
        s.acc[3] + dot_channels(x, xb, w.texels[3], w.bytes[3]),
    );
    return PixelSums(acc, s.sum_x + dot(xb, vec4<u32>(1u)));
}

// Requantize and store output pixel first + p of row `row` unless it is past the row's end.
fn store_pixel(first: u32, p: u32, row: u32, out_group: u32, s: PixelSums, c: array<Channel, 16>) {
    let ox = first + p;
    if ox >= params.output_width {
        return;
    }
    let q = requantize_texel(sums_as_i32(s.acc), bitcast<i32>(s.sum_x), c, params.output_zero_point, params.act_min);
    textureStore(output, vec2<u32>(ox * params.output_groups + out_group, row), q);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d(@builtin(global_invocation_id) id: vec3<u32>) {
    let tiles = (params.output_width + TILE_PIXELS - 1u) / TILE_PIXELS;
    let oy = id.x / tiles;
    if oy >= params.output_height {
        return;
    }
    let first = (id.x % tiles) * TILE_PIXELS;
    let out_group = id.y;
    let image = id.z;
    let stride = params.stride;

    // s[p]: pixel p's sums; acc ≤ 36·words·255² < 2^32 for words ≤ 1,837.
    var s = array<PixelSums, TILE_PIXELS>();
    for (var ky = 0u; ky < 3u; ky++) {
        let row = input_row(image, oy * stride + ky - params.pad_top, params.input_height);
        for (var kx = 0u; kx < 3u; kx++) {
            let ix = first * stride + kx - params.pad_left;
            for (var k = 0u; k < params.input_words; k++) {
                let w = load_weights((ky * 3u + kx) * params.input_words + k, out_group);
                s[0] = accumulate(s[0], load_input(row, ix, k), w);
                s[1] = accumulate(s[1], load_input(row, ix + stride, k), w);
                s[2] = accumulate(s[2], load_input(row, ix + 2u * stride, k), w);
                s[3] = accumulate(s[3], load_input(row, ix + 3u * stride, k), w);
                s[4] = accumulate(s[4], load_input(row, ix + 4u * stride, k), w);
                s[5] = accumulate(s[5], load_input(row, ix + 5u * stride, k), w);
                s[6] = accumulate(s[6], load_input(row, ix + 6u * stride, k), w);
                s[7] = accumulate(s[7], load_input(row, ix + 7u * stride, k), w);
            }
        }
    }

    let c = load_channels(channels, out_group * 16u);
    let row = image * params.output_height + oy;
    store_pixel(first, 0u, row, out_group, s[0], c);
    store_pixel(first, 1u, row, out_group, s[1], c);
    store_pixel(first, 2u, row, out_group, s[2], c);
    store_pixel(first, 3u, row, out_group, s[3], c);
    store_pixel(first, 4u, row, out_group, s[4], c);
    store_pixel(first, 5u, row, out_group, s[5], c);
    store_pixel(first, 6u, row, out_group, s[6], c);
    store_pixel(first, 7u, row, out_group, s[7], c);
}
