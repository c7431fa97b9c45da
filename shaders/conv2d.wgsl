// Standard 3×3 convolution, TF SAME padding (src/cpu_ref/conv2d.rs): MobileNetV1's first layer, whose 3 input
// channels are padded to 4 (pad activation = z_x, pad weight = z_w[c]: the pad products are 0). Taps outside the
// image read the word of four z_x, which also contributes 0, so every pixel sums the same 9·4·input_words terms.
// Each invocation computes TILE_PIXELS consecutive pixels of one output row × 16 output channels.
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
const TILE_PIXELS: u32 = 8u;

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
    let words = params.input_words;
    let zero_word = u32(params.input_zero_point) * ONES_U8X4;
    let zero_bytes = vec4<u32>(u32(params.input_zero_point));

    // acc[j][p] = Σ x·w of output channel j and pixel p; ≤ 36·words·255² < 2^32 for words ≤ 1,837.
    var acc = array<array<u32, TILE_PIXELS>, 16>();
    var sum_x = array<u32, TILE_PIXELS>();
    for (var ky = 0u; ky < 3u; ky++) {
        // Unsigned wrap-around makes rows above the image ≥ input_height as well.
        let iy = oy * params.stride + ky - params.pad_top;
        let row_inside = iy < params.input_height;
        let ty = image * params.input_height + min(iy, params.input_height - 1u);
        for (var kx = 0u; kx < 3u; kx++) {
            for (var k = 0u; k < words; k++) {
                let tap = (ky * 3u + kx) * words + k;
                var w = array<vec4<u32>, 4>();
                var wb = array<array<vec4<u32>, 4>, 4>();
                for (var i = 0u; i < 4u; i++) {
                    w[i] = textureLoad(weights, vec2<u32>(tap, 4u * out_group + i), 0);
                    wb[i] = unpack_texel(w[i]);
                }
                for (var p = 0u; p < TILE_PIXELS; p++) {
                    let ix = (first + p) * params.stride + kx - params.pad_left;
                    let inside = row_inside && ix < params.input_width;
                    let tx = min(ix, params.input_width - 1u) * words + k;
                    let loaded = textureLoad(input, vec2<u32>(tx, ty), 0).x;
                    let x = select(zero_word, loaded, inside);
                    let xb = unpack_u8x4(x);
                    sum_x[p] += dot(xb, vec4<u32>(1u));
                    for (var i = 0u; i < 4u; i++) {
                        acc[4u * i][p] += dot_u8x4(x, xb, w[i].x, wb[i][0]);
                        acc[4u * i + 1u][p] += dot_u8x4(x, xb, w[i].y, wb[i][1]);
                        acc[4u * i + 2u][p] += dot_u8x4(x, xb, w[i].z, wb[i][2]);
                        acc[4u * i + 3u][p] += dot_u8x4(x, xb, w[i].w, wb[i][3]);
                    }
                }
            }
        }
    }

    let channel = out_group * 16u;
    var q = array<array<u32, 16>, TILE_PIXELS>();
    for (var j = 0u; j < 16u; j++) {
        let c = channel_from_texel(textureLoad(channels, vec2<u32>(0u, channel + j), 0));
        for (var p = 0u; p < TILE_PIXELS; p++) {
            let acc_jp = bitcast<i32>(acc[j][p]) - c.weight_zero_point * bitcast<i32>(sum_x[p]) + c.offset;
            q[p][j] = requantize_channel(acc_jp, c, params.output_zero_point, params.act_min);
        }
    }
    let row = image * params.output_height + oy;
    for (var p = 0u; p < TILE_PIXELS; p++) {
        let ox = first + p;
        if ox >= params.output_width {
            break;
        }
        textureStore(output, vec2<u32>(ox * params.output_groups + out_group, row), pack_texel(q[p]));
    }
}
