//! `mnq-gpu quantize`: calibrate once, write one int8 model file per scheme.

use super::{output_path, ModelArgs};
use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::quant;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct QuantizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output file (one scheme) or folder (several). Default: <model>_<scheme>.safetensors in the current folder.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub fn run(args: QuantizeArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        args.model.quantized.is_empty(),
        "quantize calibrates a float model; --quantized makes no sense here"
    );
    let loaded = args.model.load()?;
    let float = &loaded.float;
    let quantized = args.model.quantized_models(&loaded)?;
    for q in &quantized {
        let output = output_path(args.output.as_deref(), quantized.len(), &float.name, &q.file_stem(), "safetensors")?;
        quant::file::save(&q.model, &output).with_context(|| format!("writing {}", output.display()))?;
        eprintln!("wrote {} ({} layers, scheme {})", output.display(), q.model.layers.len(), q.label());
    }
    Ok(ExitCode::SUCCESS)
}
