//! Records per second of the synthetic generator, the upper bound of the synthetic source.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quiver_source::synthetic;

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("synthetic");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("write_record x1000", |b| {
        let mut value = String::with_capacity(1536);
        let mut next = 0u64;
        b.iter(|| {
            for _ in 0..1000 {
                value.clear();
                let key = synthetic::write_record(7, next, &mut value);
                next += 1;
                std::hint::black_box((&key, &value));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
