// Depthwise 3×3 convolution, depth multiplier 1, TF SAME padding (src/cpu_ref/depthwise_conv2d.rs). No sum runs
// across channels, so there is nothing for dot4U8Packed to do: both inner-product paths run this same code,
// acc[c] = bias[c] + Σ_taps (x − z_x)(w − z_w[c]) on four channels at once; taps outside the image are skipped.
// One invocation per output pixel × word (4 channels).
// Input [images][h][w][words], weights [3][3][words], output [images][h'][w'][words].

// Mirrors `DepthwiseConv2dParams` in src/gpu/ops/depthwise_conv2d.rs.
struct DepthwiseConv2dParams {
    input_height: u32,
    input_width: u32,
    output_height: u32,
    output_width: u32,
    words: u32,
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
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<u32>;
@group(0) @binding(4) var<storage, read> channels: array<Channel>;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn depthwise_conv2d(@builtin(global_invocation_id) id: vec3<u32>) {
    let pixel = id.x;
    if pixel >= params.output_height * params.output_width {
        return;
    }
    let word = id.y;
    let image = id.z;
    let oy = pixel / params.output_width;
    let ox = pixel % params.output_width;
    let words = params.words;
    let channel = word * 4u;
    let c0 = channels[channel];
    let c1 = channels[channel + 1u];
    let c2 = channels[channel + 2u];
    let c3 = channels[channel + 3u];
    let weight_zero = vec4<i32>(c0.weight_zero_point, c1.weight_zero_point, c2.weight_zero_point, c3.weight_zero_point);

    // |acc| ≤ 2^30 + 9·255² < 2^31.
    var acc = vec4<i32>(c0.bias, c1.bias, c2.bias, c3.bias);
    for (var ky = 0u; ky < 3u; ky++) {
        // Unsigned wrap-around makes rows above the image ≥ input_height as well.
        let iy = oy * params.stride + ky - params.pad_top;
        if iy >= params.input_height {
            continue;
        }
        for (var kx = 0u; kx < 3u; kx++) {
            let ix = ox * params.stride + kx - params.pad_left;
            if ix >= params.input_width {
                continue;
            }
            let x = vec4<i32>(unpack_u8x4(input[((image * params.input_height + iy) * params.input_width + ix) * words + word]));
            let w = vec4<i32>(unpack_u8x4(weights[(ky * 3u + kx) * words + word]));
            acc += (x - params.input_zero_point) * (w - weight_zero);
        }
    }
    let q = vec4<u32>(
        requantize_channel(acc.x, c0, params.output_zero_point, params.act_min),
        requantize_channel(acc.y, c1, params.output_zero_point, params.act_min),
        requantize_channel(acc.z, c2, params.output_zero_point, params.act_min),
        requantize_channel(acc.w, c3, params.output_zero_point, params.act_min),
    );
    output[((image * params.output_height + oy) * params.output_width + ox) * words + word] = pack_u8x4(q);
}
