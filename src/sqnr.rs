//! SQNR as the study defines it: 10·log10(Σx² / Σ(x − x̂)²), x a layer's float output and x̂ the dequantized
//! output of the quantized pipeline at the same layer, averaged (in dB) over images.
//!
//! - *accumulated*: both pipelines run end to end, so errors accumulate (the study's measure);
//! - *local*: the quantized layer is fed the quantized float input of that layer, so it shows which layer
//!   creates the loss.

use crate::cpu_ref;
use crate::model::{Model, Source};
use crate::quant::{QLayer, QuantModel, QuantParams};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct LayerSqnr {
    pub layer: String,
    pub accumulated_db: f64,
    pub local_db: f64,
}

/// 10·log10(signal / noise); +∞ when the noise is zero.
pub fn sqnr_db(signal_power: f64, noise_power: f64) -> f64 {
    10.0 * (signal_power / noise_power).log10()
}

/// Σx² and Σ(x − x̂)² of a float tensor and its quantized counterpart.
pub fn powers(float: &[f32], quantized: &[u8], params: QuantParams) -> (f64, f64) {
    float.iter().zip(quantized).fold((0.0, 0.0), |(signal, noise), (&x, &q)| {
        let error = f64::from(x) - f64::from(params.dequantize(q));
        (signal + f64::from(x) * f64::from(x), noise + error * error)
    })
}

/// `layer` quantized alone, as the local SQNR and `mnq-gpu sensitivity` measure it: its float input quantized with
/// the layer's input parameters, then the integer layer. Fed the dequantized output of the quantized model's
/// previous layer, it gives that model's own bytes (tests/weight_bits.rs).
pub fn run_layer_alone(layer: &QLayer, float_input: &[f32]) -> Vec<u8> {
    run_node_alone(layer, &[float_input])
}

/// [`run_layer_alone`] for a layer of any arity: each float input quantized with that operand's parameters
/// ([`QLayer::input_params`]).
pub fn run_node_alone(layer: &QLayer, float_inputs: &[&[f32]]) -> Vec<u8> {
    let quantized: Vec<Vec<u8>> = float_inputs
        .iter()
        .zip(layer.input_params())
        .map(|(input, params)| input.iter().map(|&x| params.quantize(x)).collect())
        .collect();
    let inputs: Vec<&[u8]> = quantized.iter().map(Vec::as_slice).collect();
    cpu_ref::run_node_u8(layer, &inputs)
}

/// Per-layer SQNR of one image: (accumulated, local) in dB.
pub fn image_sqnr(float_model: &Model, quant_model: &QuantModel, image: &[f32]) -> Vec<(f64, f64)> {
    let float_outputs = cpu_ref::run_f32(float_model, image);
    let quant_outputs = cpu_ref::run_u8(quant_model, &quant_model.quantize_input(image));
    outputs_sqnr(quant_model, image, &float_outputs, &quant_outputs)
}

/// [`image_sqnr`] from outputs already computed: every layer's of the float model the scheme quantized
/// (`float_outputs`, `cpu_ref::run_f32`) and of the integer model (`quant_outputs`, `cpu_ref::run_u8`).
pub fn outputs_sqnr(
    quant_model: &QuantModel,
    image: &[f32],
    float_outputs: &[Vec<f32>],
    quant_outputs: &[Vec<u8>],
) -> Vec<(f64, f64)> {
    let mut result = Vec::with_capacity(float_outputs.len());
    for (i, layer) in quant_model.layers.iter().enumerate() {
        let float_inputs: Vec<&[f32]> = quant_model
            .inputs_of(i)
            .iter()
            .map(|&source| match source {
                Source::Image => image,
                Source::Layer(j) => &float_outputs[j],
            })
            .collect();
        let local_output = run_node_alone(layer, &float_inputs);
        let (signal, noise) = powers(&float_outputs[i], &quant_outputs[i], layer.output);
        let (local_signal, local_noise) = powers(&float_outputs[i], &local_output, layer.output);
        result.push((sqnr_db(signal, noise), sqnr_db(local_signal, local_noise)));
    }
    result
}

/// Per-layer SQNR averaged over `images` (in parallel), as the study reports it.
pub fn model_sqnr(float_model: &Model, quant_model: &QuantModel, images: &[Vec<f32>]) -> Vec<LayerSqnr> {
    let per_image: Vec<Vec<(f64, f64)>> = crate::par::map(images, |image| image_sqnr(float_model, quant_model, image));
    let n = per_image.len().max(1) as f64;
    quant_model
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| LayerSqnr {
            layer: layer.name.clone(),
            accumulated_db: per_image.iter().map(|img| img[i].0).sum::<f64>() / n,
            local_db: per_image.iter().map(|img| img[i].1).sum::<f64>() / n,
        })
        .collect()
}
