//! Import of Google's uint8 TFLite MobileNetV1 files (../shared/models/tflite): structure, parameters, the
//! float model they represent, and clear errors for defective files.

use mnq_gpu::cpu_ref;
use mnq_gpu::model::{Op, Padding};
use mnq_gpu::preprocess::load_model_input;
use mnq_gpu::tflite::{self, ElementType};
use std::path::{Path, PathBuf};

const MODELS: &str = "../shared/models/tflite";

/// (file, width, input size) of the four shared models.
const FILES: [(&str, f32, usize); 4] = [
    ("mobilenet_v1_1.0_224_quant.tflite", 1.0, 224),
    ("mobilenet_v1_0.75_192_quant.tflite", 0.75, 192),
    ("mobilenet_v1_0.5_160_quant.tflite", 0.5, 160),
    ("mobilenet_v1_0.25_128_quant.tflite", 0.25, 128),
];

fn path(file: &str) -> PathBuf {
    Path::new(MODELS).join(file)
}

#[test]
fn google_uint8_models_import_as_mobilenet_v1() {
    for (file, width, size) in FILES {
        let imported = tflite::load(&path(file)).unwrap();
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
    let imported = tflite::load(&path(FILES[0].0)).unwrap();
    let image = load_model_input(Path::new("../shared/images/grace_hopper.jpg"), &imported.float).unwrap();
    let logits = cpu_ref::run_u8(&imported.model, &imported.model.quantize_input(&image)).pop().unwrap();
    let best = (0..logits.len()).max_by_key(|&i| (logits[i], std::cmp::Reverse(i))).unwrap();
    let class = imported.float.class_of_output(best).expect("not background");
    assert_eq!(mnq_gpu::labels::class_name(class), "military uniform");
}
