//! The command line: clear messages and meaningful exit codes.

mod common;

use std::process::{Command, Output};

/// What the tests that need `../shared` read: the default model (TF.js 0.75), the incomplete 1.0 model, and the
/// ImageNet validation images with their lists.
const MODEL_0_75: &str = "../shared/models/mobilenet_v1_0.75_224";
const MODEL_1_0: &str = "../shared/models/mobilenet_v1_1.0_224";
const VAL1300: &str = "../shared/imagenet/val1300";
const IMAGENETTE: &str = "../shared/imagenette/labels.txt";
/// A canoe, class 472.
const CANOE: &str = "../shared/imagenet/val1300/images/ILSVRC2012_val_00000347.JPEG";
/// Google's 0.25 × 128 QAT file, a small real model (tests/data/README.md).
const MODEL_0_25: &str = "tests/data/mobilenet_v1_0.25_128_quant.tflite";
const GRACE_HOPPER: &str = "assets/grace_hopper.jpg";
/// Google's MobileNetV2 1.0 × 224 QAT uint8 file (../shared only).
const V2_QAT: &str = "../shared/models/tflite/mobilenet_v2_1.0_224_quant.tflite";

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
    let output = mnq_gpu(&["run", "--device", "cpu", "--model", MODEL_0_25, path.to_str().unwrap()]);
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
    if !common::data_or_skip(&[MODEL_1_0]) {
        return;
    }
    let output = mnq_gpu(&["run", "--device", "cpu", "--model", MODEL_1_0, "tests/data/grey.jpg"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("conv_pw_13/kernel"), "{}", stderr(&output));
}

#[test]
fn run_on_the_cpu_prints_float_and_int8_top5_as_json() {
    if !common::data_or_skip(&[MODEL_0_75, VAL1300]) {
        return;
    }
    let output = mnq_gpu(&["run", "--device", "cpu", "--json", CANOE]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let float = &json[0]["float"];
    assert_eq!(float.as_array().unwrap().len(), 5);
    assert_eq!(float[0]["class"], 472);
    assert_eq!(float[0]["name"], "canoe");
    assert_eq!(json[0]["int8"][0]["top"].as_array().unwrap().len(), 5);
    assert_eq!(json[0]["int8"][0]["scheme"], "tf8");
}

#[test]
fn run_check_on_the_gpu_confirms_every_layer_of_a_real_image() {
    if common::gpu_or_skip().is_none() || !common::data_or_skip(&[MODEL_0_75, VAL1300]) {
        return;
    }
    let output = mnq_gpu(&["run", "--check", "--scheme", "tf8,per-channel,cle-bc+mse", "--json", CANOE]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for int8 in json[0]["int8"].as_array().unwrap() {
        assert_eq!(int8["device"], "gpu");
        assert_eq!(int8["mismatches"].as_array().map(Vec::len), Some(0), "{int8}");
    }
    assert_eq!(json[0]["int8"][1]["top"][0]["class"], 472);
}

/// Google's MobileNetV2 QAT file, a graph with residual ADDs: under every requantization mode every layer on the GPU
/// equals the CPU reference, and it sees what V1 sees in the photo.
#[test]
fn mobilenet_v2_runs_checked_on_the_gpu_under_every_mode() {
    if common::gpu_or_skip().is_none() || !common::data_or_skip(&[V2_QAT]) {
        return;
    }
    let args = ["run", "--model", V2_QAT, "--requant", "double,single,fp32", "--check", "--json", GRACE_HOPPER];
    let output = mnq_gpu(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs = json[0]["int8"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for int8 in runs {
        assert_eq!(int8["device"], "gpu");
        assert_eq!(int8["mismatches"].as_array().map(Vec::len), Some(0), "{int8}");
        assert_eq!(int8["top"][0]["name"], "military uniform", "{int8}");
    }
}

/// Every scheme under every requantization mode, each checked on the GPU; the modes round some bytes
/// differently, and a quantized file keeps its mode, which `export` refuses unless it is `double`.
#[test]
fn requant_modes_run_checked_and_are_recorded_in_the_model_file() {
    if common::gpu_or_skip().is_none() || !common::data_or_skip(&[MODEL_0_75, VAL1300]) {
        return;
    }
    let image = CANOE;
    let list = small_calibration_list("requant", 4);
    let output = mnq_gpu(&[
        "run",
        "--check",
        "--scheme",
        "tf8,per-channel",
        "--requant",
        "double,single,fp32",
        "--calibration",
        list.to_str().unwrap(),
        "--json",
        image,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let int8 = json[0]["int8"].as_array().unwrap();
    let runs: Vec<(String, String)> =
        int8.iter().map(|r| (r["scheme"].as_str().unwrap().into(), r["requant"].as_str().unwrap().into())).collect();
    assert_eq!(runs.len(), 6);
    assert_eq!(runs[1], ("tf8".to_string(), "single".to_string()));
    for run in int8 {
        assert_eq!(run["mismatches"].as_array().map(Vec::len), Some(0), "{run}");
    }

    let file = std::env::temp_dir().join(format!("mnq-cli-requant-{}.safetensors", std::process::id()));
    let file = file.to_str().unwrap();
    let calibration = ["--calibration", list.to_str().unwrap()];
    let output =
        mnq_gpu(&[&["quantize", "--scheme", "tf8", "--requant", "fp32", "-o", file][..], &calibration].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let output = mnq_gpu(&["run", "--quantized", file, "--device", "cpu", "--json", image]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["int8"][0]["requant"], "fp32", "the file keeps its mode");
    let tflite = format!("{file}.tflite");
    let output = mnq_gpu(&["export", "--quantized", file, "-o", &tflite]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("requantizes as `fp32`, which a TFLite file cannot record"),
        "{}",
        stderr(&output)
    );
    assert!(!std::path::Path::new(&tflite).exists());
    std::fs::remove_file(file).unwrap();

    let output = mnq_gpu(&["eval", "--requant", "half-even"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("modes: double, single, fp32"), "{}", stderr(&output));
}

#[test]
fn an_unknown_scheme_is_a_usage_error() {
    let output = mnq_gpu(&["eval", "--scheme", "tf9"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown scheme `tf9`"), "{}", stderr(&output));
}

#[test]
fn quantize_writes_a_model_that_run_and_eval_read() {
    if !common::data_or_skip(&[MODEL_0_75, VAL1300]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mnq-cli-quantize-{}", std::process::id()));
    let output = mnq_gpu(&["quantize", "--scheme", "tf8-zero-var,cle-bc+mse", "-o", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let files: Vec<String> = ["tf8-zero-var", "cle-bc_mse"]
        .iter()
        .map(|s| dir.join(format!("mobilenet_v1_0.75_224_{s}.safetensors")).to_str().unwrap().to_string())
        .collect();
    let output = mnq_gpu(&["eval", "--device", "cpu", "--limit", "4", "--csv", "--quantized", &files.join(",")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let csv = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[1].starts_with("tf8-zero-var,double,cpu,") && rows[2].starts_with("cle-bc+mse,double,cpu,"), "{csv}");

    // One bit flipped in a weight (the data section ends with tensors) is a damaged file, not another model.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let at = bytes.len() - 1000;
    bytes[at] ^= 0x10;
    std::fs::write(&files[0], bytes).unwrap();
    let output = mnq_gpu(&["run", "--device", "cpu", "--quantized", &files[0], GRACE_HOPPER]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("the file is damaged: its SHA-256 is"), "{}", stderr(&output));
}

#[test]
fn bench_labels_synthetic_weights_and_checks_before_timing() {
    if common::gpu_or_skip().is_none() {
        return;
    }
    let output = mnq_gpu(&["bench", "--arch", "0.25x64", "--batch", "2", "--iterations", "1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("SYNTHETIC") && stderr(&output).contains("All results match"),
        "{}",
        stderr(&output)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["synthetic"], true);
    assert_eq!(json["batches"].as_array().unwrap().len(), 2);
    assert!(json["cpu_ref_ms_per_image"].as_f64().unwrap() > 0.0);
}

/// Pins the refusal a newcomer met: `bench --batch 1` said "2..=256", though batch-1 latency is the first figure
/// a user asks for.
#[test]
fn bench_at_batch_1_measures_batch_1_alone() {
    if common::gpu_or_skip().is_none() {
        return;
    }
    let output = mnq_gpu(&["bench", "--arch", "0.25x64", "--batch", "1", "--iterations", "1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let batches = json["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{json}");
    assert_eq!(batches[0]["batch"], 1);
    assert!(batches[0]["ms_per_image"].as_f64().unwrap() > 0.0);
}

#[test]
fn sqnr_writes_charts_for_each_scheme() {
    if !common::data_or_skip(&[MODEL_0_75, VAL1300]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mnq-cli-sqnr-{}", std::process::id()));
    let output =
        mnq_gpu(&["sqnr", "--images", "2", "--scheme", "tf8,per-channel", "--json", "--out", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let schemes = json["schemes"].as_array().unwrap();
    assert_eq!(schemes.len(), 2);
    // Per-channel weights fix the first depthwise layer, where TF8 loses its signal.
    let local = |s: usize| schemes[s]["layers"][1]["local_db"].as_f64().unwrap();
    assert!(local(1) > local(0) + 10.0, "conv_dw_1 local SQNR: tf8 {} dB, per-channel {} dB", local(0), local(1));
    for name in ["sqnr_accumulated.png", "sqnr_accumulated.svg", "sqnr_local.png", "sqnr_local.svg"] {
        assert!(std::fs::metadata(dir.join(name)).unwrap().len() > 1000, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The adapter named here does not exist, so the run passes only if --float-only never asks for a GPU.
#[test]
fn run_float_only_needs_no_gpu_and_no_quantization() {
    let args = ["run", "--float-only", "--adapter", "no-such-gpu-xyz", "--json", "--model", MODEL_0_25, GRACE_HOPPER];
    let output = mnq_gpu(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["float"].as_array().unwrap().len(), 5);
    assert_eq!(json[0]["float"][0]["name"], "academic gown");
    assert_eq!(json[0]["int8"].as_array().unwrap().len(), 0);
    // Options that only the int8 pipelines use are refused (clap's usage error, exit 2), not ignored.
    for int8_option in [&["--check"][..], &["--requant", "fp32"], &["--calibration", "tests/data/grey.jpg"]] {
        let refused = mnq_gpu(&[&["run", "--float-only", "--model", MODEL_0_25, GRACE_HOPPER], int8_option].concat());
        let message = stderr(&refused);
        assert!(
            refused.status.code() == Some(2) && message.contains("cannot be used with"),
            "{int8_option:?}: {message}"
        );
    }
}

#[test]
fn no_matching_adapter_is_a_clear_error_with_a_hint() {
    let output = mnq_gpu(&["run", "--adapter", "no-such-gpu-xyz", "tests/data/grey.jpg"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("no GPU adapter found") && message.contains("--device cpu"), "{message}");
}

/// Pins the driver noise a newcomer read as a failure: without XDG_RUNTIME_DIR, Mesa's Vulkan device-selection
/// layer printed `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` twice before our output.
#[test]
fn a_gpu_command_without_xdg_runtime_dir_prints_only_its_own_stderr() {
    if common::gpu_or_skip().is_none() {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_mnq-gpu"))
        .env_remove("XDG_RUNTIME_DIR")
        .args(["run", "--check", "--model", MODEL_0_25, GRACE_HOPPER])
        .output()
        .expect("the binary runs");
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.starts_with("GPU: ") && !message.contains("XDG_RUNTIME_DIR"), "{message}");
}

#[test]
fn a_device_lost_during_eval_is_a_clear_error_with_no_results_printed() {
    if common::gpu_or_skip().is_none() || !common::data_or_skip(&[VAL1300]) {
        return;
    }
    let model = MODEL_0_25;
    // Two chunks of images: the device is destroyed after the first ran.
    let output = mnq_gpu(&["eval", "--model", model, "--limit", "80", "--json", "--lose-device-after", "1"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("error: ") && message.contains("lost") && !message.contains("panicked"), "{message}");
    assert!(output.stdout.is_empty(), "partial results printed: {}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn report_writes_results_with_every_scheme_checked_and_its_charts() {
    if common::gpu_or_skip().is_none() || !common::data_or_skip(&[MODEL_0_75, MODEL_1_0, VAL1300, IMAGENETTE]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mnq-cli-report-{}", std::process::id()));
    let results = dir.join("RESULTS.md");
    let output = mnq_gpu(&["report", "--limit", "2", "--sqnr-images", "1", "--output", results.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let markdown = std::fs::read_to_string(&results).unwrap();
    for scheme in ["`tf8`", "`tf8-zero-var`", "`per-channel`", "`cle-bc`", "`cle-bc+mse`", "`tf8-zero-var+dw-linear`"] {
        let row =
            markdown.lines().find(|l| l.starts_with(&format!("| {scheme}"))).unwrap_or_else(|| panic!("{scheme}"));
        assert!(row.ends_with(" | 0 |"), "every layer checked, no byte differs: {row}");
    }
    assert!(markdown.contains("| conv_pw_13 | - | missing |"), "the 1.0 model's missing tensor");
    // The arithmetic sections (every mode and weight width) and the fine-tuning section (the models of
    // models/finetuned/): every layer checked, no byte differing.
    for row in [
        "| `tf8` | `double` |",
        "| `tf8` | `fp32` |",
        "| `cle-bc` | `single` |",
        "| `per-channel` | 4 |",
        "| `dw-linear+relu+l2` | `tf8` |",
        "| `dw-linear` | `per-channel` |",
        "| `qat-tf8.tflite` | `tflite` |",
    ] {
        let line = markdown.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("{row}"));
        assert!(line.ends_with(" / **0** |"), "every layer checked, no byte differs: {line}");
    }
    for chart in [
        "plots/sqnr_local.png",
        "plots/mobilenet_v1_1.0_224/conv_dw_1_folded.svg",
        "plots/sqnr_relu6_vs_relu.png",
        "plots/sqnr_weight_bits.png",
        "plots/sqnr_finetuned_relu6_vs_relu.png",
    ] {
        assert!(markdown.contains(chart.trim_end_matches(".svg")) && dir.join(chart).exists(), "{chart}");
    }
    // One section regenerated alone replaces itself and keeps the rest.
    let results_path = results.to_str().unwrap();
    let output =
        mnq_gpu(&["report", "--section", "requant", "--limit", "1", "--sqnr-images", "1", "--output", results_path]);
    assert!(output.status.success(), "{}", stderr(&output));
    let regenerated = std::fs::read_to_string(&results).unwrap();
    let (start, end) = ("<!-- section requant -->", "<!-- end requant -->");
    assert_eq!(regenerated.matches(start).count(), 1);
    let section = &regenerated[regenerated.find(start).unwrap()..regenerated.find(end).unwrap()];
    assert!(section.contains("over the 1 images of"), "regenerated with --limit 1");
    let before = |m: &str| m[..m.find(start).unwrap()].to_string();
    assert_eq!(before(&regenerated), before(&markdown), "what comes before is kept");
    assert!(regenerated.contains("<!-- section weight-bits -->"), "the other section is kept");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A small calibration list (absolute paths), to keep the CLI tests that calibrate fast.
fn small_calibration_list(name: &str, images: usize) -> std::path::PathBuf {
    let shared = std::path::Path::new(VAL1300).canonicalize().unwrap();
    let text = std::fs::read_to_string(shared.join("calibration.txt")).unwrap();
    let lines: Vec<String> = text.lines().take(images).map(|l| format!("{}/images/{l}", shared.display())).collect();
    let path = std::env::temp_dir().join(format!("mnq-cli-{name}-{}.txt", std::process::id()));
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn export_writes_a_tflite_file_that_run_checks_and_classifies_like_its_source() {
    if !common::data_or_skip(&[MODEL_0_75, VAL1300]) {
        return;
    }
    let list = small_calibration_list("export", 4);
    let file = std::env::temp_dir().join(format!("mnq-cli-export-{}.tflite", std::process::id()));
    let (list, file) = (list.to_str().unwrap(), file.to_str().unwrap());
    let output = mnq_gpu(&["export", "--scheme", "tf8", "--calibration", list, "-o", file]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("wrote {file} (29 layers as uint8, scheme tf8)")), "{}", stderr(&output));
    let image = CANOE;
    // The metadata gives the input range (x/127.5 − 1), so the file's int8 top-5 is the source model's.
    let source = mnq_gpu(&["run", "--device", "cpu", "--json", "--scheme", "tf8", "--calibration", list, image]);
    let exported = mnq_gpu(&["run", "--device", "cpu", "--json", "--model", file, image]);
    assert!(source.status.success() && exported.status.success(), "{}{}", stderr(&source), stderr(&exported));
    let top = |output: &Output| {
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json[0]["int8"][0]["top"].clone()
    };
    assert_eq!(top(&source), top(&exported));
    if common::gpu_or_skip().is_some() {
        let output = mnq_gpu(&["run", "--check", "--model", file, image]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    std::fs::remove_file(file).unwrap();
    std::fs::remove_file(list).unwrap();
}

#[test]
fn export_refuses_cle_with_the_reason_and_exit_code_1() {
    if !common::data_or_skip(&[MODEL_0_75, VAL1300]) {
        return;
    }
    let list = small_calibration_list("export-cle", 2);
    let dir = std::env::temp_dir().join(format!("mnq-cli-export-cle-{}", std::process::id()));
    let output = mnq_gpu(&[
        "export",
        "--scheme",
        "tf8,cle",
        "--calibration",
        list.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
    ]);
    std::fs::remove_file(&list).unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("error: cannot export mobilenet_v1_0.75_224 (scheme cle) as TFLite: layer conv1: per-channel activation clamps"), "{message}");
    // Every model is checked first: the refusal leaves no tf8 file behind.
    assert!(!dir.join("mobilenet_v1_0.75_224_tf8.tflite").exists(), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sensitivity_measures_every_layer_and_checks_its_assignment_end_to_end() {
    if !common::data_or_skip(&[VAL1300]) {
        return;
    }
    let list = small_calibration_list("sensitivity", 4);
    let model = MODEL_0_25;
    let device = if common::gpu_or_skip().is_some() { "gpu" } else { "cpu" };
    let args = ["sensitivity", "--model", model, "--calibration", list.to_str().unwrap(), "--limit", "4"];
    let output = mnq_gpu(&[&args[..], &["--bits", "4", "--device", device, "--json"]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((json["images"].as_u64(), json["bits"].as_u64()), (Some(4), Some(4)));
    assert_eq!(json["base_scheme"], "tf8-zero-var");
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 28, "conv1, 13 depthwise, 13 pointwise, the classifier");
    for layer in layers {
        for field in ["top1_drop_8bit", "top1_drop", "local_sqnr_8bit_db", "local_sqnr_db"] {
            assert!(layer[field].is_number(), "{layer}: {field}");
        }
        assert!(layer["local_sqnr_db"].as_f64() < layer["local_sqnr_8bit_db"].as_f64(), "{layer}");
    }
    for field in ["float", "all_8bit", "all_bits"] {
        assert!(json[field]["top1_percent"].is_number() && json[field]["top5_percent"].is_number(), "{field}");
    }
    assert!(json["steps"].is_array() && json["eight_bit_layers"].is_array());
    let bits = |field: &str| json[field].as_u64().unwrap();
    assert!(bits("weight_bits_all") <= bits("weight_bits") && bits("weight_bits") <= bits("weight_bits_8bit"));
    let assignment = &json["assignment"];
    let scheme = assignment["scheme"].as_str().unwrap();
    assert!(scheme.starts_with("tf8-zero-var+w4"), "{scheme}");
    assert_eq!(assignment["device"], device);
    if device == "gpu" {
        assert!(assignment["checked_bytes"].as_u64().unwrap() > 0);
        assert_eq!(assignment["differing_bytes"], 0, "GPU = CPU reference");
    }

    // The assignment's name quantizes, saves and evaluates to the same accuracy.
    let file = std::env::temp_dir().join(format!("mnq-cli-sensitivity-{}.safetensors", std::process::id()));
    let file = file.to_str().unwrap();
    let quantize = mnq_gpu(&[
        "quantize",
        "--model",
        model,
        "--scheme",
        scheme,
        "--calibration",
        list.to_str().unwrap(),
        "-o",
        file,
    ]);
    assert_eq!(quantize.status.code(), Some(0), "{}", stderr(&quantize));
    let eval = mnq_gpu(&["eval", "--device", "cpu", "--model", model, "--quantized", file, "--limit", "4", "--json"]);
    assert_eq!(eval.status.code(), Some(0), "{}", stderr(&eval));
    let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(eval["schemes"][0]["scheme"], scheme);
    assert_eq!(eval["schemes"][0]["int8"]["top1_percent"], assignment["accuracy"]["top1_percent"]);
    std::fs::remove_file(file).unwrap();
    std::fs::remove_file(&list).unwrap();
}

#[test]
fn sensitivity_takes_one_base_scheme_without_widths() {
    for (scheme, message) in [
        ("tf8+w4", "base scheme `tf8+w4` sets weight widths"),
        ("tf8,cle", "one base scheme, not 2"),
        ("tf8+w17", "weights take 2 to 8 bits"),
    ] {
        let output = mnq_gpu(&["sensitivity", "--device", "cpu", "--scheme", scheme, "--limit", "1"]);
        assert_ne!(output.status.code(), Some(0), "{scheme}");
        assert!(stderr(&output).contains(message), "{scheme}: {}", stderr(&output));
    }
}

/// The fine-tuned models in the repository (issue 18) load and run, every int8 layer checked on the GPU: the QAT
/// file under its own quantization (no recalibration), the float variants under tf8 calibrated on the built-in photo.
#[test]
fn the_fine_tuned_models_run_checked_on_the_gpu() {
    if common::gpu_or_skip().is_none() {
        return;
    }
    let output = mnq_gpu(&["run", "--check", "--json", "--model", "models/finetuned/qat-tf8.tflite", GRACE_HOPPER]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["int8"][0]["scheme"], "tflite");
    assert_eq!(json[0]["int8"][0]["mismatches"].as_array().map(Vec::len), Some(0));

    let list = std::env::temp_dir().join(format!("mnq-finetuned-calibration-{}.txt", std::process::id()));
    let photo = std::fs::canonicalize(GRACE_HOPPER).unwrap();
    std::fs::write(&list, format!("{} 652\n", photo.display())).unwrap();
    for variant in ["dw-linear", "dw-linear+relu", "dw-linear+relu+l2"] {
        let model = format!("models/finetuned/{variant}");
        let args = ["run", "--check", "--json", "--model", &model, "--scheme", "tf8", "--calibration"];
        let output = mnq_gpu(&[&args[..], &[list.to_str().unwrap(), GRACE_HOPPER]].concat());
        assert_eq!(output.status.code(), Some(0), "{variant}: {}", stderr(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json[0]["int8"][0]["mismatches"].as_array().map(Vec::len), Some(0), "{variant}");
    }
    std::fs::remove_file(&list).unwrap();
}
