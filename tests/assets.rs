//! The embedded assets are the published files, unmodified, and decode as what they claim to be.

use mnq_gpu::assets::{EMBEDDED_MODEL, EMBEDDED_MODEL_NAME, EXAMPLE_IMAGE, EXAMPLE_IMAGE_NAME};
use mnq_gpu::download;

#[test]
fn the_embedded_model_is_the_published_0_25_128_quant_tflite() {
    let shared = std::fs::read(format!("../shared/models/tflite/{EMBEDDED_MODEL_NAME}.tflite")).unwrap();
    assert!(EMBEDDED_MODEL == shared.as_slice(), "assets/ differs from ../shared/models/tflite/");
    assert_eq!(EMBEDDED_MODEL.len(), 525_598);
    assert!(download::is_tflite(EMBEDDED_MODEL));
    let known = download::find(EMBEDDED_MODEL_NAME).expect("`mnq-gpu download` knows the embedded model");
    assert_eq!((known.format, known.width, known.input_size), (download::Format::Tflite, "0.25", 128));
}

#[test]
fn the_example_image_is_grace_hopper_517_by_606() {
    let shared = std::fs::read(format!("../shared/images/{EXAMPLE_IMAGE_NAME}")).unwrap();
    assert!(EXAMPLE_IMAGE == shared.as_slice(), "assets/ differs from ../shared/images/");
    let image = image::load_from_memory(EXAMPLE_IMAGE).expect("a JPEG the image crate decodes");
    assert_eq!((image.width(), image.height()), (517, 606));
}

/// What `mnq-gpu run` does on a machine without ../shared: the built-in model on the built-in photo.
#[test]
fn the_embedded_model_classifies_the_example_photo_as_academic_dress() {
    let imported = mnq_gpu::tflite::from_bytes(EMBEDDED_MODEL, EMBEDDED_MODEL_NAME, "<built-in>".as_ref()).unwrap();
    let float = &imported.float;
    let image =
        mnq_gpu::preprocess::decode_image(EXAMPLE_IMAGE, "<built-in>".as_ref(), float.input_shape, float.input_range)
            .unwrap();
    let logits = mnq_gpu::cpu_ref::run_u8(&imported.model, &imported.model.quantize_input(&image)).pop().unwrap();
    let top = mnq_gpu::labels::top_k(&imported.model.dequantize_logits(&logits), 2);
    let names: Vec<String> =
        top.iter().map(|&output| mnq_gpu::labels::class_name(float.class_of_output(output).unwrap())).collect();
    assert_eq!(names, ["academic gown", "mortarboard"]);
}
