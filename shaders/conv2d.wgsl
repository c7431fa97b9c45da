// Standard 3×3 convolution, TF SAME padding (src/cpu_ref/conv2d.rs): MobileNetV1's first layer, whose 3 input
// channels are padded to 4 (pad activation = z_x, pad weight = z_w[c]: the pad products are 0). Taps outside the
// image read the word of four z_x, which also contributes 0, so every pixel sums the same 9·4·input_words terms.
// One invocation per output pixel × output word (4 channels).
// Input [images][h][w][input_words], weights [c_out][3][3][input_words], output [images][h'][w'][output_words].

// Mirrors `Conv2dParams` in src/gpu/ops/conv2d.rs.
struct Conv2dParams {
    input_height: u32,
    input_width: u32,
    input_words: u32,
    output_height: u32,
    output_width: u32,
    output_words: u32,
    stride: u32,
    // SAME padding before the first row and column.
    pad_top: u32,
    pad_left: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    act_min: i32,
    _padding0: u32,
    _padding3: u32,
    _padding1: u32,
    _padding2: u32,
}

@group(0) @binding(0) var<uniform> params: Conv2dParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<u32>;
@group(0) @binding(4) var<storage, read> channels: array<Channel>;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d(@builtin(global_invocation_id) id: vec3<u32>) {
    let pixel = id.x;
    if pixel >= params.output_height * params.output_width {
        return;
    }
    let out_word = id.y;
    let image = id.z;
    let oy = pixel / params.output_width;
    let ox = pixel % params.output_width;
    let words = params.input_words;
    let zero_word = u32(params.input_zero_point) * ONES_U8X4;
    let channel = out_word * 4u;
    let kernel_len = 9u * words;
    let w_row = vec4<u32>(channel, channel + 1u, channel + 2u, channel + 3u) * kernel_len;

    var sum_xw = vec4<u32>();
    var sum_x = 0u;
    for (var ky = 0u; ky < 3u; ky++) {
        // Unsigned wrap-around makes rows above the image ≥ input_height as well.
        let iy = oy * params.stride + ky - params.pad_top;
        for (var kx = 0u; kx < 3u; kx++) {
            let ix = ox * params.stride + kx - params.pad_left;
            let inside = iy < params.input_height && ix < params.input_width;
            let base = ((image * params.input_height + iy) * params.input_width + ix) * words;
            let tap = (ky * 3u + kx) * words;
            for (var k = 0u; k < words; k++) {
                var x = zero_word;
                if inside {
                    x = input[base + k];
                }
                sum_xw += vec4<u32>(dot_u8x4(x, weights[w_row.x + tap + k]), dot_u8x4(x, weights[w_row.y + tap + k]),
                                    dot_u8x4(x, weights[w_row.z + tap + k]), dot_u8x4(x, weights[w_row.w + tap + k]));
                sum_x += dot_u8x4(x, ONES_U8X4);
            }
        }
    }
    let terms = i32(kernel_len * 4u);
    var q = vec4<u32>();
    for (var j = 0u; j < 4u; j++) {
        let c = channels[channel + j];
        let acc = inner_product(c, sum_xw[j], sum_x, params.input_zero_point, terms);
        q[j] = requantize_channel(acc, c, params.output_zero_point, params.act_min);
    }
    output[((image * params.output_height + oy) * params.output_width + ox) * params.output_words + out_word] = pack_u8x4(q);
}
