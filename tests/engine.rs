//! The library engine: loading from bytes, quantizing, running on the GPU and the CPU reference, checking one
//! against the other, and its errors.

mod common;

use mnq_gpu::engine::{check_layers, compare, needs_calibration, Engine, Loaded, SchemeChoice, Target};
use mnq_gpu::gpu::Readback;
use mnq_gpu::model::Shape;
use mnq_gpu::{assets, preprocess};
use std::path::Path;

fn built_in_input(loaded: &Loaded) -> Vec<f32> {
    let float = &loaded.float;
    preprocess::decode_image(assets::EXAMPLE_IMAGE, Path::new("grace_hopper.jpg"), float.input_shape, float.input_range)
        .expect("the built-in photo decodes")
}

#[test]
fn the_gpu_engine_matches_the_cpu_engine_and_check_layers_agrees() {
    let Some(_) = common::gpu_or_skip() else { return };
    let loaded = Loaded::from_tflite_bytes(assets::EMBEDDED_MODEL, "embedded").expect("the built-in model imports");
    let q = loaded.quantize(&[SchemeChoice::File], &[]).expect("tflite needs no calibration").remove(0);
    let input = q.model.quantize_input(&built_in_input(&loaded));
    // A second, shifted image, so a batch holds two different inputs.
    let other: Vec<u8> = input.iter().map(|&x| x.wrapping_add(37)).collect();
    let inputs = vec![input, other];
    let mut gpu = Engine::new(&Target::Gpu(Default::default()), &[&q.model], 8).expect("a GPU engine");
    let mut cpu = Engine::new(&Target::Cpu, &[&q.model], 8).expect("a CPU engine");
    assert_eq!((gpu.device(), cpu.device()), ("gpu", "cpu"));
    let on_gpu = gpu.run(0, &inputs, Readback::AllLayers).expect("GPU run");
    let on_cpu = cpu.run(0, &inputs, Readback::AllLayers).expect("CPU run");
    assert_eq!(on_gpu.len(), 2);
    for ((input, gpu_layers), cpu_layers) in inputs.iter().zip(&on_gpu).zip(&on_cpu) {
        assert_eq!(gpu_layers.len(), q.model.layers.len());
        let check = check_layers(&q.model, input, gpu_layers);
        assert!(check.is_exact(), "{:?}", check.mismatches);
        assert_eq!(check.compared_bytes, q.model.layers.iter().map(|l| l.output_shape.len()).sum::<usize>());
        assert_eq!(gpu_layers, cpu_layers);
    }
    let logits = gpu.run(0, &inputs[..1], Readback::Logits).expect("logits only");
    assert_eq!(logits[0], vec![on_cpu[0].last().unwrap().clone()]);
}

#[test]
fn check_layers_finds_a_changed_byte_and_says_where() {
    let loaded = Loaded::built_in().expect("built in");
    let q = loaded.quantize(&[SchemeChoice::File], &[]).unwrap().remove(0);
    let input = q.model.quantize_input(&built_in_input(&loaded));
    let mut outputs = Engine::new(&Target::Cpu, &[&q.model], 1)
        .unwrap()
        .run(0, std::slice::from_ref(&input), Readback::AllLayers)
        .unwrap()
        .remove(0);
    let layer = 5;
    let shape = q.model.layers[layer].output_shape;
    let index = shape.len() / 2 + 3;
    outputs[layer][index] ^= 1;
    let check = check_layers(&q.model, &input, &outputs);
    assert_eq!(check.mismatches.len(), 1);
    let mismatch = &check.mismatches[0];
    assert_eq!((mismatch.layer.as_str(), mismatch.differing_bytes), (q.model.layers[layer].name.as_str(), 1));
    assert_eq!(mismatch.first_at, shape.coordinate(index));
    assert_eq!(mismatch.got, mismatch.expected ^ 1);
    // A shorter output: the missing bytes count as differing.
    let short = compare("x", Shape::new(1, 1, 4), &[1, 2, 3, 4], &[1, 2]).expect("differs");
    assert_eq!((short.differing_bytes, short.first_at, short.expected, short.got), (2, (0, 0, 2), 3, 0));
    assert_eq!(compare("x", Shape::new(1, 1, 2), &[7, 9], &[7, 9]), None);
}

#[test]
fn schemes_that_need_what_is_missing_are_refused_clearly() {
    let loaded = Loaded::built_in().expect("built in");
    let tf8: SchemeChoice = "tf8".parse().unwrap();
    assert!(needs_calibration(&[SchemeChoice::File, tf8.clone()]));
    assert!(!needs_calibration(&[SchemeChoice::File]));
    let error = loaded.quantize(&[tf8], &[]).err().expect("no calibration images").to_string();
    assert!(error.contains("needs calibration images"), "{error}");
    let input = built_in_input(&loaded);
    let quantized = loaded.quantize(&["tf8".parse().unwrap()], &[input]).expect("calibrated on one image");
    assert_eq!(quantized[0].model.scheme, "tf8");
    let error = Loaded::from_tflite_bytes(&assets::EMBEDDED_MODEL[..1000], "cut").err().expect("truncated").to_string();
    assert!(!error.is_empty());
    let error = Engine::new(&Target::Cpu, &[&quantized[0].model], 1).unwrap().run(3, &[], Readback::Logits).err();
    assert!(error.expect("no model 3").to_string().contains("model 3 of 1"));
}
