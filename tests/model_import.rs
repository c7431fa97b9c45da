//! TF.js import: every defect of a model directory is a clear error naming the file and the tensor.

mod common;

use mnq_gpu::model::tfjs::{load, TfjsModel};
use mnq_gpu::model::{Op, Padding};
use std::path::{Path, PathBuf};

const MODEL_0_75: &str = "../shared/models/mobilenet_v1_0.75_224";
const MODEL_1_0: &str = "../shared/models/mobilenet_v1_1.0_224";

/// True when Google's TF.js models are beside the repository (every test here reads or breaks one of them).
fn have_models() -> bool {
    common::data_or_skip(&[MODEL_0_75, MODEL_1_0])
}

#[test]
fn the_0_75_model_loads_with_its_topology() {
    if !have_models() {
        return;
    }
    let model = load(Path::new(MODEL_0_75)).unwrap();
    assert_eq!(model.layers.len(), 1 + 26 + 2);
    assert_eq!(model.layers[0].op, Op::Conv2d { stride: 2, padding: Padding::Same });
    assert_eq!(model.layers[0].output_shape.c, 24);
    let strides: Vec<usize> =
        model.layers.iter().filter(|l| matches!(l.op, Op::DepthwiseConv2d { .. })).map(|l| l.op.stride()).collect();
    assert_eq!(strides, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]);
    assert_eq!(model.layers[26].output_shape.len(), 7 * 7 * 768);
    assert_eq!(model.classes(), 1000);
    assert_eq!(model.layers[1].batch_norm.as_ref().unwrap().epsilon, 0.001);
}

#[test]
fn the_1_0_model_names_its_missing_shard_and_tensor() {
    if !have_models() {
        return;
    }
    let error = load_error(Path::new(MODEL_1_0));
    assert!(error.contains("group37-shard1of1"), "{error}");
    assert!(error.contains("conv_pw_13/kernel"), "{error}");
    assert!(error.contains("missing"), "{error}");
    // Everything else is still readable for weight analysis.
    let model = TfjsModel::open(Path::new(MODEL_1_0)).unwrap();
    let (shape, values) = model.tensor("conv_dw_13/depthwise_kernel").unwrap();
    assert_eq!(shape, [3, 3, 1024, 1]);
    assert_eq!(values.len(), 9 * 1024);
}

/// The error of loading `dir` (which must fail; the model itself is too large to print).
fn load_error(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("{} loaded, but it is broken", dir.display()),
        Err(error) => error.to_string(),
    }
}

/// A copy of the 0.75 model's directory (model.json copied, shards linked) to break on purpose.
struct Broken {
    dir: PathBuf,
}

impl Broken {
    fn new(name: &str) -> Broken {
        let dir = std::env::temp_dir().join(format!("mnq-import-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(MODEL_0_75).unwrap() {
            let path = entry.unwrap().path();
            let target = dir.join(path.file_name().unwrap());
            if path.extension().is_some_and(|e| e == "json") {
                std::fs::copy(&path, &target).unwrap();
            } else {
                std::os::unix::fs::symlink(std::fs::canonicalize(&path).unwrap(), &target).unwrap();
            }
        }
        Broken { dir }
    }

    fn edit_json(self, edit: impl Fn(String) -> String) -> Broken {
        let path = self.dir.join("model.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        self
    }

    fn replace_shard(self, name: &str, bytes: &[u8]) -> Broken {
        let path = self.dir.join(name);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, bytes).unwrap();
        self
    }

    fn error(&self) -> String {
        load_error(&self.dir)
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn conv1_shard() -> Vec<u8> {
    std::fs::read(Path::new(MODEL_0_75).join("group1-shard1of1")).unwrap()
}

#[test]
fn malformed_json_is_an_error() {
    if !have_models() {
        return;
    }
    let error = Broken::new("json").edit_json(|t| t[..t.len() / 2].to_string()).error();
    assert!(error.contains("model.json") && error.contains("malformed JSON"), "{error}");
}

#[test]
fn an_unknown_dtype_names_the_tensor() {
    if !have_models() {
        return;
    }
    let error = Broken::new("dtype")
        .edit_json(|t| {
            t.replace("\"dtype\":\"float32\",\"shape\":[3,3,3,24]", "\"dtype\":\"float16\",\"shape\":[3,3,3,24]")
        })
        .error();
    assert!(error.contains("unsupported dtype `float16`") && error.contains("conv1/kernel"), "{error}");
}

#[test]
fn a_shard_of_the_wrong_size_names_file_and_tensor() {
    if !have_models() {
        return;
    }
    let shard = conv1_shard();
    let error = Broken::new("size").replace_shard("group1-shard1of1", &shard[..shard.len() - 4]).error();
    assert!(error.contains("group1-shard1of1") && error.contains("conv1/kernel"), "{error}");
    assert!(error.contains("2588 bytes") && error.contains("2592"), "{error}");
}

#[test]
fn a_nan_weight_is_refused() {
    if !have_models() {
        return;
    }
    let mut shard = conv1_shard();
    shard[20..24].copy_from_slice(&f32::NAN.to_le_bytes());
    let error = Broken::new("nan").replace_shard("group1-shard1of1", &shard).error();
    assert!(error.contains("conv1/kernel") && error.contains("value 5 is NaN"), "{error}");
}

#[test]
fn a_shape_that_does_not_fit_the_topology_is_refused() {
    if !have_models() {
        return;
    }
    let error = Broken::new("shape").edit_json(|t| t.replacen("\"filters\":24", "\"filters\":32", 1)).error();
    assert!(error.contains("conv1/kernel") && error.contains("does not fit the topology"), "{error}");
}

#[test]
fn an_absurd_shape_is_refused() {
    if !have_models() {
        return;
    }
    let error = Broken::new("absurd").edit_json(|t| t.replacen("[3,3,3,24]", "[300000,300000,3,24]", 1)).error();
    assert!(error.contains("absurd shape"), "{error}");
}

#[test]
fn a_missing_model_says_how_to_get_one() {
    let error = load_error(Path::new("/nonexistent/model"));
    assert!(
        error.contains("no MobileNetV1 model found") && error.contains("`mnq-gpu download NAME` fetches one"),
        "{error}"
    );
}
