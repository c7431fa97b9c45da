// Elementwise ADD (src/cpu_ref/add.rs): TFLite's quantized ADD of two activations of one shape, MobileNetV2's
// residual connections. Each input minus its zero point is shifted left by `left_shift` and scaled to a common
// scale, the sum scaled to the output's (AddStage in src/quant/qmodel.rs), under REQUANT 0 (double) or 1 (single);
// under 2 (fp32) XNNPACK's arithmetic (XnnpackAdd). One invocation per texel (16 channels) of one image; padded
// channels compute values nobody reads. Activations: texel (x·groups + g, image·h + y) holds channels 16g..16g + 15 of pixel (y, x).

// Mirrors `AddParams` in src/gpu/ops/add.rs.
struct AddParams {
    // w·groups: texels in one row of one image.
    width_texels: u32,
    height: u32,
    input1_zero_point: i32,
    input2_zero_point: i32,
    output_zero_point: i32,
    // |q − z|·2^left_shift < 2^28 for left_shift ≤ 20 (QuantModel::validate): no overflow.
    left_shift: u32,
    input1_multiplier: i32,
    input1_shift: i32,
    input2_multiplier: i32,
    input2_shift: i32,
    output_multiplier: i32,
    output_shift: i32,
    act_min: i32,
    act_max: i32,
    // fp32: XNNPACK's multipliers, shift in [13, 30] and bias (rounding and zero points).
    xnnpack_a_multiplier: i32,
    xnnpack_b_multiplier: i32,
    xnnpack_shift: u32,
    xnnpack_bias: i32,
}

@group(0) @binding(0) var<uniform> params: AddParams;
@group(0) @binding(1) var input: texture_2d<u32>;
@group(0) @binding(2) var output: texture_storage_2d<rgba32uint, write>;
@group(0) @binding(3) var second_input: texture_2d<u32>;

override WORKGROUP_SIZE: u32 = 64u;

// One output value of input values a and b (AddStage::sum or XnnpackAdd::sum, then the zero point and the clamp).
fn add_values(a: u32, b: u32) -> u32 {
    if REQUANT == 2u {
        // WGSL's i32 arithmetic wraps, as XNNPACK's does; >> on i32 is arithmetic.
        let acc = params.xnnpack_bias + i32(a) * params.xnnpack_a_multiplier + i32(b) * params.xnnpack_b_multiplier;
        let scaled = clamp(acc >> params.xnnpack_shift, -256, 511);
        return u32(clamp(scaled + params.output_zero_point, params.act_min, params.act_max));
    }
    let shifted1 = (i32(a) - params.input1_zero_point) << params.left_shift;
    let shifted2 = (i32(b) - params.input2_zero_point) << params.left_shift;
    let scaled1 = scale_accumulator(shifted1, params.input1_multiplier, params.input1_shift);
    let scaled2 = scale_accumulator(shifted2, params.input2_multiplier, params.input2_shift);
    // Each scaled input is at most its shifted value in magnitude (multipliers below one): the sum fits i32.
    return requantize(scaled1 + scaled2, params.output_multiplier, params.output_shift, params.output_zero_point,
        params.act_min, params.act_max);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add(@builtin(global_invocation_id) id: vec3<u32>) {
    let t = id.x;
    if t >= params.width_texels * params.height {
        return;
    }
    let xy = vec2<u32>(t % params.width_texels, id.z * params.height + t / params.width_texels);
    let a = unpack_texel(textureLoad(input, xy, 0));
    let b = unpack_texel(textureLoad(second_input, xy, 0));
    var texel = vec4<u32>();
    for (var k = 0u; k < 4u; k++) {
        let x = a[k];
        let y = b[k];
        texel[k] = pack_u8x4(vec4<u32>(add_values(x.x, y.x), add_values(x.y, y.y), add_values(x.z, y.z),
            add_values(x.w, y.w)));
    }
    textureStore(output, xy, texel);
}
