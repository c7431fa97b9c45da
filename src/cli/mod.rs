//! The command line: one module per subcommand, shared arguments here.

mod arithmetic;
mod bench;
mod download;
mod dump;
mod engine;
mod eval;
mod export;
mod inspect;
mod quantize;
mod report;
mod run;
mod sensitivity;
mod soak;
mod sqnr;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mnq_gpu::model::{tfjs, Model};
use mnq_gpu::quant::scheme::{Architecture, Scheme};
use mnq_gpu::quant::{self, QuantModel, Requant};
use mnq_gpu::{assets, labels, preprocess, tflite};
use rayon::prelude::*;
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

/// One `--scheme` entry: a scheme to calibrate, or `tflite`, the quantization a TFLite file holds.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemeChoice {
    /// The TFLite file's own quantization, imported as it is.
    File,
    Calibrate(Scheme),
}

impl SchemeChoice {
    /// The float architecture the scheme runs (only the study's architecture changes differ from the model's).
    pub fn architecture(&self) -> Architecture {
        match self {
            SchemeChoice::File => Architecture::Original,
            SchemeChoice::Calibrate(scheme) => scheme.architecture,
        }
    }
}

impl std::str::FromStr for SchemeChoice {
    type Err = mnq_gpu::Error;

    fn from_str(name: &str) -> Result<SchemeChoice, mnq_gpu::Error> {
        if name == tflite::SCHEME {
            Ok(SchemeChoice::File)
        } else {
            name.parse().map(SchemeChoice::Calibrate)
        }
    }
}

impl std::fmt::Display for SchemeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemeChoice::File => f.write_str(tflite::SCHEME),
            SchemeChoice::Calibrate(scheme) => scheme.fmt(f),
        }
    }
}

/// A quantized model with the float model its scheme quantized (BatchNorm folded, transforms applied).
#[derive(Clone)]
pub struct Quantized {
    pub scheme: SchemeChoice,
    pub float: Model,
    pub model: QuantModel,
    /// For a TFLite file's own quantization: per layer, the index of the file's tensor that layer computes.
    pub tflite_tensors: Option<Vec<usize>>,
}

impl Quantized {
    /// The scheme's name, with the requantization mode unless it is the default: `tf8`, `tf8/fp32`.
    pub fn label(&self) -> String {
        label(&self.scheme.to_string(), self.model.requant())
    }

    /// [`Quantized::label`] as a file or folder name: `tf8`, `tf8_fp32`, `cle-bc_mse`.
    pub fn file_stem(&self) -> String {
        self.label().replace(['/', '+'], "_")
    }
}

/// A scheme's name with its requantization mode unless it is the default: `tf8`, `tf8/fp32`.
pub fn label(scheme: &str, requant: Requant) -> String {
    match requant {
        Requant::Double => scheme.to_string(),
        mode => format!("{scheme}/{mode}"),
    }
}

/// The model a command runs: the float model, and what a TFLite file held.
pub struct Loaded {
    pub float: Model,
    /// Where it came from, for reports: a folder, a file, or the built-in model.
    pub source: PathBuf,
    pub tflite: Option<tflite::Imported>,
}

/// Where the model comes from, shared by every subcommand.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// A TF.js MobileNetV1 folder (model.json + shards), a quantized TFLite file (.tflite), or a name that
    /// `mnq-gpu download` fetched (e.g. mobilenet_v1_0.5_160_quant). Default: ../shared/models/mobilenet_v1_0.75_224
    /// (looked up beside and above the current folder and the source tree), else the built-in
    /// mobilenet_v1_0.25_128_quant.
    #[arg(long, value_name = "DIR|FILE|NAME")]
    pub model: Option<PathBuf>,
    /// Quantization schemes, comma-separated: a preset (tf8, tf8-zero-var, per-channel, cle, cle-bc) with
    /// optional modifiers (+mse, +zero-var, +per-channel, +sym, +relu, +dw-linear; +w4 for 4-bit weights, 2 to 8,
    /// and +w8@conv1@conv_preds for per-layer widths), e.g. `tf8,per-channel,cle-bc+mse,per-channel+sym+w4`;
    /// `tflite` is a TFLite file's own quantization. Default: tf8, and tflite for a TFLite model (other schemes
    /// quantize the float model the file represents).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub scheme: Vec<SchemeChoice>,
    /// Quantized models written by `mnq-gpu quantize` (comma-separated), instead of calibrating --scheme.
    #[arg(long, value_name = "FILES", value_delimiter = ',')]
    pub quantized: Vec<PathBuf>,
    /// Requantization modes, comma-separated; every scheme runs under each: double (gemmlowp's two roundings, as
    /// TFLite's reference kernels), single (one rounding, TFLite's TFLITE_SINGLE_ROUNDING), fp32 (float32 scale
    /// with round-half-even, as XNNPACK). Default: double, or the mode a --quantized file records.
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
                    let name = assets::EMBEDDED_MODEL_NAME;
                    let imported = tflite::from_bytes(assets::EMBEDDED_MODEL, name, Path::new("<built-in>"))?;
                    let source = PathBuf::from(format!("<built-in {name}.tflite>"));
                    return Ok(Loaded { float: imported.float.clone(), source, tflite: Some(imported) });
                }
            },
        };
        if tflite::is_tflite_path(&path) {
            let imported = tflite::load(&path)?;
            Ok(Loaded { float: imported.float.clone(), source: path, tflite: Some(imported) })
        } else {
            Ok(Loaded { float: tfjs::load(&path)?, source: path, tflite: None })
        }
    }

    /// The --scheme entries, or the default: a TFLite file's own quantization, else tf8.
    pub fn schemes(&self, loaded: &Loaded) -> Vec<SchemeChoice> {
        match (self.scheme.is_empty(), &loaded.tflite) {
            (false, _) => self.scheme.clone(),
            (true, Some(_)) => vec![SchemeChoice::File],
            (true, None) => vec![SchemeChoice::Calibrate(Scheme::tf8())],
        }
    }

    /// The quantized models: read from --quantized, imported from a TFLite file, or calibrated now for each
    /// --scheme; each under every --requant mode.
    pub fn quantized_models(&self, loaded: &Loaded) -> Result<Vec<Quantized>> {
        let models = self.quantized_once(loaded)?;
        if self.requant.is_empty() {
            return Ok(models);
        }
        let mut all = Vec::with_capacity(models.len() * self.requant.len());
        for q in models {
            for &mode in &self.requant {
                let model = q.model.clone().with_requant(mode);
                model.validate().map_err(|reason| anyhow::anyhow!("{} under --requant {mode}: {reason}", q.scheme))?;
                all.push(Quantized { model, ..q.clone() });
            }
        }
        Ok(all)
    }

    /// [`ModelArgs::quantized_models`], each in the mode it was made or read with.
    fn quantized_once(&self, loaded: &Loaded) -> Result<Vec<Quantized>> {
        let float = &loaded.float;
        if !self.quantized.is_empty() {
            return self.quantized.iter().map(|path| read_quantized(path, float)).collect();
        }
        let schemes = self.schemes(loaded);
        let calibrated: Vec<&Scheme> = schemes
            .iter()
            .filter_map(|s| match s {
                SchemeChoice::Calibrate(scheme) => Some(scheme),
                SchemeChoice::File => None,
            })
            .collect();
        let inputs = if calibrated.is_empty() { Vec::new() } else { self.calibration_images(float, &calibrated)? };
        schemes
            .iter()
            .map(|choice| match choice {
                SchemeChoice::File => {
                    let imported = loaded.tflite.as_ref().with_context(|| {
                        format!("scheme `{}` is a TFLite file's own quantization; pass --model FILE.tflite", choice)
                    })?;
                    Ok(Quantized {
                        scheme: SchemeChoice::File,
                        float: imported.float.clone(),
                        model: imported.model.clone(),
                        tflite_tensors: Some(imported.tensors.clone()),
                    })
                }
                SchemeChoice::Calibrate(scheme) => {
                    let (prepared, model) = mnq_gpu::calibrate::quantize_scheme(float, scheme, &inputs)?;
                    Ok(Quantized { scheme: choice.clone(), float: prepared, model, tflite_tensors: None })
                }
            })
            .collect()
    }

    /// The preprocessed calibration images, for `schemes`.
    fn calibration_images(&self, float: &Model, schemes: &[&Scheme]) -> Result<Vec<Vec<f32>>> {
        let list = self.calibration_list()?;
        let images = labels::read_list(&list, float.imagenet_classes())?;
        eprintln!(
            "calibrating {} on {} images of {} (save it once with `mnq-gpu quantize`)",
            schemes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            images.len(),
            list.display()
        );
        let paths: Vec<&Path> = images.iter().map(|i| i.path.as_path()).collect();
        load_images(&paths, float, "calibrating")
    }

    pub fn calibration_list(&self) -> Result<PathBuf> {
        match &self.calibration {
            Some(list) => Ok(list.clone()),
            None => find_shared(DEFAULT_CALIBRATION).context("no calibration list found; pass --calibration LIST"),
        }
    }
}

fn read_quantized(path: &Path, float: &Model) -> Result<Quantized> {
    let model = quant::file::load(path)?;
    anyhow::ensure!(
        model.name == float.name && model.input_shape == float.input_shape && !model.synthetic,
        "{} was quantized from {}{}, not from {}",
        path.display(),
        model.name,
        if model.synthetic { " (synthetic weights, for benchmarks only)" } else { "" },
        float.name
    );
    let scheme: Scheme = model.scheme.parse().with_context(|| format!("{}: scheme", path.display()))?;
    let float = mnq_gpu::calibrate::prepare(float, &scheme);
    Ok(Quantized { float, scheme: SchemeChoice::Calibrate(scheme), model, tflite_tensors: None })
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

/// Decode and preprocess images in parallel, with a progress bar.
pub fn load_images(paths: &[&Path], model: &Model, message: &'static str) -> Result<Vec<Vec<f32>>> {
    let bar = progress_bar(paths.len(), message);
    let images = paths
        .par_iter()
        .map(|path| {
            let image = preprocess::load_model_input(path, model);
            bar.inc(1);
            image
        })
        .collect::<Result<Vec<_>, _>>()?;
    bar.finish_and_clear();
    Ok(images)
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
