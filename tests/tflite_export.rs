//! Export to TFLite: every scheme TFLite expresses exactly is written as a .tflite file that imports back to the
//! same quantized model, field for field (so the CPU reference and the GPU compute the same bytes on it); the
//! schemes it cannot express are refused with the reason.

mod common;

use mnq_gpu::calibrate::quantize_scheme;
use mnq_gpu::labels::read_list;
use mnq_gpu::model::{tfjs, InputRange, Model};
use mnq_gpu::preprocess::load_image;
use mnq_gpu::quant::fixed_point::{effective_scale, quantize_multiplier, ScaleProduct};
use mnq_gpu::quant::QuantModel;
use mnq_gpu::tflite::{self, export, ElementType, Imported};
use std::path::Path;
use std::sync::OnceLock;

/// Calibration images: enough for realistic ranges, few enough to keep the test fast.
const CALIBRATION_IMAGES: usize = 3;

const MODEL_0_75: &str = "../shared/models/mobilenet_v1_0.75_224";
const CALIBRATION: &str = "../shared/imagenet/val1300/calibration.txt";

/// The 0.75 × 224 TF.js model and the first calibration images (both in ../shared only).
fn model_and_images() -> &'static (Model, Vec<Vec<f32>>) {
    static DATA: OnceLock<(Model, Vec<Vec<f32>>)> = OnceLock::new();
    DATA.get_or_init(|| {
        let model = tfjs::load(Path::new(MODEL_0_75)).unwrap();
        let list = read_list(Path::new(CALIBRATION), 1000).unwrap();
        let images =
            list.iter().take(CALIBRATION_IMAGES).map(|l| load_image(&l.path, model.input_shape).unwrap()).collect();
        (model, images)
    })
}

/// True when the 0.75 model and the calibration images are beside the repository; else records the skip.
fn have_data() -> bool {
    common::data_or_skip(&[MODEL_0_75, CALIBRATION])
}

/// (the float model `scheme` quantizes, the quantized model); call [`have_data`] first.
fn quantized(scheme: &str) -> (Model, QuantModel) {
    let (model, images) = model_and_images();
    quantize_scheme(model, &scheme.parse().unwrap(), images).unwrap()
}

fn export_and_import(float: &Model, model: &QuantModel) -> Imported {
    let bytes = export::to_bytes(model, float).unwrap_or_else(|e| panic!("{}: {e}", model.scheme));
    tflite::from_bytes(&bytes, "exported", Path::new("exported.tflite"))
        .unwrap_or_else(|e| panic!("{}: the exported file does not import: {e}", model.scheme))
}

/// Panics unless the two models are equal, naming the first layer and field that differ.
fn assert_same_model(what: &str, expected: &QuantModel, actual: &QuantModel) {
    assert_eq!(expected.layers.len(), actual.layers.len(), "{what}: layer counts");
    for (e, a) in expected.layers.iter().zip(&actual.layers) {
        let fields = [
            ("name", e.name == a.name),
            ("op", e.op == a.op),
            ("shapes", (e.input_shape, e.output_shape) == (a.input_shape, a.output_shape)),
            ("input/output quantization", (e.input, e.output) == (a.input, a.output)),
            ("weights", e.weights == a.weights),
            ("weight scales", e.weight_scales == a.weight_scales),
            ("weight zero points", e.weight_zero_points == a.weight_zero_points),
            ("bias", e.bias == a.bias),
            ("multipliers", e.multipliers == a.multipliers),
            ("shifts", e.shifts == a.shifts),
            ("clamp", (e.act_min, &e.act_max) == (a.act_min, &a.act_max)),
        ];
        for (field, same) in fields {
            assert!(same, "{what}: layer {}: {field} differ after the round trip", e.name);
        }
    }
    assert_eq!(expected, actual, "{what}: the models differ outside their layers");
}

#[test]
fn every_uint8_scheme_exports_and_imports_back_to_the_same_model() {
    if !have_data() {
        return;
    }
    for scheme in ["tf8", "tf8-zero-var", "tf8+mse", "tf8-zero-var+relu", "tf8-zero-var+dw-linear"] {
        let (float, model) = quantized(scheme);
        assert_eq!(export::element_type(&model).unwrap(), ElementType::Uint8, "{scheme}");
        let imported = export_and_import(&float, &model);
        assert_eq!(imported.element_type, ElementType::Uint8, "{scheme}");
        assert_same_model(scheme, &model, &imported.model);
        // The metadata restores what the flatbuffer cannot say: the input is x/127.5 − 1, not the pixels.
        assert_eq!(imported.float.input_range, InputRange::SignedUnit, "{scheme}");
        assert_eq!(imported.float.input_range, float.input_range, "{scheme}");
        assert_eq!((imported.float.name.as_str(), imported.float.background_class), (float.name.as_str(), false));
    }
}

/// `+sym` quantizes weights as TFLite's int8 post-training quantization does: such models, per-channel too, export
/// as int8 files (values and zero points − 128, weights with zero point 0).
#[test]
fn symmetric_schemes_export_as_int8_and_import_back_to_the_same_model() {
    if !have_data() {
        return;
    }
    for scheme in ["per-channel+sym", "tf8+sym", "tf8-zero-var+sym+mse"] {
        let (float, model) = quantized(scheme);
        assert!(model.layers.iter().all(|l| l.weight_zero_points.iter().all(|&z| z == 128)), "{scheme}");
        assert!(model.layers.iter().all(|l| l.weights.iter().all(|&q| q >= 1)), "{scheme}: int8 weights in ±127");
        let imported = export_and_import(&float, &model);
        assert_eq!(imported.element_type, ElementType::Int8, "{scheme}");
        assert_same_model(scheme, &model, &imported.model);
        assert_eq!(imported.float.input_range, InputRange::SignedUnit, "{scheme}");
    }
}

/// Weights in fewer bits (`+wB`, per layer too) are ordinary uint8 or int8 tensors that use fewer codes: they
/// export, and the metadata gives the scheme back with its widths.
#[test]
fn fewer_bit_weights_export_and_import_back_to_the_same_model() {
    if !have_data() {
        return;
    }
    let cases = [
        ("tf8-zero-var+w4", ElementType::Uint8),
        ("tf8+w6+w8@conv1@conv_preds", ElementType::Uint8),
        ("per-channel+sym+w4", ElementType::Int8),
        ("tf8-zero-var+sym+w5+w8@conv_pw_13", ElementType::Int8),
    ];
    for (scheme, element_type) in cases {
        let (float, model) = quantized(scheme);
        let imported = export_and_import(&float, &model);
        assert_eq!(imported.element_type, element_type, "{scheme}");
        assert_same_model(scheme, &model, &imported.model);
        assert_eq!(imported.model.scheme, scheme);
        assert_eq!(imported.model.scheme.parse::<mnq_gpu::quant::scheme::Scheme>().unwrap().name, scheme);
    }
}

#[test]
fn per_channel_and_cle_are_refused_with_the_reason() {
    if !have_data() {
        return;
    }
    let cases = [
        ("per-channel", "asymmetric per-channel weights"),
        ("cle", "per-channel activation clamps"),
        ("cle-bc", "per-channel activation clamps"),
    ];
    for (scheme, reason) in cases {
        let (float, model) = quantized(scheme);
        let message = export::to_bytes(&model, &float).expect_err(scheme).to_string();
        assert!(message.contains(reason) && message.contains("layer conv"), "{scheme}: {message}");
        assert!(message.starts_with(&format!("cannot export mobilenet_v1_0.75_224 (scheme {scheme}) as TFLite")));
    }
}

/// Multipliers TFLite derives differently from the stored scales (as an mnq-gpu before the uint8 convention wrote
/// them, s_in·s_w in double) would make TFLite compute other bytes: refused.
#[test]
fn a_multiplier_tflite_would_derive_differently_is_refused() {
    if !have_data() {
        return;
    }
    let (float, mut model) = quantized("tf8");
    for layer in model.layers.iter_mut().filter(|l| l.op.has_weights()) {
        for c in 0..layer.output_shape.c {
            let real =
                effective_scale(layer.input.scale, layer.weight_scales[c], layer.output.scale, ScaleProduct::Float64);
            (layer.multipliers[c], layer.shifts[c]) = quantize_multiplier(real).unwrap();
        }
    }
    let message = export::to_bytes(&model, &float).unwrap_err().to_string();
    assert!(message.contains("layer conv1: channel ") && message.contains("older mnq-gpu"), "{message}");
}

#[test]
fn a_clamp_no_fused_activation_gives_is_refused() {
    if !have_data() {
        return;
    }
    let (float, mut model) = quantized("tf8");
    let layer = &mut model.layers[1];
    layer.act_max = vec![layer.act_max[0] - 1; layer.act_max.len()];
    let message = export::to_bytes(&model, &float).unwrap_err().to_string();
    assert!(message.contains("layer conv_dw_1: the clamp") && message.contains("fused activations"), "{message}");
}

#[test]
fn synthetic_models_are_refused() {
    if !have_data() {
        return;
    }
    let float = mnq_gpu::model::synthetic::mobilenet_v1(0.25, 64, 1);
    let (_, mut model) = quantized("tf8");
    model.synthetic = true;
    let message = export::to_bytes(&model, &float).unwrap_err().to_string();
    assert!(message.contains("synthetic"), "{message}");
}

#[test]
fn googles_uint8_file_exports_and_imports_back_to_the_same_model() {
    let original = tflite::load(Path::new("tests/data/mobilenet_v1_0.25_128_quant.tflite")).unwrap();
    let imported = export_and_import(&original.float, &original.model);
    assert_eq!(imported.element_type, ElementType::Uint8);
    assert_same_model("mobilenet_v1_0.25_128_quant", &original.model, &imported.model);
    assert_eq!(imported.float.input_range, original.float.input_range);
    assert!(imported.float.background_class);
}

#[test]
fn a_saved_file_loads_with_the_models_name_and_scheme() {
    if !have_data() {
        return;
    }
    let (float, model) = quantized("tf8");
    let path = std::env::temp_dir().join(format!("mnq-export-{}.tflite", std::process::id()));
    export::save(&model, &float, &path).unwrap();
    let imported = tflite::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // The metadata names the model, not the file.
    assert_eq!((imported.model.name.as_str(), imported.model.scheme.as_str()), ("mobilenet_v1_0.75_224", "tf8"));
    // conv1, 13 × (depthwise, pointwise), pool, classifier: one file tensor per layer output, in order.
    assert_eq!(imported.tensors.len(), 29);
    assert!(imported.tensors.windows(2).all(|w| w[0] < w[1]));
}
