//! The model an engine runs, from a path or from bytes (the browser fetches them), and its quantized versions:
//! one per scheme, calibrated here, or a TFLite file's own.

use crate::calibrate;
use crate::error::{Error, Result};
use crate::model::tfjs::{self, TfjsModel};
use crate::model::Model;
use crate::quant::scheme::{Architecture, Scheme};
use crate::quant::{self, QuantModel, Requant};
use crate::{assets, onnx, tflite};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A float model, and what a TFLite or ONNX file held besides.
#[derive(Clone)]
pub struct Loaded {
    pub float: Model,
    /// Where it came from, for reports: a folder, a file, or the built-in model.
    pub source: PathBuf,
    pub tflite: Option<tflite::Imported>,
    /// An ONNX file's import: its own quantization, if it is a quantized file.
    pub onnx: Option<onnx::Imported>,
}

impl Loaded {
    /// A TFLite file (by its extension, `.tflite`), an ONNX file (`.onnx`) or a TF.js folder (model.json + shards).
    pub fn from_path(path: &Path) -> Result<Loaded> {
        let source = path.to_path_buf();
        if tflite::is_tflite_path(path) {
            let imported = tflite::load(path)?;
            Ok(Loaded { float: imported.float.clone(), source, tflite: Some(imported), onnx: None })
        } else if onnx::is_onnx_path(path) {
            let imported = onnx::load(path)?;
            Ok(Loaded { float: imported.float.clone(), source, tflite: None, onnx: Some(imported) })
        } else {
            Ok(Loaded { float: tfjs::load(path)?, source, tflite: None, onnx: None })
        }
    }

    /// An ONNX file's bytes; the model is called `name`.
    pub fn from_onnx_bytes(bytes: &[u8], name: &str) -> Result<Loaded> {
        let source = PathBuf::from(format!("{name}.onnx"));
        let imported = onnx::from_bytes(bytes, name, &source)?;
        Ok(Loaded { float: imported.float.clone(), source, tflite: None, onnx: Some(imported) })
    }

    /// Whether the file holds a quantization of its own (a quantized TFLite or ONNX file): scheme `tflite`/`onnx`.
    pub fn has_file_quantization(&self) -> bool {
        self.tflite.is_some() || self.onnx.as_ref().is_some_and(|o| o.model.is_some())
    }

    /// A TFLite file's bytes; the model is called `name`.
    pub fn from_tflite_bytes(bytes: &[u8], name: &str) -> Result<Loaded> {
        let source = PathBuf::from(format!("{name}.tflite"));
        let imported = tflite::from_bytes(bytes, name, &source)?;
        Ok(Loaded { float: imported.float.clone(), source, tflite: Some(imported), onnx: None })
    }

    /// A TF.js model from its `model.json` and its shards by the names model.json gives them; `name` stands for
    /// the folder in errors.
    pub fn from_tfjs_bytes(name: &str, json: &[u8], shards: HashMap<String, Vec<u8>>) -> Result<Loaded> {
        let source = PathBuf::from(name);
        let float = TfjsModel::from_bytes(&source, json, shards)?.model()?;
        Ok(Loaded { float, source, tflite: None, onnx: None })
    }

    /// The model built into the binary: Google's mobilenet_v1_1.0_224_quant.tflite.
    pub fn built_in() -> Result<Loaded> {
        let name = assets::EMBEDDED_MODEL_NAME;
        let mut loaded = Loaded::from_tflite_bytes(assets::EMBEDDED_MODEL, name)?;
        loaded.source = PathBuf::from(format!("<built-in {name}.tflite>"));
        Ok(loaded)
    }

    /// The schemes to run when none are named: a TFLite or ONNX file's own quantization, else tf8.
    pub fn default_schemes(&self) -> Vec<SchemeChoice> {
        if self.has_file_quantization() {
            vec![SchemeChoice::File]
        } else {
            vec![SchemeChoice::Calibrate(Scheme::tf8())]
        }
    }

    /// One quantized model per scheme, each in the requantization mode its scheme makes. Calibrated schemes use
    /// `calibration` (preprocessed images, [`crate::preprocess`]); see [`needs_calibration`].
    pub fn quantize(&self, schemes: &[SchemeChoice], calibration: &[Vec<f32>]) -> Result<Vec<Quantized>> {
        schemes
            .iter()
            .map(|choice| match choice {
                SchemeChoice::File if self.onnx.is_some() => {
                    let imported = self.onnx.as_ref().expect("checked");
                    let model = imported.model.clone().ok_or_else(|| {
                        Error::Invalid(format!(
                            "scheme `{}` is a quantized ONNX file's own quantization; {} is a float model (pass \
                             --scheme tf8, or another scheme, to quantize it)",
                            onnx::SCHEME,
                            self.source.display()
                        ))
                    })?;
                    Ok(Quantized {
                        scheme: SchemeChoice::File,
                        float: imported.float.clone(),
                        model,
                        tflite_tensors: None,
                        onnx_tensors: Some(imported.tensors.clone()),
                    })
                }
                SchemeChoice::File => {
                    let imported = self.tflite.as_ref().ok_or_else(|| {
                        Error::Invalid(format!(
                            "scheme `{choice}` is a TFLite file's own quantization; {} is not a TFLite file",
                            self.source.display()
                        ))
                    })?;
                    Ok(Quantized {
                        scheme: SchemeChoice::File,
                        float: imported.float.clone(),
                        model: imported.model.clone(),
                        tflite_tensors: Some(imported.tensors.clone()),
                        onnx_tensors: None,
                    })
                }
                SchemeChoice::Calibrate(scheme) => {
                    if calibration.is_empty() {
                        return Err(Error::Invalid(format!("scheme `{scheme}` needs calibration images; none given")));
                    }
                    let (prepared, model) = calibrate::quantize_scheme(&self.float, scheme, calibration)?;
                    Ok(Quantized {
                        scheme: choice.clone(),
                        float: prepared,
                        model,
                        tflite_tensors: None,
                        onnx_tensors: None,
                    })
                }
            })
            .collect()
    }

    /// A model `mnq-gpu quantize` wrote to `path`, checked to come from this float model.
    pub fn read_quantized(&self, path: &Path) -> Result<Quantized> {
        self.quantized(path, quant::file::load(path)?)
    }

    /// [`Loaded::read_quantized`] from the file's bytes; `what` names it in errors.
    pub fn quantized_from_bytes(&self, what: &Path, bytes: &[u8]) -> Result<Quantized> {
        self.quantized(what, quant::file::from_bytes(bytes, what)?.model)
    }

    fn quantized(&self, what: &Path, model: QuantModel) -> Result<Quantized> {
        let float = &self.float;
        if model.name != float.name || model.input_shape != float.input_shape || model.synthetic {
            return Err(Error::Invalid(format!(
                "{} was quantized from {}{}, not from {}",
                what.display(),
                model.name,
                if model.synthetic { " (synthetic weights, for benchmarks only)" } else { "" },
                float.name
            )));
        }
        let scheme: Scheme = model.scheme.parse()?;
        let float = calibrate::prepare(float, &scheme);
        Ok(Quantized {
            float,
            scheme: SchemeChoice::Calibrate(scheme),
            model,
            tflite_tensors: None,
            onnx_tensors: None,
        })
    }
}

/// Whether any of `schemes` calibrates (all but a TFLite file's own).
pub fn needs_calibration(schemes: &[SchemeChoice]) -> bool {
    schemes.iter().any(|s| matches!(s, SchemeChoice::Calibrate(_)))
}

/// Every model under each of `modes` (none: as they are), checked to be valid under it.
pub fn with_requant(models: Vec<Quantized>, modes: &[Requant]) -> Result<Vec<Quantized>> {
    if modes.is_empty() {
        return Ok(models);
    }
    let mut all = Vec::with_capacity(models.len() * modes.len());
    for q in models {
        for &mode in modes {
            let model = q.model.clone().with_requant(mode);
            model
                .validate()
                .map_err(|reason| Error::Invalid(format!("{} under --requant {mode}: {reason}", q.scheme)))?;
            all.push(Quantized { model, ..q.clone() });
        }
    }
    Ok(all)
}

/// A scheme to run: one to calibrate, or `tflite` (or `onnx`), the quantization a TFLite (ONNX) file holds.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemeChoice {
    /// The TFLite or ONNX file's own quantization, imported as it is.
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
    type Err = Error;

    fn from_str(name: &str) -> Result<SchemeChoice> {
        if name == tflite::SCHEME || name == onnx::SCHEME {
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
    /// For an ONNX file's own quantization: per layer, the name of the file's tensor that layer computes.
    pub onnx_tensors: Option<Vec<String>>,
}

impl Quantized {
    /// The scheme's name, with the requantization mode unless it is the default: `tf8`, `tf8/fp32`.
    pub fn label(&self) -> String {
        label(&self.scheme_name(), self.model.requant())
    }

    /// The scheme's name: `onnx` for an ONNX file's own quantization (SchemeChoice::File prints `tflite`).
    pub fn scheme_name(&self) -> String {
        match (&self.scheme, &self.onnx_tensors) {
            (SchemeChoice::File, Some(_)) => onnx::SCHEME.to_string(),
            (scheme, _) => scheme.to_string(),
        }
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
