//! Accuracy over labelled images: top-1/top-5 of the float model and of every quantized model, with the time of
//! each pipeline, optionally every int8 layer checked against the CPU integer reference, and how requantization
//! modes other than `double` differ from it.

use super::check::check_layers;
use super::load::Quantized;
use super::runner::Engine;
use crate::cpu_ref;
use crate::gpu::Readback;
use crate::labels::top_k;
use crate::model::Model;
use crate::quant::scheme::Architecture;
use crate::quant::Requant;
use crate::Result;
use serde::Serialize;
use std::time::Duration;
use web_time::Instant;

/// Top-1/top-5 and time of one pipeline.
#[derive(Serialize, Default, Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    pub top1_percent: f64,
    pub top5_percent: f64,
    /// Wall time of this pipeline's forward passes over all images (decoding excluded).
    pub wall_s: f64,
}

/// How one requantization mode's int8 logits differ from `double`'s for the same scheme and images: the
/// off-by-one measured on a whole network.
#[derive(Serialize, Default, Clone, Copy, Debug, PartialEq)]
pub struct ModeDifference {
    pub logit_bytes_compared: usize,
    pub logit_bytes_differing: usize,
    /// Images whose top-1 class differs.
    pub top1_differing: usize,
}

impl ModeDifference {
    /// Counts each image's u8 logits under this mode against the same image's under double.
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

/// Hits and time of one pipeline.
#[derive(Default, Clone, Copy, Debug)]
pub struct Tally {
    top1: usize,
    top5: usize,
    time: Duration,
}

impl Tally {
    /// Counts each image's logits against its label (an output index).
    pub fn add(&mut self, logits: &[Vec<f32>], classes: &[usize]) {
        for (l, &class) in logits.iter().zip(classes) {
            let top = top_k(l, 5);
            self.top1 += usize::from(top[0] == class);
            self.top5 += usize::from(top.contains(&class));
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.top1 += other.top1;
        self.top5 += other.top5;
        self.time += other.time;
    }

    pub fn accuracy(&self, n: usize) -> Accuracy {
        let percent = |hits: usize| 100.0 * hits as f64 / n.max(1) as f64;
        Accuracy { top1_percent: percent(self.top1), top5_percent: percent(self.top5), wall_s: self.time.as_secs_f64() }
    }
}

/// What [`Evaluation`] found for one quantized model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SchemeResult {
    /// The float model this scheme quantizes (its own only for architecture changes).
    pub float: Accuracy,
    pub int8: Accuracy,
    /// With checking: bytes of every layer's output compared with the CPU integer reference, and how many differ.
    pub checked: Option<(usize, usize)>,
    /// Under a mode other than `double`, when the same scheme also ran under `double`.
    pub vs_double: Option<ModeDifference>,
}

/// A running evaluation of a float model and its quantized models, fed chunks of images.
pub struct Evaluation {
    images: usize,
    check: bool,
    original_float: Tally,
    /// Per quantized model: its own float pipeline (architecture changes only), its int8 pipeline, bytes checked
    /// and differing.
    floats: Vec<Option<Tally>>,
    int8s: Vec<Tally>,
    checked: Vec<(usize, usize)>,
    /// For each model under another mode than double, the same scheme's model under double, if it runs too.
    double_of: Vec<Option<usize>>,
    vs_double: Vec<ModeDifference>,
}

impl Evaluation {
    /// An evaluation of `quantized`; with `check`, every int8 layer is compared with the CPU integer reference.
    pub fn new(quantized: &[Quantized], check: bool) -> Evaluation {
        // Folding, the zero-variance fix and equalization leave the float function as it is: only architecture
        // changes need their own float pass.
        let floats = quantized
            .iter()
            .map(|q| (q.scheme.architecture() != Architecture::Original).then(Tally::default))
            .collect();
        let double_of = quantized
            .iter()
            .map(|q| {
                let same = |d: &Quantized| d.model.requant() == Requant::Double && d.model.scheme == q.model.scheme;
                quantized.iter().position(same).filter(|_| q.model.requant() != Requant::Double)
            })
            .collect();
        Evaluation {
            images: 0,
            check,
            original_float: Tally::default(),
            floats,
            int8s: vec![Tally::default(); quantized.len()],
            checked: vec![(0, 0); quantized.len()],
            double_of,
            vs_double: vec![ModeDifference::default(); quantized.len()],
        }
    }

    /// [`Evaluation::add_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn add(
        &mut self,
        engine: &mut Engine,
        float: &Model,
        quantized: &[Quantized],
        inputs: &[Vec<f32>],
        classes: &[usize],
    ) -> Result<()> {
        crate::gpu::block_on(self.add_async(engine, float, quantized, inputs, classes))
    }

    /// Evaluates one chunk: preprocessed `inputs` with their labels as output indices (`classes`), through the
    /// float model and each of `quantized` (as given to [`Evaluation::new`] and to `engine`).
    pub async fn add_async(
        &mut self,
        engine: &mut Engine,
        float: &Model,
        quantized: &[Quantized],
        inputs: &[Vec<f32>],
        classes: &[usize],
    ) -> Result<()> {
        let start = Instant::now();
        self.original_float.add(&float_logits(float, inputs), classes);
        self.original_float.time += start.elapsed();
        let readback = if self.check { Readback::AllLayers } else { Readback::Logits };
        let mut chunk_logits: Vec<Vec<Vec<u8>>> = Vec::with_capacity(quantized.len());
        for (index, q) in quantized.iter().enumerate() {
            if let Some(tally) = &mut self.floats[index] {
                let start = Instant::now();
                tally.add(&float_logits(&q.float, inputs), classes);
                tally.time += start.elapsed();
            }
            let int8_inputs: Vec<Vec<u8>> = inputs.iter().map(|input| q.model.quantize_input(input)).collect();
            let start = Instant::now();
            let outputs = engine.run_async(index, &int8_inputs, readback).await?;
            self.int8s[index].time += start.elapsed();
            let logits: Vec<Vec<f32>> =
                outputs.iter().map(|layers| q.model.dequantize_logits(layers.last().expect("layers"))).collect();
            self.int8s[index].add(&logits, classes);
            chunk_logits.push(outputs.iter().map(|layers| layers.last().expect("layers").clone()).collect());
            if self.check {
                let pairs: Vec<(&Vec<u8>, &Vec<Vec<u8>>)> = int8_inputs.iter().zip(&outputs).collect();
                for check in crate::par::map(&pairs, |(input, layers)| check_layers(&q.model, input, layers)) {
                    self.checked[index].0 += check.compared_bytes;
                    self.checked[index].1 += check.differing_bytes();
                }
            }
        }
        for (index, double) in self.double_of.iter().enumerate() {
            if let Some(double) = *double {
                self.vs_double[index].add(&chunk_logits[index], &chunk_logits[double]);
            }
        }
        self.images += inputs.len();
        Ok(())
    }

    /// Images evaluated so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// The original float model's accuracy.
    pub fn float(&self) -> Accuracy {
        self.original_float.accuracy(self.images)
    }

    /// Quantized model `index`'s results.
    pub fn scheme(&self, index: usize) -> SchemeResult {
        SchemeResult {
            float: self.floats[index].unwrap_or(self.original_float).accuracy(self.images),
            int8: self.int8s[index].accuracy(self.images),
            checked: self.check.then_some(self.checked[index]),
            vs_double: self.double_of[index].map(|_| self.vs_double[index]),
        }
    }
}

fn float_logits(model: &Model, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    crate::par::map(inputs, |input| cpu_ref::run_f32(model, input).pop().expect("layers"))
}
