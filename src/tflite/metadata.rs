//! The `mnq_gpu` entry of a TFLite file's metadata: what the flatbuffer cannot say about a model mnq-gpu
//! exported — its name, the scheme that quantized it, how decoded pixels become its float input, and whether
//! output 0 is a background class. [`super::export`] writes it as small JSON in a buffer of its own;
//! [`super::import`] reads it back when a file has it (other files get the defaults the importer derives).

use crate::model::InputRange;
use serde::{Deserialize, Serialize};

/// The name of the entry in `Model.metadata`.
pub const NAME: &str = "mnq_gpu";

/// The entry's JSON, e.g. `{"generator":"mnq-gpu 0.1.0","name":"mobilenet_v1_0.75_224","scheme":"tf8",
/// "input_range":"signed_unit","background_class":false}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The program that wrote the file, e.g. `mnq-gpu 0.1.0`.
    pub generator: String,
    /// The float model's name, e.g. `mobilenet_v1_0.75_224`.
    pub name: String,
    /// The quantization scheme, e.g. `tf8+mse` (`tflite` for a re-exported TFLite file).
    pub scheme: String,
    /// How decoded pixels become the float input, which the input tensor's quantization then maps to integers:
    /// TF.js-derived models take x/127.5 − 1 (`signed_unit`), not the raw pixels.
    pub input_range: InputRange,
    /// Output 0 is TF-slim's background class (Google's 1,001-class models).
    pub background_class: bool,
}

impl Metadata {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Metadata, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
