//! Inputs that crashed, hung or exhausted memory in a parser of user bytes under the cargo-fuzz targets' bounds
//! (fuzz/, scripts/fuzz.sh: -rss_limit_mb=2048, -timeout=10), each built here in code: every one is now an `Error`
//! saying what is wrong. Each `///` line says which bug the test pins and how it was found.

use mnq_gpu::model::synthetic;
use mnq_gpu::model::tfjs::TfjsModel;
use mnq_gpu::model::{InputRange, Shape};
use mnq_gpu::preprocess::decode_image;
use mnq_gpu::quant::file;
use mnq_gpu::Error;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// A small synthetic MobileNet's quantized-model file with its parameters' JSON edited by `edit` and no checksum
/// (a file from before the checksum loads unchecked, so the edited parameters reach validation).
fn quantized_file_edited(edit: impl Fn(&mut Value)) -> Vec<u8> {
    let model = synthetic::mobilenet_v1(0.25, 32, 7);
    let images: Vec<Vec<f32>> = vec![(0..32 * 32 * 3).map(|j| (j % 255) as f32 / 127.5 - 1.0).collect()];
    let bytes = file::to_bytes(&mnq_gpu::calibrate::quantize(&model, &images).unwrap()).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let metadata = header["__metadata__"].as_object_mut().unwrap();
    metadata.remove("sha256");
    let mut params: Value = serde_json::from_str(metadata["mnq_gpu"].as_str().unwrap()).unwrap();
    edit(&mut params);
    metadata.insert("mnq_gpu".into(), params.to_string().into());
    let mut text = serde_json::to_vec(&header).unwrap();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

fn quant_file_error(bytes: &[u8]) -> String {
    match file::from_bytes(bytes, Path::new("fuzz.safetensors")) {
        Err(error @ Error::QuantFile { .. }) => error.to_string(),
        other => panic!("expected a QuantFile error, got {other:?}"),
    }
}

/// Pins: stride 0 in a quantized file divided by zero in `same_padding` (a panic) before the stride was checked;
/// seen reading `validate` for the quant_file target, which panicked on it.
#[test]
fn a_quantized_file_with_stride_zero_is_an_error() {
    let bytes = quantized_file_edited(|params| params["layers"][0]["op"]["stride"] = json!(0));
    let error = quant_file_error(&bytes);
    assert!(error.contains("layer conv1") && error.contains("stride 0"), "{error}");
}

/// Pins: an input shape of 2^32 × 2^32 × 3 overflowed `Shape::len` (a panic, or a wrapped size in release builds);
/// seen reading `validate`, the quant_file target panicked on it.
#[test]
fn a_quantized_file_whose_input_size_overflows_is_an_error() {
    let bytes = quantized_file_edited(|params| {
        params["input_shape"] = json!({"h": 1u64 << 32, "w": 1u64 << 32, "c": 3});
        params["layers"][0]["input_shape"] = params["input_shape"].clone();
    });
    let error = quant_file_error(&bytes);
    assert!(error.contains("bad input shape"), "{error}");
}

/// Pins: 2^62 output channels overflowed the weight count 9·c_in·c_out in validation (a panic, or a wrapped count
/// that could match a short weight tensor in release builds); seen reading `validate`, the target panicked on it.
#[test]
fn a_quantized_file_whose_weight_count_overflows_is_an_error() {
    let bytes = quantized_file_edited(|params| params["layers"][0]["output_shape"]["c"] = json!(1u64 << 62));
    let error = quant_file_error(&bytes);
    assert!(error.contains("layer conv1") && error.contains("out of bounds"), "{error}");
}

/// Pins: a manifest listing 1,024 tensors of 2^28 floats in one group made `tensor` reserve the 1 TiB they claim
/// before reading 4 bytes of shard (an allocation failure, which aborts); seen reading the loader for the tfjs
/// target, which reported out-of-memory on 3 such tensors.
#[test]
fn a_manifest_claiming_a_terabyte_reserves_only_what_the_shards_hold() {
    let weights: Vec<Value> =
        (0..1024).map(|i| json!({"name": format!("t{i}"), "shape": [1 << 28], "dtype": "float32"})).collect();
    let manifest = json!({
        "modelTopology": {"config": {"layers": []}},
        "weightsManifest": [{"paths": ["group1-shard1of1"], "weights": weights}],
    });
    let shards = HashMap::from([("group1-shard1of1".to_string(), vec![0u8; 4])]);
    let model = TfjsModel::from_bytes(Path::new("fuzz"), manifest.to_string().as_bytes(), shards).unwrap();
    let error = model.tensor("t0").unwrap_err().to_string();
    assert!(error.contains("shards hold 4 bytes, the manifest's tensors need 1099511627776"), "{error}");
}

/// Pins: a 25 KB JPEG whose header claims 13,000 × 13,000 pixels ran past the image target's 10 s timeout (its pixels
/// alone need 0.5 GB, their floats 2 GB); a header edited by hand, run through the target.
#[test]
fn a_jpeg_claiming_a_huge_image_is_refused_before_decoding() {
    let pixels: Vec<u8> = (0..16 * 16 * 3).map(|i| (i * 37 % 256) as u8).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode(&pixels, 16, 16, image::ExtendedColorType::Rgb8).unwrap();
    // SOF0 (FF C0): length (2 bytes), precision (1), then height and width, big-endian.
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x32, 0xC8, 0x32, 0xC8]);
    let range = InputRange::Pixels { scale: 1.0 / 128.0, zero_point: 128 };
    let error = decode_image(&jpeg, Path::new("huge.jpg"), Shape::new(16, 16, 3), range).unwrap_err().to_string();
    assert!(error.contains("13000 × 13000 is more than 16777216 pixels"), "{error}");
}
