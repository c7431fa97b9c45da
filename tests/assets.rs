//! The embedded assets are the published files, unmodified (by their SHA-256, so no ../shared is needed), decode as
//! what they claim to be, and give the answer the README's first command shows.

use mnq_gpu::assets::{EMBEDDED_MODEL, EMBEDDED_MODEL_NAME, EXAMPLE_IMAGE, EXAMPLE_IMAGE_NAME};
use mnq_gpu::{cpu_ref, download, labels, preprocess, tflite};
use sha2::{Digest, Sha256};

/// `sha256sum assets/mobilenet_v1_1.0_224_quant.tflite`, as `assets/README.md` publishes it; the same bytes as
/// `../shared/models/tflite/mobilenet_v1_1.0_224_quant.tflite`.
const EMBEDDED_MODEL_SHA256: &str = "ce96d0d71a4981cf2fea956270dadbce8181080dda3557b5ee8340668ee45c40";
/// `sha256sum assets/grace_hopper.jpg`, as `assets/README.md` publishes it; the same bytes as
/// `../shared/images/grace_hopper.jpg`.
const EXAMPLE_IMAGE_SHA256: &str = "e25eff3a01f40278ab93e74207892707fa5be871a2b16f23ba5e42a9738804f2";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_embedded_model_is_the_published_1_0_224_quant_tflite() {
    assert_eq!(sha256_hex(EMBEDDED_MODEL), EMBEDDED_MODEL_SHA256, "assets/{EMBEDDED_MODEL_NAME}.tflite changed");
    assert_eq!(EMBEDDED_MODEL.len(), 4_282_256);
    assert!(download::is_tflite(EMBEDDED_MODEL));
    let known = download::find(EMBEDDED_MODEL_NAME).expect("`mnq-gpu download` knows the embedded model");
    assert_eq!((known.format, known.width, known.input_size), (download::Format::Tflite, "1.0", 224));
}

#[test]
fn the_example_image_is_grace_hopper_517_by_606() {
    assert_eq!(sha256_hex(EXAMPLE_IMAGE), EXAMPLE_IMAGE_SHA256, "assets/{EXAMPLE_IMAGE_NAME} changed");
    let image = image::load_from_memory(EXAMPLE_IMAGE).expect("a JPEG the image crate decodes");
    assert_eq!((image.width(), image.height()), (517, 606));
}

/// What `mnq-gpu run` shows on a machine without ../shared: the built-in model on the built-in photo, float and
/// int8 (the file's own quantization, CPU reference) both "military uniform", as TensorFlow's `label_image` says.
#[test]
fn the_embedded_model_classifies_the_example_photo_as_military_uniform() {
    let imported = tflite::from_bytes(EMBEDDED_MODEL, EMBEDDED_MODEL_NAME, "<built-in>".as_ref()).unwrap();
    let float = &imported.float;
    let image =
        preprocess::decode_image(EXAMPLE_IMAGE, "<built-in>".as_ref(), float.input_shape, float.input_range).unwrap();
    let float_logits = cpu_ref::run_f32(float, &image).pop().unwrap();
    let int8_logits = cpu_ref::run_u8(&imported.model, &imported.model.quantize_input(&image)).pop().unwrap();
    for (pipeline, logits) in [("float", float_logits), ("int8", imported.model.dequantize_logits(&int8_logits))] {
        let top = &labels::predictions(float, &logits, 1)[0];
        assert_eq!(top.name, "military uniform", "{pipeline}: {top:?}");
        assert!(top.probability > 0.8, "{pipeline}: {top:?}");
    }
}
