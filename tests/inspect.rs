//! Claims about the weight analysis behind `mnq-gpu inspect`, on the published models in ../shared, and about the
//! charts it writes.

mod common;

use mnq_gpu::analysis::{self, LayerAnalysis};
use mnq_gpu::model::tfjs::TfjsModel;
use mnq_gpu::plot::{self, Series};
use std::path::{Path, PathBuf};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Google's TF.js models in ../shared (../shared/README.md).
const MODEL_1_0: &str = "../shared/models/mobilenet_v1_1.0_224";
const MODEL_0_75: &str = "../shared/models/mobilenet_v1_0.75_224";

fn row<'a>(rows: &'a [LayerAnalysis], layer: &str) -> &'a LayerAnalysis {
    rows.iter().find(|r| r.layer == layer).unwrap_or_else(|| panic!("no row for {layer}"))
}

/// A fresh, empty folder under cargo's per-target temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn assert_png_and_svg(paths: &[PathBuf]) {
    assert_eq!(paths.len(), 2, "{paths:?}");
    let png = std::fs::read(&paths[0]).unwrap_or_else(|e| panic!("{}: {e}", paths[0].display()));
    assert!(png.len() > 1000 && png.starts_with(&PNG_SIGNATURE), "{} is not a PNG", paths[0].display());
    let svg = std::fs::read_to_string(&paths[1]).unwrap_or_else(|e| panic!("{}: {e}", paths[1].display()));
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{} is not an SVG", paths[1].display());
}

#[test]
fn incomplete_1_0_model_shows_dead_depthwise_channels_and_reports_missing_kernel() {
    if !common::data_or_skip(&[MODEL_1_0]) {
        return;
    }
    let model = TfjsModel::open(Path::new(MODEL_1_0)).expect("model.json opens");
    let rows = analysis::analyse(&model);
    assert_eq!(rows.len(), 28, "conv1 + 13 × (dw, pw) + conv_preds");

    let missing = row(&rows, "conv_pw_13");
    assert!(missing.kernel.is_none() && missing.folded.is_none());
    assert!(
        missing.missing.iter().any(|m| m.contains("conv_pw_13/kernel")),
        "conv_pw_13's row must name the missing tensor: {:?}",
        missing.missing
    );
    assert!(missing.zero_variance_channels.is_some(), "conv_pw_13_bn is present and must be analysed");

    let dead_depthwise: usize = rows
        .iter()
        .filter(|r| r.layer.starts_with("conv_dw_"))
        .map(|r| r.zero_variance_channels.as_ref().map_or(0, Vec::len))
        .sum();
    assert!(dead_depthwise > 0, "the published 1.0 model has zero-variance depthwise BatchNorm channels");

    for r in rows.iter().filter(|r| r.layer != "conv_pw_13") {
        assert!(r.missing.is_empty(), "{}: {:?}", r.layer, r.missing);
        assert!(r.folded.is_some() && r.range_ratio.is_some(), "{} was not analysed", r.layer);
    }
}

#[test]
fn folding_widens_conv_dw_1_range_in_0_75_model() {
    if !common::data_or_skip(&[MODEL_0_75]) {
        return;
    }
    let model = TfjsModel::open(Path::new(MODEL_0_75)).expect("model.json opens");
    assert_eq!(model.batch_norm_epsilon("conv_dw_1_bn"), Some(0.001));
    let dw1 = analysis::analyse_layer(&model, "conv_dw_1");
    let (kernel, folded) = (dw1.kernel.expect("kernel range"), dw1.folded.expect("folded range"));
    assert!(
        folded.width() > kernel.width(),
        "conv_dw_1: folded range {folded:?} should be wider than the unfolded {kernel:?}"
    );
    let channels = analysis::layer_channels(&model, "conv_dw_1").expect("conv_dw_1 channels");
    assert_eq!(channels.folded.len(), 24, "0.75 × 32 channels");
}

#[test]
fn line_chart_writes_png_and_svg() {
    let dir = temp_dir("plot_line_chart");
    let x_labels: Vec<String> = analysis::mobilenet_v1_layers();
    let n = x_labels.len();
    let series = [
        Series { name: "accumulated".into(), values: (0..n).map(|i| 40.0 - i as f64).collect() },
        Series {
            name: "local".into(),
            // A gap (NaN) and an infinity must be skipped, not fail.
            values: (0..n)
                .map(|i| {
                    if i == 5 {
                        f64::NAN
                    } else if i == 9 {
                        f64::INFINITY
                    } else {
                        30.0
                    }
                })
                .collect(),
        },
    ];
    let paths = plot::line_chart(&dir.join("sqnr"), "SQNR per layer", &x_labels, "SQNR (dB)", &series).unwrap();
    assert_eq!(paths, [dir.join("sqnr.png"), dir.join("sqnr.svg")]);
    assert_png_and_svg(&paths);
}

#[test]
fn range_chart_writes_png_and_svg() {
    let dir = temp_dir("plot_range_chart");
    let mins: Vec<f64> = (0..32).map(|c| -1.0 - (c % 5) as f64).collect();
    let maxs: Vec<f64> = (0..32).map(|c| 1.0 + (c % 7) as f64).collect();
    let paths = plot::range_chart(&dir.join("conv_dw_1"), "conv_dw_1 folded depthwise weights", &mins, &maxs).unwrap();
    assert_png_and_svg(&paths);
}
