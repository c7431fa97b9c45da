// Helpers shared by every op shader; src/gpu/shaders.rs composes this file, one inner-product file
// (`dot_u8x4`: dot_u8x4_dot4.wgsl or dot_u8x4_unpack.wgsl, chosen by `InnerProduct`) and an op file. Mirrors
// src/quant/fixed_point.rs (i64 there, 32-bit emulation here: tests/gpu_requantize.rs proves they agree).
// Activations and weights are u8 packed four to a u32, channel c in bits 8·(c % 4).. (little-endian bytes).

// The output stage, set per pipeline from the layers' `Requant` (src/quant/fixed_point.rs): 0 double (gemmlowp's
// two roundings), 1 single (one rounding, TFLITE_SINGLE_ROUNDING), 2 fp32 (XNNPACK's float requantization,
// emulated exactly in integers). A channel's multiplier and shift are the Q31 pair for 0 and 1, the float32
// scale's (mantissa, exponent) for 2.
override REQUANT: u32 = 0u;

const I32_MIN: i32 = -2147483648;
const I32_MAX: i32 = 2147483647;
// Four bytes of 1: dot_u8x4(x, unpack_u8x4(x), ONES_U8X4, vec4(1u)) is the sum of x's four bytes.
const ONES_U8X4: u32 = 0x01010101u;

// One output channel's constants: texel (0, channel) of an op's rgba32sint `channels` texture, decoded by
// `channel_from_texel`. Mirrors `Channel` in src/gpu/ops/mod.rs (16 bytes, the texel's four words).
struct Channel {
    // bias − z_x·Σw + terms·z_x·z_w (wrapping; the true accumulator fits i32), so that
    // acc = Σxw − z_w·Σx + offset = bias + Σ(x − z_x)(w − z_w) over the op's `terms` products.
    offset: i32,
    multiplier: i32,
    shift: i32,
    weight_zero_point: i32,
    // The activation clamp's upper bound (per channel: equalization rescales each channel's ReLU6 bound).
    act_max: i32,
}

// The texel's w holds weight_zero_point in bits 0..16 and act_max in bits 16..32 (two u16 on the host).
fn channel_from_texel(t: vec4<i32>) -> Channel {
    return Channel(t.x, t.y, t.z, t.w & 0xffff, t.w >> 16u);
}

fn unpack_u8x4(word: u32) -> vec4<u32> {
    return (vec4<u32>(word) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

fn pack_u8x4(bytes: vec4<u32>) -> u32 {
    return bytes.x | (bytes.y << 8u) | (bytes.z << 16u) | (bytes.w << 24u);
}

// Activation textures are rgba32uint, 16 u8 channels a texel (channel 4k + j in byte j of word k).
// The 16 bytes of a texel, word k in element k.
fn unpack_texel(t: vec4<u32>) -> array<vec4<u32>, 4> {
    return array<vec4<u32>, 4>(unpack_u8x4(t.x), unpack_u8x4(t.y), unpack_u8x4(t.z), unpack_u8x4(t.w));
}

// Σ x_j·w_j over the 16 bytes of two texels (≤ 16·255² = 1,040,400).
fn dot_u8x16(x: vec4<u32>, x_bytes: array<vec4<u32>, 4>, w: vec4<u32>, w_bytes: array<vec4<u32>, 4>) -> u32 {
    return dot_u8x4(x.x, x_bytes[0], w.x, w_bytes[0]) + dot_u8x4(x.y, x_bytes[1], w.y, w_bytes[1])
        + dot_u8x4(x.z, x_bytes[2], w.z, w_bytes[2]) + dot_u8x4(x.w, x_bytes[3], w.w, w_bytes[3]);
}

// The sum of a texel's 16 bytes, from its unpacked bytes.
fn sum_u8x16(x_bytes: array<vec4<u32>, 4>) -> u32 {
    return dot(x_bytes[0] + x_bytes[1] + x_bytes[2] + x_bytes[3], vec4<u32>(1u));
}

// gemmlowp SaturatingRoundingDoublingHighMul for a multiplier b ≥ 0 (the only kind a model holds:
// QuantModel::validate and the GPU plan refuse others), so it never saturates. gemmlowp adds the nudge 2^30 to
// a·b ≥ 0, 1 − 2^30 below, and truncates toward zero; both cases equal floor((a·b + 2^30) / 2^31). That is built
// from 16-bit halves a = a_hi·2^16 + a_lo (a_hi signed), b likewise:
//   a·b = a_hi·b_hi·2^32 + (m1 + m2)·2^16 + l,  m1 = a_hi·b_lo, m2 = a_lo·b_hi (|m| < 2^31), l = a_lo·b_lo < 2^32.
// With m = q·2^15 + r (0 ≤ r < 2^15), floor((a·b + 2^30) / 2^31) = 2·a_hi·b_hi + q1 + q2 + floor(t / 2^29),
// t = (r1 + r2)·2^14 + l/4 + 2^28 < 2^32 (l's two low bits cannot carry past a multiple of 2^31). The true
// result fits i32, so the sum may wrap on the way.
fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    let a_hi = a >> 16u;
    let a_lo = a & 0xffff;
    let b_hi = b >> 16u;
    let b_lo = b & 0xffff;
    let m1 = a_hi * b_lo;
    let m2 = a_lo * b_hi;
    let l = bitcast<u32>(a_lo) * bitcast<u32>(b_lo);
    let t = bitcast<u32>(((m1 & 0x7fff) + (m2 & 0x7fff)) << 14u) + (l >> 2u) + 0x10000000u;
    return 2 * a_hi * b_hi + (m1 >> 15u) + (m2 >> 15u) + bitcast<i32>(t >> 29u);
}

// gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero; exponent ≤ 31.
fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let mask = bitcast<i32>((1u << exponent) - 1u);
    let remainder = x & mask;
    let threshold = (mask >> 1u) + select(0, 1, x < 0);
    return (x >> exponent) + select(0, 1, remainder > threshold);
}

// x · 2^left saturated to i32; left ≤ 31 (31 saturates every x but 0 and −1, as any larger shift would).
fn saturating_shift_left(x: i32, left: u32) -> i32 {
    if x > (I32_MAX >> left) {
        return I32_MAX;
    }
    if x < (I32_MIN >> left) {
        return I32_MIN;
    }
    return x << left;
}

// TFLite MultiplyByQuantizedMultiplier: x · multiplier · 2^shift / 2^31, shift > 0 a saturating left shift.
fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = u32(clamp(shift, 0, 31));
    let right = u32(clamp(-shift, 0, 31));
    let high = saturating_rounding_doubling_high_mul(saturating_shift_left(x, left), multiplier);
    return rounding_divide_by_pot(high, right);
}

// The 64-bit product a·b of two u32 as (low word, high word), from 16-bit halves.
fn mul_u32_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    // < 3·2^16: the carries into bit 32 of the middle products.
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return vec2<u32>((mid << 16u) | (p00 & 0xffffu), a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
}

// fixed_point::multiply_by_quantized_multiplier_single: (x·multiplier + 2^(30 − shift)) >> (31 − shift) on a
// 64-bit two's-complement (low, high) pair, saturated to i32. multiplier ≥ 0, shift in [−31, 30].
fn multiply_by_quantized_multiplier_single(x: i32, multiplier: i32, shift: i32) -> i32 {
    let total_shift = u32(31 - clamp(shift, -31, 30));
    // |x| ≤ 2^31 as a u32; the product's magnitude < 2^62, negated in two's complement for x < 0.
    let magnitude = mul_u32_wide(select(bitcast<u32>(x), 0u - bitcast<u32>(x), x < 0), bitcast<u32>(multiplier));
    var lo = magnitude.x;
    var hi = magnitude.y;
    if x < 0 {
        hi = ~hi + select(0u, 1u, lo == 0u);
        lo = 0u - lo;
    }
    // + 2^(total_shift − 1), total_shift in [1, 62].
    if total_shift <= 32u {
        let sum = lo + (1u << (total_shift - 1u));
        hi += select(0u, 1u, sum < lo);
        lo = sum;
    } else {
        hi += 1u << (total_shift - 33u);
    }
    if total_shift >= 32u {
        // The high word shifted: it fits i32.
        return bitcast<i32>(hi) >> (total_shift - 32u);
    }
    let high = bitcast<i32>(hi) >> total_shift;
    let low = (hi << (32u - total_shift)) | (lo >> total_shift);
    if high != (bitcast<i32>(low) >> 31u) {
        return select(I32_MAX, I32_MIN, high < 0);
    }
    return bitcast<i32>(low);
}

// round_half_even(x / 2^n) for n in [1, 31].
fn shift_right_round_half_even(x: u32, n: u32) -> u32 {
    let quotient = x >> n;
    let remainder = x & ((1u << n) - 1u);
    let half = 1u << (n - 1u);
    let up = remainder > half || (remainder == half && (quotient & 1u) == 1u);
    return quotient + select(0u, 1u, up);
}

// Bits needed for x (0 for 0).
fn bit_length(x: u32) -> u32 {
    return select(0u, u32(firstLeadingBit(x)) + 1u, x != 0u);
}

// fixed_point::requantize_fp32 before its zero point and clamp: round_half_even(f32(acc) · scale) with
// scale = mantissa · 2^exponent (mantissa < 2^24), each float32 rounding to nearest even done in integers. WGSL
// floats would not do: the specification (https://www.w3.org/TR/WGSL/, §15.7) specifies no rounding mode ("an
// implementation may round an intermediate result up or down", also for a correctly rounded x · y and for the
// conversion of an i32 that f32 cannot hold), lets subnormals flush to zero and lets an implementation fuse
// operations; only round() is pinned (half to even). In integers the result cannot depend on any of that.
// Returned clamped to
// [−1024, 1024], which the caller's clamp to [−256, 511] does not see.
//   f32(|acc|) = m_a · 2^k: |acc| rounded to 24 significant bits (k = 0 below 2^24).
//   The product m_a · mantissa < 2^48 is exact in two words; float32 rounds it to 24 significant bits:
//   m_p · 2^d. The value m_p · 2^(k + d + exponent) is then rounded to an integer, half to even.
fn scale_fp32(acc: i32, mantissa: u32, exponent: i32) -> i32 {
    let magnitude = select(bitcast<u32>(acc), 0u - bitcast<u32>(acc), acc < 0);
    let k = max(bit_length(magnitude), 24u) - 24u;
    var m_a = magnitude;
    if k > 0u {
        m_a = shift_right_round_half_even(magnitude, k);
    }
    let product = mul_u32_wide(m_a, mantissa);
    let length = select(bit_length(product.x), 32u + bit_length(product.y), product.y != 0u);
    let d = max(length, 24u) - 24u;
    // product >> d rounded half to even; d ≤ 24, so the dropped bits are all in the low word.
    var m_p = product.x;
    if d > 0u {
        let quotient = (product.y << (32u - d)) | (product.x >> d);
        let remainder = product.x & ((1u << d) - 1u);
        let half = 1u << (d - 1u);
        let up = remainder > half || (remainder == half && (quotient & 1u) == 1u);
        m_p = quotient + select(0u, 1u, up);
    }
    let e = i32(k + d) + exponent;
    var rounded: u32;
    if m_p == 0u {
        rounded = 0u;
    } else if e >= 0 {
        // m_p · 2^e; beyond 1024 the clamp saturates anyway.
        rounded = select(1024u, min(m_p << u32(e), 1024u), e < 11 && m_p < 1024u);
    } else if e < -25 {
        // m_p ≤ 2^24, so the value is below 1/4.
        rounded = 0u;
    } else {
        rounded = min(shift_right_round_half_even(m_p, u32(-e)), 1024u);
    }
    return select(i32(rounded), -i32(rounded), acc < 0);
}

// The accumulator at the output scale under REQUANT, before the zero point.
fn scale_accumulator(acc: i32, multiplier: i32, shift: i32) -> i32 {
    switch REQUANT {
        case 1u: {
            return multiply_by_quantized_multiplier_single(acc, multiplier, shift);
        }
        case 2u: {
            return scale_fp32(acc, bitcast<u32>(multiplier), shift);
        }
        default: {
            return multiply_by_quantized_multiplier(acc, multiplier, shift);
        }
    }
}

// The output stage of every integer layer (fixed_point::requantize_as): scale, add the zero point (saturating),
// clamp to the activation's range [act_min, act_max] ⊆ [0, 255]. With the zero point in [0, 255], a scaled value
// outside [−256, 511] ends outside [0, 255] either way, so clamping it there first gives the saturating add's
// result without its overflow checks.
fn requantize(acc: i32, multiplier: i32, shift: i32, output_zero_point: i32, act_min: i32, act_max: i32) -> u32 {
    let scaled = clamp(scale_accumulator(acc, multiplier, shift), -256, 511) + output_zero_point;
    return u32(clamp(scaled, act_min, act_max));
}

// requantize with one channel's constants.
fn requantize_channel(acc: i32, channel: Channel, output_zero_point: i32, act_min: i32) -> u32 {
    return requantize(acc, channel.multiplier, channel.shift, output_zero_point, act_min, channel.act_max);
}

// Where the taps of one row of a kernel read the input: row `ty` of the input texture (row iy of image `image`,
// clamped), `inside` false for a row above or below the image. Unsigned wrap-around makes rows above the image
// ≥ input_height as well.
struct InputRow {
    ty: u32,
    inside: bool,
}

fn input_row(image: u32, iy: u32, input_height: u32) -> InputRow {
    return InputRow(image * input_height + min(iy, input_height - 1u), iy < input_height);
}

// A texel's 16 sums, accumulated in u32 (wrapping), as the i32 they stand for (their true values fit i32).
fn sums_as_i32(acc: array<vec4<u32>, 4>) -> array<vec4<i32>, 4> {
    return array<vec4<i32>, 4>(bitcast<vec4<i32>>(acc[0]), bitcast<vec4<i32>>(acc[1]), bitcast<vec4<i32>>(acc[2]),
                               bitcast<vec4<i32>>(acc[3]));
}

// The constants of the 16 output channels first.. of one output texel: texels (0, first + j) of `channels`. The
// loop is short enough for drivers to unroll, which makes its indices constants (see requantize_texel).
fn load_channels(channels: texture_2d<i32>, first: u32) -> array<Channel, 16> {
    var c: array<Channel, 16>;
    for (var j = 0u; j < 16u; j++) {
        c[j] = channel_from_texel(textureLoad(channels, vec2<u32>(0u, first + j), 0));
    }
    return c;
}

// Four channels c0..c3 requantized and packed, from their sums acc and the pixel's Σx: the accumulator is
// acc + offset − z_w·Σx (`Channel`); ops whose offset already holds the z_w terms pass Σx = 0.
fn requantize_word(acc: vec4<i32>, sum_x: i32, c0: Channel, c1: Channel, c2: Channel, c3: Channel,
                   output_zero_point: i32, act_min: i32) -> u32 {
    let z = output_zero_point;
    return pack_u8x4(vec4<u32>(
        requantize_channel(acc.x + c0.offset - c0.weight_zero_point * sum_x, c0, z, act_min),
        requantize_channel(acc.y + c1.offset - c1.weight_zero_point * sum_x, c1, z, act_min),
        requantize_channel(acc.z + c2.offset - c2.weight_zero_point * sum_x, c2, z, act_min),
        requantize_channel(acc.w + c3.offset - c3.weight_zero_point * sum_x, c3, z, act_min),
    ));
}

// One output texel: channel 4k + j's sum in acc[k][j], requantized with c[4k + j] (see requantize_word).
// Every index here is a constant: on CPU drivers (llvmpipe) an array indexed by a loop variable that the
// compiler does not unroll lives in memory, read and written one lane at a time.
fn requantize_texel(acc: array<vec4<i32>, 4>, sum_x: i32, c: array<Channel, 16>, output_zero_point: i32,
                    act_min: i32) -> vec4<u32> {
    let z = output_zero_point;
    return vec4<u32>(
        requantize_word(acc[0], sum_x, c[0], c[1], c[2], c[3], z, act_min),
        requantize_word(acc[1], sum_x, c[4], c[5], c[6], c[7], z, act_min),
        requantize_word(acc[2], sum_x, c[8], c[9], c[10], c[11], z, act_min),
        requantize_word(acc[3], sum_x, c[12], c[13], c[14], c[15], z, act_min),
    );
}
