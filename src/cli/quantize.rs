//! `mnq-gpu quantize`: calibrate once, write the int8 model file.

use super::ModelArgs;
use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::quant;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct QuantizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output file. Default: <model>_tf8.safetensors in the current folder.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub fn run(args: QuantizeArgs) -> Result<ExitCode> {
    anyhow::ensure!(args.model.quantized.is_none(), "quantize calibrates a float model; --quantized makes no sense here");
    let float = args.model.float_model()?;
    let quantized = args.model.quant_model(&float)?;
    let output = args.output.unwrap_or_else(|| PathBuf::from(format!("{}_{}.safetensors", float.name, quantized.scheme)));
    quant::file::save(&quantized, &output).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("wrote {} ({} layers, scheme {})", output.display(), quantized.layers.len(), quantized.scheme);
    Ok(ExitCode::SUCCESS)
}
