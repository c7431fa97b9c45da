//! ONNX import: a float export imports back as the same model; a QDQ file as `quantize_static` lays it out
//! (built here from seeded random values) imports with ONNX Runtime's arithmetic, and its first output equals
//! ORT's formula worked out here; defects are errors that name the node or tensor, never panics. The byte-for-
//! byte comparison with ONNX Runtime itself is scripts/ort_crosscheck.py (docs/onnx.md).

use mnq_gpu::cpu_ref;
use mnq_gpu::model::synthetic::mobilenet_v1;
use mnq_gpu::model::{Activation, Model, Op};
use mnq_gpu::onnx::proto::{self, tensor_proto::DataType, AttributeProto, NodeProto, TensorProto};
use mnq_gpu::onnx::{self as mnq_onnx, export};
use mnq_gpu::quant::transform::fold_batch_norms;
use mnq_gpu::quant::{PoolRounding, Requant};
use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const SEED: u64 = 0x6f6e_6e78;

fn import(bytes: &[u8]) -> mnq_gpu::Result<mnq_onnx::Imported> {
    mnq_onnx::from_bytes(bytes, "test", Path::new("test.onnx"))
}

#[test]
fn float_export_imports_back_as_the_same_float_model() {
    let model = mobilenet_v1(0.25, 64, SEED);
    let bytes = export::float_to_bytes(&model).expect("export");
    let imported = import(&bytes).expect("import");
    assert!(imported.model.is_none(), "a float file has no quantization of its own");
    let folded = fold_batch_norms(&model, false);
    assert_eq!(imported.float.layers.len(), folded.layers.len());
    for (got, want) in imported.float.layers.iter().zip(&folded.layers) {
        assert_eq!((got.op, got.input_shape, got.output_shape), (want.op, want.input_shape, want.output_shape));
        assert_eq!(got.kernel, want.kernel, "{}: kernel", want.name);
        assert_eq!(got.bias, want.bias, "{}: bias", want.name);
        assert_eq!(got.activation, want.activation, "{}: activation", want.name);
    }
}

/// A graph under construction, with `quantize_static`'s tensor naming.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i, ..Default::default() }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints: ints.to_vec(), ..Default::default() }
}

impl Graph {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        let domain = if matches!(op, "QLinearGlobalAveragePool" | "QGemm") { "com.microsoft" } else { "" };
        self.nodes.push(NodeProto {
            name: format!("{output}_node"),
            op_type: op.into(),
            domain: domain.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute,
            ..Default::default()
        });
    }

    fn tensor(&mut self, name: &str, dims: &[i64], data_type: DataType, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: data_type as i32,
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    fn scale(&mut self, name: &str, scale: f32, zero_point: i8) -> (String, String) {
        let s = self.tensor(&format!("{name}_scale"), &[], DataType::Float, scale.to_le_bytes().to_vec());
        let z = self.tensor(&format!("{name}_zero_point"), &[], DataType::Int8, vec![zero_point as u8]);
        (s, z)
    }

    /// DQ(x) → Conv(DQ(w), DQ(b)) → Q: int8 weights (symmetric, per tensor), int32 bias, as quantize_static writes.
    #[allow(clippy::too_many_arguments)]
    fn qdq_conv(
        &mut self,
        rng: &mut SmallRng,
        input: &str,
        input_q: (f32, i8),
        name: &str,
        dims: [i64; 4],
        attributes: Vec<AttributeProto>,
        output_q: (f32, i8),
    ) -> String {
        let (xs, xz) = self.scale(&format!("{name}_input"), input_q.0, input_q.1);
        self.node("DequantizeLinear", &[input, &xs, &xz], &format!("{name}_x"), vec![]);
        let count = dims.iter().product::<i64>() as usize;
        let weights: Vec<u8> = (0..count).map(|_| rng.random_range(-127i8..=127) as u8).collect();
        let w = self.tensor(&format!("{name}_weights_quantized"), &dims, DataType::Int8, weights);
        let (ws, wz) = self.scale(&format!("{name}_weights"), 0.02, 0);
        self.node("DequantizeLinear", &[&w, &ws, &wz], &format!("{name}_w"), vec![]);
        let bias: Vec<u8> = (0..dims[0]).flat_map(|_| rng.random_range(-3000i32..3000).to_le_bytes()).collect();
        let b = self.tensor(&format!("{name}_bias_quantized"), &[dims[0]], DataType::Int32, bias);
        let bs =
            self.tensor(&format!("{name}_bias_scale"), &[], DataType::Float, (input_q.0 * 0.02).to_le_bytes().to_vec());
        let bz = self.tensor(&format!("{name}_bias_zero_point"), &[], DataType::Int32, vec![0; 4]);
        self.node("DequantizeLinear", &[&b, &bs, &bz], &format!("{name}_b"), vec![]);
        self.node(
            "Conv",
            &[&format!("{name}_x"), &format!("{name}_w"), &format!("{name}_b")],
            &format!("{name}_y"),
            attributes,
        );
        let (ys, yz) = self.scale(&format!("{name}_output"), output_q.0, output_q.1);
        let out = format!("{name}_QuantizeLinear_Output");
        self.node("QuantizeLinear", &[&format!("{name}_y"), &ys, &yz], &out, vec![]);
        out
    }

    fn model(self, input: &str, output: &str) -> Vec<u8> {
        use proto::tensor_shape_proto::{dimension::Value, Dimension};
        let info = |name: &str, dims: &[i64]| proto::ValueInfoProto {
            name: name.into(),
            r#type: Some(proto::TypeProto {
                value: Some(proto::type_proto::Value::TensorType(proto::type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: Some(proto::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension { value: Some(Value::DimValue(d)), ..Default::default() })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        proto::ModelProto {
            ir_version: 8,
            opset_import: vec![proto::OperatorSetIdProto { domain: String::new(), version: 13 }],
            graph: Some(proto::GraphProto {
                node: self.nodes,
                initializer: self.initializers,
                input: vec![info(input, &[1, 3, 8, 8])],
                output: vec![info(output, &[1, 10])],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

/// An 8×8 MobileNetV1 in miniature as quantize_static's default QDQ file: int8 activations (zero point −128
/// after each ReLU6, so no Relu remains), int8 symmetric weights. `relu_before` puts a Relu between conv1 and its
/// QuantizeLinear with zero point `conv1_zero_point`.
fn qdq_file(conv1_zero_point: i8, relu: bool) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut g = Graph::default();
    let (is, iz) = g.scale("input", 2.0 / 255.0, 0);
    g.node("QuantizeLinear", &["input", &is, &iz], "input_quantized", vec![]);
    let same = |stride: i64, pads: [i64; 4], group: i64| {
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[stride, stride]),
            attr_ints("pads", &pads),
            attr_int("group", group),
        ]
    };
    // conv1: 3 → 8 channels, stride 2, TF SAME on 8×8 (pads [0, 0, 1, 1]).
    let input_q = (2.0 / 255.0, 0);
    let q1 = (0.05, conv1_zero_point);
    let mut x = g.qdq_conv(&mut rng, "input_quantized", input_q, "conv1", [8, 3, 3, 3], same(2, [0, 0, 1, 1], 1), q1);
    if relu {
        // Move conv1's Relu between the Conv and its QuantizeLinear.
        let q = g.nodes.pop().expect("the QuantizeLinear");
        g.node("Relu", &["conv1_y"], "conv1_relu", vec![]);
        g.nodes.push(NodeProto { input: vec!["conv1_relu".into(), q.input[1].clone(), q.input[2].clone()], ..q });
    }
    x = g.qdq_conv(&mut rng, &x, q1, "conv_dw_1", [8, 1, 3, 3], same(1, [1, 1, 1, 1], 8), (0.04, -128));
    x = g.qdq_conv(&mut rng, &x, (0.04, -128), "conv_pw_1", [16, 8, 1, 1], vec![], (0.03, -128));
    // Pool: DQ → GlobalAveragePool → Q, with an output scale of its own.
    let (ps, pz) = g.scale("pool_input", 0.03, -128);
    g.node("DequantizeLinear", &[&x, &ps, &pz], "pool_x", vec![]);
    g.node("GlobalAveragePool", &["pool_x"], "pool_y", vec![]);
    let (os, oz) = g.scale("pool_output", 0.011, -100);
    g.node("QuantizeLinear", &["pool_y", &os, &oz], "pool_QuantizeLinear_Output", vec![]);
    // Classifier: a 1×1 Conv on the pooled features, then Flatten and Softmax of the dequantized logits.
    x = g.qdq_conv(
        &mut rng,
        "pool_QuantizeLinear_Output",
        (0.011, -100),
        "conv_preds",
        [10, 16, 1, 1],
        vec![],
        (0.1, 5),
    );
    let (ls, lz) = g.scale("logits", 0.1, 5);
    g.node("DequantizeLinear", &[&x, &ls, &lz], "logits", vec![]);
    g.node("Flatten", &["logits"], "flat", vec![attr_int("axis", 1)]);
    g.node("Softmax", &["flat"], "probabilities", vec![attr_int("axis", 1)]);
    g.model("input", "probabilities")
}

#[test]
fn a_qdq_file_imports_with_onnx_runtimes_arithmetic() {
    let imported = import(&qdq_file(-128, false)).expect("import");
    let model = imported.model.expect("a quantized file");
    let ops: Vec<Op> = model.layers.iter().map(|l| l.op).collect();
    assert!(matches!(
        ops[..],
        [
            Op::Conv2d { stride: 2, .. },
            Op::DepthwiseConv2d { .. },
            Op::PointwiseConv2d,
            Op::GlobalAvgPool,
            Op::Classifier
        ]
    ));
    assert_eq!(model.requant(), Requant::Fp32, "ORT's requantization");
    let pool = &model.layers[3];
    assert_eq!(pool.pool, PoolRounding::Fp32, "QLinearGlobalAveragePool");
    assert_ne!(pool.output, pool.input, "the pool's output has its own quantization");
    // int8 → the engine's u8: every value and zero point + 128.
    assert_eq!(model.input.zero_point, 128);
    assert_eq!(model.layers[0].output.zero_point, 0);
    assert!(model
        .layers
        .iter()
        .filter(|l| l.op != Op::GlobalAvgPool)
        .all(|l| l.weight_zero_points.iter().all(|&z| z == 128)));
    assert_eq!(imported.tensors[0], "conv1_QuantizeLinear_Output");
    // The float model clamps as the dequantized graph does: to the output's range [0, s·(255 − z)].
    let conv1 = &imported.float.layers[0];
    assert_eq!(conv1.activation, Activation::Relu6);
    assert_eq!(conv1.clip_max.as_deref(), Some(&[0.05f32 * 255.0; 8][..]));

    // conv1's output at (0, 0, channel 0) by ORT's formula, in i64 and f32: acc = bias + Σ(x − z_x)(w − z_w) over
    // the taps inside the image (TF SAME at stride 2 on 8×8: no padding above or left), then
    // round_half_even(f32(acc) · (s_x · s_w / s_y)) + z_y, clamped to [−128, 127].
    let mut rng = SmallRng::seed_from_u64(SEED ^ 1);
    let input: Vec<u8> = (0..8 * 8 * 3).map(|_| rng.random()).collect();
    let out = &cpu_ref::run_u8(&model, &input)[0];
    let layer = &model.layers[0];
    let mut acc = i64::from(layer.bias[0]);
    for ky in 0..3 {
        for kx in 0..3 {
            for ci in 0..3 {
                let x = i64::from(input[(ky * 8 + kx) * 3 + ci]) - 128;
                let w = i64::from(layer.weights[((ky * 3 + kx) * 3 + ci) * 8]) - 128;
                acc += x * w;
            }
        }
    }
    let scale = (2.0f32 / 255.0) * 0.02f32 / 0.05f32;
    let expected = ((acc as f32 * scale).round_ties_even() as i64 - 128).clamp(-128, 127);
    assert_eq!(i64::from(out[0]) - 128, expected);
}

/// The committed fuzz seed fuzz/seeds/onnx/qdq_8x8.onnx is this file: `MNQ_WRITE_FUZZ_SEEDS=1 cargo test --test
/// onnx_import` rewrites it.
#[test]
fn the_qdq_fuzz_seed_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/onnx/qdq_8x8.onnx");
    let bytes = qdq_file(-128, false);
    if std::env::var("MNQ_WRITE_FUZZ_SEEDS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("fuzz/seeds/onnx");
        std::fs::write(&path, &bytes).expect("writing the seed");
    }
    assert!(std::fs::read(&path).is_ok_and(|seed| seed == bytes), "{} is stale", path.display());
}

/// The claim behind `export --format onnx`: a scheme under `--requant fp32` written as QDQ imports back (as ORT
/// fuses it: QLinearConv, QLinearGlobalAveragePool) to a model that computes the same bytes at every layer;
/// `double` and per-channel zero points are refused with the reason. (ORT itself runs such files to the same bytes:
/// scripts/ort_crosscheck.py, docs/onnx.md.)
#[test]
fn a_scheme_exports_as_qdq_and_imports_back_computing_the_same_bytes() {
    // Seeded random weights, taken as a real model's: export refuses synthetic models.
    let float = Model { synthetic: false, ..mobilenet_v1(0.25, 32, SEED) };
    let mut rng = SmallRng::seed_from_u64(SEED);
    let images: Vec<Vec<f32>> =
        (0..2).map(|_| (0..float.input_shape.len()).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
    for name in ["tf8", "per-channel+sym"] {
        let scheme: mnq_gpu::quant::scheme::Scheme = name.parse().expect("a scheme");
        let (_, model) = mnq_gpu::calibrate::quantize_scheme(&float, &scheme, &images).expect("quantize");
        let error = export::qdq_to_bytes(&model).expect_err("double is not ORT's").to_string();
        assert!(error.contains("--requant fp32"), "{error}");
        let model = model.with_requant(Requant::Fp32);
        let imported = import(&export::qdq_to_bytes(&model).expect("export")).expect("import").model.expect("int8");
        assert_eq!(imported.input, model.input);
        let input: Vec<u8> = (0..model.input_shape.len()).map(|_| rng.random()).collect();
        let (expected, got) = (cpu_ref::run_u8(&model, &input), cpu_ref::run_u8(&imported, &input));
        for (layer, (e, g)) in model.layers.iter().zip(expected.iter().zip(&got)) {
            assert!(e == g, "{name}: layer {} differs after the round trip", layer.name);
        }
    }
    let scheme: mnq_gpu::quant::scheme::Scheme = "per-channel".parse().expect("a scheme");
    let (_, model) = mnq_gpu::calibrate::quantize_scheme(&float, &scheme, &images).expect("quantize");
    let error = export::qdq_to_bytes(&model.with_requant(Requant::Fp32)).expect_err("per-channel zero points");
    assert!(error.to_string().contains("zero point"), "{error}");
}

#[test]
fn a_relu_that_the_quantization_makes_a_no_op_is_dropped_and_any_other_is_refused() {
    let imported = import(&qdq_file(-128, true)).expect("zero point −128: the Relu is a no-op");
    assert_eq!(imported.model.expect("quantized").layers.len(), 5);
    let error = import(&qdq_file(-20, true)).expect_err("zero point −20: the Relu clamps").to_string();
    assert!(error.contains("node `conv1_relu_node` (Relu)") && error.contains("no-op"), "{error}");
}

#[test]
fn defects_are_errors_naming_the_node_or_tensor_never_panics() {
    let good = qdq_file(-128, false);
    // Truncations and garbage: errors, never panics.
    for end in [0, 1, 10, good.len() / 3, good.len() - 1] {
        assert!(import(&good[..end]).is_err(), "{end} bytes");
    }
    assert!(import(b"not a protobuf at all \xff\xff").is_err());

    let edit = |f: &dyn Fn(&mut proto::GraphProto)| {
        let mut model = proto::ModelProto::decode(good.as_slice()).expect("decode");
        f(model.graph.as_mut().expect("graph"));
        import(&model.encode_to_vec()).expect_err("a defect").to_string()
    };
    let error = edit(&|g| {
        let t = g.initializer.iter_mut().find(|t| t.name == "conv1_weights_quantized").expect("weights");
        t.raw_data.clear();
        t.data_location = 1;
        t.external_data.push(proto::StringStringEntryProto { key: "location".into(), value: "w.bin".into() });
    });
    assert!(error.contains("conv1_weights_quantized") && error.contains("external"), "{error}");
    let error = edit(&|g| {
        let t = g.initializer.iter_mut().find(|t| t.name == "conv_dw_1_weights_quantized").expect("weights");
        t.raw_data.truncate(5);
    });
    assert!(error.contains("conv_dw_1_weights_quantized") && error.contains("bytes"), "{error}");
    // PyTorch's symmetric padding at stride 2 is not TF's SAME.
    let error = edit(&|g| {
        let conv = g.node.iter_mut().find(|n| n.op_type == "Conv").expect("conv1");
        conv.attribute.iter_mut().find(|a| a.name == "pads").expect("pads").ints = vec![1, 1, 1, 1];
    });
    assert!(error.contains("conv1_y_node") && error.contains("pads"), "{error}");
    let error = edit(&|g| {
        let t = g.initializer.iter_mut().find(|t| t.name == "conv_pw_1_weights_quantized").expect("weights");
        t.dims = vec![1 << 40, 1 << 40];
    });
    assert!(error.contains("conv_pw_1_weights_quantized"), "{error}");
    let error = edit(&|g| g.node.retain(|n| n.op_type != "GlobalAveragePool"));
    assert!(!error.is_empty());
}
