//! The command line: one module per subcommand, shared arguments here.

mod arithmetic;
mod bench;
mod charts;
mod conventions;
mod download;
mod dump;
mod eval;
mod export;
mod finetune;
mod inspect;
mod quantize;
mod report;
mod run;
mod sensitivity;
mod serve;
mod soak;
mod sqnr;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
pub use mnq_gpu::engine::{label, Loaded, Quantized, SchemeChoice};
use mnq_gpu::engine::{Engine, Target};
use mnq_gpu::gpu::AdapterOptions;
use mnq_gpu::model::Model;
use mnq_gpu::quant::{QuantModel, Requant};
use mnq_gpu::study::{self, Bar, Progress};
use mnq_gpu::{assets, engine};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub const EXIT_ERROR: u8 = 1;
/// The GPU and the CPU integer reference disagreed (`--check`).
pub const EXIT_MISMATCH: u8 = 3;

const DEFAULT_MODEL: &str = "shared/models/mobilenet_v1_0.75_224";
const DEFAULT_CALIBRATION: &str = "shared/imagenet/val1300/calibration.txt";
const DEFAULT_EVALUATION: &str = "shared/imagenet/val1300/evaluation.txt";

#[derive(Parser)]
#[command(
    name = "mnq-gpu",
    version,
    about = "8-bit integer MobileNetV1 on GPU compute shaders, checked bit for bit against a CPU reference"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify images: top-5 classes, float and int8 side by side.
    Run(run::RunArgs),
    /// Top-1/top-5 accuracy of the float and int8 pipelines over a labelled list.
    Eval(eval::EvalArgs),
    /// Per-layer SQNR of the int8 pipeline against float (accumulated and local).
    Sqnr(sqnr::SqnrArgs),
    /// Calibrate and quantize a model once; write it for the other commands (--quantized).
    Quantize(quantize::QuantizeArgs),
    /// Write quantized models as TFLite files that LiteRT runs to the same bytes (schemes it can express).
    Export(export::ExportArgs),
    /// Time the int8 pipeline on the GPU (batch 1 and larger) against the CPU integer reference.
    Bench(bench::BenchArgs),
    /// Many inferences through one plan and many plan lifetimes: memory, live GPU objects and time at start and end.
    Soak(soak::SoakArgs),
    /// Weight ranges before and after folding BatchNorm, dead BatchNorm channels, per-channel range charts.
    Inspect(inspect::InspectArgs),
    /// Per-layer sensitivity to fewer weight bits, and the cheapest mixed assignment within a top-1 budget.
    ///
    /// Here --scheme is one base scheme without +wB (default tf8-zero-var), and --quantized is not taken.
    Sensitivity(sensitivity::SensitivityArgs),
    /// Regenerate RESULTS.md: every scheme's accuracy, SQNR charts, the 1.0 model's weight analysis.
    Report(report::ReportArgs),
    /// Fetch Google's published MobileNetV1 models (TF.js or TFLite) by name into the local cache.
    Download(download::DownloadArgs),
    /// Serve the browser page (web/dist, built by scripts/build-web.sh), the models and example images it loads.
    Serve(serve::ServeArgs),
}

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Sqnr(args) => sqnr::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Soak(args) => soak::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Sensitivity(args) => sensitivity::run(args),
        Command::Report(args) => report::run(args),
        Command::Download(args) => download::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The WGSL shaders through wgpu.
    Gpu,
    /// The CPU integer reference.
    Cpu,
}

/// Where the int8 pipeline runs, shared by run, eval and report.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Where the int8 pipeline runs (the float pipeline always runs on the CPU).
    #[arg(long, value_enum, default_value = "gpu")]
    pub device: Device,
    /// Use the first GPU adapter whose name contains this (case-insensitive), e.g. llvmpipe. WGPU_BACKEND
    /// (vulkan, metal, dx12, gl) picks the backend.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// For tests (hidden): destroy the GPU device after N int8 runs (chunks of images), as a device loss would,
    /// to show that the command then fails with a clear error and prints no results.
    #[arg(long, hide = true, value_name = "N")]
    pub lose_device_after: Option<usize>,
}

impl DeviceArgs {
    /// Where the int8 pipeline runs.
    pub fn target(&self) -> Target {
        match self.device {
            Device::Cpu => Target::Cpu,
            Device::Gpu => Target::Gpu(AdapterOptions { name_filter: self.adapter.clone(), backends: None }),
        }
    }

    /// Where a study runs its int8 pipelines.
    pub fn to_device(&self) -> study::Device {
        study::Device { target: self.target(), lose_device_after: self.lose_device_after }
    }

    /// The engine for `models` on the chosen device (naming the GPU adapter on stderr).
    pub fn engine(&self, models: &[&QuantModel]) -> Result<Engine> {
        Ok(self.to_device().engine(models, &Stderr)?)
    }
}

/// The labelled list a command reads, shared by eval, sqnr and sensitivity.
#[derive(Args, Clone, Debug)]
pub struct ListArgs {
    /// Labelled list (`FILE CLASS` lines). Default: ../shared/imagenet/val1300/evaluation.txt
    #[arg(long, value_name = "LIST")]
    pub list: Option<PathBuf>,
}

impl ListArgs {
    /// The first `limit` images (`None`: all) of --list, or of the evaluation list beside the repository, whose
    /// classes `model` has.
    pub fn read(&self, model: &Model, limit: Option<usize>) -> Result<study::List> {
        let path = match &self.list {
            Some(list) => list.clone(),
            None => default_evaluation_list()?,
        };
        Ok(study::List::read(&path, model, limit)?)
    }
}

/// Where the model comes from, shared by every subcommand.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// A TF.js MobileNetV1 folder (model.json + shards), a quantized TFLite file (.tflite), an ONNX file (.onnx:
    /// float, or quantized as ONNX Runtime's quantize_static writes it, QDQ or QOperator), or a name that
    /// `mnq-gpu download` fetched (e.g. mobilenet_v1_0.5_160_quant). Default: ../shared/models/mobilenet_v1_0.75_224
    /// (looked up beside and above the current folder and the source tree), else the built-in
    /// mobilenet_v1_1.0_224_quant.
    #[arg(long, value_name = "DIR|FILE|NAME")]
    pub model: Option<PathBuf>,
    /// Quantization schemes, comma-separated: a preset (tf8, tf8-zero-var, per-channel, cle, cle-bc) with
    /// optional modifiers (+mse, +zero-var, +per-channel, +sym, +relu, +dw-linear; +w4 for 4-bit weights, 2 to 8,
    /// and +w8@conv1@conv_preds for per-layer widths), e.g. `tf8,per-channel,cle-bc+mse,per-channel+sym+w4`;
    /// `tflite` (or `onnx`) is a quantized TFLite (ONNX) file's own quantization. Default: tf8, and the file's own
    /// for a quantized TFLite or ONNX model (other schemes quantize the float model the file represents).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub scheme: Vec<SchemeChoice>,
    /// Quantized models written by `mnq-gpu quantize` (comma-separated), instead of calibrating --scheme.
    #[arg(long, value_name = "FILES", value_delimiter = ',')]
    pub quantized: Vec<PathBuf>,
    /// Requantization modes, comma-separated; every scheme runs under each: double (gemmlowp's two roundings, as
    /// TFLite's reference kernels), single (one rounding, TFLite's TFLITE_SINGLE_ROUNDING), fp32 (float32 scale
    /// with round-half-even, as XNNPACK and ONNX Runtime). Default: double, fp32 for a quantized ONNX file's own
    /// quantization, or the mode a --quantized file records.
    #[arg(long, value_name = "MODES", value_delimiter = ',')]
    pub requant: Vec<Requant>,
    /// Calibration list (`FILE CLASS` lines). Default: ../shared/imagenet/val1300/calibration.txt
    #[arg(long, value_name = "LIST")]
    pub calibration: Option<PathBuf>,
}

impl ModelArgs {
    /// Load the model: a TF.js folder, a TFLite file, a downloaded model by name, or the default.
    pub fn load(&self) -> Result<Loaded> {
        let path = match &self.model {
            Some(model) => resolve_model(model)?,
            None => match find_shared(DEFAULT_MODEL) {
                Some(dir) => dir,
                None => {
                    eprintln!(
                        "model: the built-in {} (no {DEFAULT_MODEL} beside this folder; pass --model)",
                        assets::EMBEDDED_MODEL_NAME
                    );
                    return Ok(Loaded::built_in()?);
                }
            },
        };
        Ok(Loaded::from_path(&path)?)
    }

    /// The --scheme entries, or the default: a TFLite file's own quantization, else tf8.
    pub fn schemes(&self, loaded: &Loaded) -> Vec<SchemeChoice> {
        if self.scheme.is_empty() {
            loaded.default_schemes()
        } else {
            self.scheme.clone()
        }
    }

    /// The quantized models: read from --quantized, imported from a TFLite file, or calibrated now for each
    /// --scheme; each under every --requant mode.
    pub fn quantized_models(&self, loaded: &Loaded) -> Result<Vec<Quantized>> {
        let models = if self.quantized.is_empty() {
            let schemes = self.schemes(loaded);
            anyhow::ensure!(
                loaded.has_file_quantization() || !schemes.contains(&SchemeChoice::File),
                "scheme `{}` is a quantized file's own quantization; pass --model FILE.tflite or a quantized FILE.onnx",
                SchemeChoice::File
            );
            let list = if engine::needs_calibration(&schemes) { Some(self.calibration_list()?) } else { None };
            study::quantize(loaded, &schemes, list.as_deref(), &Stderr)?
        } else {
            self.quantized.iter().map(|path| loaded.read_quantized(path)).collect::<Result<Vec<_>, _>>()?
        };
        Ok(engine::with_requant(models, &self.requant)?)
    }

    pub fn calibration_list(&self) -> Result<PathBuf> {
        match &self.calibration {
            Some(list) => Ok(list.clone()),
            None => default_calibration_list(),
        }
    }
}

/// The model `--model` names: an existing folder or file, else a model `mnq-gpu download` fetched.
fn resolve_model(model: &Path) -> Result<PathBuf> {
    if model.exists() {
        return Ok(model.to_path_buf());
    }
    let name = model.to_string_lossy();
    if let Some(cached) = mnq_gpu::download::cached(&name) {
        return Ok(cached);
    }
    if mnq_gpu::download::find(&name).is_ok() {
        anyhow::bail!("{name} is not downloaded yet: `mnq-gpu download {name}` fetches it");
    }
    Err(mnq_gpu::Error::ModelNotFound { path: model.to_path_buf() }.into())
}

/// The model folder: `model`, or the default 0.75 model beside the repository.
pub fn model_dir(model: Option<&Path>) -> Result<PathBuf, mnq_gpu::Error> {
    match model {
        Some(dir) => Ok(dir.to_path_buf()),
        None => find_shared(DEFAULT_MODEL)
            .ok_or(mnq_gpu::Error::ModelNotFound { path: PathBuf::from("../").join(DEFAULT_MODEL) }),
    }
}

/// `../<relative>` beside the current folder, or beside the source tree, where `shared/` lives.
pub fn find_shared(relative: &str) -> Option<PathBuf> {
    let from_source = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    [PathBuf::from("..").join(relative), PathBuf::from(relative), from_source].into_iter().find(|p| p.exists())
}

pub fn default_evaluation_list() -> Result<PathBuf> {
    find_shared(DEFAULT_EVALUATION).context("no evaluation list found; pass --list LIST")
}

pub fn default_calibration_list() -> Result<PathBuf> {
    find_shared(DEFAULT_CALIBRATION).context("no calibration list found; pass --calibration LIST")
}

/// A study's progress on stderr: bars (hidden when stderr is not a terminal, cleared when done) and notes.
pub struct Stderr;

impl Progress for Stderr {
    fn bar(&self, len: usize, message: &'static str) -> Box<dyn Bar> {
        Box::new(ClearedBar(progress_bar(len, message)))
    }

    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// A progress bar cleared when dropped.
struct ClearedBar(ProgressBar);

impl Bar for ClearedBar {
    fn advance(&self, steps: usize) {
        self.0.inc(steps as u64);
    }
}

impl Drop for ClearedBar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
pub fn progress_bar(len: usize, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64).with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Print JSON to stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Where `quantize` and `export` write one of `count` models: `output` itself for a single model (unless it is a
/// folder), else `<model>_<scheme>.<extension>` in the folder `output` (created) or in the current folder.
pub fn output_path(output: Option<&Path>, count: usize, model: &str, scheme: &str, extension: &str) -> Result<PathBuf> {
    let file_name = format!("{model}_{}.{extension}", scheme.replace('+', "_"));
    Ok(match output {
        Some(path) if count == 1 && !path.is_dir() => path.to_path_buf(),
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(file_name)
        }
        None => PathBuf::from(file_name),
    })
}
