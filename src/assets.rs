//! Files built into the binary so that it works with no downloads: a small model and an example image.
//! Sources and licences: `assets/README.md`.

/// Google's QAT uint8 MobileNetV1 1.0 × 224, TFLite flatbuffer, 4,282,256 bytes (Apache-2.0,
/// `assets/LICENSE-mobilenet.txt`). It calls [`EXAMPLE_IMAGE`] "military uniform", as TensorFlow's `label_image`.
pub const EMBEDDED_MODEL: &[u8] = include_bytes!("../assets/mobilenet_v1_1.0_224_quant.tflite");
/// The name `mnq-gpu download` knows [`EMBEDDED_MODEL`]'s architecture and weights by.
pub const EMBEDDED_MODEL_NAME: &str = "mobilenet_v1_1.0_224_quant";

/// TensorFlow's `label_image` test photo of Grace Hopper, 517×606 JPEG (public domain).
pub const EXAMPLE_IMAGE: &[u8] = include_bytes!("../assets/grace_hopper.jpg");
/// The file name of [`EXAMPLE_IMAGE`].
pub const EXAMPLE_IMAGE_NAME: &str = "grace_hopper.jpg";
