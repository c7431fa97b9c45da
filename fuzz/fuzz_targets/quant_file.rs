//! The quantized-model file: any bytes load to a valid model or an `Error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(loaded) = mnq_gpu::quant::file::from_bytes(data, Path::new("fuzz.safetensors")) {
        loaded.model.validate().expect("a loaded model is valid");
    }
});
