//! `report`'s measurements, the figures of RESULTS.md: every scheme's accuracy (int8 checked layer by layer against
//! the CPU integer reference) and per-layer SQNR on the 0.75 model, Google's TFLite models with their own
//! quantization, the 1.0 model's weights, and the arithmetic sections: every requantization mode on a few schemes
//! ([`measure_modes`]) and the weight bit-widths of three ([`measure_weight_bits`]). The CLI renders them as
//! markdown and draws the charts.

use super::{eval, sqnr, Device, List, Progress};
use crate::analysis::{self, LayerAnalysis, LayerChannels};
use crate::engine::{with_requant, Loaded, SchemeChoice};
use crate::model::tfjs::TfjsModel;
use crate::quant::Requant;
use crate::Result;
use std::path::{Path, PathBuf};

/// Every scheme the report evaluates.
pub const SCHEMES: &str =
    "tf8,tf8-zero-var,per-channel,cle,cle-bc,tf8+mse,tf8-zero-var+mse,per-channel+mse,cle-bc+mse,\
                           tf8+relu,tf8-zero-var+relu,tf8-zero-var+dw-linear";
/// The schemes drawn in the SQNR charts (more lines would not be readable).
pub const SQNR_SCHEMES: &str = "tf8,tf8-zero-var,per-channel,cle-bc,per-channel+mse";
/// The layer whose per-channel weight ranges are charted, as the study did.
pub const CHANNELS_LAYER: &str = "conv_dw_1";
/// The schemes measured under every requantization mode.
pub const MODE_SCHEMES: [&str; 4] = ["tf8", "tf8-zero-var", "per-channel", "cle-bc"];
/// The schemes measured at every weight bit-width, and the widths (`+wB`; 8 is the scheme itself).
pub const BIT_SCHEMES: [&str; 3] = ["tf8-zero-var", "per-channel", "cle-bc"];
pub const BITS: [u8; 4] = [8, 6, 5, 4];
/// The study's SQNR figure: ReLU6 against ReLU, each scheme against its own float model.
pub const RELU_SCHEMES: [&str; 2] = ["tf8-zero-var", "tf8-zero-var+relu"];

/// The fine-tuned float variants in `models/finetuned/` (issue 18), each evaluated under [`FINETUNE_SCHEMES`].
pub const FINETUNED_VARIANTS: [&str; 3] = ["dw-linear", "dw-linear+relu", "dw-linear+relu+l2"];
/// The quantization-aware fine-tuned file in `models/finetuned/`, evaluated with its own quantization.
pub const FINETUNED_QAT: &str = "qat-tf8.tflite";
pub const FINETUNE_SCHEMES: &str = "tf8,tf8-zero-var,per-channel";
/// The fine-tuning section's schemes on the original weights: two post-training schemes to compare with, then
/// each variant before fine-tuning, mnq-gpu's transforms of the original weights, the architecture alone (`+l2` is
/// a training term, so `dw-linear+relu+l2` starts as `dw-linear+relu`).
pub const BEFORE_SCHEMES: &str = "tf8-zero-var,per-channel,tf8+dw-linear,tf8-zero-var+dw-linear,per-channel+dw-linear,\
                                  tf8+dw-linear+relu,tf8-zero-var+dw-linear+relu,per-channel+dw-linear+relu";
/// The study's SQNR figure after fine-tuning: this scheme on the fine-tuned ReLU6 and ReLU variants.
pub const FINETUNE_SQNR_SCHEME: &str = "tf8-zero-var";

/// What every part of the report runs on.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The TF.js model every scheme quantizes (MobileNetV1 0.75 × 224).
    pub model: PathBuf,
    /// The calibration list (`FILE CLASS` lines).
    pub calibration: PathBuf,
    /// The evaluation list.
    pub evaluation: PathBuf,
    /// Evaluate only the first N images of the evaluation list.
    pub limit: Option<usize>,
    /// Images the SQNR is averaged over (the first of the evaluation list).
    pub sqnr_images: usize,
    /// Where the int8 pipelines run.
    pub device: Device,
}

/// The report's main part.
pub struct Results {
    /// Every scheme of [`SCHEMES`] on the model of [`Inputs::model`].
    pub eval: eval::Report,
    /// Every scheme of [`SQNR_SCHEMES`].
    pub sqnr: sqnr::Report,
    /// The 1.0 model's weights, layer by layer.
    pub analysis: Vec<LayerAnalysis>,
    /// [`CHANNELS_LAYER`]'s per-channel weight ranges in the 1.0 model and in the model of [`Inputs::model`].
    pub channels_1_0: LayerChannels,
    pub channels: LayerChannels,
    /// Each TFLite model given to [`measure`], in its order.
    pub tflite: Vec<TfliteResults>,
}

/// One of Google's TFLite models: its evaluation with its own quantization, and its SQNR against the float model
/// its weights represent.
pub struct TfliteResults {
    pub eval: eval::Report,
    pub sqnr: sqnr::Report,
}

/// What the requantization section measured.
pub struct Modes {
    /// Every scheme of [`MODE_SCHEMES`] under every mode, in that order (the modes of a scheme together).
    pub eval: eval::Report,
    pub sqnr: sqnr::Report,
    /// The schemes of [`RELU_SCHEMES`].
    pub relu: sqnr::Report,
}

/// What the weight bit-width section measured: every scheme of [`BIT_SCHEMES`] at every width of [`BITS`], in
/// that order.
pub struct WeightBits {
    pub eval: eval::Report,
    pub sqnr: sqnr::Report,
}

/// The main part: the schemes on [`Inputs::model`], the weights of the TF.js 1.0 × 224 model in the folder
/// `model_1_0` (analysed only: it need not be complete), and the TFLite files `tflite`.
pub fn measure(inputs: &Inputs, model_1_0: &Path, tflite: &[PathBuf], progress: &dyn Progress) -> Result<Results> {
    let loaded = Loaded::from_path(&inputs.model)?;
    let eval = evaluate(&loaded, &schemes(SCHEMES), &[], inputs, progress)?;
    let sqnr = measure_sqnr(&loaded, &schemes(SQNR_SCHEMES), &[], inputs, progress)?;
    let model_1_0 = TfjsModel::open(model_1_0)?;
    let analysis = analysis::analyse(&model_1_0);
    let channels_1_0 = analysis::layer_channels(&model_1_0, CHANNELS_LAYER)?;
    let channels = analysis::layer_channels(&TfjsModel::open(&inputs.model)?, CHANNELS_LAYER)?;
    let tflite = tflite
        .iter()
        .map(|path| {
            let loaded = Loaded::from_path(path)?;
            let schemes = loaded.default_schemes();
            let eval = evaluate(&loaded, &schemes, &[], inputs, progress)?;
            let sqnr = measure_sqnr(&loaded, &schemes, &[], inputs, progress)?;
            Ok(TfliteResults { eval, sqnr })
        })
        .collect::<Result<_>>()?;
    Ok(Results { eval, sqnr, analysis, channels_1_0, channels, tflite })
}

/// One fine-tuned model's evaluation: on the whole evaluation list, and on its images whose class is one of the
/// fine-tuning classes.
pub struct Finetuned {
    /// Its entry in `models/finetuned/`.
    pub name: String,
    pub eval: eval::Report,
    pub trained_classes: eval::Report,
}

/// What the fine-tuning section measured.
pub struct Finetune {
    /// The original model under [`BEFORE_SCHEMES`].
    pub before: eval::Report,
    /// Each of [`FINETUNED_VARIANTS`] under [`FINETUNE_SCHEMES`], then [`FINETUNED_QAT`] under its own quantization.
    pub models: Vec<Finetuned>,
    /// [`FINETUNE_SQNR_SCHEME`] on the fine-tuned `dw-linear` (ReLU6) and `dw-linear+relu` (ReLU).
    pub relu6: sqnr::Report,
    pub relu: sqnr::Report,
}

/// The fine-tuning section: the models of `folder` (`models/finetuned/`) evaluated like the main table (int8 on
/// the device, every layer checked), also on the evaluation images of `trained_classes` (the ImageNet classes they
/// were fine-tuned on), with the original model's "before" rows and the ReLU6/ReLU SQNR figure.
pub fn measure_finetune(
    inputs: &Inputs,
    folder: &Path,
    trained_classes: &[usize],
    progress: &dyn Progress,
) -> Result<Finetune> {
    let before = evaluate(&Loaded::from_path(&inputs.model)?, &schemes(BEFORE_SCHEMES), &[], inputs, progress)?;
    let entries =
        FINETUNED_VARIANTS.iter().map(|name| (*name, schemes(FINETUNE_SCHEMES))).chain([(FINETUNED_QAT, vec![])]);
    let mut models = Vec::new();
    for (name, model_schemes) in entries {
        let loaded = Loaded::from_path(&folder.join(name))?;
        let model_schemes = if model_schemes.is_empty() { loaded.default_schemes() } else { model_schemes };
        let quantized = super::quantize(&loaded, &model_schemes, Some(&inputs.calibration), progress)?;
        let list = List::read(&inputs.evaluation, &loaded.float, inputs.limit)?;
        let eval = eval::evaluate(&loaded.float, &quantized, &inputs.device, &list, true, progress)?;
        let images = list.images.into_iter().filter(|i| trained_classes.contains(&i.class)).collect();
        let subset = List { path: list.path, images };
        let trained_classes = eval::evaluate(&loaded.float, &quantized, &inputs.device, &subset, true, progress)?;
        models.push(Finetuned { name: name.to_string(), eval, trained_classes });
    }
    let sqnr_of = |name: &str| {
        let loaded = Loaded::from_path(&folder.join(name))?;
        measure_sqnr(&loaded, &schemes(FINETUNE_SQNR_SCHEME), &[], inputs, progress)
    };
    Ok(Finetune { before, models, relu6: sqnr_of("dw-linear")?, relu: sqnr_of("dw-linear+relu")? })
}

/// The requantization section: every scheme of [`MODE_SCHEMES`] under every mode (int8 on the device, every layer
/// checked on the CPU), their SQNR, and the ReLU6/ReLU figure.
pub fn measure_modes(inputs: &Inputs, progress: &dyn Progress) -> Result<Modes> {
    let loaded = Loaded::from_path(&inputs.model)?;
    let mode_schemes = schemes(&MODE_SCHEMES.join(","));
    let eval = evaluate(&loaded, &mode_schemes, &Requant::ALL, inputs, progress)?;
    let sqnr = measure_sqnr(&loaded, &mode_schemes, &Requant::ALL, inputs, progress)?;
    let relu = measure_sqnr(&loaded, &schemes(&RELU_SCHEMES.join(",")), &[], inputs, progress)?;
    Ok(Modes { eval, sqnr, relu })
}

/// The weight bit-width section: every scheme of [`BIT_SCHEMES`] at every width of [`BITS`], checked like
/// [`measure_modes`].
pub fn measure_weight_bits(inputs: &Inputs, progress: &dyn Progress) -> Result<WeightBits> {
    let loaded = Loaded::from_path(&inputs.model)?;
    let names: Vec<String> = BIT_SCHEMES.iter().flat_map(|scheme| BITS.map(|bits| with_bits(scheme, bits))).collect();
    let bit_schemes = schemes(&names.join(","));
    let eval = evaluate(&loaded, &bit_schemes, &[], inputs, progress)?;
    let sqnr = measure_sqnr(&loaded, &bit_schemes, &[], inputs, progress)?;
    Ok(WeightBits { eval, sqnr })
}

/// The scheme name of `scheme` with `bits`-bit weights.
fn with_bits(scheme: &str, bits: u8) -> String {
    if bits == 8 {
        scheme.to_string()
    } else {
        format!("{scheme}+w{bits}")
    }
}

/// The built-in scheme names `names`, comma-separated.
fn schemes(names: &str) -> Vec<SchemeChoice> {
    names.split(',').map(|name| name.parse().expect("a valid built-in scheme name")).collect()
}

/// `loaded` under each of `schemes` in each of `requant` (none: as quantized) over the first [`Inputs::limit`]
/// images, every int8 layer checked.
fn evaluate(
    loaded: &Loaded,
    schemes: &[SchemeChoice],
    requant: &[Requant],
    inputs: &Inputs,
    progress: &dyn Progress,
) -> Result<eval::Report> {
    let list = List::read(&inputs.evaluation, &loaded.float, inputs.limit)?;
    let quantized = with_requant(super::quantize(loaded, schemes, Some(&inputs.calibration), progress)?, requant)?;
    eval::evaluate(&loaded.float, &quantized, &inputs.device, &list, true, progress)
}

/// [`evaluate`]'s models, their per-layer SQNR over the first [`Inputs::sqnr_images`] images.
fn measure_sqnr(
    loaded: &Loaded,
    schemes: &[SchemeChoice],
    requant: &[Requant],
    inputs: &Inputs,
    progress: &dyn Progress,
) -> Result<sqnr::Report> {
    let list = List::read(&inputs.evaluation, &loaded.float, Some(inputs.sqnr_images))?;
    let quantized = with_requant(super::quantize(loaded, schemes, Some(&inputs.calibration), progress)?, requant)?;
    sqnr::measure(&loaded.float, &quantized, &list, progress)
}
