// 1×1 convolution (src/cpu_ref/pointwise_conv2d.rs). Each invocation computes TILE_PIXELS pixels × 4 output
// channels (one packed output word): per input word it loads 4 activation and 4 weight words for 16 dot_u8x4.
// Activations [images][pixels][words], weights [c_out][input_words]; dispatch (pixel tiles, output words, images).

// Mirrors `PointwiseConv2dParams` in src/gpu/ops/pointwise_conv2d.rs.
struct PointwiseConv2dParams {
    // h·w of one image.
    pixels: u32,
    input_words: u32,
    output_words: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    act_min: i32,
    _padding: vec2<u32>,
}

@group(0) @binding(0) var<uniform> params: PointwiseConv2dParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<u32>;
@group(0) @binding(4) var<storage, read> channels: array<Channel>;

override WORKGROUP_SIZE: u32 = 64u;
const TILE_PIXELS: u32 = 4u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn pointwise_conv2d(@builtin(global_invocation_id) id: vec3<u32>) {
    let first = id.x * TILE_PIXELS;
    if first >= params.pixels {
        return;
    }
    let out_word = id.y;
    let image_pixel = id.z * params.pixels;
    let words = params.input_words;
    // Pixels past the image's end read its last pixel; their results are not stored.
    let last = params.pixels - 1u;
    let row = vec4<u32>(
        image_pixel + first,
        image_pixel + min(first + 1u, last),
        image_pixel + min(first + 2u, last),
        image_pixel + min(first + 3u, last),
    ) * words;
    let channel = out_word * 4u;
    let w_row = vec4<u32>(channel, channel + 1u, channel + 2u, channel + 3u) * words;

    // sum_xw[p][j] = Σ x·w of pixel p and channel j; ≤ 1,024·255² < 2^27 for c_in ≤ 4,096.
    var sum_xw = array<vec4<u32>, 4>();
    var sum_x = vec4<u32>();
    for (var k = 0u; k < words; k++) {
        let x = vec4<u32>(input[row.x + k], input[row.y + k], input[row.z + k], input[row.w + k]);
        let w = vec4<u32>(weights[w_row.x + k], weights[w_row.y + k], weights[w_row.z + k], weights[w_row.w + k]);
        for (var p = 0u; p < TILE_PIXELS; p++) {
            sum_xw[p] += vec4<u32>(dot_u8x4(x[p], w.x), dot_u8x4(x[p], w.y), dot_u8x4(x[p], w.z), dot_u8x4(x[p], w.w));
        }
        sum_x += vec4<u32>(dot_u8x4(x.x, ONES_U8X4), dot_u8x4(x.y, ONES_U8X4), dot_u8x4(x.z, ONES_U8X4), dot_u8x4(x.w, ONES_U8X4));
    }

    let terms = i32(words * 4u);
    let c0 = channels[channel];
    let c1 = channels[channel + 1u];
    let c2 = channels[channel + 2u];
    let c3 = channels[channel + 3u];
    for (var p = 0u; p < TILE_PIXELS; p++) {
        if first + p >= params.pixels {
            break;
        }
        let zx = params.input_zero_point;
        let q = vec4<u32>(
            requantize_channel(inner_product(c0, sum_xw[p].x, sum_x[p], zx, terms), c0, params.output_zero_point, params.act_min),
            requantize_channel(inner_product(c1, sum_xw[p].y, sum_x[p], zx, terms), c1, params.output_zero_point, params.act_min),
            requantize_channel(inner_product(c2, sum_xw[p].z, sum_x[p], zx, terms), c2, params.output_zero_point, params.act_min),
            requantize_channel(inner_product(c3, sum_xw[p].w, sum_x[p], zx, terms), c3, params.output_zero_point, params.act_min),
        );
        output[(image_pixel + first + p) * params.output_words + out_word] = pack_u8x4(q);
    }
}
