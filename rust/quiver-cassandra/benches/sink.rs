//! Cassandra sink rows/s on the local stack: 10k-row `users` batches upserted into a
//! scratch keyspace (dropped afterwards). Needs Cassandra (`scripts/stack up cassandra`,
//! QUIVER_CASSANDRA_NODES); without it the bench says so and measures nothing.
//!
//! Run: `cargo bench --workspace --bench sink` (with `-p`, cargo would resolve other features and rebuild DataFusion) (results: docs/BENCHMARKS.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quiver_cassandra::{CassandraConfig, CassandraSink};
use quiver_core::Sink;
use quiver_core::synth::users_batch;
use quiver_core::{Engine, PipelineSpec};

const KEYSPACE: &str = "quiver_bench";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let nodes: Vec<String> = std::env::var("QUIVER_CASSANDRA_NODES")
        .unwrap_or_else(|_| "127.0.0.1:9042".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let sink = match rt.block_on(CassandraSink::connect(CassandraConfig {
        nodes,
        keyspace: KEYSPACE.into(),
        ..CassandraConfig::default()
    })) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping the Cassandra sink bench: {e}");
            return;
        }
    };
    let engine = rt
        .block_on(Engine::new(vec![PipelineSpec::users()], 0))
        .expect("plans");
    let pipeline = engine.pipeline("users").expect("users");
    let processed = rt
        .block_on(pipeline.process(&users_batch(42, 10_000)))
        .expect("processes");

    let mut group = c.benchmark_group("cassandra");
    group.sample_size(10);
    group.throughput(Throughput::Elements(processed.output.num_rows() as u64));
    group.bench_function("upsert_10k", |b| {
        b.iter(|| {
            rt.block_on(sink.write("users", &processed.output, &processed.rejects))
                .expect("writes")
        })
    });
    group.finish();
    rt.block_on(
        sink.session()
            .query_unpaged(format!("DROP KEYSPACE {KEYSPACE}"), ()),
    )
    .expect("drops the scratch keyspace");
}

criterion_group!(benches, bench);
criterion_main!(benches);
