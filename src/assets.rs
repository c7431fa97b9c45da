//! Files built into the binary so that it works with no downloads: a small model and an example image.
//! Sources and licences: `assets/README.md`.

/// Google's QAT uint8 MobileNetV1 0.25 × 128, TFLite flatbuffer (Apache-2.0, `assets/LICENSE-mobilenet.txt`).
pub const EMBEDDED_MODEL: &[u8] = include_bytes!("../assets/mobilenet_v1_0.25_128_quant.tflite");
/// The name `mnq-gpu download` knows [`EMBEDDED_MODEL`] by.
pub const EMBEDDED_MODEL_NAME: &str = "mobilenet_v1_0.25_128_quant";

/// TensorFlow's `label_image` test photo of Grace Hopper, 517×606 JPEG (public domain).
pub const EXAMPLE_IMAGE: &[u8] = include_bytes!("../assets/grace_hopper.jpg");
/// The file name of [`EXAMPLE_IMAGE`].
pub const EXAMPLE_IMAGE_NAME: &str = "grace_hopper.jpg";
