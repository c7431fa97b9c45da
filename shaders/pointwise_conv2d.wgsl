// 1×1 convolution (src/cpu_ref/pointwise_conv2d.rs), also the classifier (src/cpu_ref/classifier.rs: the same
// arithmetic on one pixel). Each invocation computes TILE_PIXELS pixels × 16 output channels (one output texel
// per pixel): per input texel it fetches TILE_PIXELS activation and 16 weight texels for 64 dot_u8x4 per pixel.
// Activations: texel (x·groups + g, image·h + y) holds channels 16g..16g + 15 of pixel (y, x).
// Weights: texel (g, c_out) holds input channels 16g..16g + 15 of output channel c_out; padded input channels hold
// the channel's weight zero point, so (x − z_x)(w − z_w) = 0 there whatever x is.
// Channels: texel (0, c_out), `Channel` with terms = 16·input_groups.
// Dispatch (pixel tiles, output groups, images).

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
const TILE_PIXELS: u32 = 8u;

// The texel coordinate of group 0 of pixel `pixel` of image `image`.
fn pixel_texel(pixel: u32, image: u32, groups: u32) -> vec2<u32> {
    let y = pixel / params.width;
    let x = pixel % params.width;
    return vec2<u32>(x * groups, image * params.height + y);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn pointwise_conv2d(@builtin(global_invocation_id) id: vec3<u32>) {
    let first = id.x * TILE_PIXELS;
    if first >= params.pixels {
        return;
    }
    let out_group = id.y;
    let output_groups = params.output_groups;
    let image = id.z;
    let groups = params.input_groups;
    // Pixels past the image's end read its last pixel; their results are not stored.
    let last = params.pixels - 1u;
    var texels = array<vec2<u32>, TILE_PIXELS>();
    for (var p = 0u; p < TILE_PIXELS; p++) {
        texels[p] = pixel_texel(min(first + p, last), image, groups);
    }
    let channel = out_group * 16u;

    // acc[j][p] = Σ x·w of output channel j and pixel p; ≤ 1,024·255² < 2^27 for c_in ≤ 1,024.
    var acc = array<array<u32, TILE_PIXELS>, 16>();
    var sum_x = array<u32, TILE_PIXELS>();
    for (var g = 0u; g < groups; g++) {
        var x = array<vec4<u32>, TILE_PIXELS>();
        var xb = array<array<vec4<u32>, 4>, TILE_PIXELS>();
        for (var p = 0u; p < TILE_PIXELS; p++) {
            x[p] = textureLoad(input, texels[p] + vec2<u32>(g, 0u), 0);
            xb[p] = unpack_texel(x[p]);
            sum_x[p] += sum_u8x16(xb[p]);
        }
        for (var j = 0u; j < 16u; j++) {
            let w = textureLoad(weights, vec2<u32>(g, channel + j), 0);
            let wb = unpack_texel(w);
            for (var p = 0u; p < TILE_PIXELS; p++) {
                acc[j][p] += dot_u8x16(x[p], xb[p], w, wb);
            }
        }
    }

    // q[p][j]: output channel j of pixel p, requantized.
    var q = array<array<u32, 16>, TILE_PIXELS>();
    for (var j = 0u; j < 16u; j++) {
        let c = channel_from_texel(textureLoad(channels, vec2<u32>(0u, channel + j), 0));
        for (var p = 0u; p < TILE_PIXELS; p++) {
            let acc_jp = bitcast<i32>(acc[j][p]) - c.weight_zero_point * bitcast<i32>(sum_x[p]) + c.offset;
            q[p][j] = requantize_channel(acc_jp, c, params.output_zero_point, params.act_min);
        }
    }
    for (var p = 0u; p < TILE_PIXELS; p++) {
        if first + p >= params.pixels {
            break;
        }
        let out_texel = vec2<u32>(texels[p].x / groups * output_groups + out_group, texels[p].y);
        textureStore(output, out_texel, pack_texel(q[p]));
    }
}
