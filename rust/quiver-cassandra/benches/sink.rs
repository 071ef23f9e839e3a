//! Cassandra sink rows/s on the local stack: 10k-row `users` batches upserted into a
//! scratch keyspace (dropped afterwards), by one writer and by two at once (as two Spark
//! tasks do). Needs Cassandra (`scripts/stack up cassandra`,
//! QUIVER_CASSANDRA_NODES); without it the bench says so and measures nothing.
//!
//! Run: `cargo bench --workspace --bench sink` (with `-p`, cargo would resolve other features and rebuild DataFusion) (results: docs/BENCHMARKS.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quiver_cassandra::{CassandraConfig, CassandraSink};
use quiver_core::Sink;
use quiver_core::{Engine, PipelineSpec};
use quiver_testkit::users_batch;

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
    // Two different batches, so the two writers of the concurrent case write different
    // rows, as two Spark tasks do.
    let [a, b] = [42, 43].map(|seed| {
        rt.block_on(pipeline.process(&users_batch(seed, 10_000)))
            .expect("processes")
    });
    let rows = a.output.num_rows() as u64;

    let mut group = c.benchmark_group("cassandra");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    group.bench_function("one_writer", |bench| {
        bench.iter(|| {
            rt.block_on(sink.write("users", &a.output, &a.rejects))
                .expect("writes")
        })
    });
    group.throughput(Throughput::Elements(2 * rows));
    group.bench_function("two_writers", |bench| {
        bench.iter(|| {
            rt.block_on(async {
                let (x, y) = tokio::join!(
                    sink.write("users", &a.output, &a.rejects),
                    sink.write("users", &b.output, &b.rejects)
                );
                x.and(y).expect("writes")
            })
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
