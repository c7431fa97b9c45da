//! The ONNX importer: any bytes import to a model whose quantized form passes its own validation, or an `Error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(imported) = mnq_gpu::onnx::import::from_bytes(data, "fuzz", Path::new("fuzz.onnx")) {
        if let Some(model) = imported.model {
            model.validate().expect("an imported model is valid");
        }
    }
});
