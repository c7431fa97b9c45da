//! The command line: clear messages and meaningful exit codes.

use std::process::{Command, Output};

fn mnq_gpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnq-gpu")).args(args).output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn run_on_a_bad_image_names_it_and_exits_1() {
    let path = std::env::temp_dir().join(format!("mnq-cli-{}.jpg", std::process::id()));
    std::fs::write(&path, b"not a jpeg").unwrap();
    let output = mnq_gpu(&["run", "--device", "cpu", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: cannot read image") && message.contains(path.to_str().unwrap()), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn a_bad_model_path_says_how_to_get_a_model() {
    let output = mnq_gpu(&["run", "--device", "cpu", "--model", "/nonexistent", "tests/data/grey.jpg"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("no MobileNetV1 model found at /nonexistent") && message.contains("hint:"), "{message}");
}

#[test]
fn the_incomplete_1_0_model_is_refused_for_inference() {
    let output = mnq_gpu(&["run", "--device", "cpu", "--model", "../shared/models/mobilenet_v1_1.0_224", "tests/data/grey.jpg"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("conv_pw_13/kernel"), "{}", stderr(&output));
}

#[test]
fn run_on_the_cpu_prints_float_and_int8_top5_as_json() {
    let image = "../shared/imagenet/val1300/images/ILSVRC2012_val_00000347.JPEG"; // a canoe, class 472
    let output = mnq_gpu(&["run", "--device", "cpu", "--json", image]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let float = &json[0]["float"];
    assert_eq!(float.as_array().unwrap().len(), 5);
    assert_eq!(float[0]["class"], 472);
    assert_eq!(float[0]["name"], "canoe");
    assert_eq!(json[0]["int8"].as_array().unwrap().len(), 5);
}
