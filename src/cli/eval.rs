//! `mnq-gpu eval`: top-1/top-5 of the float and int8 pipelines of every scheme over a labelled list, in one pass
//! ([`mnq_gpu::study::eval`]).

use super::{print_json, DeviceArgs, ListArgs, ModelArgs, Stderr, EXIT_MISMATCH};
use anyhow::Result;
use clap::Args;
use mnq_gpu::study::eval::{evaluate, Report};
use std::process::ExitCode;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    list: ListArgs,
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

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let loaded = args.model.load()?;
    let list = args.list.read(&loaded.float, args.limit)?;
    let quantized = args.model.quantized_models(&loaded)?;
    let report = evaluate(&loaded.float, &quantized, &args.device.to_device(), &list, args.check, &Stderr)?;
    if args.json {
        print_json(&report)?;
    } else if args.csv {
        print_csv(&report);
    } else {
        print_table(&report);
    }
    Ok(if report.mismatched() { ExitCode::from(EXIT_MISMATCH) } else { ExitCode::SUCCESS })
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
