//! mnq-web: mnq-gpu's int8 MobileNetV1 in the browser, for the page in `web/index.html`.
//!
//! The page hands over fetched bytes; this crate calls the library for everything else: a [`Net`] is a float
//! model (a TFLite file or a TF.js folder), [`Net::quantize`] makes a [`Pipeline`] for one scheme, [`Gpu`] is a
//! WebGPU device (wgpu's `webgpu` backend), and [`Pipeline::classify`] runs one image through the float
//! reference, the int8 CPU reference and, when a GPU is attached, the int8 WGSL shaders, then compares the two
//! int8 runs layer by layer (bit for bit) and measures each layer's SQNR against float. Results go back as JSON.

use mnq_gpu::engine::{self, Loaded, Mismatch, Quantized, SchemeChoice};
use mnq_gpu::gpu::{AdapterOptions, GpuContext, InnerProduct, Plan, Readback};
use mnq_gpu::labels::{predictions, Prediction};
use mnq_gpu::model::Model;
use mnq_gpu::{cpu_ref, preprocess, sqnr};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_time::Instant;

/// Classes shown per pipeline.
const TOP: usize = 5;
/// Logits-only GPU runs after the checked one, timed: the first run of a plan also pays for warming it up.
const TIMED_RUNS: usize = 5;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

/// Milliseconds since `start` (web_time's `Instant` reads `performance.now()`; std's panics on wasm32).
fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// A float model and, for a TFLite or quantized ONNX file, the quantization the file holds.
#[wasm_bindgen]
pub struct Net {
    loaded: Loaded,
}

#[wasm_bindgen]
impl Net {
    /// A quantized TFLite MobileNetV1 from its file's bytes; `name` names it in errors.
    #[wasm_bindgen(js_name = fromTflite)]
    pub fn from_tflite(name: &str, bytes: &[u8]) -> Result<Net, JsError> {
        let loaded = Loaded::from_tflite_bytes(bytes, name.trim_end_matches(".tflite")).map_err(js_error)?;
        Ok(Net { loaded })
    }

    /// An ONNX MobileNetV1 from its file's bytes: float, or int8/uint8 (QDQ or QOperator, run with ONNX Runtime's
    /// arithmetic); `name` names it in errors.
    #[wasm_bindgen(js_name = fromOnnx)]
    pub fn from_onnx(name: &str, bytes: &[u8]) -> Result<Net, JsError> {
        let loaded = Loaded::from_onnx_bytes(bytes, name.trim_end_matches(".onnx")).map_err(js_error)?;
        Ok(Net { loaded })
    }

    /// A TF.js layers MobileNetV1: `model.json`'s bytes and its shards, `names[i]` being the path model.json gives
    /// `shards[i]` (a `Uint8Array`). A shard left out is a missing file: the error names the tensor it held.
    #[wasm_bindgen(js_name = fromTfjs)]
    pub fn from_tfjs(name: &str, json: &[u8], names: Vec<String>, shards: js_sys::Array) -> Result<Net, JsError> {
        let mut bytes = HashMap::new();
        for (shard_name, shard) in names.into_iter().zip(shards.iter()) {
            let shard: js_sys::Uint8Array =
                shard.dyn_into().map_err(|_| js_error(format!("shard {shard_name} is not a Uint8Array")))?;
            bytes.insert(shard_name, shard.to_vec());
        }
        Ok(Net { loaded: Loaded::from_tfjs_bytes(name, json, bytes).map_err(js_error)? })
    }

    pub fn name(&self) -> String {
        self.loaded.float.name.clone()
    }

    /// The input's height and width in pixels.
    #[wasm_bindgen(js_name = inputSize)]
    pub fn input_size(&self) -> usize {
        self.loaded.float.input_shape.h
    }

    /// The scheme of the file's own quantization: `tflite` for a TFLite file, `onnx` for a quantized ONNX file;
    /// undefined for a TF.js folder or a float ONNX file, which only the calibrated schemes quantize.
    #[wasm_bindgen(js_name = ownScheme)]
    pub fn own_scheme(&self) -> Option<String> {
        if self.loaded.tflite.is_some() {
            Some(mnq_gpu::tflite::SCHEME.to_string())
        } else if self.loaded.onnx.as_ref().is_some_and(|onnx| onnx.model.is_some()) {
            Some(mnq_gpu::onnx::SCHEME.to_string())
        } else {
            None
        }
    }

    /// The int8 pipeline of `scheme`: `tflite` or `onnx` (the file's own quantization) or a scheme name as the CLI
    /// takes it (`tf8`, `per-channel+sym`, …), calibrated on `calibration`, encoded JPEG/PNG images
    /// (`Uint8Array`s).
    pub fn quantize(&self, scheme: &str, calibration: js_sys::Array) -> Result<Pipeline, JsError> {
        let choice: SchemeChoice = scheme.parse().map_err(js_error)?;
        let float = &self.loaded.float;
        let mut images = Vec::new();
        if engine::needs_calibration(std::slice::from_ref(&choice)) {
            for (i, image) in calibration.iter().enumerate() {
                let bytes: js_sys::Uint8Array =
                    image.dyn_into().map_err(|_| js_error(format!("calibration image {i} is not a Uint8Array")))?;
                let path = format!("calibration image {i}");
                let input =
                    preprocess::decode_image(&bytes.to_vec(), Path::new(&path), float.input_shape, float.input_range)
                        .map_err(js_error)?;
                images.push(input);
            }
        }
        let quantized = self.loaded.quantize(&[choice], &images).map_err(js_error)?.pop().expect("one scheme");
        let inner = Inner {
            same_float: quantized.scheme == SchemeChoice::File,
            float: float.clone(),
            quantized,
            gpu: RefCell::new(None),
        };
        Ok(Pipeline { inner: Rc::new(inner) })
    }
}

/// A WebGPU device, shared by every pipeline the page makes.
#[wasm_bindgen]
pub struct Gpu {
    ctx: Rc<GpuContext>,
}

#[wasm_bindgen]
impl Gpu {
    /// The browser's WebGPU adapter and a device on it; rejects with the reason where there is none.
    pub async fn connect() -> Result<Gpu, JsError> {
        let ctx = GpuContext::new_async(&AdapterOptions::default()).await.map_err(js_error)?;
        Ok(Gpu { ctx: Rc::new(ctx) })
    }

    /// The adapter as wgpu describes it (name, backend, type, driver).
    pub fn adapter(&self) -> String {
        self.ctx.info().to_string()
    }

    /// The WGSL inner product the shaders use here: `dot4` (`dot4U8Packed`) or `unpack` where the browser's
    /// WGSL lacks `packed_4x8_integer_dot_product`.
    #[wasm_bindgen(js_name = innerProduct)]
    pub fn inner_product(&self) -> String {
        format!("{:?}", self.ctx.inner_product()).to_lowercase()
    }
}

/// One int8 pipeline: the float model it approximates, the quantized model, and its GPU plan once attached.
#[wasm_bindgen]
pub struct Pipeline {
    inner: Rc<Inner>,
}

struct Inner {
    /// Whether `quantized.float` is `float` (a TFLite file's own quantization), so the float pass runs once.
    same_float: bool,
    /// The model as loaded: the float top-5, as `mnq-gpu run` shows it.
    float: Model,
    /// The quantized model and the float model its scheme quantized (BatchNorm folded, transforms applied): the
    /// SQNR's signal.
    quantized: Quantized,
    /// The device and this pipeline's plan; taken out while a run awaits the GPU (a second classify meanwhile
    /// runs on the CPU reference only).
    gpu: RefCell<Option<(Rc<GpuContext>, Plan, InnerProduct)>>,
}

#[wasm_bindgen]
impl Pipeline {
    /// Build this pipeline's GPU plan on `gpu` at batch 1 with the inner product `inner`: `dot4`
    /// (`dot4U8Packed`), `unpack` (plain WGSL, the fallback), or empty for the fastest the browser's WGSL has.
    /// Resolves when the plan is ready; rejects with the reason it cannot be built.
    #[wasm_bindgen(js_name = attachGpu)]
    pub fn attach_gpu(&self, gpu: &Gpu, inner: &str) -> Result<js_sys::Promise, JsError> {
        let inner = match inner {
            "" => gpu.ctx.inner_product(),
            "unpack" => InnerProduct::Unpack,
            "dot4" if gpu.ctx.supports(InnerProduct::Dot4) => InnerProduct::Dot4,
            "dot4" => return Err(js_error("this browser's WGSL lacks packed_4x8_integer_dot_product (dot4U8Packed)")),
            other => return Err(js_error(format!("inner product `{other}`: expected dot4 or unpack"))),
        };
        let (pipeline, ctx) = (Rc::clone(&self.inner), Rc::clone(&gpu.ctx));
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let plan = Plan::new_async(&ctx, &pipeline.quantized.model, 1, inner)
                .await
                .map_err(|e| JsValue::from(js_error(e)))?;
            *pipeline.gpu.borrow_mut() = Some((ctx, plan, inner));
            Ok(JsValue::UNDEFINED)
        }))
    }

    pub fn scheme(&self) -> String {
        self.inner.quantized.label()
    }

    /// Classify one encoded image (JPEG or PNG bytes; `name` names it in errors): resolves to the JSON of a
    /// [`Classification`], rejects with the error (an undecodable image, a GPU failure).
    pub fn classify(&self, name: String, image: Vec<u8>) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            let result = inner.classify(&name, &image).await.map_err(|e| JsValue::from(js_error(e)))?;
            let json = serde_json::to_string(&result).map_err(|e| JsValue::from(js_error(e)))?;
            Ok(JsValue::from_str(&json))
        })
    }
}

#[derive(Serialize)]
struct Int8Run {
    top: Vec<Prediction>,
    /// The logits layer's raw uint8 output.
    logits: Vec<u8>,
    elapsed_ms: f64,
}

#[derive(Serialize)]
struct LayerReport {
    name: String,
    /// Bytes of this layer's output that differ between the GPU and the CPU reference; null without a GPU.
    differing_bytes: Option<usize>,
    /// Where the GPU first differs, when it does.
    mismatch: Option<String>,
    bytes: usize,
    /// SQNR against float with errors accumulated from the input on (null where the noise is zero).
    sqnr_db: f64,
    /// SQNR of this layer alone, fed the quantized float input of the layer.
    local_sqnr_db: f64,
}

/// What [`Pipeline::classify`] resolves to.
#[derive(Serialize)]
pub struct Classification {
    model: String,
    scheme: String,
    image: String,
    decode_ms: f64,
    float: Vec<Prediction>,
    float_ms: f64,
    int8_cpu: Int8Run,
    /// Null where no GPU is attached.
    int8_gpu: Option<Int8Run>,
    /// The GPU run again, [`TIMED_RUNS`] times reading back the logits only (as `mnq-gpu bench` times it), in ms.
    gpu_logits_ms: Option<Vec<f64>>,
    /// The GPU plan's inner product (`dot4` or `unpack`); null without a GPU.
    inner_product: Option<String>,
    /// Whether every layer of the GPU run, and the logits of every timed run, equal the CPU reference's, byte for
    /// byte; null without a GPU.
    bit_exact: Option<bool>,
    layers: Vec<LayerReport>,
    sqnr_ms: f64,
}

/// A GPU run of one image: every layer once, then the logits [`TIMED_RUNS`] times.
struct GpuRuns {
    layers: Vec<Vec<u8>>,
    elapsed_ms: f64,
    logits_runs: Vec<Vec<u8>>,
    logits_ms: Vec<f64>,
}

async fn gpu_runs(ctx: &GpuContext, plan: &mut Plan, input: &[u8]) -> mnq_gpu::Result<GpuRuns> {
    let start = Instant::now();
    let layers = plan.run_async(ctx, &[input], Readback::AllLayers).await?.pop().expect("one image");
    let elapsed_ms = ms_since(start);
    let (mut logits_runs, mut logits_ms) = (Vec::new(), Vec::new());
    for _ in 0..TIMED_RUNS {
        let start = Instant::now();
        let mut logits = plan.run_async(ctx, &[input], Readback::Logits).await?.pop().expect("one image");
        logits_ms.push(ms_since(start));
        logits_runs.push(logits.pop().expect("the logits"));
    }
    Ok(GpuRuns { layers, elapsed_ms, logits_runs, logits_ms })
}

impl Inner {
    async fn classify(&self, name: &str, image: &[u8]) -> mnq_gpu::Result<Classification> {
        let start = Instant::now();
        let input = preprocess::decode_image(image, Path::new(name), self.float.input_shape, self.float.input_range)?;
        let decode_ms = ms_since(start);

        let start = Instant::now();
        let float_layers = cpu_ref::run_f32(&self.float, &input);
        let float = predictions(&self.float, float_layers.last().expect("a model has layers"), TOP);
        let float_ms = ms_since(start);

        let model = &self.quantized.model;
        let quantized_input = model.quantize_input(&input);
        let start = Instant::now();
        let cpu_layers = cpu_ref::run_u8(model, &quantized_input);
        let int8_cpu = self.int8_run(&cpu_layers, ms_since(start));

        let taken = self.gpu.borrow_mut().take();
        let (gpu_layers, inner_product) = match taken {
            Some((ctx, mut plan, inner)) => {
                let result = gpu_runs(&ctx, &mut plan, &quantized_input).await;
                *self.gpu.borrow_mut() = Some((ctx, plan, inner));
                Some((result?, inner))
            }
            None => None,
        }
        .unzip();

        let start = Instant::now();
        let prepared_layers;
        let signal = if self.same_float {
            &float_layers
        } else {
            prepared_layers = cpu_ref::run_f32(&self.quantized.float, &input);
            &prepared_layers
        };
        let sqnr = sqnr::outputs_sqnr(model, &input, signal, &cpu_layers);
        let mut layers = Vec::with_capacity(model.layers.len());
        for (i, (layer, &(sqnr_db, local_sqnr_db))) in model.layers.iter().zip(&sqnr).enumerate() {
            let mismatch: Option<Option<Mismatch>> = gpu_layers
                .as_ref()
                .map(|gpu| engine::compare(&layer.name, layer.output_shape, &cpu_layers[i], &gpu.layers[i]));
            layers.push(LayerReport {
                name: layer.name.clone(),
                differing_bytes: mismatch.as_ref().map(|m| m.as_ref().map_or(0, |m| m.differing_bytes)),
                mismatch: mismatch.flatten().map(|m| m.to_string()),
                bytes: cpu_layers[i].len(),
                sqnr_db,
                local_sqnr_db,
            });
        }
        let sqnr_ms = ms_since(start);

        let bit_exact = gpu_layers.as_ref().map(|g| {
            let logits = cpu_layers.last().expect("a model has layers");
            layers.iter().all(|l| l.differing_bytes == Some(0)) && g.logits_runs.iter().all(|run| run == logits)
        });
        Ok(Classification {
            model: self.float.name.clone(),
            scheme: self.quantized.label(),
            image: name.to_string(),
            decode_ms,
            float,
            float_ms,
            int8_cpu,
            int8_gpu: gpu_layers.as_ref().map(|g| self.int8_run(&g.layers, g.elapsed_ms)),
            gpu_logits_ms: gpu_layers.as_ref().map(|g| g.logits_ms.clone()),
            inner_product: inner_product.map(|inner| format!("{inner:?}").to_lowercase()),
            bit_exact,
            layers,
            sqnr_ms,
        })
    }

    fn int8_run(&self, layers: &[Vec<u8>], elapsed_ms: f64) -> Int8Run {
        let logits = layers.last().expect("a model has layers").clone();
        let top = predictions(&self.float, &self.quantized.model.dequantize_logits(&logits), TOP);
        Int8Run { top, logits, elapsed_ms }
    }
}
