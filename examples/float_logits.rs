//! The float CPU reference's logits (and the preprocessed input it ran on), for finetune/'s check that PyTorch's
//! MobileNetV1 computes the same function as mnq-gpu's float pipeline.
//!
//! `cargo run --release --example float_logits -- MODEL_DIR OUT_DIR IMAGE...` writes, for the i-th image,
//! `OUT_DIR/i.input.f32` (the preprocessed [h, w, 3] NHWC input) and `OUT_DIR/i.logits.f32` (the classifier's
//! outputs before softmax), raw little-endian float32, and prints one line per image: index, path, h, w.

use mnq_gpu::{cpu_ref, model::tfjs, preprocess};
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: float_logits MODEL_DIR OUT_DIR IMAGE...".into());
    }
    let model = tfjs::load(Path::new(&args[0]))?;
    let out = PathBuf::from(&args[1]);
    std::fs::create_dir_all(&out)?;
    let write = |path: PathBuf, values: &[f32]| {
        std::fs::write(path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
    };
    for (i, image) in args[2..].iter().enumerate() {
        let input = preprocess::load_model_input(Path::new(image), &model)?;
        let outputs = cpu_ref::run_f32(&model, &input);
        write(out.join(format!("{i}.input.f32")), &input)?;
        write(out.join(format!("{i}.logits.f32")), outputs.last().expect("the model has layers"))?;
        println!("{i} {image} {} {}", model.input_shape.h, model.input_shape.w);
    }
    Ok(())
}
