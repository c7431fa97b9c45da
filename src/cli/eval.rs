//! `mnq-gpu eval`: top-1/top-5 of the float and int8 pipelines of every scheme over a labelled list, in one pass.

use super::engine::{check_layers, Engine};
use super::{
    default_evaluation_list, load_images, print_json, progress_bar, DeviceArgs, ModelArgs, Quantized, EXIT_MISMATCH,
};
use anyhow::Result;
use clap::Args;
use mnq_gpu::cpu_ref;
use mnq_gpu::labels::{read_list, top_k};
use mnq_gpu::model::Model;
use mnq_gpu::quant::scheme::Architecture;
use mnq_gpu::quant::Requant;
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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

#[derive(Serialize, Default, Clone, Copy)]
pub struct Accuracy {
    pub top1_percent: f64,
    pub top5_percent: f64,
    /// Wall time of this pipeline's forward passes over all images (decoding excluded).
    pub wall_s: f64,
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

/// How one requantization mode's int8 logits differ from `double`'s for the same scheme and images: the
/// off-by-one measured on a whole network.
#[derive(Serialize, Default, Clone, Copy)]
pub struct ModeDifference {
    pub logit_bytes_compared: usize,
    pub logit_bytes_differing: usize,
    /// Images whose top-1 class differs.
    pub top1_differing: usize,
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

/// Hits and time of one pipeline.
#[derive(Default, Clone, Copy)]
pub(super) struct Tally {
    top1: usize,
    top5: usize,
    time: Duration,
}

impl Tally {
    pub(super) fn add(&mut self, logits: &[Vec<f32>], classes: &[usize]) {
        for (l, &class) in logits.iter().zip(classes) {
            let top = top_k(l, 5);
            self.top1 += usize::from(top[0] == class);
            self.top5 += usize::from(top.contains(&class));
        }
    }

    pub(super) fn merge(&mut self, other: &Tally) {
        self.top1 += other.top1;
        self.top5 += other.top5;
        self.time += other.time;
    }

    pub(super) fn accuracy(&self, n: usize) -> Accuracy {
        let percent = |hits: usize| 100.0 * hits as f64 / n.max(1) as f64;
        Accuracy { top1_percent: percent(self.top1), top5_percent: percent(self.top5), wall_s: self.time.as_secs_f64() }
    }
}

impl ModeDifference {
    /// Counts one chunk: each image's u8 logits under this mode against the same image's under double.
    fn add(&mut self, logits: &[Vec<u8>], double: &[Vec<u8>]) {
        for (a, b) in logits.iter().zip(double) {
            self.logit_bytes_compared += a.len();
            self.logit_bytes_differing += a.iter().zip(b).filter(|(x, y)| x != y).count();
            // The largest u8 logit is the top-1 (the dequantization is increasing); ties go to the first.
            let top1 = |l: &[u8]| l.iter().enumerate().rev().max_by_key(|&(_, &q)| q).map(|(i, _)| i);
            self.top1_differing += usize::from(top1(a) != top1(b));
        }
    }
}

fn float_logits(model: &Model, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    inputs.par_iter().map(|input| cpu_ref::run_f32(model, input).pop().expect("layers")).collect()
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
    let mut engine = Engine::new(device, &quantized.iter().map(|q| &q.model).collect::<Vec<_>>())?;
    // Folding, the zero-variance fix and equalization leave the float function as it is: only architecture
    // changes need their own float pass.
    let own_float = |index: usize| quantized[index].scheme.architecture() != Architecture::Original;
    let mut original_float = Tally::default();
    let mut floats = vec![Tally::default(); quantized.len()];
    let mut int8s = vec![Tally::default(); quantized.len()];
    let mut checked = vec![(0usize, 0usize); quantized.len()];
    // For each model under another mode than double, the same scheme's model under double, if it runs too.
    let double_of: Vec<Option<usize>> = quantized
        .iter()
        .map(|q| {
            let same = |d: &Quantized| d.model.requant() == Requant::Double && d.model.scheme == q.model.scheme;
            quantized.iter().position(same).filter(|_| q.model.requant() != Requant::Double)
        })
        .collect();
    let mut vs_double = vec![ModeDifference::default(); quantized.len()];
    let bar = progress_bar(images.len(), "evaluating");
    for chunk in images.chunks(CHUNK) {
        let paths: Vec<&Path> = chunk.iter().map(|i| i.path.as_path()).collect();
        // The output index of each label (TFLite models have a background output first).
        let classes: Vec<usize> = chunk.iter().map(|i| float.output_of_class(i.class)).collect();
        let inputs = load_images(&paths, float, "decoding")?;

        let start = Instant::now();
        original_float.add(&float_logits(float, &inputs), &classes);
        original_float.time += start.elapsed();

        let mut chunk_logits: Vec<Vec<Vec<u8>>> = Vec::with_capacity(quantized.len());
        for (index, q) in quantized.iter().enumerate() {
            if own_float(index) {
                let start = Instant::now();
                floats[index].add(&float_logits(&q.float, &inputs), &classes);
                floats[index].time += start.elapsed();
            }
            let int8_inputs: Vec<Vec<u8>> = inputs.iter().map(|input| q.model.quantize_input(input)).collect();
            let start = Instant::now();
            let outputs = engine.run(index, &q.model, &int8_inputs, check)?;
            int8s[index].time += start.elapsed();
            let logits: Vec<Vec<f32>> =
                outputs.iter().map(|layers| q.model.dequantize_logits(layers.last().expect("layers"))).collect();
            int8s[index].add(&logits, &classes);
            chunk_logits.push(outputs.iter().map(|layers| layers.last().expect("layers").clone()).collect());
            if check {
                let results: Vec<(usize, usize)> = int8_inputs
                    .par_iter()
                    .zip(&outputs)
                    .map(|(input, layers)| {
                        let (compared, mismatches) = check_layers(&q.model, input, layers);
                        (compared, mismatches.iter().map(|m| m.differing_bytes).sum())
                    })
                    .collect();
                for (compared, differing) in results {
                    checked[index].0 += compared;
                    checked[index].1 += differing;
                }
            }
        }
        for (index, double) in double_of.iter().enumerate() {
            if let Some(double) = *double {
                vs_double[index].add(&chunk_logits[index], &chunk_logits[double]);
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    let n = images.len();
    let schemes: Vec<SchemeReport> = quantized
        .iter()
        .enumerate()
        .map(|(index, q)| SchemeReport {
            scheme: q.scheme.to_string(),
            requant: q.model.requant(),
            device: engine.device(),
            float: if own_float(index) { floats[index] } else { original_float }.accuracy(n),
            int8: int8s[index].accuracy(n),
            checked_bytes: check.then_some(checked[index].0),
            differing_bytes: check.then_some(checked[index].1),
            vs_double: double_of[index].map(|_| vs_double[index]),
        })
        .collect();
    Ok(Report {
        model: float.name.clone(),
        list,
        images: n,
        threads: rayon::current_num_threads(),
        device: engine.device(),
        adapter: engine.adapter(),
        float: original_float.accuracy(n),
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
