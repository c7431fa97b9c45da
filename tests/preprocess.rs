//! Decoding and preprocessing: odd but valid images work, broken files are clear errors.

use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
use mnq_gpu::model::Shape;
use mnq_gpu::preprocess::{load_image, preprocess_rgb};
use std::path::{Path, PathBuf};

const INPUT: Shape = Shape { h: 224, w: 224, c: 3 };

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mnq-pre-{}-{name}", std::process::id()))
}

fn assert_valid(image: &[f32]) {
    assert_eq!(image.len(), INPUT.len());
    assert!(image.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(image.iter().any(|&v| v != image[0]), "the test images are not constant");
}

#[test]
fn cmyk_and_greyscale_jpegs_decode() {
    assert_valid(&load_image(Path::new("tests/data/cmyk.jpg"), INPUT).unwrap());
    let grey = load_image(Path::new("tests/data/grey.jpg"), INPUT).unwrap();
    assert_valid(&grey);
    assert!(grey.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]), "grey is replicated to RGB");
}

#[test]
fn png_with_alpha_16_bit_and_grey_decode() {
    let (w, h) = (37u32, 23u32);
    let value = |x: u32, y: u32| ((x * 7 + y * 13) % 256) as u8;
    let rgba = ImageBuffer::from_fn(w, h, |x, y| Rgba([value(x, y), value(y, x), 9, 128]));
    let rgb16 = ImageBuffer::from_fn(w, h, |x, y| Rgb([u16::from(value(x, y)) * 257, 1000, 65535]));
    let grey_alpha = ImageBuffer::from_fn(w, h, |x, y| LumaA([value(x, y), 255]));
    let grey16 = ImageBuffer::from_fn(w, h, |x, y| Luma([u16::from(value(x, y)) * 256 + 3]));
    let paths = [temp("rgba.png"), temp("rgb16.png"), temp("ga.png"), temp("g16.png")];
    rgba.save(&paths[0]).unwrap();
    rgb16.save(&paths[1]).unwrap();
    grey_alpha.save(&paths[2]).unwrap();
    grey16.save(&paths[3]).unwrap();
    for path in &paths {
        assert_valid(&load_image(path, INPUT).unwrap());
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn corrupt_truncated_and_empty_files_are_errors() {
    let jpeg = std::fs::read("tests/data/cmyk.jpg").unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("text.jpg", b"this is not an image".to_vec()),
        ("truncated.jpg", jpeg[..jpeg.len() / 3].to_vec()),
        ("empty.png", Vec::new()),
        ("header-only.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xff\xff\xff\xff\xff\xff\xff".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = temp(name);
        std::fs::write(&path, &bytes).unwrap();
        let error = load_image(&path, INPUT).unwrap_err().to_string();
        assert!(error.starts_with("cannot read image"), "{name}: {error}");
        std::fs::remove_file(&path).unwrap();
    }
    let error = load_image(Path::new("/nonexistent.jpg"), INPUT).unwrap_err().to_string();
    assert!(error.contains("/nonexistent.jpg"), "{error}");
}

#[test]
fn preprocessing_scales_to_minus_one_one_and_crops_the_centre() {
    // 8×8 image: border 0.0, centre 1.0. The 87.5 % crop of 8 starts at int(0.5) = 0; of 16 at int(1) = 1.
    let mut rgb = vec![0.0f32; 16 * 16 * 3];
    for y in 1..15 {
        for x in 1..15 {
            rgb[(y * 16 + x) * 3..][..3].fill(1.0);
        }
    }
    let output = preprocess_rgb(&rgb, 16, 16, Shape::new(7, 7, 3));
    // The crop [1, 15) is all 1.0, so every output pixel is 1.0 · 2 − 1 = 1.
    assert!(output.iter().all(|&v| v == 1.0), "{output:?}");
    let uniform = preprocess_rgb(&vec![0.0; 5 * 9 * 3], 5, 9, INPUT);
    assert!(uniform.iter().all(|&v| v == -1.0));
}
