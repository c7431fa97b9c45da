//! `mnq-gpu run IMAGE...`: top-k classes, float and int8 side by side; `--check` compares every layer of the
//! int8 result with the CPU integer reference; `--dump` writes every layer's output.

use super::{dump, print_json, DeviceArgs, ModelArgs, EXIT_MISMATCH};
use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::engine::{check_layers, Mismatch};
use mnq_gpu::gpu::Readback;
use mnq_gpu::labels::{predictions, Prediction};
use mnq_gpu::quant::Requant;
use mnq_gpu::{assets, cpu_ref, preprocess};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    /// JPEG or PNG images. Default: the built-in example photo (grace_hopper.jpg).
    #[arg(value_name = "IMAGE")]
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
    /// Write each int8 pipeline's uint8 input and every layer's output as .npy files under DIR, with
    /// DIR/manifest.json naming them (for comparisons with other runtimes: scripts/litert_crosscheck.py).
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
    /// Only the float model, on the CPU: no quantization, no calibration images, no GPU (the int8 list is empty).
    #[arg(long, conflicts_with_all = ["check", "dump", "scheme", "quantized", "requant", "calibration"])]
    float_only: bool,
}

#[derive(Serialize)]
struct Int8Result {
    scheme: String,
    requant: Requant,
    device: &'static str,
    top: Vec<Prediction>,
    /// With --check: mismatching layers (empty: bit-exact).
    #[serde(skip_serializing_if = "Option::is_none")]
    mismatches: Option<Vec<Mismatch>>,
}

impl Int8Result {
    /// The scheme, with its requantization mode unless it is the default (as [`super::Quantized::label`]).
    fn label(&self) -> String {
        super::label(&self.scheme, self.requant)
    }
}

#[derive(Serialize)]
struct ImageResult {
    image: PathBuf,
    model: String,
    float: Vec<Prediction>,
    int8: Vec<Int8Result>,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let loaded = args.model.load()?;
    let float = &loaded.float;
    let images = if args.images.is_empty() {
        eprintln!("image: the built-in {}", assets::EXAMPLE_IMAGE_NAME);
        vec![PathBuf::from(format!("<built-in {}>", assets::EXAMPLE_IMAGE_NAME))]
    } else {
        args.images.clone()
    };
    let inputs = if args.images.is_empty() {
        vec![preprocess::decode_image(assets::EXAMPLE_IMAGE, &images[0], float.input_shape, float.input_range)?]
    } else {
        images.iter().map(|path| preprocess::load_model_input(path, float)).collect::<Result<Vec<_>, _>>()?
    };
    let k = usize::from(args.top);

    let mut results: Vec<ImageResult> = images
        .iter()
        .zip(&inputs)
        .map(|(image, input)| ImageResult {
            image: image.clone(),
            model: float.name.clone(),
            float: predictions(float, &cpu_ref::run_f32(float, input).pop().expect("layers"), k),
            int8: Vec::new(),
        })
        .collect();
    if args.float_only {
        return print_results(&args, &results).map(|()| ExitCode::SUCCESS);
    }
    let quantized = args.model.quantized_models(&loaded)?;
    let mut engine = args.device.engine(&quantized.iter().map(|q| &q.model).collect::<Vec<_>>())?;
    let readback = if args.check || args.dump.is_some() { Readback::AllLayers } else { Readback::Logits };
    let mut dumped = Vec::new();
    for (index, q) in quantized.iter().enumerate() {
        let int8_inputs: Vec<Vec<u8>> = inputs.iter().map(|input| q.model.quantize_input(input)).collect();
        let outputs = engine.run(index, &int8_inputs, readback)?;
        if let Some(dir) = &args.dump {
            for (i, ((image, input), layers)) in images.iter().zip(&int8_inputs).zip(&outputs).enumerate() {
                dumped.push(dump::write_run(dir, i, image, q, engine.device(), input, layers)?);
            }
        }
        for ((result, input), layers) in results.iter_mut().zip(&int8_inputs).zip(&outputs) {
            let logits = q.model.dequantize_logits(layers.last().expect("layers"));
            let mismatches = args.check.then(|| check_layers(&q.model, input, layers).mismatches);
            result.int8.push(Int8Result {
                scheme: q.scheme_name(),
                requant: q.model.requant(),
                device: engine.device(),
                top: predictions(float, &logits, k),
                mismatches,
            });
        }
    }

    if let Some(dir) = &args.dump {
        write_manifest(dir, &loaded, dumped)?;
    }
    print_results(&args, &results)?;
    let mismatched = results.iter().flat_map(|r| &r.int8).any(|i| i.mismatches.as_ref().is_some_and(|m| !m.is_empty()));
    Ok(if mismatched { ExitCode::from(EXIT_MISMATCH) } else { ExitCode::SUCCESS })
}

fn print_results(args: &RunArgs, results: &[ImageResult]) -> Result<()> {
    if args.json {
        print_json(&results)?;
    } else {
        print_table(results);
    }
    Ok(())
}

fn print_table(results: &[ImageResult]) {
    const WIDTH: usize = 36;
    for result in results {
        println!("{}  ({})", result.image.display(), result.model);
        let mut header = format!("   {:<WIDTH$}", "float (cpu)");
        for int8 in &result.int8 {
            header += &format!(" {:<WIDTH$}", format!("int8 {} ({})", int8.label(), int8.device));
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
                    println!("   check {}: every layer matches the CPU integer reference bit for bit", int8.label())
                }
                Some(mismatches) => {
                    println!("   check {}: MISMATCH in {} layers", int8.label(), mismatches.len());
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

fn write_manifest(dir: &Path, loaded: &super::Loaded, runs: Vec<dump::Run>) -> Result<()> {
    let manifest = dump::Manifest {
        model: loaded.float.name.clone(),
        tflite: loaded.tflite.as_ref().map(|_| loaded.source.canonicalize().unwrap_or(loaded.source.clone())),
        tflite_type: loaded.tflite.as_ref().map(|t| t.element_type),
        onnx: loaded.onnx.as_ref().map(|_| loaded.source.canonicalize().unwrap_or(loaded.source.clone())),
        onnx_input_type: loaded.onnx.as_ref().and_then(|o| o.input_type),
        runs,
    };
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} and the .npy files it lists", path.display());
    Ok(())
}
