//! The one comparison routine: a result's bytes against the CPU integer reference's, layer by layer. The CLI's
//! `--check`, the tests and the benchmarks all use it.

use crate::cpu_ref;
use crate::model::Shape;
use crate::quant::QuantModel;
use serde::Serialize;

/// How one output differs from what it should be: how many bytes, and the first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The layer (or whatever was compared).
    pub layer: String,
    pub differing_bytes: usize,
    pub total_bytes: usize,
    /// (y, x, c) of the first difference.
    pub first_at: (usize, usize, usize),
    pub expected: u8,
    /// 0 where `got` is shorter than expected.
    pub got: u8,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, x, c) = self.first_at;
        write!(
            f,
            "{}: {} of {} bytes differ; first at (y={y}, x={x}, c={c}): expected {}, got {}",
            self.layer, self.differing_bytes, self.total_bytes, self.expected, self.got
        )
    }
}

/// `got` against `expected`, both NHWC u8 of `shape`: None where they are equal (same length, same bytes). A
/// length difference counts as that many differing bytes.
pub fn compare(what: &str, shape: Shape, expected: &[u8], got: &[u8]) -> Option<Mismatch> {
    let mut differing = (0..expected.len()).filter(|&i| got.get(i) != Some(&expected[i]));
    let first = differing.next();
    let count = first.map_or(0, |_| 1 + differing.count());
    let differing_bytes = count.max(expected.len().abs_diff(got.len()));
    if differing_bytes == 0 {
        return None;
    }
    let first = first.unwrap_or(expected.len().min(got.len()));
    Some(Mismatch {
        layer: what.to_string(),
        differing_bytes,
        total_bytes: expected.len(),
        first_at: shape.coordinate(first),
        expected: expected.get(first).copied().unwrap_or(0),
        got: got.get(first).copied().unwrap_or(0),
    })
}

/// What [`check_layers`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Bytes of the reference's outputs compared.
    pub compared_bytes: usize,
    /// The layers that differ (empty: bit-exact).
    pub mismatches: Vec<Mismatch>,
}

impl Check {
    pub fn differing_bytes(&self) -> usize {
        self.mismatches.iter().map(|m| m.differing_bytes).sum()
    }

    pub fn is_exact(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Every layer's output of one image (`outputs`, as a run with every layer read back gives them) against the
/// CPU integer reference's for the same quantized `input`.
pub fn check_layers(model: &QuantModel, input: &[u8], outputs: &[Vec<u8>]) -> Check {
    let expected = cpu_ref::run_u8(model, input);
    let mut check = Check::default();
    for (i, (layer, want)) in model.layers.iter().zip(&expected).enumerate() {
        check.compared_bytes += want.len();
        let got = outputs.get(i).map_or(&[][..], Vec::as_slice);
        check.mismatches.extend(compare(&layer.name, layer.output_shape, want, got));
    }
    check
}
