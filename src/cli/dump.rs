//! `run --dump DIR`: every int8 pipeline's uint8 input and every layer's output as `.npy` files, with a
//! `manifest.json` that says which layer is which (and, for a TFLite file's own quantization, which of the file's
//! or ONNX tensors each layer computes), so another runtime can be compared with mnq-gpu byte for byte
//! (`scripts/litert_crosscheck.py`).

use super::Quantized;
use anyhow::{Context, Result};
use mnq_gpu::model::Shape;
use mnq_gpu::quant::Requant;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
pub struct Manifest {
    pub model: String,
    /// The TFLite file the model came from; null for other models.
    pub tflite: Option<PathBuf>,
    /// The file's integer type ("uint8" or "int8"); the dumped bytes are the engine's u8 (int8 values + 128).
    pub tflite_type: Option<mnq_gpu::tflite::ElementType>,
    /// The ONNX file the model came from; null for other models.
    pub onnx: Option<PathBuf>,
    /// A quantized ONNX file's input type (its first QuantizeLinear's); every dumped byte is the engine's u8, the
    /// int8 value + 128 for an int8 tensor.
    pub onnx_input_type: Option<mnq_gpu::tflite::ElementType>,
    pub runs: Vec<Run>,
}

#[derive(Serialize)]
pub struct Run {
    pub image: PathBuf,
    pub scheme: String,
    /// The output stage's rounding (`--requant`).
    pub requant: Requant,
    pub device: String,
    /// The uint8 input, [1, h, w, 3].
    pub input: PathBuf,
    pub layers: Vec<DumpedLayer>,
}

#[derive(Serialize)]
pub struct DumpedLayer {
    pub name: String,
    /// The index of the TFLite tensor this layer computes, for a TFLite file's own quantization.
    pub tflite_tensor: Option<usize>,
    /// The name of the ONNX tensor this layer computes, for an ONNX file's own quantization.
    pub onnx_tensor: Option<String>,
    /// [1, h, w, c] uint8.
    pub file: PathBuf,
}

/// Write image `index`'s input and every layer's output of pipeline `q` under `dir`; returns the manifest entry.
pub fn write_run(
    dir: &Path,
    index: usize,
    image: &Path,
    q: &Quantized,
    device: &str,
    input: &[u8],
    layers: &[Vec<u8>],
) -> Result<Run> {
    let folder = PathBuf::from(index.to_string()).join(q.file_stem());
    std::fs::create_dir_all(dir.join(&folder)).with_context(|| format!("creating {}", dir.join(&folder).display()))?;
    let input_file = folder.join("input.npy");
    write_npy(&dir.join(&input_file), q.model.input_shape, input)?;
    let mut dumped = Vec::with_capacity(layers.len());
    for (i, (layer, bytes)) in q.model.layers.iter().zip(layers).enumerate() {
        let file = folder.join(format!("{i:02}_{}.npy", layer.name));
        write_npy(&dir.join(&file), layer.output_shape, bytes)?;
        let tflite_tensor = q.tflite_tensors.as_ref().map(|tensors| tensors[i]);
        let onnx_tensor = q.onnx_tensors.as_ref().map(|tensors| tensors[i].clone());
        dumped.push(DumpedLayer { name: layer.name.clone(), tflite_tensor, onnx_tensor, file });
    }
    Ok(Run {
        image: image.canonicalize().unwrap_or_else(|_| image.to_path_buf()),
        scheme: q.scheme_name(),
        requant: q.model.requant(),
        device: device.to_string(),
        input: input_file,
        layers: dumped,
    })
}

/// A NumPy `.npy` file (format 1.0) of uint8 values, shape [1, h, w, c].
fn write_npy(path: &Path, shape: Shape, data: &[u8]) -> Result<()> {
    anyhow::ensure!(data.len() == shape.len(), "{}: {} bytes for shape {shape:?}", path.display(), data.len());
    let mut header =
        format!("{{'descr': '|u1', 'fortran_order': False, 'shape': (1, {}, {}, {}), }}", shape.h, shape.w, shape.c);
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    file.write_all(b"\x93NUMPY\x01\x00")?;
    file.write_all(&(header.len() as u16).to_le_bytes())?;
    file.write_all(header.as_bytes())?;
    file.write_all(data)?;
    file.flush().with_context(|| format!("writing {}", path.display()))
}
