//! `mnq-gpu serve`: what the browser page loads, with the right types, and nothing outside the served folders.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `mnq-gpu serve --port 0`, killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(dist: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mnq-gpu"))
            .args(["serve", "--port", "0", "--dist", dist.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        // "serving http://127.0.0.1:PORT/ (Ctrl-C stops)"
        let address = line
            .strip_prefix("serving http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server { child, address }
    }

    /// (status, content type, body) of `GET path`, the path sent exactly as given. HTTP/1.0, so that the body comes
    /// whole, never chunked.
    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.address).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a header");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string))
            .unwrap_or_default();
        (status, content_type, response[split + 4..].to_vec())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in for web/dist: an index.html and a .wasm file.
fn fake_dist(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mnq-serve-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>page</title>").unwrap();
    std::fs::write(dir.join("mnq_web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    dir
}

#[test]
fn serve_without_a_built_page_names_the_build_script() {
    let empty = std::env::temp_dir().join(format!("mnq-serve-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mnq-gpu"))
        .args(["serve", "--port", "0", "--dist", empty.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("scripts/build-web.sh") && message.contains("no built page"), "{message}");
}

#[test]
fn serve_offers_the_page_the_built_in_model_and_photo_with_their_types() {
    let server = Server::start(&fake_dist("types"), &[]);
    let (status, kind, body) = server.get("/");
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.starts_with(b"<!doctype html>"));
    let (status, kind, body) = server.get("/mnq_web_bg.wasm");
    assert_eq!((status, kind.as_str(), &body[..4]), (200, "application/wasm", &b"\0asm"[..]));

    let (status, kind, body) = server.get("/api/index.json");
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let built_in = &index["models"][0];
    assert_eq!((built_in["id"].as_str(), built_in["kind"].as_str()), (Some("built-in"), Some("tflite")));

    let (status, _, model) = server.get(built_in["url"].as_str().unwrap());
    assert_eq!(status, 200);
    assert!(model == std::fs::read("assets/mobilenet_v1_1.0_224_quant.tflite").unwrap(), "{} bytes", model.len());
    let (status, kind, photo) = server.get(index["example_image"].as_str().unwrap());
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"));
    assert!(photo == std::fs::read("assets/grace_hopper.jpg").unwrap(), "{} bytes", photo.len());
}

#[test]
fn serve_offers_the_shared_models_and_calibration_images_in_list_order() {
    if !common::data_or_skip(&["../shared/models", "../shared/imagenet/val1300"]) {
        return;
    }
    let shared = Path::new("../shared");
    let server = Server::start(&fake_dist("shared"), &[]);
    let index: serde_json::Value = serde_json::from_slice(&server.get("/api/index.json").2).unwrap();
    let models = index["models"].as_array().unwrap();
    let find = |id: &str| models.iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no {id} in {models:?}"));
    assert_eq!(find("mobilenet_v1_0.75_224")["kind"], "tfjs");
    let tflite = find("tflite/mobilenet_v1_0.5_160_quant.tflite");
    let (status, _, bytes) = server.get(tflite["url"].as_str().unwrap());
    assert_eq!(status, 200);
    let file = std::fs::read(shared.join("models/tflite/mobilenet_v1_0.5_160_quant.tflite")).unwrap();
    assert!(bytes == file, "{} bytes served, {} in the file", bytes.len(), file.len());

    let list = std::fs::read_to_string(shared.join("imagenet/val1300/calibration.txt")).unwrap();
    let lines: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(index["calibration_images"], lines.len());
    for (i, line) in lines.iter().enumerate().take(3) {
        let file = shared.join("imagenet/val1300/images").join(line.split_whitespace().next().unwrap());
        let (status, kind, bytes) = server.get(&format!("/calibration/{i}"));
        assert_eq!((status, kind.as_str()), (200, "image/jpeg"), "/calibration/{i}");
        assert!(bytes == std::fs::read(&file).unwrap(), "/calibration/{i} is not {}", file.display());
    }
    assert_eq!(server.get(&format!("/calibration/{}", lines.len())).0, 404);
}

#[test]
fn serve_offers_tflite_and_onnx_files_and_tfjs_folders_at_most_one_folder_down() {
    let root = fake_dist("kinds");
    let models = root.join("models");
    for folder in ["onnx", "tfjs/model", "a/b"] {
        std::fs::create_dir_all(models.join(folder)).unwrap();
    }
    let onnx = std::fs::read("fuzz/seeds/onnx/qdq_8x8.onnx").unwrap();
    std::fs::write(models.join("onnx/qdq.onnx"), &onnx).unwrap();
    std::fs::copy("tests/data/mobilenet_v1_0.25_128_quant.tflite", models.join("small.tflite")).unwrap();
    std::fs::write(models.join("tfjs/model/model.json"), "{}").unwrap();
    std::fs::write(models.join("a/b/deep.onnx"), &onnx).unwrap();
    std::fs::write(models.join("notes.txt"), "not a model").unwrap();
    let server = Server::start(&root, &["--models", models.to_str().unwrap()]);
    let index: serde_json::Value = serde_json::from_slice(&server.get("/api/index.json").2).unwrap();
    let listed: Vec<(&str, &str, &str)> = index["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["kind"].as_str().unwrap(), m["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("built-in", "tflite", "mobilenet_v1_1.0_224_quant"),
            ("small.tflite", "tflite", "small"),
            ("onnx/qdq.onnx", "onnx", "qdq"),
            ("tfjs/model", "tfjs", "model"),
        ]
    );
    let (status, kind, bytes) = server.get("/models/onnx/qdq.onnx");
    assert_eq!((status, kind.as_str()), (200, "application/octet-stream"));
    assert!(bytes == onnx, "{} bytes served, {} in the file", bytes.len(), onnx.len());
}

#[test]
fn serve_refuses_paths_that_leave_its_folders() {
    // A model folder and a calibration list of its own, so that every route serves a folder with or without
    // ../shared (without one, /models/ and /imagenet/ answer 404 before looking at the path).
    let root = fake_dist("traversal");
    let (models, images) = (root.join("models"), root.join("calibration/images"));
    std::fs::create_dir_all(&models).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy("tests/data/grey.jpg", images.join("grey.jpg")).unwrap();
    let list = root.join("calibration/calibration.txt");
    std::fs::write(&list, "grey.jpg 0\n").unwrap();
    let server = Server::start(&root, &["--models", models.to_str().unwrap(), "--calibration", list.to_str().unwrap()]);
    for path in [
        "/../Cargo.toml",
        "/models/../../Cargo.toml",
        "/models/%2e%2e/%2e%2e/Cargo.toml",
        "/models/..%2f..%2fCargo.toml",
        "/imagenet/..%5c..%5cCargo.toml",
        "/models//etc/passwd",
        "/%ZZ",
    ] {
        let (status, _, body) = server.get(path);
        assert_eq!(status, 400, "{path}: {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(server.get("/no-such-file.js").0, 404);
    assert_eq!(server.get("/builtin/other.tflite").0, 404);
}
