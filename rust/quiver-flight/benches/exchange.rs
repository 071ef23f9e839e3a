//! What the Flight hop costs: one DoExchange round trip on loopback (batch in, ack out,
//! `--sink none`) against calling the same pipeline in-process, for 10k-record batches.
//!
//! Run: `cargo bench --workspace --bench exchange` (with `-p`, cargo would resolve other features and rebuild DataFusion) (results: docs/BENCHMARKS.md).

use arrow::array::RecordBatch;
use arrow_flight::FlightDescriptor;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::utils::batches_to_flight_data;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::stream;
use prost::Message;
use quiver_core::synth::users_batch;
use quiver_core::{Engine, NoSink, PipelineSpec, SinkSet};
use quiver_flight::proto::{BatchAck, ExchangeCommand};
use quiver_flight::{Metrics, QuiverFlight, ServiceConfig};
use std::sync::Arc;
use tonic::transport::Channel;

const MAX: usize = 256 * 1024 * 1024;

async fn exchange(client: &mut FlightServiceClient<Channel>, batch: &RecordBatch) -> BatchAck {
    let mut frames = batches_to_flight_data(&batch.schema(), vec![batch.clone()]).expect("encodes");
    let cmd = ExchangeCommand {
        pipeline: "users".into(),
        ..Default::default()
    };
    frames[0].flight_descriptor = Some(FlightDescriptor::new_cmd(cmd.encode_to_vec()));
    let mut response = client
        .do_exchange(stream::iter(frames))
        .await
        .expect("exchange starts")
        .into_inner();
    let msg = response.message().await.expect("ack").expect("one ack");
    BatchAck::decode(msg.app_metadata.as_ref()).expect("an ack")
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
    for n in [10_000usize, 100_000] {
        let batch = users_batch(42, n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("in-process", n), &batch, |b, batch| {
            b.iter(|| rt.block_on(pipeline.process(batch)).expect("processes"))
        });
        group.bench_with_input(BenchmarkId::new("do_exchange", n), &batch, |b, batch| {
            b.iter(|| {
                let ack = rt.block_on(exchange(&mut client, batch));
                assert_eq!(ack.rows_out, n as u64);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
