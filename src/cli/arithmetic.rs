//! The arithmetic sections of `report` (issue 11), rendered: every requantization mode on a few schemes, with the
//! logit bytes and top-1 decisions each changes against `double`; the weight bit-width of three schemes; the
//! study's own ReLU6-against-ReLU SQNR figure; and the LiteRT cross-check of `fp32` against XNNPACK. Each part is a
//! section of RESULTS.md that `report --section NAME` regenerates alone; [`mnq_gpu::study::report`] measures them.

use anyhow::Result;
use mnq_gpu::plot::{self, Series};
use mnq_gpu::study::eval::SchemeReport;
use mnq_gpu::study::report::{Modes, WeightBits, BITS, BIT_SCHEMES};
use mnq_gpu::study::sqnr::Report as SqnrReport;
use std::fmt::Write as _;
use std::path::Path;

/// The LiteRT cross-check of `--requant fp32` against XNNPACK (`scripts/litert-crosscheck-full.sh`), relative to
/// the markdown file.
pub const XNNPACK_SUMMARY: &str = "results/litert_crosscheck_fp32.json";

/// The logits' accumulated SQNR of each row of `sqnr`, in its order.
fn logits_db(sqnr: &SqnrReport) -> Vec<f64> {
    sqnr.schemes.iter().map(|s| s.layers.last().map_or(f64::NAN, |l| l.accumulated_db)).collect()
}

/// A checked result's *checked / differing bytes* cell.
pub fn check(s: &SchemeReport) -> String {
    match (s.checked_bytes, s.differing_bytes) {
        (Some(compared), Some(differing)) => format!("{compared} / **{differing}**"),
        _ => "-".into(),
    }
}

/// The requantization section: its markdown, and the charts it draws into `plots` (named relative to the markdown
/// file as `plots_link`).
pub fn render_modes(modes: &Modes, xnnpack: Option<&str>, plots: &Path, plots_link: &Path) -> Result<String> {
    let mut md = String::new();
    let eval = &modes.eval;
    let _ = writeln!(md, "## The arithmetic: requantization modes (`--requant`)\n");
    let _ = writeln!(
        md,
        "Each scheme under each output stage (docs/arithmetic.md): `double` is gemmlowp's two roundings \
         (TFLite's reference kernels), `single` one rounding of the 64-bit product (`TFLITE_SINGLE_ROUNDING`), `fp32` \
         XNNPACK's float requantization. int8 ran on {} over the {} images of `{}`, every layer checked against the \
         CPU reference of the same mode (*checked / differing bytes*). *≠ double*: the logit bytes per image and the \
         top-1 decisions that differ from the same scheme under `double`, the off-by-one measured on the whole \
         network. Logits SQNR: accumulated, against the float model, mean over the first {} images. Regenerate this \
         section alone with `cargo run --release -- report --section requant`.\n",
        eval.adapter.as_deref().unwrap_or("the CPU integer reference"),
        eval.images,
        eval.list.display(),
        modes.sqnr.images
    );
    let _ = writeln!(
        md,
        "| scheme | mode | int8 top-1 | int8 top-5 | logits SQNR (dB) | logit bytes ≠ double, per image | top-1 ≠ double | checked / differing bytes |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (s, db) in eval.schemes.iter().zip(logits_db(&modes.sqnr)) {
        let (bytes, top1) = match s.vs_double {
            Some(d) => (
                format!("{:.1}", d.logit_bytes_differing as f64 / eval.images.max(1) as f64),
                format!("{} of {}", d.top1_differing, eval.images),
            ),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            md,
            "| `{}` | `{}` | {:.2} | {:.2} | {db:.2} | {bytes} | {top1} | {} |",
            s.scheme,
            s.requant,
            s.int8.top1_percent,
            s.int8.top5_percent,
            check(s)
        );
    }

    if let Some(summary) = xnnpack {
        md.push_str(&render_xnnpack(summary));
    }

    // The study's figure: per-layer SQNR with ReLU6 and with ReLU, each against its own float model.
    let relu = &modes.relu;
    let layers: Vec<String> = relu.schemes[0].layers.iter().map(|l| l.layer.clone()).collect();
    let series: Vec<Series> = relu
        .schemes
        .iter()
        .map(|s| Series { name: s.scheme.clone(), values: s.layers.iter().map(|l| l.accumulated_db).collect() })
        .collect();
    let title =
        format!("{}: accumulated SQNR, ReLU6 against ReLU (without retraining), {} images", relu.model, relu.images);
    plot::line_chart(&plots.join("sqnr_relu6_vs_relu"), &title, &layers, "SQNR (dB)", &series)?;
    let _ = writeln!(
        md,
        "\n### The study's SQNR figure: ReLU6 against ReLU, without retraining\n\n\
         Per-layer accumulated SQNR of `tf8-zero-var` (ReLU6) and `tf8-zero-var+relu` (ReLU6 replaced by ReLU, not \
         retrained as the study did), each against its own float model, mean over {} images.\n\n![ReLU6 against \
         ReLU]({})\n",
        relu.images,
        plots_link.join("sqnr_relu6_vs_relu.png").display()
    );
    let _ = writeln!(md, "| layer | `{}` | `{}` |\n|---|---|---|", relu.schemes[0].scheme, relu.schemes[1].scheme);
    for (i, layer) in layers.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {layer} | {:.1} | {:.1} |",
            relu.schemes[0].layers[i].accumulated_db, relu.schemes[1].layers[i].accumulated_db
        );
    }
    Ok(md)
}

/// The LiteRT cross-check of `fp32` against XNNPACK ([`XNNPACK_SUMMARY`]) as a table.
fn render_xnnpack(summary: &str) -> String {
    let mut md = String::new();
    let Ok(json) = serde_json::from_str::<serde_json::Value>(summary) else {
        return format!("\nThe cross-check summary `{XNNPACK_SUMMARY}` is not valid JSON.\n");
    };
    let number = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let _ = writeln!(
        md,
        "\n### `fp32` against LiteRT's XNNPACK path, byte for byte\n\n\
         `{XNNPACK_SUMMARY}` (`scripts/litert-crosscheck-full.sh`): mnq-gpu with `--requant fp32` against LiteRT {} \
         with its default resolver (`AUTO`, the XNNPACK delegate) and `experimental_preserve_all_tensors`, fed the \
         same uint8 input; every layer compared. XNNPACK runs the convolutions; the pool runs on TFLite's kernel, the \
         same in every mode.\n",
        json["litert_version"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        md,
        "| model | mnq-gpu device | images | bytes compared | differing from XNNPACK |\n|---|---|---|---|---|"
    );
    for result in json["results"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | **{}** |",
            result["model"].as_str().unwrap_or("?"),
            result["device"].as_str().unwrap_or("?"),
            result["images"].as_array().map_or(0, Vec::len),
            number(&result["mnq_vs_auto"]["bytes_compared"]),
            number(&result["mnq_vs_auto"]["bytes_differing"])
        );
    }
    md
}

/// The weight bit-width section and its chart (logits SQNR against bits, one line per scheme).
pub fn render_weight_bits(bits: &WeightBits, plots: &Path, plots_link: &Path) -> Result<String> {
    let mut md = String::new();
    let eval = &bits.eval;
    let db = logits_db(&bits.sqnr);
    let _ = writeln!(md, "## The arithmetic: weight bit-width (`+wB`)\n");
    let _ = writeln!(
        md,
        "Weights quantized to B bits (activations stay 8; the engine's u8 storage carries them unchanged). int8 ran \
         on {} over the {} images of `{}`, every layer checked on the CPU reference. Logits SQNR: accumulated, \
         mean over the first {} images. Regenerate with `cargo run --release -- report --section weight-bits`.\n",
        eval.adapter.as_deref().unwrap_or("the CPU integer reference"),
        eval.images,
        eval.list.display(),
        bits.sqnr.images
    );
    let _ = writeln!(
        md,
        "| scheme | weight bits | int8 top-1 | int8 top-5 | logits SQNR (dB) | checked / differing bytes |\n\
         |---|---|---|---|---|---|"
    );
    let rows = eval.schemes.iter().zip(&db);
    for ((s, db), (scheme, b)) in rows.zip(BIT_SCHEMES.iter().flat_map(|s| BITS.map(|b| (s, b)))) {
        let _ = writeln!(
            md,
            "| `{scheme}` | {b} | {:.2} | {:.2} | {db:.2} | {} |",
            s.int8.top1_percent,
            s.int8.top5_percent,
            check(s)
        );
    }
    let x_labels: Vec<String> = BITS.iter().map(|b| format!("{b} bits")).collect();
    let series: Vec<Series> = BIT_SCHEMES
        .iter()
        .enumerate()
        .map(|(i, scheme)| Series { name: scheme.to_string(), values: db[i * BITS.len()..][..BITS.len()].to_vec() })
        .collect();
    let title = format!("{}: logits SQNR against weight bit-width, {} images", bits.sqnr.model, bits.sqnr.images);
    plot::line_chart(&plots.join("sqnr_weight_bits"), &title, &x_labels, "logits SQNR (dB)", &series)?;
    let _ = writeln!(md, "\n![logits SQNR by weight bits]({})\n", plots_link.join("sqnr_weight_bits.png").display());
    Ok(md)
}
