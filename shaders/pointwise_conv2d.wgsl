// 1×1 convolution (src/cpu_ref/pointwise_conv2d.rs), also the classifier (src/cpu_ref/classifier.rs: the same
// arithmetic on one pixel). Each invocation computes TILE_PIXELS = 4 pixels × 16 output channels (one output
// texel per pixel): per input texel it fetches 4 activation and 16 weight texels for 64 dot_u8x4 per pixel.
// Activations: texel (x·groups + g, image·h + y) holds channels 16g..16g + 15 of pixel (y, x).
// Weights: texel (g, c_out) holds input channels 16g..16g + 15 of output channel c_out; padded input channels hold
// the channel's weight zero point, so (x − z_x)(w − z_w) = 0 there whatever x is.
// Channels: texel (0, c_out), `Channel` with terms = 16·input_groups.
// Dispatch (pixel tiles, output groups, images).
// The 4 pixels and the 4 groups of 4 output channels are written out, not looped over: see requantize_texel.

// Mirrors `PointwiseConv2dParams` in src/gpu/ops/pointwise_conv2d.rs.
struct PointwiseConv2dParams {
    // w of one image.
    width: u32,
    // h·w of one image.
    pixels: u32,
    height: u32,
    input_groups: u32,
    output_zero_point: i32,
    act_min: i32,
    output_groups: u32,
    _padding: u32,
}

@group(0) @binding(0) var<uniform> params: PointwiseConv2dParams;
@group(0) @binding(1) var input: texture_2d<u32>;
@group(0) @binding(2) var output: texture_storage_2d<rgba32uint, write>;
@group(0) @binding(3) var weights: texture_2d<u32>;
@group(0) @binding(4) var channels: texture_2d<i32>;

override WORKGROUP_SIZE: u32 = 64u;
// Pixels per invocation, written out one statement each below.
const TILE_PIXELS: u32 = 4u;

// One pixel's 16 input channels: the texel and its bytes.
struct Pixel {
    texel: vec4<u32>,
    bytes: array<vec4<u32>, 4>,
}

// Four output channels' weights for one input texel: texels (g, first..first + 3) and their bytes.
struct Weights {
    texels: array<vec4<u32>, 4>,
    bytes: array<array<vec4<u32>, 4>, 4>,
}

// The texel coordinate of group 0 of pixel `pixel` of image `image`.
fn pixel_texel(pixel: u32, image: u32, groups: u32) -> vec2<u32> {
    let y = pixel / params.width;
    let x = pixel % params.width;
    return vec2<u32>(x * groups, image * params.height + y);
}

fn load_pixel(texel: vec2<u32>) -> Pixel {
    let t = textureLoad(input, texel, 0);
    return Pixel(t, unpack_texel(t));
}

// The loop is short enough for drivers to unroll, which makes its indices constants (see requantize_texel).
fn load_weights(g: u32, first: u32) -> Weights {
    var w: Weights;
    for (var k = 0u; k < 4u; k++) {
        w.texels[k] = textureLoad(weights, vec2<u32>(g, first + k), 0);
        w.bytes[k] = unpack_texel(w.texels[k]);
    }
    return w;
}

// Σ x·w over one input texel for four output channels.
fn dot_channels(x: Pixel, w: Weights) -> vec4<u32> {
    return vec4<u32>(
        dot_u8x16(x.texel, x.bytes, w.texels[0], w.bytes[0]),
        dot_u8x16(x.texel, x.bytes, w.texels[1], w.bytes[1]),
        dot_u8x16(x.texel, x.bytes, w.texels[2], w.bytes[2]),
        dot_u8x16(x.texel, x.bytes, w.texels[3], w.bytes[3]),
    );
}

// acc[p] += four output channels' Σ x·w for each pixel p.
fn accumulate(acc: array<vec4<u32>, TILE_PIXELS>, x: array<Pixel, TILE_PIXELS>, w: Weights)
    -> array<vec4<u32>, TILE_PIXELS> {
    return array<vec4<u32>, TILE_PIXELS>(
        acc[0] + dot_channels(x[0], w),
        acc[1] + dot_channels(x[1], w),
        acc[2] + dot_channels(x[2], w),
        acc[3] + dot_channels(x[3], w),
    );
}

// Requantize and store pixel `first + p` (`texel` its input texel) unless it is past the image's end.
fn store_pixel(first: u32, p: u32, texel: vec2<u32>, out_group: u32, acc: array<vec4<u32>, 4>, sum_x: u32,
               c: array<Channel, 16>) {
    if first + p >= params.pixels {
        return;
    }
    let q = requantize_texel(sums_as_i32(acc), bitcast<i32>(sum_x), c, params.output_zero_point, params.act_min);
    let out_texel = vec2<u32>(texel.x / params.input_groups * params.output_groups + out_group, texel.y);
    textureStore(output, out_texel, q);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn pointwise_conv2d(@builtin(global_invocation_id) id: vec3<u32>) {
    let first = id.x * TILE_PIXELS;
    if first >= params.pixels {
        return;
    }
    let out_group = id.y;
    let image = id.z;
    let groups = params.input_groups;
    // Pixels past the image's end read its last pixel; their results are not stored.
    let last = params.pixels - 1u;
    let texels = array<vec2<u32>, TILE_PIXELS>(
        pixel_texel(first, image, groups),
        pixel_texel(min(first + 1u, last), image, groups),
        pixel_texel(min(first + 2u, last), image, groups),
        pixel_texel(min(first + 3u, last), image, groups),
    );
    let channel = out_group * 16u;

    // acc[k][p]: Σ x·w of output channels channel + 4k.. + 3 and pixel p; ≤ 1,024·255² < 2^27 for c_in ≤ 1,024.
    var acc = array<array<vec4<u32>, TILE_PIXELS>, 4>();
    var sum_x = vec4<u32>();
    for (var g = 0u; g < groups; g++) {
        let d = vec2<u32>(g, 0u);
        let x = array<Pixel, TILE_PIXELS>(
            load_pixel(texels[0] + d), load_pixel(texels[1] + d), load_pixel(texels[2] + d), load_pixel(texels[3] + d),
        );
        sum_x += vec4<u32>(sum_u8x16(x[0].bytes), sum_u8x16(x[1].bytes), sum_u8x16(x[2].bytes), sum_u8x16(x[3].bytes));
        acc[0] = accumulate(acc[0], x, load_weights(g, channel));
        acc[1] = accumulate(acc[1], x, load_weights(g, channel + 4u));
        acc[2] = accumulate(acc[2], x, load_weights(g, channel + 8u));
        acc[3] = accumulate(acc[3], x, load_weights(g, channel + 12u));
    }

    let c = load_channels(channels, channel);
    store_pixel(first, 0u, texels[0], out_group, array(acc[0][0], acc[1][0], acc[2][0], acc[3][0]), sum_x.x, c);
    store_pixel(first, 1u, texels[1], out_group, array(acc[0][1], acc[1][1], acc[2][1], acc[3][1]), sum_x.y, c);
    store_pixel(first, 2u, texels[2], out_group, array(acc[0][2], acc[1][2], acc[2][2], acc[3][2]), sum_x.z, c);
    store_pixel(first, 3u, texels[3], out_group, array(acc[0][3], acc[1][3], acc[2][3], acc[3][3]), sum_x.w, c);
}
