//! Studies over labelled images, the measurements behind four subcommands: [`eval`] (accuracy of every scheme),
//! [`sqnr`] (per-layer SQNR), [`sensitivity`] (per-layer weight widths) and [`report`] (the figures of
//! RESULTS.md). Each takes plain arguments and returns a serializable report; the CLI parses its flags, calls one,
//! prints the report and writes its files.
//!
//! Native only: studies read images from disk and run the engine's blocking calls.

pub mod eval;
pub mod report;
pub mod sensitivity;
pub mod sqnr;

use crate::engine::{Engine, Loaded, Quantized, SchemeChoice, Target, DEFAULT_BATCH};
use crate::labels::{self, LabelledImage};
use crate::model::Model;
use crate::quant::scheme::Scheme;
use crate::quant::QuantModel;
use crate::{preprocess, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Images decoded and run together: bounds memory (a 224×224 float image is 600 KB, its float activations 10 MB).
pub const CHUNK: usize = 48;

/// How a study shows what it is doing: a bar for each long loop, and lines for the user. The CLI draws them on
/// stderr; [`Quiet`] drops them.
pub trait Progress: Sync {
    /// A loop of `len` steps named `message` (`decoding`) begins; it ends when the bar is dropped.
    fn bar(&self, len: usize, message: &'static str) -> Box<dyn Bar>;
    /// A line for the user (`GPU: …`, `calibrating …`).
    fn note(&self, line: &str);
}

/// One loop's progress.
pub trait Bar: Send + Sync {
    fn advance(&self, steps: usize);
}

/// Shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn bar(&self, _: usize, _: &'static str) -> Box<dyn Bar> {
        Box::new(Quiet)
    }

    fn note(&self, _: &str) {}
}

impl Bar for Quiet {
    fn advance(&self, _: usize) {}
}

/// Where a study runs its int8 pipelines.
#[derive(Clone, Debug)]
pub struct Device {
    pub target: Target,
    /// For tests: destroy the GPU device after this many runs, as a device loss would ([`Engine::lose_device_after`]).
    pub lose_device_after: Option<usize>,
}

impl Device {
    /// An engine for `models` (a note names its GPU adapter).
    pub fn engine(&self, models: &[&QuantModel], progress: &dyn Progress) -> Result<Engine> {
        let mut engine = Engine::new(&self.target, models, DEFAULT_BATCH)?;
        if let Some(adapter) = engine.adapter() {
            progress.note(&format!("GPU: {adapter}"));
        }
        if let Some(runs) = self.lose_device_after {
            engine.lose_device_after(runs);
        }
        Ok(engine)
    }
}

/// A labelled list as read: its file, which reports name, and its images in order.
#[derive(Clone, Debug)]
pub struct List {
    pub path: PathBuf,
    pub images: Vec<LabelledImage>,
}

impl List {
    /// The first `limit` images (`None`: all) of the `FILE CLASS` list at `path`, whose classes `model` has.
    pub fn read(path: &Path, model: &Model, limit: Option<usize>) -> Result<List> {
        let mut images = labels::read_list(path, model.imagenet_classes())?;
        images.truncate(limit.unwrap_or(usize::MAX));
        Ok(List { path: path.to_path_buf(), images })
    }
}

/// The files of `images`.
fn paths(images: &[LabelledImage]) -> Vec<&Path> {
    images.iter().map(|i| i.path.as_path()).collect()
}

/// The output index of each image's label (TFLite models have a background output first).
fn classes(model: &Model, images: &[LabelledImage]) -> Vec<usize> {
    images.iter().map(|i| model.output_of_class(i.class)).collect()
}

/// Decodes and preprocesses `paths` as `model`'s input, in parallel, behind a bar named `message`.
pub fn load_images(
    paths: &[&Path],
    model: &Model,
    message: &'static str,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f32>>> {
    let bar = progress.bar(paths.len(), message);
    paths
        .par_iter()
        .map(|path| {
            let image = preprocess::load_model_input(path, model);
            bar.advance(1);
            image
        })
        .collect()
}

/// The images of the calibration list `list` for `schemes`, preprocessed as `float`'s input.
pub fn calibration_images(
    list: &Path,
    float: &Model,
    schemes: &[&Scheme],
    progress: &dyn Progress,
) -> Result<Vec<Vec<f32>>> {
    let images = labels::read_list(list, float.imagenet_classes())?;
    progress.note(&format!(
        "calibrating {} on {} images of {} (save it once with `mnq-gpu quantize`)",
        schemes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
        images.len(),
        list.display()
    ));
    load_images(&paths(&images), float, "calibrating", progress)
}

/// `loaded` quantized under each of `schemes`, the calibrated ones on the images of the list `calibration`
/// (read only when a scheme calibrates; `None` is an error then).
pub fn quantize(
    loaded: &Loaded,
    schemes: &[SchemeChoice],
    calibration: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Vec<Quantized>> {
    let calibrated: Vec<&Scheme> = schemes
        .iter()
        .filter_map(|s| match s {
            SchemeChoice::Calibrate(scheme) => Some(scheme),
            SchemeChoice::File => None,
        })
        .collect();
    let images = match calibration {
        Some(list) if !calibrated.is_empty() => calibration_images(list, &loaded.float, &calibrated, progress)?,
        _ => Vec::new(),
    };
    loaded.quantize(schemes, &images)
}
