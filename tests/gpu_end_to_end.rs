//! The real MobileNetV1 0.75 × 224 (Google's TF.js weights), TF8-quantized on calibration images, Google's four
//! uint8 TFLite models and the two MobileNetV2 files (graphs with residual ADDs), as imported, run on the GPU
//! bit-exactly with the CPU integer reference at every layer, for both inner-product paths: the built-in model and
//! the 0.25 × 128 fixture on the built-in photo and the fixture images everywhere, the rest on ImageNet images where
//! ../shared is present.

mod common;

use mnq_gpu::gpu::{InnerProduct, Plan, Readback};
use mnq_gpu::quant::QuantModel;
use mnq_gpu::{assets, cpu_ref, model, preprocess, tflite};
use std::path::Path;

const MODEL: &str = "../shared/models/mobilenet_v1_0.75_224";
const IMAGES: &str = "../shared/imagenet/val1300";
/// Calibration images used (of the 100 listed): enough for realistic ranges, few enough for a quick test.
const CALIBRATION_IMAGES: usize = 8;
/// Evaluation images run through both engines.
const TEST_IMAGES: usize = 3;

const TFLITE_MODELS: &str = "../shared/models/tflite";
/// Google's four uint8 QAT files in TFLITE_MODELS (../shared/README.md).
const GOOGLE_TFLITE: [&str; 4] = [
    "mobilenet_v1_1.0_224_quant.tflite",
    "mobilenet_v1_0.75_192_quant.tflite",
    "mobilenet_v1_0.5_160_quant.tflite",
    "mobilenet_v1_0.25_128_quant.tflite",
];
/// MobileNetV2 1.0 × 224: Google's QAT uint8 file and TF2's per-channel int8 one (MEAN, QUANTIZE at the edges).
const V2_TFLITE: [&str; 2] = ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"];
/// Images that need no ../shared: the built-in photo and the fixtures (random pixels, CMYK and greyscale JPEGs).
const FIXTURE_IMAGES: [&str; TEST_IMAGES] = ["assets/grace_hopper.jpg", "tests/data/cmyk.jpg", "tests/data/grey.jpg"];

/// The first `count` images listed in `list` (lines `FILE CLASS`), preprocessed for `model`.
fn load_model_inputs(list: &str, count: usize, model: &model::Model) -> Vec<Vec<f32>> {
    let listing = std::fs::read_to_string(Path::new(IMAGES).join(list)).expect("image list");
    listing
        .lines()
        .take(count)
        .map(|line| {
            let file = line.split_whitespace().next().expect("FILE CLASS");
            preprocess::load_model_input(&Path::new(IMAGES).join("images").join(file), model).expect("image")
        })
        .collect()
}

#[test]
fn real_mobilenet_v1_0_75_matches_cpu_ref_at_every_layer() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    if !common::data_or_skip(&[MODEL, IMAGES]) {
        return;
    }
    let float = model::tfjs::load(Path::new(MODEL)).expect("model");
    let calibration = load_model_inputs("calibration.txt", CALIBRATION_IMAGES, &float);
    let quant = mnq_gpu::calibrate::quantize(&float, &calibration).expect("quantize");
    let images: Vec<Vec<u8>> = load_model_inputs("evaluation.txt", TEST_IMAGES, &float)
        .iter()
        .map(|image| quant.quantize_input(image))
        .collect();
    assert_gpu_matches_cpu_ref(&gpu, &quant, &images);
}

#[test]
fn the_built_in_model_and_the_0_25_fixture_match_cpu_ref_at_every_layer() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    let built_in = tflite::from_bytes(assets::EMBEDDED_MODEL, assets::EMBEDDED_MODEL_NAME, "<built-in>".as_ref());
    let fixture = tflite::load(Path::new("tests/data/mobilenet_v1_0.25_128_quant.tflite"));
    for imported in [built_in.expect("the built-in model imports"), fixture.expect("the fixture imports")] {
        let images: Vec<Vec<u8>> = FIXTURE_IMAGES
            .iter()
            .map(|path| preprocess::load_model_input(Path::new(path), &imported.float).expect("a fixture image"))
            .map(|image| imported.model.quantize_input(&image))
            .collect();
        assert_gpu_matches_cpu_ref(&gpu, &imported.model, &images);
    }
}

#[test]
fn google_tflite_models_match_cpu_ref_at_every_layer() {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    if !common::data_or_skip(&[TFLITE_MODELS, IMAGES]) {
        return;
    }
    for file in GOOGLE_TFLITE.iter().chain(&V2_TFLITE) {
        let imported = tflite::load(&Path::new(TFLITE_MODELS).join(file)).expect("import");
        let images: Vec<Vec<u8>> = load_model_inputs("evaluation.txt", TEST_IMAGES, &imported.float)
            .iter()
            .map(|image| imported.model.quantize_input(image))
            .collect();
        assert_gpu_matches_cpu_ref(&gpu, &imported.model, &images);
    }
}

/// Every layer of every image of `quant` on the GPU equals the CPU integer reference, for both inner products.
fn assert_gpu_matches_cpu_ref(gpu: &mnq_gpu::gpu::GpuContext, quant: &QuantModel, images: &[Vec<u8>]) {
    let inputs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    let expected: Vec<Vec<Vec<u8>>> = images.iter().map(|image| cpu_ref::run_u8(quant, image)).collect();
    for inner in InnerProduct::ALL {
        let mut plan = Plan::new(gpu, quant, TEST_IMAGES, inner).expect("plan");
        let actual = plan.run(gpu, &inputs, Readback::AllLayers).expect("run");
        for (image, (expected, actual)) in expected.iter().zip(&actual).enumerate() {
            for ((layer, expected), actual) in quant.layers.iter().zip(expected).zip(actual) {
                let what = format!("{}: image {image}, {} ({inner:?})", quant.name, layer.name);
                common::assert_bit_exact(&what, layer.output_shape, expected, actual);
            }
        }
    }
}
