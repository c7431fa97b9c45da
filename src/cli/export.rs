//! `mnq-gpu export`: write quantized models as TFLite files (uint8, or int8 for symmetric weights) that LiteRT
//! runs to the same bytes as mnq-gpu, every layer; schemes TFLite cannot express are refused with the reason.
//! `--format onnx` writes QDQ ONNX files that ONNX Runtime runs to the same bytes (schemes under `--requant fp32`),
//! and `--format onnx --float` the float model, for ONNX Runtime's `quantize_static`.

use super::{output_path, ModelArgs};
use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::{onnx, tflite};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output file (one scheme) or folder (several). Default: <model>_<scheme>.tflite in the current folder.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// File format: tflite, or onnx (QDQ, for schemes under --requant fp32; with --float: the float model).
    #[arg(long, value_enum, default_value_t = Format::Tflite)]
    format: Format,
    /// Write the float model (BatchNorm folded), not a quantized scheme: ONNX only.
    #[arg(long)]
    float: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Tflite,
    Onnx,
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let loaded = args.model.load()?;
    match (args.format, args.float) {
        (Format::Onnx, true) => {
            let output = args.output.unwrap_or_else(|| PathBuf::from(format!("{}.onnx", loaded.float.name)));
            onnx::export::save_float(&loaded.float, &output)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!("wrote {} (float, {} layers, opset 13)", output.display(), loaded.float.layers.len());
            return Ok(ExitCode::SUCCESS);
        }
        (Format::Onnx, false) => {
            let quantized = args.model.quantized_models(&loaded)?;
            // Every model is checked before any is written, so a refusal leaves no files behind.
            for q in &quantized {
                onnx::export::check_qdq(&q.model)?;
            }
            for q in &quantized {
                let output =
                    output_path(args.output.as_deref(), quantized.len(), &loaded.float.name, &q.model.scheme, "onnx")?;
                onnx::export::save_qdq(&q.model, &output).with_context(|| format!("writing {}", output.display()))?;
                eprintln!("wrote {} ({} layers as QDQ, scheme {})", output.display(), q.model.layers.len(), q.label());
            }
            return Ok(ExitCode::SUCCESS);
        }
        (Format::Tflite, true) => anyhow::bail!("--float is for --format onnx; TFLite export writes quantized models"),
        (Format::Tflite, false) => {}
    }
    let quantized = args.model.quantized_models(&loaded)?;
    // Every model is checked before any is written, so a refusal leaves no files behind.
    let element_types =
        quantized.iter().map(|q| tflite::export::element_type(&q.model)).collect::<Result<Vec<_>, _>>()?;
    for (q, element_type) in quantized.iter().zip(element_types) {
        let output =
            output_path(args.output.as_deref(), quantized.len(), &loaded.float.name, &q.model.scheme, "tflite")?;
        let element_type = match element_type {
            tflite::ElementType::Uint8 => "uint8",
            tflite::ElementType::Int8 => "int8",
        };
        tflite::save(&q.model, &q.float, &output).with_context(|| format!("writing {}", output.display()))?;
        eprintln!(
            "wrote {} ({} layers as {}, scheme {})",
            output.display(),
            q.model.layers.len(),
            element_type,
            q.model.scheme
        );
    }
    Ok(ExitCode::SUCCESS)
}
