// The classifier (src/cpu_ref/classifier.rs): a 1×1 convolution of the pooled features [1, 1, c_in] to the
// logits [1, 1, classes]. One invocation per output word (4 classes) of one image.
// Input [images][input_words], weights [classes][input_words], output [images][output_words].

// Mirrors `ClassifierParams` in src/gpu/ops/classifier.rs.
struct ClassifierParams {
    input_words: u32,
    output_words: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    act_min: i32,
    _padding0: u32,
    _padding1: u32,
    _padding2: u32,
}

@group(0) @binding(0) var<uniform> params: ClassifierParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<u32>;
@group(0) @binding(4) var<storage, read> channels: array<Channel>;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn classifier(@builtin(global_invocation_id) id: vec3<u32>) {
    let out_word = id.x;
    if out_word >= params.output_words {
        return;
    }
    let words = params.input_words;
    let row = id.z * words;
    let channel = out_word * 4u;
    let w_row = vec4<u32>(channel, channel + 1u, channel + 2u, channel + 3u) * words;
    var sum_xw = vec4<u32>();
    var sum_x = 0u;
    for (var k = 0u; k < words; k++) {
        let x = input[row + k];
        sum_xw += vec4<u32>(dot_u8x4(x, weights[w_row.x + k]), dot_u8x4(x, weights[w_row.y + k]),
                            dot_u8x4(x, weights[w_row.z + k]), dot_u8x4(x, weights[w_row.w + k]));
        sum_x += dot_u8x4(x, ONES_U8X4);
    }
    let terms = i32(words * 4u);
    var q = vec4<u32>();
    for (var j = 0u; j < 4u; j++) {
        let c = channels[channel + j];
        let acc = inner_product(c, sum_xw[j], sum_x, params.input_zero_point, terms);
        q[j] = requantize_channel(acc, c, params.output_zero_point, params.act_min);
    }
    output[id.z * params.output_words + out_word] = pack_u8x4(q);
}
