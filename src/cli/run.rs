//! `mnq-gpu run IMAGE...`: top-k classes, float and int8 side by side.

use super::{print_json, Device, ModelArgs};
use anyhow::Result;
use clap::Args;
use mnq_gpu::labels::{class_id, class_name, softmax, top_k};
use mnq_gpu::model::Model;
use mnq_gpu::quant::QuantModel;
use mnq_gpu::{cpu_ref, preprocess};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    /// JPEG or PNG images.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Where the int8 pipeline runs (the float pipeline always runs on the CPU).
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// How many classes to show.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    top: u16,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Prediction {
    class: usize,
    id: &'static str,
    name: String,
    probability: f32,
}

#[derive(Serialize)]
struct ImageResult {
    image: PathBuf,
    float: Vec<Prediction>,
    int8: Vec<Prediction>,
}

fn predictions(logits: &[f32], k: usize) -> Vec<Prediction> {
    let probabilities = softmax(logits);
    top_k(&probabilities, k)
        .into_iter()
        .map(|class| Prediction {
            class,
            id: class_id(class).unwrap_or(""),
            name: class_name(class),
            probability: probabilities[class],
        })
        .collect()
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let float = args.model.float_model()?;
    let inputs = args
        .images
        .iter()
        .map(|path| preprocess::load_image(path, float.input_shape))
        .collect::<Result<Vec<_>, _>>()?;
    let quantized = args.model.quant_model(&float)?;
    let k = usize::from(args.top);
    let results: Vec<ImageResult> = args
        .images
        .iter()
        .zip(&inputs)
        .map(|(path, input)| classify(&float, &quantized, input, k, path.clone()))
        .collect();
    if args.json {
        print_json(&results)?;
    } else {
        print_table(&results, &float, &quantized, args.device);
    }
    Ok(ExitCode::SUCCESS)
}

fn classify(float: &Model, quantized: &QuantModel, input: &[f32], k: usize, image: PathBuf) -> ImageResult {
    let float_logits = cpu_ref::run_f32(float, input).pop().expect("a model has layers");
    let int8_logits = cpu_ref::run_u8(quantized, &quantized.quantize_input(input)).pop().expect("a model has layers");
    ImageResult {
        image,
        float: predictions(&float_logits, k),
        int8: predictions(&quantized.dequantize_logits(&int8_logits), k),
    }
}

fn print_table(results: &[ImageResult], float: &Model, quantized: &QuantModel, device: Device) {
    for result in results {
        println!("{}  ({}, int8 scheme {} on {device:?})", result.image.display(), float.name, quantized.scheme);
        println!("   {:<40} {:<40}", "float (cpu)", "int8");
        for (f, q) in result.float.iter().zip(&result.int8) {
            let cell = |p: &Prediction| format!("{:6.2} %  {}", 100.0 * p.probability, truncate(&p.name, 28));
            println!("   {:<40} {:<40}", cell(f), cell(q));
        }
        println!();
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}
