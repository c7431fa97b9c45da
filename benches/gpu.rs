//! The whole MobileNetV1 (0.75 and 1.0 × 224, seeded random quantized weights) on the GPU at batch 1 and 8 with
//! both inner-product paths, against the single-threaded CPU integer reference in the same run. Each GPU
//! iteration includes upload, one submit, the wait and the logits readback. Results are checked against the
//! reference before any timing. Run: `cargo bench --bench gpu` (MNQ_BENCH_PROFILE=1 also prints per-layer
//! GPU times from timestamp queries).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mnq_gpu::cpu_ref;
use mnq_gpu::gpu::{InnerProduct, Plan, Readback};
use mnq_gpu::model::synthetic::mobilenet_v1;
use std::time::Duration;

const SEED: u64 = 7;

fn whole_network(c: &mut Criterion) {
    let Some(gpu) = common::gpu_or_skip() else {
        return;
    };
    eprintln!("adapter: {}", gpu.info());
    for alpha in [0.75, 1.0] {
        let quant = common::random_quant_model(&mobilenet_v1(alpha, 224, SEED), SEED);
        let images: Vec<Vec<u8>> = (0..8).map(|i| common::random_u8(quant.input_shape.len(), SEED + i)).collect();
        let expected: Vec<Vec<u8>> = images.iter().map(|image| cpu_ref::run_u8(&quant, image).pop().unwrap()).collect();

        let mut group = c.benchmark_group(quant.name.clone());
        group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        group.throughput(Throughput::Elements(1));
        group.bench_function("cpu_ref_u8/1", |b| b.iter(|| cpu_ref::run_u8(&quant, &images[0])));
        for inner in InnerProduct::ALL {
            for batch in [1, 8] {
                let inputs: Vec<&[u8]> = images[..batch].iter().map(Vec::as_slice).collect();
                let mut plan = Plan::new(&gpu, &quant, batch, inner).expect("plan");
                let logits = plan.run(&gpu, &inputs, Readback::Logits).expect("run");
                let shape = quant.layers.last().expect("layers").output_shape;
                for (i, logits) in logits.iter().enumerate() {
                    let what = format!("{} {inner:?} batch {batch}, image {i}", quant.name);
                    if let Some(mismatch) = mnq_gpu::engine::compare(&what, shape, &expected[i], &logits[0]) {
                        panic!("{mismatch}");
                    }
                }
                if std::env::var("MNQ_BENCH_PROFILE").as_deref() == Ok("1") {
                    let profile = plan.profile(&gpu, &inputs).expect("profile");
                    eprintln!("{} {inner:?} batch {batch}: wall {:.1} ms", quant.name, profile.wall_ms);
                    for layer in &profile.layers {
                        eprintln!("  {:<16} {:8.2} ms", layer.name, layer.gpu_ms);
                    }
                }
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_with_input(BenchmarkId::new(format!("gpu_{inner:?}"), batch), &inputs, |b, inputs| {
                    b.iter(|| plan.run(&gpu, inputs, Readback::Logits).expect("run"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, whole_network);
criterion_main!(benches);
