//! RESULTS.md's *One engine, three conventions* section: the cross-checks' JSON summaries (LiteRT's reference
//! kernels, XNNPACK, ONNX Runtime) as one table of bytes compared and differing, and ONNX Runtime's per model.
//! Nothing is measured here: the scripts that wrote the summaries did (`scripts/litert-crosscheck-full.sh`,
//! `scripts/ort-crosscheck-full.sh`).

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// One runtime's convention: the summaries that cross-check mnq-gpu against it, relative to the markdown file.
struct Convention {
    runtime: &'static str,
    /// The key of each summary's version field.
    version_key: &'static str,
    path: &'static str,
    requant: &'static str,
    /// The key of each result's mnq-gpu comparison (`None`: the result itself holds the bytes).
    comparison: Option<&'static str>,
    summaries: &'static [&'static str],
}

const CONVENTIONS: [Convention; 3] = [
    Convention {
        runtime: "LiteRT",
        version_key: "litert_version",
        path: "reference kernels (`BUILTIN_REF`)",
        requant: "`double`",
        comparison: Some("mnq_vs_builtin_ref"),
        summaries: &[
            "results/litert_crosscheck.json",
            "results/litert_crosscheck_export.json",
            "results/litert_crosscheck_v2.json",
        ],
    },
    Convention {
        runtime: "LiteRT",
        version_key: "litert_version",
        path: "XNNPACK delegate (default `AUTO`)",
        requant: "`fp32`",
        comparison: Some("mnq_vs_auto"),
        summaries: &["results/litert_crosscheck_fp32.json", "results/litert_crosscheck_v2_fp32.json"],
    },
    Convention {
        runtime: "ONNX Runtime",
        version_key: "ort_version",
        path: "CPU execution provider, default session (QDQ fused)",
        requant: "`fp32`, ORT's pool",
        comparison: None,
        summaries: &["results/ort_crosscheck.json", "results/ort_crosscheck_export.json"],
    },
];

/// The section's body, from the summaries under `base` (the markdown file's folder); a missing summary is named.
pub fn render(base: &Path) -> String {
    let mut md = String::from("## One engine, three conventions\n\n");
    md += "The same integer engine, on the GPU (llvmpipe) and on its CPU reference, against three runtimes' int8 \
           arithmetic: every layer's output compared byte for byte, fed the same input. `--requant` selects the \
           convention; an ONNX file runs under ONNX Runtime's by default. Rendered from the cross-checks' JSON \
           summaries, which `scripts/litert-crosscheck-full.sh` and `scripts/ort-crosscheck-full.sh` write.\n\n";
    md += "| runtime | path | mnq-gpu `--requant` | models | images per model | bytes compared (GPU + CPU reference) | differing |\n";
    md += "|---|---|---|---|---|---|---|\n";
    let mut ort = Vec::new();
    for convention in &CONVENTIONS {
        let mut versions = Vec::new();
        let (mut models, mut images, mut compared, mut differing) = (Vec::<String>::new(), Vec::new(), 0u64, 0u64);
        let mut excused = 0u64;
        let mut missing = Vec::new();
        for file in convention.summaries {
            let Some(json) = read(&base.join(file)) else {
                missing.push(format!("`{file}`"));
                continue;
            };
            versions.push(json[convention.version_key].as_str().unwrap_or("?").to_string());
            for result in json["results"].as_array().into_iter().flatten() {
                let bytes = convention.comparison.map_or(result, |key| &result[key]);
                compared += bytes["bytes_compared"].as_u64().unwrap_or(0);
                let bytes_differing = bytes["bytes_differing"].as_u64().unwrap_or(0);
                if is_excused(result) {
                    excused += bytes_differing;
                } else {
                    differing += bytes_differing;
                }
                let model = result["model"].as_str().unwrap_or("?").to_string();
                if !models.contains(&model) {
                    models.push(model);
                }
                images.push(image_count(result));
                if convention.comparison.is_none() {
                    ort.push(result.clone());
                }
            }
        }
        versions.dedup();
        let runtime = if versions.is_empty() {
            convention.runtime.to_string()
        } else {
            format!("{} {}", convention.runtime, versions.join(", "))
        };
        let (low, high) = (images.iter().min().copied().unwrap_or(0), images.iter().max().copied().unwrap_or(0));
        let images = if low == high { low.to_string() } else { format!("{low}–{high}") };
        let _ = writeln!(
            md,
            "| {runtime} | {} | {} | {} | {images} | {compared} | **{differing}**{}{} |",
            convention.path,
            convention.requant,
            models.len(),
            if excused == 0 { String::new() } else { format!(" (+ {excused} {EXCUSED})") },
            if missing.is_empty() { String::new() } else { format!(" ({} not found)", missing.join(", ")) },
        );
    }
    md += "\nONNX Runtime, per model: `quantize_static`'s files (from mnq-gpu's float export of the 0.75 model, \
           calibrated on `calibration.txt`) and mnq-gpu's schemes exported as QDQ (`export --format onnx --requant \
           fp32`). ORT fuses each file itself; the kernel path is the one the machine's CPU selected.\n\n";
    md += "| model | mnq-gpu device | images | ORT's fused graph | ORT kernel path | bytes compared | differing |\n";
    md += "|---|---|---|---|---|---|---|\n";
    for result in &ort {
        let fused = result["ort_fused_ops"]
            .as_object()
            .map(|ops| ops.iter().map(|(op, n)| format!("{op} ×{n}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {fused} | {} | {} | {} |",
            result["model"].as_str().unwrap_or("?"),
            result["device"].as_str().unwrap_or("?"),
            image_count(result),
            result["ort_kernels"].as_str().unwrap_or("?"),
            result["bytes_compared"].as_u64().unwrap_or(0),
            match (result["bytes_differing"].as_u64().unwrap_or(0), is_excused(result)) {
                (differing, true) => format!("{differing} ({EXCUSED})"),
                (differing, false) => format!("**{differing}**"),
            },
        );
    }
    md + "\n"
}

/// How an excused difference is named: scripts/ort_crosscheck.py excuses a u8×s8 model's differences on an x86 CPU
/// without VNNI, whose ORT kernels saturate int16 pair sums (docs/onnx.md).
const EXCUSED: &str = "excused: ORT's u8×s8 kernels without VNNI saturate, onnxruntime#16105";

/// Whether a cross-check result's differences were excused (its `differences_excused`; absent: no).
fn is_excused(result: &Value) -> bool {
    result["differences_excused"].as_bool().unwrap_or(false)
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// A result's image count: a number (ORT's summaries) or the list of images (LiteRT's).
fn image_count(result: &Value) -> u64 {
    result["images"].as_u64().or_else(|| result["images"].as_array().map(|a| a.len() as u64)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_sums_every_summary_and_names_the_missing_ones() {
        let base = std::env::temp_dir().join(format!("mnq-conventions-{}", std::process::id()));
        std::fs::create_dir_all(base.join("results")).unwrap();
        let litert = r#"{"litert_version": "2.3.0", "results": [
            {"model": "a", "device": "gpu", "images": ["x", "y"], "mnq_vs_builtin_ref": {"bytes_compared": 10, "bytes_differing": 0}},
            {"model": "a", "device": "cpu", "images": ["x", "y"], "mnq_vs_builtin_ref": {"bytes_compared": 10, "bytes_differing": 1}}]}"#;
        std::fs::write(base.join("results/litert_crosscheck.json"), litert).unwrap();
        let ort = r#"{"ort_version": "1.31.1", "results": [
            {"model": "q", "device": "gpu", "images": 3, "ort_kernels": "VNNI", "ort_fused_ops": {"QLinearConv": 27},
             "bytes_compared": 7, "bytes_differing": 0},
            {"model": "s", "device": "cpu", "images": 3, "ort_kernels": "AVX2", "ort_fused_ops": {"QLinearConv": 27},
             "bytes_compared": 9, "bytes_differing": 4, "differences_excused": true}]}"#;
        std::fs::write(base.join("results/ort_crosscheck.json"), ort).unwrap();
        let md = render(&base);
        assert!(md.contains("| LiteRT 2.3.0 | reference kernels (`BUILTIN_REF`) | `double` | 1 | 2 | 20 | **1** (`results/litert_crosscheck_export.json`, `results/litert_crosscheck_v2.json` not found) |"), "{md}");
        assert!(md.contains("| LiteRT | XNNPACK delegate (default `AUTO`) | `fp32` | 0 | 0 | 0 | **0** (`results/litert_crosscheck_fp32.json`, `results/litert_crosscheck_v2_fp32.json` not found) |"), "{md}");
        assert!(md.contains("| `q` | gpu | 3 | QLinearConv ×27 | VNNI | 7 | **0** |"), "{md}");
        assert!(md.contains(&format!("| `s` | cpu | 3 | QLinearConv ×27 | AVX2 | 9 | 4 ({EXCUSED}) |")), "{md}");
        let summary =
            format!("| 2 | 3 | 16 | **0** (+ 4 {EXCUSED}) (`results/ort_crosscheck_export.json` not found) |");
        assert!(md.contains(&summary), "{md}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
