//! `mnq-gpu run IMAGE...`: top-k classes, float and int8 side by side; `--check` compares every layer of the
//! int8 result with the CPU integer reference.

use super::engine::{check_layers, Engine, Mismatch};
use super::{print_json, DeviceArgs, ModelArgs, EXIT_MISMATCH};
use anyhow::Result;
use clap::Args;
use mnq_gpu::labels::{class_id, class_name, softmax, top_k};
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
    #[command(flatten)]
    device: DeviceArgs,
    /// Also run the CPU integer reference and report, layer by layer, whether the int8 outputs match bit for
    /// bit; exit with code 3 on a mismatch.
    #[arg(long)]
    check: bool,
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
struct Int8Result {
    scheme: String,
    device: &'static str,
    top: Vec<Prediction>,
    /// With --check: mismatching layers (empty: bit-exact).
    #[serde(skip_serializing_if = "Option::is_none")]
    mismatches: Option<Vec<Mismatch>>,
}

#[derive(Serialize)]
struct ImageResult {
    image: PathBuf,
    model: String,
    float: Vec<Prediction>,
    int8: Vec<Int8Result>,
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
    let quantized = args.model.quantized_models(&float)?;
    let mut engine = Engine::new(&args.device, &quantized.iter().map(|q| &q.model).collect::<Vec<_>>())?;
    let k = usize::from(args.top);

    let mut results: Vec<ImageResult> = args
        .images
        .iter()
        .zip(&inputs)
        .map(|(image, input)| ImageResult {
            image: image.clone(),
            model: float.name.clone(),
            float: predictions(&cpu_ref::run_f32(&float, input).pop().expect("layers"), k),
            int8: Vec::new(),
        })
        .collect();
    for (index, q) in quantized.iter().enumerate() {
        let int8_inputs: Vec<Vec<u8>> = inputs.iter().map(|input| q.model.quantize_input(input)).collect();
        let outputs = engine.run(index, &q.model, &int8_inputs, args.check)?;
        for ((result, input), layers) in results.iter_mut().zip(&int8_inputs).zip(&outputs) {
            let logits = q.model.dequantize_logits(layers.last().expect("layers"));
            let mismatches = args.check.then(|| check_layers(&q.model, input, layers).1);
            result.int8.push(Int8Result {
                scheme: q.scheme.to_string(),
                device: engine.device(),
                top: predictions(&logits, k),
                mismatches,
            });
        }
    }

    if args.json {
        print_json(&results)?;
    } else {
        print_table(&results);
    }
    let mismatched = results.iter().flat_map(|r| &r.int8).any(|i| i.mismatches.as_ref().is_some_and(|m| !m.is_empty()));
    Ok(if mismatched { ExitCode::from(EXIT_MISMATCH) } else { ExitCode::SUCCESS })
}

fn print_table(results: &[ImageResult]) {
    const WIDTH: usize = 36;
    for result in results {
        println!("{}  ({})", result.image.display(), result.model);
        let mut header = format!("   {:<WIDTH$}", "float (cpu)");
        for int8 in &result.int8 {
            header += &format!(" {:<WIDTH$}", format!("int8 {} ({})", int8.scheme, int8.device));
        }
        println!("{}", header.trim_end());
        for row in 0..result.float.len() {
            let cell = |p: &Prediction| format!("{:6.2} %  {}", 100.0 * p.probability, truncate(&p.name, WIDTH - 11));
            let mut line = format!("   {:<WIDTH$}", cell(&result.float[row]));
            for int8 in &result.int8 {
                line += &format!(" {:<WIDTH$}", cell(&int8.top[row]));
            }
            println!("{}", line.trim_end());
        }
        for int8 in &result.int8 {
            match &int8.mismatches {
                Some(mismatches) if mismatches.is_empty() => {
                    println!("   check {}: every layer matches the CPU integer reference bit for bit", int8.scheme)
                }
                Some(mismatches) => {
                    println!("   check {}: MISMATCH in {} layers", int8.scheme, mismatches.len());
                    for mismatch in mismatches {
                        println!("     {mismatch}");
                    }
                }
                None => {}
            }
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
