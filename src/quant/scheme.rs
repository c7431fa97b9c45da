//! Quantization schemes, selectable by name (`--scheme`): the study's TF8 baseline, its Option 1 (zero-variance
//! channels), and today's fixes (per-channel weights, cross-layer equalization, bias correction, clipped
//! activation ranges), plus the study's architecture changes applied without retraining.
//!
//! A name is a preset followed by `+modifier`s, e.g. `cle-bc+mse`:
//!
//! | preset | what it is |
//! |---|---|
//! | `tf8` | per-tensor asymmetric uint8, min/max ranges (the study's baseline) |
//! | `tf8-zero-var` | `tf8` after zeroing the folded weights of zero-variance BatchNorm channels |
//! | `per-channel` | `tf8-zero-var` with one weight scale and zero point per output channel |
//! | `cle` | `tf8-zero-var` after cross-layer equalization (ReLU6 → ReLU, see [`super::transform::equalize`]) |
//! | `cle-bc` | `cle` with bias correction of the expected weight-quantization error |
//!
//! | modifier | what it changes |
//! |---|---|
//! | `+mse` | activation ranges clipped to minimise the expected squared error instead of min/max |
//! | `+zero-var` | zero-variance fix (already part of every preset but `tf8`) |
//! | `+per-channel` | per-channel weights |
//! | `+sym` | symmetric weights, TFLite's int8 convention: round(w/s) ∈ [−127, 127] with s = max\|w\|/127 (per channel or per tensor), stored + 128 with zero point 128; multipliers in double as TFLite's int8 kernels derive them. Exports as an int8 TFLite file (`per-channel+sym` too) |
//! | `+relu` | architecture: ReLU6 → ReLU everywhere (the study retrained for this; we do not) |
//! | `+dw-linear` | architecture: no activation after depthwise layers, their BatchNorm folded forward into the pointwise layer (the study retrained; we do not); with `+relu`, in either order, both: the study's quantization-friendly block |
//! | `+w4` (`+w2` … `+w8`) | weights in b bits, activations still 8: asymmetric codes [0, 2^b − 1] with scale range/(2^b − 1) and the zero point nudged into them, or with `+sym` round(w/s) ∈ ±(2^(b−1) − 1), s = max\|w\|/(2^(b−1) − 1), stored + 128; `+w8` is the default |
//! | `+w8@conv1@conv_pw_13` | `+wB@LAYER@LAYER…`: those layers' weights in B bits, the others as `+wB` says: a per-layer assignment, e.g. `tf8-zero-var+w4+w8@conv1@conv_preds` |
//!
//! Modifiers apply left to right; a later `+wB` replaces the default width, a later `+wB@layer` that layer's.

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The presets, in the order reports list them.
pub const PRESETS: [&str; 5] = ["tf8", "tf8-zero-var", "per-channel", "cle", "cle-bc"];

/// The weight widths `+wB` accepts: 2 bits is the fewest a symmetric code (±1) can take.
pub const WEIGHT_BITS: std::ops::RangeInclusive<u8> = 2..=8;

const MODIFIERS: &str = "+mse, +zero-var, +per-channel, +sym, +relu, +dw-linear, +w2 … +w8, +wB@LAYER@LAYER…";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RangeMethod {
    /// min/max over the calibration images (the study).
    MinMax,
    /// The clipping range that minimises the expected squared quantization error on the calibration histogram.
    Mse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    Original,
    /// ReLU6 → ReLU everywhere.
    Relu,
    /// Depthwise layers without activation; their BatchNorm folded forward into the pointwise layer.
    DwLinear,
    /// Both: the study's quantization-friendly block (`+dw-linear+relu`, in either order).
    DwLinearRelu,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Scheme {
    /// The name it was parsed from, e.g. `cle-bc+mse`.
    pub name: String,
    pub zero_variance_fix: bool,
    pub per_channel: bool,
    /// Symmetric weights (TFLite's int8 convention), see `+sym`.
    pub symmetric: bool,
    pub equalize: bool,
    pub bias_correction: bool,
    pub ranges: RangeMethod,
    pub architecture: Architecture,
    /// Bits of every weight tensor not in `layer_weight_bits` (`+wB`; 8 by default).
    pub weight_bits: u8,
    /// Per-layer exceptions (`+wB@layer`), by layer name.
    pub layer_weight_bits: BTreeMap<String, u8>,
}

impl Scheme {
    pub fn tf8() -> Scheme {
        "tf8".parse().expect("a preset")
    }

    /// The bits of `layer`'s weights.
    pub fn weight_bits_of(&self, layer: &str) -> u8 {
        self.layer_weight_bits.get(layer).copied().unwrap_or(self.weight_bits)
    }

    /// Whether any `+wB` modifier is present, i.e. some weights may have fewer than 8 bits.
    pub fn has_weight_bits(&self) -> bool {
        self.weight_bits != 8 || !self.layer_weight_bits.is_empty()
    }
}

/// `wB` or `wB@layer@layer…` (the modifier without its `+`): (B, the layers), or None when it is no `w` modifier.
fn parse_weight_bits(modifier: &str) -> Option<Result<(u8, Vec<String>)>> {
    let rest = modifier.strip_prefix('w')?;
    let mut parts = rest.split('@');
    let bits = parts.next().unwrap_or_default();
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits = match bits.parse::<u8>() {
        Ok(b) if WEIGHT_BITS.contains(&b) => b,
        _ => {
            return Some(Err(Error::Invalid(format!(
                "`+{modifier}`: weights take {} to {} bits",
                WEIGHT_BITS.start(),
                WEIGHT_BITS.end()
            ))))
        }
    };
    let layers: Vec<String> = parts.map(str::to_string).collect();
    if layers.iter().any(String::is_empty) {
        return Some(Err(Error::Invalid(format!(
            "`+{modifier}`: an empty layer name; write +w{bits}@conv1@conv_pw_13"
        ))));
    }
    Some(Ok((bits, layers)))
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for Scheme {
    type Err = Error;

    fn from_str(name: &str) -> Result<Scheme> {
        let mut parts = name.split('+');
        let preset = parts.next().unwrap_or_default();
        let mut scheme = Scheme {
            name: name.to_string(),
            zero_variance_fix: preset != "tf8",
            per_channel: preset == "per-channel",
            symmetric: false,
            equalize: preset.starts_with("cle"),
            bias_correction: preset == "cle-bc",
            ranges: RangeMethod::MinMax,
            architecture: Architecture::Original,
            weight_bits: 8,
            layer_weight_bits: BTreeMap::new(),
        };
        if !PRESETS.contains(&preset) {
            return Err(Error::Invalid(format!("unknown scheme `{preset}`; presets: {}", PRESETS.join(", "))));
        }
        for modifier in parts {
            if let Some(weight_bits) = parse_weight_bits(modifier) {
                let (bits, layers) = weight_bits?;
                if layers.is_empty() {
                    scheme.weight_bits = bits;
                }
                scheme.layer_weight_bits.extend(layers.into_iter().map(|layer| (layer, bits)));
                continue;
            }
            match modifier {
                "mse" => scheme.ranges = RangeMethod::Mse,
                "zero-var" => scheme.zero_variance_fix = true,
                "per-channel" => scheme.per_channel = true,
                "sym" => scheme.symmetric = true,
                "relu" | "dw-linear" => {
                    let (relu, dw_linear) = match scheme.architecture {
                        Architecture::Original => (false, false),
                        Architecture::Relu => (true, false),
                        Architecture::DwLinear => (false, true),
                        Architecture::DwLinearRelu => (true, true),
                    };
                    scheme.architecture = match (relu || modifier == "relu", dw_linear || modifier == "dw-linear") {
                        (false, false) => Architecture::Original,
                        (true, false) => Architecture::Relu,
                        (false, true) => Architecture::DwLinear,
                        (true, true) => Architecture::DwLinearRelu,
                    };
                }
                other => {
                    return Err(Error::Invalid(format!("unknown scheme modifier `+{other}`; modifiers: {MODIFIERS}")))
                }
            }
        }
        if scheme.equalize && matches!(scheme.architecture, Architecture::DwLinear | Architecture::DwLinearRelu) {
            return Err(Error::Invalid(
                "`cle` equalizes through the depthwise activations `+dw-linear` removes; pick one".into(),
            ));
        }
        Ok(scheme)
    }
}
