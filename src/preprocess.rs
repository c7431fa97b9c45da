//! Image decoding and TF-slim evaluation preprocessing (`inception_preprocessing.preprocess_for_eval`):
//!
//! 1. decode JPEG or PNG; greyscale is replicated to RGB, alpha is dropped, CMYK JPEGs are converted to RGB,
//!    16-bit channels keep their precision (values are taken as floats in [0, 1]);
//! 2. central crop to 87.5 % of height and width (`tf.image.central_crop`: the start offset is truncated);
//! 3. bilinear resize to the model's input size (`tf.image.resize_bilinear`, align_corners = false, no half-pixel
//!    centres, as TF 1 did);
//! 4. scale to the model's [`InputRange`]: x/127.5 − 1 ∈ [−1, 1] for 8-bit values (TF-slim), or a quantized
//!    model's own input quantization applied to the pixel values (TFLite).
//!
//! The result is a float image [h, w, 3], NHWC.

use crate::error::{Error, Result};
use crate::model::{InputRange, Model, Shape};
use image::ImageDecoder;
use std::path::Path;

pub const CENTRAL_FRACTION: f64 = 0.875;

/// The most pixels an image may have (4096 × 4096, a 16-megapixel photo): a header can claim 65,535 × 65,535 in a
/// few bytes, and decoding then takes seconds and the float image gigabytes (12 bytes a pixel).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 24;

/// Decode `path` and preprocess it for a model with input `input` ([h, w, 3]), scaled to [−1, 1].
pub fn load_image(path: &Path, input: Shape) -> Result<Vec<f32>> {
    load_image_as(path, input, InputRange::SignedUnit)
}

/// Decode `path` and preprocess it as `model`'s input.
pub fn load_model_input(path: &Path, model: &Model) -> Result<Vec<f32>> {
    load_image_as(path, model.input_shape, model.input_range)
}

/// Decode `path` and preprocess it to `input` ([h, w, 3]) in `range`.
pub fn load_image_as(path: &Path, input: Shape, range: InputRange) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Image { path: path.to_path_buf(), reason: e.to_string() })?;
    decode_image(&bytes, path, input, range)
}

/// Decode the image file `bytes` (named `path` in errors) and preprocess it to `input` in `range`.
pub fn decode_image(bytes: &[u8], path: &Path, input: Shape, range: InputRange) -> Result<Vec<f32>> {
    let bad = |reason: String| Error::Image { path: path.to_path_buf(), reason };
    let reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| bad(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(bad("truncated JPEG (no end-of-image marker after the scan data)".into()))
        }
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png) => {}
        _ => return Err(bad("not a JPEG or PNG file".into())),
    }
    let decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(bad(format!(
            "{width} × {height} is more than {MAX_IMAGE_PIXELS} pixels (4096 × 4096); scale it down first"
        )));
    }
    let decoded = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    let rgb = decoded.to_rgb32f();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    if width == 0 || height == 0 {
        return Err(bad("image has no pixels".into()));
    }
    Ok(preprocess_rgb_as(rgb.as_raw(), height, width, input, range))
}

/// The JPEG decoder fills a truncated scan with grey rather than failing; a complete file has an end-of-image
/// marker (FF D9) after its last start-of-scan (FF DA). Scan data cannot contain it: FF is stuffed as FF 00.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_marker = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last_marker(0xDA), last_marker(0xD9)), (Some(scan), Some(end)) if end > scan)
}

/// Steps 2-4 on RGB floats in [0, 1], [height, width, 3], scaled to [−1, 1].
pub fn preprocess_rgb(rgb: &[f32], height: usize, width: usize, input: Shape) -> Vec<f32> {
    preprocess_rgb_as(rgb, height, width, input, InputRange::SignedUnit)
}

/// Steps 2-4 on RGB floats in [0, 1], [height, width, 3], scaled to `range`.
pub fn preprocess_rgb_as(rgb: &[f32], height: usize, width: usize, input: Shape, range: InputRange) -> Vec<f32> {
    let (top, crop_h) = central_crop(height);
    let (left, crop_w) = central_crop(width);
    let rows = resize_coordinates(crop_h, input.h);
    let cols = resize_coordinates(crop_w, input.w);
    let pixel = |y: usize, x: usize, c: usize| rgb[((top + y) * width + left + x) * 3 + c];
    let mut output = Vec::with_capacity(input.h * input.w * 3);
    for &(y0, y1, fy) in &rows {
        for &(x0, x1, fx) in &cols {
            for c in 0..3 {
                let upper = pixel(y0, x0, c) + (pixel(y0, x1, c) - pixel(y0, x0, c)) * fx;
                let lower = pixel(y1, x0, c) + (pixel(y1, x1, c) - pixel(y1, x0, c)) * fx;
                let value = upper + (lower - upper) * fy;
                output.push(range.apply(value));
            }
        }
    }
    output
}

/// `tf.image.central_crop` along one axis: (start, size).
fn central_crop(size: usize) -> (usize, usize) {
    let start = ((size as f64 - size as f64 * CENTRAL_FRACTION) / 2.0) as usize;
    (start, size - 2 * start)
}

/// TF 1 `resize_bilinear` (align_corners = false, half_pixel_centers = false) source coordinates for each
/// output index: (lower index, upper index, fraction).
fn resize_coordinates(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let source = i as f32 * scale;
            let lower = (source.floor() as usize).min(input - 1);
            let upper = (lower + 1).min(input - 1);
            (lower, upper, source - lower as f32)
        })
        .collect()
}
