//! The library API in a few lines: load Google's built-in uint8 MobileNetV1, run one photo on the GPU (the CPU
//! reference where there is none), check every layer against the CPU integer reference, print the top-5.
//!
//! `cargo run --release --example classify [IMAGE]`

use mnq_gpu::engine::{check_layers, Engine, Loaded, SchemeChoice, Target};
use mnq_gpu::gpu::Readback;
use mnq_gpu::labels::predictions;
use mnq_gpu::{assets, preprocess};
use std::path::Path;

fn main() -> Result<(), mnq_gpu::Error> {
    // Keeps Mesa's Vulkan layer quiet on a headless machine (as the mnq-gpu binary does).
    mnq_gpu::gpu::context::quiet_headless_vulkan();
    let loaded = Loaded::built_in()?;
    let float = &loaded.float;
    let input = match std::env::args().nth(1) {
        Some(path) => preprocess::load_model_input(Path::new(&path), float)?,
        None => preprocess::decode_image(
            assets::EXAMPLE_IMAGE,
            Path::new("grace_hopper.jpg"),
            float.input_shape,
            float.input_range,
        )?,
    };
    // `tflite`: the file's own quantization (other schemes calibrate on images: `Loaded::quantize`).
    let quantized = loaded.quantize(&[SchemeChoice::File], &[])?.remove(0);
    let mut engine = match Engine::new(&Target::Gpu(Default::default()), &[&quantized.model], 1) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("no GPU ({e}); using the CPU integer reference");
            Engine::new(&Target::Cpu, &[&quantized.model], 1)?
        }
    };
    let int8_input = quantized.model.quantize_input(&input);
    let layers = engine.run(0, std::slice::from_ref(&int8_input), Readback::AllLayers)?.remove(0);
    let check = check_layers(&quantized.model, &int8_input, &layers);
    let logits = quantized.model.dequantize_logits(layers.last().expect("layers"));
    println!("{} on {}:", float.name, engine.adapter().map_or("the CPU".to_string(), ToString::to_string));
    for prediction in predictions(float, &logits, 5) {
        println!("  {:6.2} %  {}", 100.0 * prediction.probability, prediction.name);
    }
    println!(
        "{} bytes of {} layers checked against the CPU integer reference: {}",
        check.compared_bytes,
        layers.len(),
        if check.is_exact() { "bit-exact".to_string() } else { format!("{} differ", check.differing_bytes()) }
    );
    Ok(())
}
