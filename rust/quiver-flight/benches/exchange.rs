//! What the Flight hop costs, on loopback with `--sink none`, against calling the same
//! pipeline in-process: one batch per DoExchange (a round trip: batch in, ack out), and
//! a stream of batches in one DoExchange, as a Spark task sends its partition. Each
//! exchange is sent three ways: every batch as one message, and split by arrow-flight's
//! encoder into messages of its default size (2 MiB) or of 512 KiB, which the service
//! acknowledges one by one.
//!
//! Run: `cargo bench --workspace --bench exchange` (with `-p`, cargo would resolve other features and rebuild DataFusion) (results: docs/BENCHMARKS.md).

use arrow::array::RecordBatch;
use arrow_flight::FlightDescriptor;
use arrow_flight::encode::{FlightDataEncoderBuilder, GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES};
use arrow_flight::flight_service_client::FlightServiceClient;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::{StreamExt, stream};
use prost::Message;
use quiver_core::{Engine, NoSink, PipelineSpec, SinkSet};
use quiver_flight::proto::{BatchAck, ExchangeCommand};
use quiver_flight::{Metrics, QuiverFlight, ServiceConfig};
use quiver_testkit::users_batch;
use std::sync::Arc;
use tonic::transport::Channel;

// The allocator of the `quiver` binary, so the bench measures what the service runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MAX: usize = 256 * 1024 * 1024;

/// Sends `batches` in one DoExchange in messages of at most `message_bytes`, encoding
/// each as the transport asks for it (as a streaming client does), and returns the rows
/// the acks count.
async fn exchange(
    client: &mut FlightServiceClient<Channel>,
    batches: &[RecordBatch],
    message_bytes: usize,
) -> u64 {
    let cmd = ExchangeCommand {
        pipeline: "users".into(),
        ..Default::default()
    };
    let frames = FlightDataEncoderBuilder::new()
        .with_max_flight_data_size(message_bytes)
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(cmd.encode_to_vec())))
        .build(stream::iter(batches.to_vec()).map(Ok))
        .map(|frame| frame.expect("encodes"));
    let mut response = client
        .do_exchange(frames)
        .await
        .expect("exchange starts")
        .into_inner();
    let mut rows = 0;
    while let Some(msg) = response.message().await.expect("an ack") {
        rows += BatchAck::decode(msg.app_metadata.as_ref())
            .expect("an ack")
            .rows_out;
    }
    rows
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut spec = PipelineSpec::users();
    spec.sinks = vec!["none".into()];
    let engine = Arc::new(rt.block_on(Engine::new(vec![spec], 0)).expect("plans"));
    let pipeline = engine.pipeline("users").expect("users");
    let sinks = SinkSet::new(&engine, vec![Arc::new(NoSink)]).expect("sinks");
    let svc = QuiverFlight::new(engine.clone(), sinks, Metrics::new().expect("metrics"));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    let config = ServiceConfig {
        max_message_bytes: MAX,
        ..ServiceConfig::default()
    };
    rt.spawn(quiver_flight::serve(
        listener,
        svc,
        config,
        std::future::pending(),
    ));
    let mut client = rt.block_on(async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connects");
        FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX)
            .max_encoding_message_size(MAX)
    });

    let mut group = c.benchmark_group("flight");
    group.sample_size(10);
    // (batches, records each): one 10k batch (Spark's default Arrow batch), one 100k
    // batch, and ten 10k batches streamed in one exchange.
    for (count, n) in [(1usize, 10_000usize), (1, 100_000), (10, 10_000)] {
        let batches: Vec<RecordBatch> = (0..count).map(|i| users_batch(42 + i as u64, n)).collect();
        let records = (count * n) as u64;
        let label = format!("{count}x{n}");
        group.throughput(Throughput::Elements(records));
        group.bench_with_input(
            BenchmarkId::new("in-process", &label),
            &batches,
            |b, batches| {
                b.iter(|| {
                    for batch in batches {
                        rt.block_on(pipeline.process(batch)).expect("processes");
                    }
                })
            },
        );
        for (variant, message_bytes) in [
            ("do_exchange", MAX),
            (
                "do_exchange_2MiB_messages",
                GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES,
            ),
            ("do_exchange_512KiB_messages", 512 * 1024),
        ] {
            group.bench_with_input(BenchmarkId::new(variant, &label), &batches, |b, batches| {
                b.iter(|| {
                    let rows = rt.block_on(exchange(&mut client, batches, message_bytes));
                    assert_eq!(rows, records)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
