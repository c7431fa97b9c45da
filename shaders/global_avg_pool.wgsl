// Global average pool (src/cpu_ref/global_avg_pool.rs): [h, w, c] → [1, 1, c], Σq per channel turned into the
// average under `rounding` (PoolRounding in src/quant/qmodel.rs). One invocation per texel (16 channels) of one
// image. Input texel (x·groups + g, image·h + y), output texel (g, image).

// Mirrors `GlobalAvgPoolParams` in src/gpu/ops/global_avg_pool.rs.
struct GlobalAvgPoolParams {
    height: u32,
    width: u32,
    groups: u32,
    // 0 half-up (TFLite uint8), 1 ties-away (TFLite int8), 2 fp32 (ONNX Runtime's QLinearGlobalAveragePool, XNNPACK's
    // MEAN), 3 tflite-mean (LiteRT's int8 MEAN).
    rounding: u32,
    // fp32 and tflite-mean: n·z_in (wrapping; QuantModel::validate keeps |Σq − n·z_in| ≤ 255·n < 2^31), z_out;
    // fp32: the float32 scale s_in / (s_out · f32(n)) as (mantissa, exponent) (fixed_point::fp32_parts);
    // tflite-mean: the Q31 multiplier and shift with 1/n folded in (fixed_point::mean_multiplier).
    input_offset: u32,
    output_zero_point: i32,
    scale_mantissa: u32,
    scale_exponent: i32,
}

@group(0) @binding(0) var<uniform> params: GlobalAvgPoolParams;
@group(0) @binding(1) var input: texture_2d<u32>;
@group(0) @binding(2) var output: texture_storage_2d<rgba32uint, write>;

override WORKGROUP_SIZE: u32 = 64u;

// One channel's average from its sum over n positions.
fn average(sum: u32, n: u32) -> u32 {
    switch params.rounding {
        case 1u: {
            // The int8 sum Σ(q − 128), then (s ± n/2) / n: WGSL's i32 division truncates toward zero, as C's.
            let s = bitcast<i32>(sum - 128u * n);
            let half = i32(n / 2u);
            let a = select((s - half) / i32(n), (s + half) / i32(n), s > 0);
            return u32(clamp(a, -128, 127) + 128);
        }
        case 2u: {
            let acc = bitcast<i32>(sum - params.input_offset);
            let scaled = clamp(scale_fp32(acc, params.scale_mantissa, params.scale_exponent), -256, 511);
            return u32(clamp(scaled + params.output_zero_point, 0, 255));
        }
        case 3u: {
            let acc = bitcast<i32>(sum - params.input_offset);
            let scaled = multiply_by_quantized_multiplier(acc, bitcast<i32>(params.scale_mantissa),
                params.scale_exponent);
            return u32(clamp(clamp(scaled, -256, 511) + params.output_zero_point, 0, 255));
        }
        default: {
            return (sum + n / 2u) / n;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn global_avg_pool(@builtin(global_invocation_id) id: vec3<u32>) {
    let g = id.x;
    if g >= params.groups {
        return;
    }
    let image = id.z;
    // Σq ≤ 255·h·w fits u32 for any h·w < 16.8 million.
    var sum = array<vec4<u32>, 4>();
    for (var y = 0u; y < params.height; y++) {
        for (var x = 0u; x < params.width; x++) {
            let bytes = unpack_texel(textureLoad(input, vec2<u32>(x * params.groups + g, image * params.height + y), 0));
            for (var k = 0u; k < 4u; k++) {
                sum[k] += bytes[k];
            }
        }
    }
    let n = params.height * params.width;
    var texel = vec4<u32>();
    for (var k = 0u; k < 4u; k++) {
        let s = sum[k];
        texel[k] = pack_u8x4(vec4<u32>(average(s.x, n), average(s.y, n), average(s.z, n), average(s.w, n)));
    }
    textureStore(output, vec2<u32>(g, image), texel);
}
