//! Weight analysis that needs no inference: per-layer kernel ranges before and after folding BatchNorm, how far one
//! channel stretches the per-tensor range, and the zero-variance ("dead") BatchNorm channels that cause it.
//!
//! Reads tensors one at a time through [`TfjsModel::tensor`], so it works on incomplete models: a tensor that cannot
//! be read is recorded in its layer's `missing` list and the other layers are still analysed.
//!
//! Folding follows the TF.js/Keras BatchNormalization: w'[.., c] = w[.., c] · gamma[c] / sqrt(moving_variance[c] + ε).

use crate::error::{Error, Result};
use crate::model::tfjs::TfjsModel;
use crate::quant::Range;
use serde::Serialize;

/// BatchNorm channels whose moving variance is below this are dead: the published MobileNetV1 checkpoints hold
/// ~4e-35 there, so folding scales them by gamma / sqrt(ε) (up to ~50× at ε = 0.001).
pub use crate::quant::transform::ZERO_VARIANCE;
/// Keras' default, used when the topology does not state the layer's epsilon.
pub const DEFAULT_EPSILON: f32 = 1e-3;
/// Pointwise/depthwise blocks of MobileNetV1.
const BLOCKS: usize = 13;

/// The convolution layers of MobileNetV1 in network order: conv1, conv_dw_1, conv_pw_1, …, conv_pw_13, conv_preds.
pub fn mobilenet_v1_layers() -> Vec<String> {
    let mut layers = vec!["conv1".to_string()];
    for i in 1..=BLOCKS {
        layers.push(format!("conv_dw_{i}"));
        layers.push(format!("conv_pw_{i}"));
    }
    layers.push("conv_preds".to_string());
    layers
}

/// The kernel tensor of a layer: `conv_dw_i/depthwise_kernel`, otherwise `<layer>/kernel`.
pub fn kernel_tensor(layer: &str) -> String {
    if layer.starts_with("conv_dw_") {
        format!("{layer}/depthwise_kernel")
    } else {
        format!("{layer}/kernel")
    }
}

/// The channel whose folded weights span the widest range.
#[derive(Clone, Debug, Serialize)]
pub struct WidestChannel {
    pub channel: usize,
    pub range: Range,
    /// The BatchNorm scale gamma / sqrt(var + ε) folded into it (1 without BatchNorm).
    pub fold_scale: f32,
}

/// One layer's row of the report. Fields are `None` where the tensors they need could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct LayerAnalysis {
    pub layer: String,
    pub kernel_tensor: String,
    /// Kernel shape, HWIO ([3,3,C,1] for depthwise).
    pub shape: Option<Vec<usize>>,
    /// Output channels (the fastest-varying index of the kernel).
    pub channels: Option<usize>,
    /// Whether a `<layer>_bn` BatchNorm follows (all but conv_preds).
    pub batch_norm: bool,
    pub epsilon: Option<f32>,
    /// Kernel range before folding.
    pub kernel: Option<Range>,
    /// Range after folding BatchNorm (equal to `kernel` without BatchNorm): what per-tensor quantization must cover.
    pub folded: Option<Range>,
    /// Folded per-tensor range / median per-channel folded range: how much the widest channels stretch the range.
    pub range_ratio: Option<f64>,
    /// Channels with moving_variance < [`ZERO_VARIANCE`].
    pub zero_variance_channels: Option<Vec<usize>>,
    pub widest_channel: Option<WidestChannel>,
    /// Tensors that could not be read, each with the reason.
    pub missing: Vec<String>,
}

/// Per-output-channel ranges of one layer, before and after folding.
#[derive(Clone, Debug)]
pub struct LayerChannels {
    pub layer: String,
    pub kernel_tensor: String,
    /// `kernel[c]` = range of channel c before folding.
    pub kernel: Vec<Range>,
    /// `folded[c]` = range of channel c after folding BatchNorm (= `kernel` without BatchNorm).
    pub folded: Vec<Range>,
    /// gamma / sqrt(var + ε) per channel; `None` without BatchNorm.
    pub fold_scale: Option<Vec<f32>>,
    /// moving_variance per channel; `None` without BatchNorm.
    pub variance: Option<Vec<f32>>,
}

/// The BatchNorm of a layer, as far as needed for folding.
struct BatchNormStats {
    gamma: Vec<f32>,
    variance: Vec<f32>,
    epsilon: f32,
}

impl BatchNormStats {
    /// gamma / sqrt(var + ε) per channel, computed in f64.
    fn fold_scale(&self) -> Vec<f32> {
        self.gamma
            .iter()
            .zip(&self.variance)
            .map(|(&g, &v)| (g as f64 / (v as f64 + self.epsilon as f64).sqrt()) as f32)
            .collect()
    }

    fn zero_variance_channels(&self) -> Vec<usize> {
        self.variance.iter().enumerate().filter(|(_, &v)| v < ZERO_VARIANCE).map(|(c, _)| c).collect()
    }
}

/// Whether `model` has a BatchNorm named `<layer>_bn` (in the manifest).
fn has_batch_norm(model: &TfjsModel, layer: &str) -> bool {
    let prefix = format!("{layer}_bn/");
    model.tensor_names().any(|n| n.starts_with(&prefix))
}

/// Read `<layer>_bn/{gamma, moving_variance}` (gamma may be absent with `scale: false`: then 1).
fn read_batch_norm(model: &TfjsModel, layer: &str) -> Result<BatchNormStats> {
    let bn = format!("{layer}_bn");
    let (_, variance) = model.tensor(&format!("{bn}/moving_variance"))?;
    let gamma_name = format!("{bn}/gamma");
    let gamma = if model.tensor_names().any(|n| n == gamma_name) {
        model.tensor(&gamma_name)?.1
    } else {
        vec![1.0; variance.len()]
    };
    if gamma.len() != variance.len() {
        return Err(Error::Invalid(format!(
            "{bn}: gamma has {} channels, moving_variance {}",
            gamma.len(),
            variance.len()
        )));
    }
    let epsilon = model.batch_norm_epsilon(&bn).unwrap_or(DEFAULT_EPSILON);
    Ok(BatchNormStats { gamma, variance, epsilon })
}

/// Output channels of a kernel: C·M for depthwise [kh, kw, C, M], C_out for [kh, kw, C_in, C_out]. In both
/// layouts the output channel varies fastest, so element i belongs to channel i % channels.
fn output_channels(layer: &str, shape: &[usize]) -> Result<usize> {
    match shape {
        [_, _, c, m] if layer.starts_with("conv_dw_") => Ok(c * m),
        [_, _, _, c_out] => Ok(*c_out),
        _ => Err(Error::UnsupportedShape { layer: layer.to_string(), reason: format!("kernel shape {shape:?}") }),
    }
}

/// Per-channel ranges of `values` laid out with the channel fastest, each scaled by `scale[c]` if given.
fn channel_ranges(values: &[f32], channels: usize, scale: Option<&[f32]>) -> Vec<Range> {
    let mut ranges = vec![Range::default(); channels];
    for row in values.chunks_exact(channels) {
        for (c, &w) in row.iter().enumerate() {
            ranges[c].update(&[scale.map_or(w, |s| w * s[c])]);
        }
    }
    ranges
}

fn overall(ranges: &[Range]) -> Option<Range> {
    ranges.iter().copied().reduce(Range::merge)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] })
}

/// Per-channel ranges of one layer's kernel, before and after folding its BatchNorm. Fails if the kernel or its
/// BatchNorm cannot be read.
pub fn layer_channels(model: &TfjsModel, layer: &str) -> Result<LayerChannels> {
    let kernel_tensor = kernel_tensor(layer);
    let (shape, values) = model.tensor(&kernel_tensor)?;
    let channels = output_channels(layer, &shape)?;
    let batch_norm = if has_batch_norm(model, layer) { Some(read_batch_norm(model, layer)?) } else { None };
    if let Some(bn) = &batch_norm {
        if bn.variance.len() != channels {
            return Err(Error::UnsupportedShape {
                layer: layer.to_string(),
                reason: format!("kernel has {channels} output channels, its BatchNorm {}", bn.variance.len()),
            });
        }
    }
    let fold_scale = batch_norm.as_ref().map(BatchNormStats::fold_scale);
    let kernel = channel_ranges(&values, channels, None);
    let folded = match &fold_scale {
        Some(scale) => channel_ranges(&values, channels, Some(scale)),
        None => kernel.clone(),
    };
    Ok(LayerChannels {
        layer: layer.to_string(),
        kernel_tensor,
        kernel,
        folded,
        fold_scale,
        variance: batch_norm.map(|bn| bn.variance),
    })
}

/// Analyse one layer; unreadable tensors are recorded in `missing`, never an error.
pub fn analyse_layer(model: &TfjsModel, layer: &str) -> LayerAnalysis {
    let mut row = LayerAnalysis {
        layer: layer.to_string(),
        kernel_tensor: kernel_tensor(layer),
        shape: None,
        channels: None,
        batch_norm: has_batch_norm(model, layer),
        epsilon: None,
        kernel: None,
        folded: None,
        range_ratio: None,
        zero_variance_channels: None,
        widest_channel: None,
        missing: Vec::new(),
    };
    // BatchNorm statistics stand on their own: report dead channels even when the kernel is missing.
    let batch_norm = if row.batch_norm {
        match read_batch_norm(model, layer) {
            Ok(bn) => Some(bn),
            Err(e) => {
                row.missing.push(e.to_string());
                None
            }
        }
    } else {
        None
    };
    if let Some(bn) = &batch_norm {
        row.epsilon = Some(bn.epsilon);
        row.zero_variance_channels = Some(bn.zero_variance_channels());
    }
    let kernel = model.tensor(&row.kernel_tensor).and_then(|(shape, values)| {
        let channels = output_channels(layer, &shape)?;
        Ok((shape, channels, values))
    });
    let (shape, channels, values) = match kernel {
        Ok(kernel) => kernel,
        Err(e) => {
            row.missing.push(e.to_string());
            return row;
        }
    };
    row.shape = Some(shape);
    row.channels = Some(channels);
    let kernel_ranges = channel_ranges(&values, channels, None);
    row.kernel = overall(&kernel_ranges);
    if row.batch_norm && batch_norm.is_none() {
        return row;
    }
    let fold_scale = match &batch_norm {
        Some(bn) if bn.variance.len() != channels => {
            row.missing
                .push(format!("{layer}_bn: {} channels, the kernel has {channels} (cannot fold)", bn.variance.len()));
            return row;
        }
        Some(bn) => bn.fold_scale(),
        None => vec![1.0; channels],
    };
    let folded = channel_ranges(&values, channels, Some(&fold_scale));
    row.folded = overall(&folded);
    let widths: Vec<f64> = folded.iter().map(|r| r.width() as f64).collect();
    row.range_ratio = match (row.folded, median(widths)) {
        (Some(total), Some(median)) if median > 0.0 => Some(total.width() as f64 / median),
        _ => None,
    };
    row.widest_channel = folded
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| a.width().total_cmp(&b.width()))
        .map(|(channel, &range)| WidestChannel { channel, range, fold_scale: fold_scale[channel] });
    row
}

/// Analyse every MobileNetV1 convolution layer, in network order.
pub fn analyse(model: &TfjsModel) -> Vec<LayerAnalysis> {
    mobilenet_v1_layers().iter().map(|layer| analyse_layer(model, layer)).collect()
}
