//! Decode + SQL throughput of the `users` pipeline on one thread, for batches of 1k, 10k
//! and 100k synthetic randomuser records.
//!
//! Run: `cargo bench --locked --workspace --bench decode_sql` (results: docs/BENCHMARKS.md).

use arrow::array::AsArray;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quiver_core::{Engine, PipelineSpec, decode_users};
use quiver_testkit::users_batch;
use std::hint::black_box;

// The allocator of the `quiver` binary, so the bench measures what the service runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let engine = rt
        .block_on(Engine::new(vec![PipelineSpec::users()], 0))
        .expect("the users pipeline plans");
    let pipeline = engine.pipeline("users").expect("users exists");

    let mut group = c.benchmark_group("users");
    group.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        let batch = users_batch(42, n);
        let json_bytes = batch
            .column_by_name("value")
            .map_or(0, |v| v.as_binary::<i32>().values().len());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("decode", n), &batch, |b, batch| {
            b.iter(|| black_box(decode_users(batch, 0).expect("decodes")))
        });
        group.bench_with_input(BenchmarkId::new("decode+sql", n), &batch, |b, batch| {
            b.iter(|| black_box(rt.block_on(pipeline.process(batch)).expect("processes")))
        });
        eprintln!("batch of {n}: {json_bytes} bytes of JSON");
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
