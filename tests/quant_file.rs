//! The quantized-model file's integrity: it records a SHA-256 of its parameters and tensors; a file whose
//! bytes changed is refused as damaged, and a file from before the checksum still loads, unchecked.

use mnq_gpu::model::synthetic;
use mnq_gpu::quant::file::{self, Integrity};
use mnq_gpu::quant::QuantModel;
use mnq_gpu::Error;
use std::path::Path;

/// A real calibration of a small synthetic MobileNet, written to bytes.
fn quantized_file() -> (QuantModel, Vec<u8>) {
    let model = synthetic::mobilenet_v1(0.25, 32, 7);
    let images: Vec<Vec<f32>> =
        (0..2).map(|i| (0..32 * 32 * 3).map(|j| ((i * 7 + j) % 255) as f32 / 127.5 - 1.0).collect()).collect();
    let quantized = mnq_gpu::calibrate::quantize(&model, &images).unwrap();
    let bytes = file::to_bytes(&quantized).unwrap();
    (quantized, bytes)
}

/// The safetensors header (JSON) and where the tensor data starts.
fn header(bytes: &[u8]) -> (serde_json::Value, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), 8 + n)
}

/// The file with `header` in place of its own.
fn with_header(bytes: &[u8], header: &serde_json::Value) -> Vec<u8> {
    let (_, data_start) = self::header(bytes);
    let mut json = serde_json::to_vec(header).unwrap();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[data_start..]);
    out
}

fn load(bytes: &[u8]) -> mnq_gpu::Result<file::Loaded> {
    file::from_bytes(bytes, Path::new("test.safetensors"))
}

#[test]
fn a_written_file_loads_verified_and_equal() {
    let (quantized, bytes) = quantized_file();
    let loaded = load(&bytes).unwrap();
    assert_eq!(loaded.integrity, Integrity::Verified);
    assert_eq!(loaded.model, quantized);
}

#[test]
fn every_flipped_tensor_byte_is_refused_as_damaged() {
    let (_, bytes) = quantized_file();
    let (_, data_start) = header(&bytes);
    // Every 97th byte of the tensor data, weights and biases alike, one at a time, one bit each.
    let mut checked = 0;
    for (k, at) in (data_start..bytes.len()).step_by(97).enumerate() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << (k % 8);
        match load(&damaged) {
            Err(Error::CorruptFile { reason, .. }) => assert!(reason.contains("SHA-256"), "{reason}"),
            other => panic!("byte {at} flipped: expected a damaged-file error, got {:?}", other.map(|l| l.integrity)),
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} bytes tried");
}

#[test]
fn a_changed_quantization_parameter_is_refused_as_damaged() {
    let (quantized, bytes) = quantized_file();
    let (mut header, _) = header(&bytes);
    // Change the last layer's output scale in the stored JSON: still a valid model, but not the one written.
    let mut json: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["mnq_gpu"].as_str().unwrap()).unwrap();
    let last = &mut json["layers"].as_array_mut().unwrap().last_mut().unwrap()["output"]["scale"];
    *last = (last.as_f64().unwrap() * 1.01).into();
    header["__metadata__"]["mnq_gpu"] = json.to_string().into();
    let error = load(&with_header(&bytes, &header)).unwrap_err().to_string();
    assert!(error.contains("the file is damaged") && error.contains("mnq-gpu quantize"), "{error}");
    // The same edit with the checksum removed loads, as a different model: the checksum is what catches it.
    header["__metadata__"].as_object_mut().unwrap().remove("sha256");
    let loaded = load(&with_header(&bytes, &header)).unwrap();
    assert_eq!(loaded.integrity, Integrity::Unchecked);
    assert_ne!(loaded.model, quantized);
}

#[test]
fn a_file_without_a_checksum_still_loads_unchecked() {
    let (quantized, bytes) = quantized_file();
    let (mut header, _) = header(&bytes);
    header["__metadata__"].as_object_mut().unwrap().remove("sha256");
    let loaded = load(&with_header(&bytes, &header)).unwrap();
    assert_eq!((loaded.integrity, &loaded.model), (Integrity::Unchecked, &quantized));
}

/// safetensors writes the header's `__metadata__` from a `HashMap`, so the same model gave files that differed in
/// the order of its keys (seen comparing `mnq-gpu quantize` runs); each map's order is drawn afresh, so eight
/// writes agreeing by chance is unlikely, and the file's header now has its keys sorted.
#[test]
fn the_same_model_writes_the_same_bytes_every_time() {
    let (model, bytes) = quantized_file();
    for _ in 0..8 {
        assert_eq!(file::to_bytes(&model).unwrap(), bytes);
    }
    let text = String::from_utf8_lossy(&bytes[8..header(&bytes).1]);
    let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {text}"));
    assert!(at("format_version") < at("mnq_gpu") && at("mnq_gpu") < at("sha256"), "metadata keys in order");
}

/// A small graph: the synthetic MobileNet with a residual ADD after its first depthwise layer (it sums that
/// layer's output and the first convolution's, both 16×16×8), calibrated as any scheme's ADD is.
fn residual_model() -> QuantModel {
    use mnq_gpu::model::{Layer, Op, Source};
    let mut model = synthetic::mobilenet_v1(0.25, 32, 7);
    let depthwise = model.layers[1].clone();
    let add = Layer {
        name: "add_1".into(),
        op: Op::Add,
        inputs: vec![Source::Layer(1), Source::Layer(0)],
        kernel: Vec::new(),
        bias: None,
        batch_norm: None,
        activation: mnq_gpu::model::Activation::None,
        clip_max: None,
        input_shape: depthwise.output_shape,
        output_shape: depthwise.output_shape,
    };
    model.layers.insert(2, add);
    let images: Vec<Vec<f32>> =
        (0..2).map(|i| (0..32 * 32 * 3).map(|j| ((i * 5 + j) % 255) as f32 / 127.5 - 1.0).collect()).collect();
    let folded = mnq_gpu::quant::transform::fold_batch_norms(&model, false);
    mnq_gpu::calibrate::quantize(&folded, &images).unwrap()
}

/// A graph's file keeps each layer's inputs; a file whose ADD reads a later layer, one tensor, or a tensor
/// quantized otherwise than its operand is refused with the layer named, never run.
#[test]
fn a_graph_round_trips_and_a_broken_graph_is_refused() {
    use mnq_gpu::model::Source;
    let model = residual_model();
    let loaded = file::from_bytes(&file::to_bytes(&model).unwrap(), Path::new("graph.mnq")).unwrap();
    assert_eq!(loaded.model, model);
    assert_eq!(model.inputs_of(2), [Source::Layer(1), Source::Layer(0)]);
    let broken = |change: fn(&mut QuantModel)| {
        let mut copy = model.clone();
        change(&mut copy);
        copy.validate().expect_err("a broken graph")
    };
    let later = broken(|m| m.layers[2].inputs = vec![Source::Layer(1), Source::Layer(5)]);
    assert!(later.contains("add_1") && later.contains("not an earlier layer"), "{later}");
    let one = broken(|m| m.layers[2].inputs = vec![Source::Layer(1)]);
    assert!(one.contains("1 inputs, its op reads 2"), "{one}");
    let requantized = broken(|m| m.layers[2].add.as_mut().unwrap().second_input.zero_point += 1);
    assert!(requantized.contains("input 1's quantization differs"), "{requantized}");
}
