// 1×1 convolution (src/cpu_ref/pointwise_conv2d.rs), the variant of shaders/pointwise_conv2d.wgsl for input words
// a multiple of 4: activations and weights are read as vec4<u32>, four words per load. llvmpipe (Mesa 22.3) turns
// every storage-buffer load into a loop over the invocations of a SIMD vector with a branch per component, so
// one vec4 load costs far less than four u32 loads. Each invocation computes TILE_PIXELS pixels × 4 output
// channels (one packed output word): per 4 input words it loads 4 activation and 4 weight vec4 for 64 dot_u8x4.
// Activations [images][pixels][words], weights [c_out][input_words]; dispatch (pixel tiles, output words, images).

// Mirrors `PointwiseConv2dParams` in src/gpu/ops/pointwise_conv2d.rs (`PointwiseConv2dVec4Params` there).
struct PointwiseConv2dVec4Params {
    // h·w of one image.
    pixels: u32,
    input_words: u32,
    output_words: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    act_min: i32,
    _padding: vec2<u32>,
}

@group(0) @binding(0) var<uniform> params: PointwiseConv2dVec4Params;
@group(0) @binding(1) var<storage, read> input: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> channels: array<Channel>;

override WORKGROUP_SIZE: u32 = 64u;
const TILE_PIXELS: u32 = 4u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn pointwise_conv2d_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
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
    // input_words is a multiple of 4, so every row starts on a whole vec4.
    let row4 = row / 4u;
    let w_row4 = w_row / 4u;
    for (var k = 0u; k < words / 4u; k++) {
        var xs = array<vec4<u32>, 4>(input[row4.x + k], input[row4.y + k], input[row4.z + k], input[row4.w + k]);
        let w0 = weights[w_row4.x + k];
        let w1 = weights[w_row4.y + k];
        let w2 = weights[w_row4.z + k];
        let w3 = weights[w_row4.w + k];
        // Word i of the four: the 4 pixels' activations and the 4 channels' weights.
        for (var i = 0u; i < 4u; i++) {
            let w = vec4<u32>(w0[i], w1[i], w2[i], w3[i]);
            let x = vec4<u32>(xs[0][i], xs[1][i], xs[2][i], xs[3][i]);
            for (var p = 0u; p < TILE_PIXELS; p++) {
                sum_xw[p] += vec4<u32>(dot_u8x4(x[p], w.x), dot_u8x4(x[p], w.y), dot_u8x4(x[p], w.z), dot_u8x4(x[p], w.w));
            }
            sum_x += vec4<u32>(dot_u8x4(x.x, ONES_U8X4), dot_u8x4(x.y, ONES_U8X4), dot_u8x4(x.z, ONES_U8X4), dot_u8x4(x.w, ONES_U8X4));
        }
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
