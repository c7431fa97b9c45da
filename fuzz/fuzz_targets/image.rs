//! Image decoding and preprocessing: any bytes give a preprocessed [h, w, 3] input of finite values or an `Error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mnq_gpu::model::{InputRange, Shape};
use mnq_gpu::preprocess::decode_image;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let input = Shape::new(16, 16, 3);
    let range = InputRange::Pixels { scale: 1.0 / 128.0, zero_point: 128 };
    if let Ok(pixels) = decode_image(data, Path::new("fuzz.jpg"), input, range) {
        assert_eq!(pixels.len(), 16 * 16 * 3);
        assert!(pixels.iter().all(|v| v.is_finite()));
    }
});
