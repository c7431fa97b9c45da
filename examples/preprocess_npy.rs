//! Preprocess a list of images as mnq-gpu does (central crop 87.5 %, bilinear resize, p/127.5 − 1) and write them
//! as one float32 NumPy array [n, 3, size, size] (NCHW): the calibration data that scripts/ort_quantize.py gives
//! ONNX Runtime's `quantize_static`, so that it sees exactly the inputs mnq-gpu's schemes calibrate on.
//!
//!   cargo run --release --example preprocess_npy -- LIST SIZE OUT.npy

use mnq_gpu::model::Shape;
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [list, size, output] = args.as_slice() else {
        anyhow::bail!("usage: preprocess_npy LIST SIZE OUT.npy");
    };
    let size: usize = size.parse()?;
    let images = mnq_gpu::labels::read_list(std::path::Path::new(list), 1000)?;
    let shape = Shape::new(size, size, 3);
    let mut data = Vec::with_capacity(images.len() * shape.len() * 4);
    for image in &images {
        let hwc = mnq_gpu::preprocess::load_image(&image.path, shape)?;
        for c in 0..3 {
            for pixel in hwc.chunks_exact(3) {
                data.extend_from_slice(&pixel[c].to_le_bytes());
            }
        }
    }
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 3, {size}, {size}), }}", images.len());
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut file = std::io::BufWriter::new(std::fs::File::create(output)?);
    file.write_all(b"\x93NUMPY\x01\x00")?;
    file.write_all(&(header.len() as u16).to_le_bytes())?;
    file.write_all(header.as_bytes())?;
    file.write_all(&data)?;
    file.flush()?;
    eprintln!("wrote {output}: {} images, [n, 3, {size}, {size}] float32", images.len());
    Ok(())
}
