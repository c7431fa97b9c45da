//! The TFLite importer: any bytes import to a model that passes its own validation, or an `Error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(imported) = mnq_gpu::tflite::import::from_bytes(data, "fuzz", Path::new("fuzz.tflite")) {
        imported.model.validate().expect("an imported model is valid");
    }
});
