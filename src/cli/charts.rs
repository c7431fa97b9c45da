//! The charts the commands draw from the library's reports, shared by sqnr, inspect and report. Each writes PNG
//! and SVG and returns the files written.

use anyhow::Result;
use mnq_gpu::analysis::LayerChannels;
use mnq_gpu::plot::{self, Series};
use mnq_gpu::sqnr::LayerSqnr;
use mnq_gpu::study::sqnr::Report as SqnrReport;
use std::path::{Path, PathBuf};

/// The accumulated and local SQNR charts of `report` in `out` (created), one line per scheme.
pub fn sqnr(report: &SqnrReport, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    std::fs::create_dir_all(out).map_err(|e| mnq_gpu::Error::io(out, e))?;
    let layers: Vec<String> = report.schemes[0].layers.iter().map(|l| l.layer.clone()).collect();
    type Value = fn(&LayerSqnr) -> f64;
    let charts: [(&str, &str, Value); 2] = [
        ("accumulated", "end to end", |l| l.accumulated_db),
        ("local", "each layer fed the quantized float input", |l| l.local_db),
    ];
    for (kind, description, value) in charts {
        let series: Vec<Series> = report
            .schemes
            .iter()
            .map(|s| Series { name: s.scheme.clone(), values: s.layers.iter().map(value).collect() })
            .collect();
        let title = format!("{}: {kind} SQNR ({description}), {} images", report.model, report.images);
        written.extend(plot::line_chart(&out.join(format!("sqnr_{kind}")), &title, &layers, "SQNR (dB)", &series)?);
    }
    Ok(written)
}

/// The study's per-channel chart of `layer`'s weights (`channels`), folded and unfolded: one bar per channel from
/// its min to its max weight.
pub fn layer_ranges(channels: &LayerChannels, layer: &str, out: &Path) -> Result<Vec<PathBuf>> {
    let kind = if layer.starts_with("conv_dw_") { "depthwise" } else { "kernel" };
    let mut written = Vec::new();
    for (state, ranges) in [("folded", &channels.folded), ("unfolded", &channels.kernel)] {
        let mins: Vec<f64> = ranges.iter().map(|r| r.min as f64).collect();
        let maxs: Vec<f64> = ranges.iter().map(|r| r.max as f64).collect();
        let stem = out.join(format!("{layer}_{state}"));
        let title = format!("{layer} {state} {kind} weights");
        written.extend(plot::range_chart(&stem, &title, &mins, &maxs)?);
    }
    Ok(written)
}
