//! `mnq-gpu eval`: top-1/top-5 of the float and int8 pipelines of every scheme over a labelled list, in one pass.

use super::{default_evaluation_list, load_images, print_json, progress_bar, DeviceArgs, ModelArgs, EXIT_MISMATCH};
use anyhow::Result;
use clap::Args;
use mnq_gpu::engine::Evaluation;
pub use mnq_gpu::engine::{Accuracy, ModeDifference};
use mnq_gpu::labels::read_list;
use mnq_gpu::quant::Requant;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Images decoded and evaluated together: bounds memory (a 224×224 float image is 600 KB).
const CHUNK: usize = 48;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Labelled list (`FILE CLASS` lines). Default: ../shared/imagenet/val1300/evaluation.txt
    #[arg(long, value_name = "LIST")]
    list: Option<PathBuf>,
    /// Evaluate only the first N images of the list.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Confirm every int8 result on the CPU integer reference, every layer bit for bit (exit code 3 if any differ).
    #[arg(long)]
    check: bool,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV instead of a table.
    #[arg(long)]
    csv: bool,
}

#[derive(Serialize)]
pub struct SchemeReport {
    pub scheme: String,
    /// The output stage's rounding (`--requant`).
    pub requant: Requant,
    pub device: &'static str,
    /// The float model this scheme quantizes (differs from the original only for architecture changes).
    pub float: Accuracy,
    pub int8: Accuracy,
    /// With --check: bytes of every layer's output compared with the CPU integer reference, and how many differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differing_bytes: Option<usize>,
    /// Under a mode other than `double`, when the same scheme also ran under `double`: how its logits differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_double: Option<ModeDifference>,
}

impl SchemeReport {
    /// The scheme, with its requantization mode unless it is the default (as [`super::Quantized::label`]).
    pub fn label(&self) -> String {
        super::label(&self.scheme, self.requant)
    }
}

#[derive(Serialize)]
pub struct Report {
    pub model: String,
    pub list: PathBuf,
    pub images: usize,
    pub threads: usize,
    pub device: &'static str,
    /// The GPU adapter, when the int8 pipeline ran there.
    pub adapter: Option<String>,
    /// The original float model.
    pub float: Accuracy,
    pub schemes: Vec<SchemeReport>,
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let report = evaluate(&args.model, &args.device, args.list.as_deref(), args.limit, args.check)?;
    if args.json {
        print_json(&report)?;
    } else if args.csv {
        print_csv(&report);
    } else {
        print_table(&report);
    }
    let mismatched = report.schemes.iter().any(|s| s.differing_bytes.is_some_and(|d| d > 0));
    Ok(if mismatched { ExitCode::from(EXIT_MISMATCH) } else { ExitCode::SUCCESS })
}

/// Evaluate the float model and every scheme's int8 pipeline over `list` (default: the evaluation list).
pub fn evaluate(
    model_args: &ModelArgs,
    device: &DeviceArgs,
    list: Option<&Path>,
    limit: Option<usize>,
    check: bool,
) -> Result<Report> {
    let loaded = model_args.load()?;
    let float = &loaded.float;
    let list = match list {
        Some(list) => list.to_path_buf(),
        None => default_evaluation_list()?,
    };
    let mut images = read_list(&list, float.imagenet_classes())?;
    images.truncate(limit.unwrap_or(usize::MAX));
    let quantized = model_args.quantized_models(&loaded)?;
    let mut engine = device.engine(&quantized.iter().map(|q| &q.model).collect::<Vec<_>>())?;
    let mut evaluation = Evaluation::new(&quantized, check);
    let bar = progress_bar(images.len(), "evaluating");
    for chunk in images.chunks(CHUNK) {
        let paths: Vec<&Path> = chunk.iter().map(|i| i.path.as_path()).collect();
        // The output index of each label (TFLite models have a background output first).
        let classes: Vec<usize> = chunk.iter().map(|i| float.output_of_class(i.class)).collect();
        let inputs = load_images(&paths, float, "decoding")?;
        evaluation.add(&mut engine, float, &quantized, &inputs, &classes)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    let schemes: Vec<SchemeReport> = quantized
        .iter()
        .enumerate()
        .map(|(index, q)| {
            let result = evaluation.scheme(index);
            SchemeReport {
                scheme: q.scheme_name(),
                requant: q.model.requant(),
                device: engine.device(),
                float: result.float,
                int8: result.int8,
                checked_bytes: result.checked.map(|(compared, _)| compared),
                differing_bytes: result.checked.map(|(_, differing)| differing),
                vs_double: result.vs_double,
            }
        })
        .collect();
    Ok(Report {
        model: float.name.clone(),
        list,
        images: evaluation.images(),
        threads: rayon::current_num_threads(),
        device: engine.device(),
        adapter: engine.adapter().map(ToString::to_string),
        float: evaluation.float(),
        schemes,
    })
}

fn print_csv(report: &Report) {
    println!(
        "scheme,requant,device,float_top1,float_top5,int8_top1,int8_top5,int8_wall_s,checked_bytes,differing_bytes,\
         logit_bytes_differing_vs_double,top1_differing_vs_double"
    );
    for s in &report.schemes {
        let opt = |v: Option<usize>| v.map_or(String::new(), |v| v.to_string());
        println!(
            "{},{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{},{},{},{}",
            s.scheme,
            s.requant,
            s.device,
            s.float.top1_percent,
            s.float.top5_percent,
            s.int8.top1_percent,
            s.int8.top5_percent,
            s.int8.wall_s,
            opt(s.checked_bytes),
            opt(s.differing_bytes),
            opt(s.vs_double.map(|d| d.logit_bytes_differing)),
            opt(s.vs_double.map(|d| d.top1_differing))
        );
    }
}

fn print_table(report: &Report) {
    let float = report.float;
    println!(
        "{} on {} images of {} ({} CPU threads)",
        report.model,
        report.images,
        report.list.display(),
        report.threads
    );
    println!(
        "float (cpu): top-1 {:.2} %, top-5 {:.2} %, {:.1} s",
        float.top1_percent, float.top5_percent, float.wall_s
    );
    println!(
        "{:<24} {:>6} {:>11} {:>11} {:>11} {:>11} {:>9} {:>16}",
        "scheme", "device", "float top-1", "float top-5", "int8 top-1", "int8 top-5", "int8 (s)", "check"
    );
    for s in &report.schemes {
        let check = match (s.checked_bytes, s.differing_bytes) {
            (Some(compared), Some(0)) => format!("{compared} B exact"),
            (Some(_), Some(differing)) => format!("{differing} B DIFFER"),
            _ => "-".into(),
        };
        println!(
            "{:<24} {:>6} {:>10.2}% {:>10.2}% {:>10.2}% {:>10.2}% {:>9.1} {:>16}",
            s.label(),
            s.device,
            s.float.top1_percent,
            s.float.top5_percent,
            s.int8.top1_percent,
            s.int8.top5_percent,
            s.int8.wall_s,
            check
        );
    }
    for s in report.schemes.iter().filter(|s| s.vs_double.is_some()) {
        let d = s.vs_double.expect("filtered");
        println!(
            "{} against {} (double): {} of {} logit bytes differ ({:.1} per image), top-1 differs on {} of {} images",
            s.label(),
            s.scheme,
            d.logit_bytes_differing,
            d.logit_bytes_compared,
            d.logit_bytes_differing as f64 / report.images.max(1) as f64,
            d.top1_differing,
            report.images
        );
    }
}
