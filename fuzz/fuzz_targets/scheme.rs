//! `--scheme` and `--requant` names: any string parses to a scheme or an `Error`, and a scheme keeps its name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mnq_gpu::quant::scheme::{Scheme, WEIGHT_BITS};
use mnq_gpu::quant::Requant;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else { return };
    if let Ok(scheme) = name.parse::<Scheme>() {
        assert_eq!(scheme.name, name);
        assert!(WEIGHT_BITS.contains(&scheme.weight_bits));
    }
    if let Ok(mode) = name.parse::<Requant>() {
        assert_eq!(mode.to_string(), name);
    }
});
