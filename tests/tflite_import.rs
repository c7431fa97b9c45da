//! Import of Google's uint8 TFLite MobileNetV1 files (the built-in 1.0 × 224 in assets/, the 0.25 × 128 fixture in
//! tests/data/, the other two in ../shared/models/tflite) and its MobileNetV2 QAT file (a graph with residual
//! ADDs): structure, parameters, the float model they represent, and clear errors for defective files.

mod common;

use mnq_gpu::cpu_ref;
use mnq_gpu::model::{Op, Padding, Source};
use mnq_gpu::preprocess::load_model_input;
use mnq_gpu::quant::PoolRounding;
use mnq_gpu::tflite::{self, ElementType};
use std::path::{Path, PathBuf};

/// (folder, file, width, input size) of Google's four uint8 files.
const FILES: [(&str, &str, f32, usize); 4] = [
    ("assets", "mobilenet_v1_1.0_224_quant.tflite", 1.0, 224),
    ("../shared/models/tflite", "mobilenet_v1_0.75_192_quant.tflite", 0.75, 192),
    ("../shared/models/tflite", "mobilenet_v1_0.5_160_quant.tflite", 0.5, 160),
    ("tests/data", "mobilenet_v1_0.25_128_quant.tflite", 0.25, 128),
];

fn path((folder, file, ..): (&str, &str, f32, usize)) -> PathBuf {
    Path::new(folder).join(file)
}

#[test]
fn google_uint8_models_import_as_mobilenet_v1() {
    let shared: Vec<PathBuf> = FILES.into_iter().map(path).filter(|p| p.starts_with("../shared")).collect();
    let have_shared = common::data_or_skip(&shared.iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>());
    for entry @ (_, file, width, size) in FILES {
        if !have_shared && shared.contains(&path(entry)) {
            continue;
        }
        let imported = tflite::load(&path(entry)).unwrap();
        let model = &imported.model;
        assert_eq!(imported.element_type, ElementType::Uint8, "{file}");
        assert_eq!((model.input_shape.h, model.input_shape.w, model.input_shape.c), (size, size, 3), "{file}");
        // conv1, 13 × (depthwise, pointwise), pool, classifier.
        assert_eq!(model.layers.len(), 29, "{file}");
        assert_eq!(model.layers[0].op, Op::Conv2d { stride: 2, padding: Padding::Same }, "{file}");
        assert_eq!(model.layers[0].output_shape.c, (32.0 * width) as usize, "{file}");
        let strides: Vec<usize> =
            model.layers.iter().filter(|l| matches!(l.op, Op::DepthwiseConv2d { .. })).map(|l| l.op.stride()).collect();
        assert_eq!(strides, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1], "{file}");
        assert_eq!(model.layers[27].op, Op::GlobalAvgPool, "{file}");
        assert_eq!(model.layers[28].op, Op::Classifier, "{file}");
        assert_eq!(model.classes(), 1001, "{file}");
        assert!(imported.float.background_class, "{file}");
        // The input is the pixels: scale 1/128, zero point 128.
        assert_eq!((model.input.scale, model.input.zero_point), (1.0 / 128.0, 128), "{file}");
        assert_eq!(imported.tensors.len(), model.layers.len(), "{file}");
    }
}

#[test]
fn the_1_0_model_classifies_grace_hopper_as_tensorflow_label_image_does() {
    // TensorFlow's label_image example on this photo with mobilenet_v1_1.0_224_quant: "military uniform" first.
    let imported = tflite::load(&path(FILES[0])).unwrap();
    let image = load_model_input(Path::new("assets/grace_hopper.jpg"), &imported.float).unwrap();
    let logits = cpu_ref::run_u8(&imported.model, &imported.model.quantize_input(&image)).pop().unwrap();
    let best = (0..logits.len()).max_by_key(|&i| (logits[i], std::cmp::Reverse(i))).unwrap();
    let class = imported.float.class_of_output(best).expect("not background");
    assert_eq!(mnq_gpu::labels::class_name(class), "military uniform");
}

/// Google's quantization-aware-trained uint8 MobileNetV2 1.0 × 224 (not redistributable: ../shared only).
const V2_QAT: &str = "../shared/models/tflite/mobilenet_v2_1.0_224_quant.tflite";

#[test]
fn google_mobilenet_v2_imports_as_a_graph_with_ten_residual_adds() {
    if !common::data_or_skip(&[V2_QAT]) {
        return;
    }
    let imported = tflite::load(Path::new(V2_QAT)).unwrap();
    let model = &imported.model;
    let count = |wanted: fn(&Op) -> bool| model.layers.iter().filter(|l| wanted(&l.op)).count();
    // conv, 17 inverted-residual blocks (16 with a 1×1 expansion) of depthwise and 1×1 projection, 10 ADDs, the last
    // 1×1, the pool, the classifier.
    assert_eq!(model.layers.len(), 64);
    assert_eq!(count(|op| *op == Op::Add), 10);
    assert_eq!(count(|op| matches!(op, Op::DepthwiseConv2d { .. })), 17);
    assert_eq!(count(|op| *op == Op::PointwiseConv2d), 34);
    assert!(!model.is_chain());
    for (i, layer) in model.layers.iter().enumerate() {
        let sources = model.inputs_of(i);
        if layer.op == Op::Add {
            // The block's projection (the layer before) and the block's input (before expansion and depthwise).
            assert_eq!(sources.len(), 2, "{}", layer.name);
            assert!(
                sources.contains(&Source::Layer(i - 1)) && sources.contains(&Source::Layer(i - 4)),
                "{}",
                layer.name
            );
        } else {
            assert_eq!(sources, [Source::previous(i)], "{}", layer.name);
        }
    }
    assert_eq!(model.classes(), 1001);
    assert_eq!(imported.tensors.len(), model.layers.len());
    // The quantized-model file keeps the graph.
    let bytes = mnq_gpu::quant::file::to_bytes(model).unwrap();
    let loaded = mnq_gpu::quant::file::from_bytes(&bytes, Path::new("v2.mnq")).unwrap().model;
    assert_eq!(&loaded, model);
    // The exporters write chains and say so.
    let error = tflite::to_bytes(model, &imported.float).unwrap_err().to_string();
    assert_contains(&error, "residual ADDs");
    let error = mnq_gpu::onnx::export::qdq_to_bytes(model).unwrap_err().to_string();
    assert_contains(&error, "residual ADDs");
}

/// TF2's post-training int8 MobileNetV2 1.0 × 224 (../shared only): uint8 in and out around int8 activations.
const V2_PTQ: &str = "../shared/models/tflite/tf2_mobilenet_v2_1.0_224_ptq.tflite";

#[test]
fn tf2_mobilenet_v2_imports_as_int8_with_its_quantize_edges_and_mean() {
    if !common::data_or_skip(&[V2_PTQ]) {
        return;
    }
    let imported = tflite::load(Path::new(V2_PTQ)).unwrap();
    let model = &imported.model;
    // The QUANTIZE from the uint8 input (zero point 127) to int8 (−1) changes no value in the engine's u8.
    assert_eq!(imported.element_type, ElementType::Int8);
    assert_eq!((model.input.scale, model.input.zero_point), (2.0 / 255.0, 127));
    assert_eq!(model.layers.len(), 64);
    assert_eq!(model.layers.iter().filter(|l| l.op == Op::Add).count(), 10);
    let pool = &model.layers[62];
    assert_eq!((pool.op, pool.pool), (Op::GlobalAvgPool, PoolRounding::TfliteMean));
    assert_ne!(pool.output, pool.input, "MEAN requantizes");
    // Per-channel weights: one scale per output channel.
    assert!(model.layers[0].weight_scales.windows(2).any(|w| w[0] != w[1]));
    assert_eq!(model.layers[63].op, Op::Classifier);
    assert_eq!(model.classes(), 1001);
}

/// Google's 0.25 × 128 file, decoded into planus's owned tables, for tests that break one thing in it.
fn google_0_25() -> (Vec<u8>, tflite::schema::Model) {
    let bytes = std::fs::read(path(FILES[3])).unwrap();
    let root = <tflite::schema::ModelRef as planus::ReadAsRoot>::read_as_root(&bytes).unwrap();
    (bytes.clone(), tflite::schema::Model::try_from(root).unwrap())
}

/// The error message of importing `model` after serializing it again.
fn import_error(model: &tflite::schema::Model) -> String {
    let bytes = tflite::export::serialize(model);
    let error = tflite::from_bytes(&bytes, "broken", Path::new("broken.tflite")).unwrap_err();
    error.to_string()
}

fn assert_contains(message: &str, expected: &str) {
    assert!(message.contains(expected), "`{message}` does not say `{expected}`");
}

#[test]
fn the_unchanged_file_reserialized_still_imports() {
    // The premise of the tests below: what they break is the only defect.
    let (_, model) = google_0_25();
    let bytes = tflite::export::serialize(&model);
    tflite::from_bytes(&bytes, "ok", Path::new("ok.tflite")).unwrap();
}

#[test]
fn an_empty_a_foreign_or_a_truncated_file_is_a_clear_error_never_a_panic() {
    let (bytes, _) = google_0_25();
    let error = |bytes: &[u8]| tflite::from_bytes(bytes, "x", Path::new("x.tflite")).unwrap_err().to_string();
    assert_contains(&error(&[]), "not a TFLite file");
    let mut foreign = bytes.clone();
    foreign[4..8].copy_from_slice(b"ABCD");
    assert_contains(&error(&foreign), "no `TFL3` flatbuffer identifier");
    assert_contains(&error(&bytes[..bytes.len() / 2]), "x.tflite");
    // Every prefix of the file (in steps) is an error, or, where what is cut off is only data this program does
    // not read (the file's tail holds TFLite metadata), the same model.
    let whole = tflite::from_bytes(&bytes, "x", Path::new("x.tflite")).unwrap().model;
    for len in (8..bytes.len()).step_by(4099) {
        if let Ok(imported) = tflite::from_bytes(&bytes[..len], "x", Path::new("x.tflite")) {
            assert_eq!(imported.model, whole, "prefix of {len} bytes");
        }
    }
}

#[test]
fn an_unsupported_operator_is_named() {
    let (_, mut model) = google_0_25();
    // Operator 1 is the first DEPTHWISE_CONV_2D; make its code MUL (18).
    let index = model.subgraphs.as_ref().unwrap()[0].operators.as_ref().unwrap()[1].opcode_index as usize;
    let code = &mut model.operator_codes.as_mut().unwrap()[index];
    (code.builtin_code, code.deprecated_builtin_code) = (18, 18);
    assert_contains(&import_error(&model), "operator 1 (MUL) is not supported");
}

#[test]
fn a_float32_model_is_refused_as_such() {
    let (_, mut model) = google_0_25();
    let graph = &mut model.subgraphs.as_mut().unwrap()[0];
    let input = graph.inputs.as_ref().unwrap()[0] as usize;
    graph.tensors.as_mut().unwrap()[input].type_ = 0;
    let message = import_error(&model);
    assert_contains(&message, "FLOAT32");
    assert_contains(&message, "float model");
}

#[test]
fn a_buffer_index_out_of_range_or_short_data_names_the_tensor() {
    let (_, mut model) = google_0_25();
    let weights = model.subgraphs.as_ref().unwrap()[0].operators.as_ref().unwrap()[0].inputs.as_ref().unwrap()[1];
    let tensor = &mut model.subgraphs.as_mut().unwrap()[0].tensors.as_mut().unwrap()[weights as usize];
    let name = tensor.name.clone().unwrap();
    let buffer = tensor.buffer as usize;
    tensor.buffer = 99_999;
    let message = import_error(&model);
    assert_contains(&message, &name);
    assert_contains(&message, "buffer 99999 does not exist");

    let (_, mut model) = google_0_25();
    model.buffers.as_mut().unwrap()[buffer].data.as_mut().unwrap().truncate(10);
    let message = import_error(&model);
    assert_contains(&message, &name);
    assert_contains(&message, "holds 10 bytes of data");
}

/// An operator may read any tensor computed before it (the file is a graph), but not one that nothing computes
/// before it, and its shapes must fit what it reads.
#[test]
fn operators_reading_what_nothing_computed_or_of_misfit_shapes_are_refused() {
    let (_, mut model) = google_0_25();
    // Operator 2 (a pointwise convolution) reads operator 3's output, which does not exist yet.
    let graph = &mut model.subgraphs.as_mut().unwrap()[0];
    let later = graph.operators.as_ref().unwrap()[3].outputs.as_ref().unwrap()[0];
    graph.operators.as_mut().unwrap()[2].inputs.as_mut().unwrap()[0] = later;
    let message = import_error(&model);
    assert_contains(&message, "operator 2 (CONV_2D): its input is tensor");
    assert_contains(&message, "neither the graph's input nor an earlier operator computes");

    // Operator 2 reads the graph's input: a graph may, but its 1×1 kernel of 8 input channels does not fit RGB.
    let (_, mut model) = google_0_25();
    let graph = &mut model.subgraphs.as_mut().unwrap()[0];
    let input = graph.inputs.as_ref().unwrap()[0];
    graph.operators.as_mut().unwrap()[2].inputs.as_mut().unwrap()[0] = input;
    assert_contains(&import_error(&model), "operator 2 (CONV_2D): weights");

    // A depthwise output shape that does not follow from its input.
    let (_, mut model) = google_0_25();
    let graph = &mut model.subgraphs.as_mut().unwrap()[0];
    let output = graph.operators.as_ref().unwrap()[1].outputs.as_ref().unwrap()[0] as usize;
    graph.tensors.as_mut().unwrap()[output].shape.as_mut().unwrap()[1] = 3;
    assert_contains(&import_error(&model), "operator 1 (DEPTHWISE_CONV_2D)");
}

#[test]
fn a_pool_that_requantizes_is_refused_with_the_reason() {
    let (_, mut model) = google_0_25();
    let graph = &mut model.subgraphs.as_mut().unwrap()[0];
    let pool = graph.operators.as_ref().unwrap()[27].outputs.as_ref().unwrap()[0] as usize;
    let quantization = graph.tensors.as_mut().unwrap()[pool].quantization.as_mut().unwrap();
    quantization.scale.as_mut().unwrap()[0] *= 2.0;
    let message = import_error(&model);
    assert_contains(&message, "operator 27 (AVERAGE_POOL_2D)");
    assert_contains(&message, "does not requantize");
}

/// Found reading the importer after CI's fuzz smoke stopped on the tflite target (an input CI did not print): a
/// first convolution of 2^31 - 1 output channels made the importer build that many weight parameters before it
/// looked at any data (this test aborted under an 8 GB memory limit before the fix).
#[test]
fn a_shape_beyond_the_engines_bounds_is_refused_before_anything_is_sized_by_it() {
    let (_, mut model) = google_0_25();
    let graph = &mut model.subgraphs.as_mut().unwrap()[0];
    let first = &graph.operators.as_ref().unwrap()[0];
    let (weights, output) = (first.inputs.as_ref().unwrap()[1] as usize, first.outputs.as_ref().unwrap()[0] as usize);
    let tensors = graph.tensors.as_mut().unwrap();
    tensors[weights].shape.as_mut().unwrap()[0] = i32::MAX;
    tensors[output].shape.as_mut().unwrap()[3] = i32::MAX;
    let name = tensors[output].name.clone().unwrap();
    let message = import_error(&model);
    assert_contains(&message, &name);
    assert_contains(&message, &format!("[1, 64, 64, {}] is out of bounds", i32::MAX));
    assert_contains(&message, "channels 1 to 65536");
}

/// Found by a 420 s run of the tflite fuzz target: an int8 zero point near i64::MAX overflowed the + 128 that maps int8 to the
/// engine's u8 (a panic).
#[test]
fn an_int8_zero_point_at_the_end_of_int64_is_out_of_range_not_an_overflow() {
    let (_, mut model) = google_0_25();
    let graph = &mut model.subgraphs.as_mut().unwrap()[0];
    let input = graph.inputs.as_ref().unwrap()[0] as usize;
    let tensor = &mut graph.tensors.as_mut().unwrap()[input];
    tensor.type_ = 9; // INT8
    tensor.quantization.as_mut().unwrap().zero_point = Some(vec![i64::MAX]);
    assert_contains(&import_error(&model), &format!("zero point {} is out of range", i64::MAX));
}

/// A flatbuffer by hand: a version-3 model whose `buffers` vector holds `entries` references to one buffer table
/// of `data_len` bytes. Every offset points forward, as flatbuffers require.
fn shared_buffer_file(entries: usize, data_len: usize) -> Vec<u8> {
    let word = |out: &mut Vec<u8>, value: u32| out.extend_from_slice(&value.to_le_bytes());
    let patch = |out: &mut Vec<u8>, at: usize, value: usize| {
        out[at..at + 4].copy_from_slice(&u32::try_from(value).unwrap().to_le_bytes())
    };
    let mut out = vec![0; 4];
    out.extend_from_slice(b"TFL3");
    // Model's vtable: 7 fields declared, table of 12 bytes, version at 4, buffers (field 4) at 8.
    let model_vtable = out.len();
    for half in [4 + 2 * 5, 12, 4, 0, 0, 0, 8, 0] {
        out.extend_from_slice(&u16::to_le_bytes(half));
    }
    let model_table = out.len();
    patch(&mut out, 0, model_table);
    word(&mut out, (model_table - model_vtable) as u32);
    word(&mut out, 3);
    let buffers_field = out.len();
    word(&mut out, 0);
    let vector = out.len();
    patch(&mut out, buffers_field, vector - buffers_field);
    word(&mut out, entries as u32);
    let elements = out.len();
    out.resize(elements + 4 * entries, 0);
    // Buffer's vtable: data (field 0) at 4, table of 8 bytes.
    let buffer_vtable = out.len();
    for half in [6u16, 8, 4, 0] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    let buffer_table = out.len();
    word(&mut out, (buffer_table - buffer_vtable) as u32);
    let data_field = out.len();
    word(&mut out, 0);
    let data = out.len();
    patch(&mut out, data_field, data - data_field);
    word(&mut out, data_len as u32);
    out.extend((0..data_len).map(|i| (i % 251) as u8));
    for i in 0..entries {
        let at = elements + 4 * i;
        patch(&mut out, at, buffer_table - at);
    }
    out
}

/// Found reading the importer after the fuzz findings: 50,000 references to one 350 KB buffer, a 550 KB file,
/// made the conversion into owned tables ask for 17 GB (libFuzzer's out-of-memory at 2 GB).
#[test]
fn a_file_whose_tables_share_one_buffer_many_times_is_refused_before_it_is_copied() {
    let import = |bytes: &[u8]| tflite::from_bytes(bytes, "x", Path::new("x.tflite")).unwrap_err().to_string();
    // Two references to a shared buffer fit in twice the file: it reads (and fails later, on the missing graph).
    assert_contains(&import(&shared_buffer_file(2, 1000)), "0 subgraphs");
    let bytes = shared_buffer_file(50_000, 350_000);
    let message = import(&bytes);
    assert_contains(&message, &format!("more than twice the file's {} bytes", bytes.len()));
}

/// The first 1×1 CONV_2D of `model` whose input and output have the same shape: (its index, input, output, weight
/// count).
fn square_pointwise(model: &tflite::schema::Model) -> (usize, i32, i32, usize) {
    let graph = &model.subgraphs.as_ref().unwrap()[0];
    let tensors = graph.tensors.as_ref().unwrap();
    let shape = |t: i32| tensors[t as usize].shape.clone().unwrap();
    graph
        .operators
        .as_ref()
        .unwrap()
        .iter()
        .enumerate()
        .find_map(|(i, op)| {
            let (inputs, outputs) = (op.inputs.as_ref().unwrap(), op.outputs.as_ref().unwrap());
            let weights = shape(inputs[1]);
            let count = weights.iter().product::<i32>() as usize;
            (weights[1..3] == [1, 1] && shape(inputs[0]) == shape(outputs[0]))
                .then_some((i, inputs[0], outputs[0], count))
        })
        .unwrap()
}

/// `model` with `repeats` more round trips through the square pointwise convolution's weights: after it, an
/// operator from its output back to its input, then the convolution again.
fn with_reused_weights(mut model: tflite::schema::Model, repeats: usize) -> tflite::schema::Model {
    let (index, input, output, _) = square_pointwise(&model);
    let operators = model.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap();
    let forward = operators[index].clone();
    let mut back = forward.clone();
    back.inputs.as_mut().unwrap()[0] = output;
    back.outputs = Some(vec![input]);
    for _ in 0..repeats {
        operators.insert(index + 1, forward.clone());
        operators.insert(index + 1, back.clone());
    }
    model
}

/// Found with the test above: operators that all use one weight tensor copied it once per layer, so a 525 KB
/// file could hold gigabytes of layers. Reuse that fits in the file still imports.
#[test]
fn layers_that_reuse_one_weight_tensor_may_not_hold_more_than_the_file() {
    let (bytes, model) = google_0_25();
    let layers = tflite::from_bytes(&bytes, "x", Path::new("x.tflite")).unwrap().model.layers.len();
    let fits = tflite::export::serialize(&with_reused_weights(model.clone(), 2));
    let imported = tflite::from_bytes(&fits, "x", Path::new("x.tflite")).unwrap();
    assert_eq!(imported.model.layers.len(), layers + 4);
    // Enough round trips for the copies of those weights alone to outgrow twice the original file.
    let repeats = bytes.len() / square_pointwise(&model).3 + 1;
    let message = import_error(&with_reused_weights(model, repeats));
    assert_contains(&message, "bytes of weights, more than the file's");
    assert_contains(&message, "reuse weight tensors");
}
