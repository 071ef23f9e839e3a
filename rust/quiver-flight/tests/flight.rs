//! The Flight service from a Rust client: round trips, SQL over the window, auth, and
//! the status of each kind of bad input.

use arrow::array::{AsArray, Int32Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, TimeUnit};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::utils::batches_to_flight_data;
use arrow_flight::{FlightClient, FlightData, FlightDescriptor, PutResult, Ticket};
use async_trait::async_trait;
use futures::{TryStreamExt, stream};
use prost::Message;
use quiver_core::schema::created_users_schema;
use quiver_core::{Engine, NoSink, PipelineSpec, Sink, SinkError, SinkReport, SinkSet};
use quiver_flight::client::{connect, sql};
use quiver_flight::proto::{BatchAck, ExchangeCommand, SqlQuery};
use quiver_flight::{Metrics, QuiverFlight, ServiceConfig, TlsIdentity};
use quiver_testkit::{kafka_batch, users_batch};
use std::sync::Arc;
use tokio::sync::oneshot;
use tonic::Code;

const MAX: usize = 64 * 1024 * 1024;

struct Server {
    endpoint: String,
    metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap();
    }
}

#[derive(Debug)]
struct DownSink;

#[async_trait]
impl Sink for DownSink {
    fn name(&self) -> &str {
        "down"
    }
    async fn write(
        &self,
        _: &str,
        _: &RecordBatch,
        _: &RecordBatch,
    ) -> Result<SinkReport, SinkError> {
        Err(SinkError::Unavailable {
            sink: "down".into(),
            message: "connection refused".into(),
        })
    }
}

async fn start_with(sink: Arc<dyn Sink>, config: ServiceConfig) -> Server {
    let mut spec = PipelineSpec::users();
    spec.sinks = vec![sink.name().to_string()];
    let engine = Arc::new(Engine::new(vec![spec], 10_000).await.unwrap());
    let sinks = SinkSet::new(&engine, vec![sink]).unwrap();
    let metrics = Metrics::new().unwrap();
    let svc = QuiverFlight::new(engine, sinks, metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        quiver_flight::serve(listener, svc, config, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    Server {
        endpoint,
        metrics,
        stop: Some(tx),
        task,
    }
}

async fn start() -> Server {
    start_with(Arc::new(NoSink), ServiceConfig::default()).await
}

async fn client(s: &Server) -> FlightClient {
    connect(&s.endpoint, None, None, MAX).await.unwrap()
}

fn command(pipeline: &str, return_rows: bool) -> FlightDescriptor {
    FlightDescriptor::new_cmd(
        ExchangeCommand {
            pipeline: pipeline.into(),
            batch_id: 7,
            partition: 2,
            attempt: 0,
            return_rows,
        }
        .encode_to_vec(),
    )
}

fn encode(
    descriptor: FlightDescriptor,
    batches: Vec<RecordBatch>,
) -> impl futures::Stream<Item = Result<FlightData, FlightError>> + Send + 'static {
    FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(stream::iter(batches.into_iter().map(Ok)))
}

/// Sends the batches (zero-row ones included) and collects the acknowledgements: the
/// metadata-only messages, whose IPC header is empty as in the Flight spec.
async fn exchange_acks(
    c: &mut FlightClient,
    d: FlightDescriptor,
    batches: Vec<RecordBatch>,
) -> Result<Vec<BatchAck>, FlightError> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(quiver_core::schema::kafka_input_schema);
    let mut frames = batches_to_flight_data(&schema, batches).unwrap();
    frames[0].flight_descriptor = Some(d);
    let mut request = tonic::Request::new(stream::iter(frames));
    *request.metadata_mut() = c.metadata().clone();
    let tonic_err = |s: tonic::Status| FlightError::Tonic(Box::new(s));
    let mut response = c
        .inner_mut()
        .do_exchange(request)
        .await
        .map_err(tonic_err)?
        .into_inner();
    let mut acks = Vec::new();
    while let Some(msg) = response.message().await.map_err(tonic_err)? {
        assert!(msg.data_header.is_empty(), "only acknowledgements expected");
        acks.push(BatchAck::decode(msg.app_metadata.as_ref()).unwrap());
    }
    Ok(acks)
}

fn code(e: FlightError) -> (Code, String) {
    match e {
        FlightError::Tonic(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other}"),
    }
}

fn with_bad_records() -> RecordBatch {
    let good = quiver_testkit::users(9, 3);
    let mut values: Vec<Option<&[u8]>> = good.iter().map(|s| Some(s.as_bytes())).collect();
    values.push(Some(b"{broken"));
    kafka_batch(&values, 2, 40)
}

#[tokio::test]
async fn do_exchange_acknowledges_each_batch() {
    let s = start().await;
    // Error counts exist before any error, so that their rate reads 0, not "no data".
    assert!(
        s.metrics
            .render()
            .contains("quiver_sink_errors_total{sink=\"none\"} 0\n"),
        "{}",
        s.metrics.render()
    );
    let mut c = client(&s).await;
    let acks = exchange_acks(
        &mut c,
        command("users", false),
        vec![users_batch(1, 100), with_bad_records()],
    )
    .await
    .unwrap();
    assert_eq!(acks.len(), 2);
    assert_eq!(
        (
            acks[0].sequence,
            acks[0].rows_in,
            acks[0].rows_out,
            acks[0].rows_rejected
        ),
        (0, 100, 100, 0)
    );
    assert_eq!(
        (
            acks[1].sequence,
            acks[1].rows_in,
            acks[1].rows_out,
            acks[1].rows_rejected
        ),
        (1, 4, 3, 1)
    );
    assert_eq!(
        (
            acks[1].batch_id,
            acks[1].partition,
            acks[1].pipeline.as_str()
        ),
        (7, 2, "users")
    );
    assert_eq!(acks[0].rows_written, 0, "--sink none writes nothing");
    // Every stored record's latency to the write is observed, rejects included.
    assert!(
        s.metrics
            .render()
            .contains("quiver_write_latency_seconds_count{pipeline=\"users\"} 104\n"),
        "{}",
        s.metrics.render()
    );
    // How far each partition is stored (rejects count: they are stored too), for Kafka lag.
    let text = s.metrics.render();
    for line in [
        "quiver_kafka_offset_written{partition=\"0\",pipeline=\"users\",topic=\"users_created\"} 99\n",
        "quiver_kafka_offset_written{partition=\"2\",pipeline=\"users\",topic=\"users_created\"} 43\n",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }

    // The accepted rows are now visible to SQL over the recent-output window.
    let (_, batches) = sql(&mut c, "SELECT count(*) FROM users").await.unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        103
    );
    s.stop().await;
}

#[tokio::test]
async fn do_exchange_can_return_the_rows() {
    let s = start().await;
    let mut c = client(&s).await;
    let rows: Vec<RecordBatch> = c
        .do_exchange(encode(
            command("users", true),
            vec![users_batch(2, 20), users_batch(3, 5)],
        ))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 25);
    assert_eq!(rows[0].schema(), created_users_schema());
    s.stop().await;
}

/// Remembers how many rows and rejects it was given.
#[derive(Debug, Default)]
struct CountingSink(std::sync::Mutex<(usize, usize)>);

#[async_trait]
impl Sink for CountingSink {
    fn name(&self) -> &str {
        "counting"
    }
    async fn write(
        &self,
        _: &str,
        rows: &RecordBatch,
        rejects: &RecordBatch,
    ) -> Result<SinkReport, SinkError> {
        let mut seen = self.0.lock().unwrap();
        seen.0 += rows.num_rows();
        seen.1 += rejects.num_rows();
        Ok(SinkReport {
            rows_written: rows.num_rows() as u64,
            rejects_written: rejects.num_rows() as u64,
        })
    }
}

#[tokio::test]
async fn returned_rows_are_not_stored_but_their_rejects_are() {
    let sink = Arc::new(CountingSink::default());
    let s = start_with(sink.clone(), ServiceConfig::default()).await;
    let mut c = client(&s).await;
    let rows: Vec<RecordBatch> = c
        .do_exchange(encode(command("users", true), vec![with_bad_records()]))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert_eq!(*sink.0.lock().unwrap(), (0, 1), "(rows, rejects) stored");

    // Rejects are also kept for SQL, next to the pipeline's output.
    let (_, batches) = sql(
        &mut c,
        "SELECT kafka_partition, kafka_offset, reason FROM users_rejects",
    )
    .await
    .unwrap();
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(0), 2);
    assert_eq!(batch.column(1).as_primitive::<Int64Type>().value(0), 43);
    assert!(
        batch
            .column(2)
            .as_string::<i32>()
            .value(0)
            .contains("invalid JSON"),
        "{batch:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn do_put_returns_one_ack_per_batch() {
    let s = start().await;
    let mut c = client(&s).await;
    let results: Vec<PutResult> = c
        .do_put(encode(
            command("users", false),
            vec![users_batch(4, 10), users_batch(5, 30)],
        ))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let rows: Vec<u64> = results
        .iter()
        .map(|r| BatchAck::decode(r.app_metadata.as_ref()).unwrap().rows_out)
        .collect();
    assert_eq!(rows, vec![10, 30]);
    s.stop().await;
}

#[tokio::test]
async fn pipelines_and_their_schemas_are_listed() {
    let s = start().await;
    let mut c = client(&s).await;
    let infos: Vec<_> = c
        .list_flights("")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(
        infos[0].flight_descriptor.as_ref().unwrap().path,
        vec!["users"]
    );
    let output = c
        .get_schema(FlightDescriptor::new_path(vec!["users".into()]))
        .await
        .unwrap();
    assert_eq!(output, *created_users_schema());
    let input = c
        .get_schema(FlightDescriptor::new_path(vec![
            "users".into(),
            "input".into(),
        ]))
        .await
        .unwrap();
    assert!(input.field_with_name("value").is_ok());

    // A SQL command through GetFlightInfo, then DoGet on the ticket it returns.
    let cmd = SqlQuery {
        sql: "SELECT id FROM users".into(),
    }
    .encode_to_vec();
    let info = c
        .get_flight_info(FlightDescriptor::new_cmd(cmd))
        .await
        .unwrap();
    let ticket: Ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut rows = c.do_get(ticket).await.unwrap();
    while rows.try_next().await.unwrap().is_some() {}
    assert_eq!(rows.schema().unwrap().field(0).name(), "id");
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_specific_status_and_the_service_keeps_serving() {
    let s = start().await;
    let mut c = client(&s).await;

    let err = exchange_acks(&mut c, command("nope", false), vec![users_batch(1, 1)])
        .await
        .unwrap_err();
    let (code_, msg) = code(err);
    assert_eq!(code_, Code::NotFound, "{msg}");
    assert!(msg.contains("unknown pipeline `nope`"), "{msg}");

    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "value",
            DataType::Int32,
            true,
        )])),
        vec![Arc::new(Int32Array::from(vec![1]))],
    )
    .unwrap();
    let (code_, msg) = code(
        exchange_acks(&mut c, command("users", false), vec![wrong])
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, Code::InvalidArgument, "{msg}");
    assert!(msg.contains("column `value` is Int32"), "{msg}");

    let (code_, msg) = code(
        exchange_acks(
            &mut c,
            FlightDescriptor::new_cmd(b"\xff\xff".to_vec()),
            vec![users_batch(1, 1)],
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code_, Code::InvalidArgument, "{msg}");

    let (code_, msg) = code(
        exchange_acks(
            &mut c,
            FlightDescriptor::new_path(vec!["users".into()]),
            vec![users_batch(1, 1)],
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code_, Code::InvalidArgument, "{msg}");
    assert!(msg.contains("CMD"), "{msg}");

    // No message at all.
    let nothing = c.do_exchange(stream::empty()).await;
    let err = match nothing {
        Err(e) => e,
        Ok(s) => s.try_collect::<Vec<_>>().await.unwrap_err(),
    };
    assert_eq!(code(err).0, Code::InvalidArgument);

    // A zero-row batch (an empty Spark partition) is acknowledged, not refused.
    let empty = kafka_batch(&[], 0, 0);
    let acks = exchange_acks(&mut c, command("users", false), vec![empty])
        .await
        .unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!((acks[0].rows_in, acks[0].rows_out), (0, 0));

    // Still serving.
    let acks = exchange_acks(&mut c, command("users", false), vec![users_batch(8, 3)])
        .await
        .unwrap();
    assert_eq!(acks[0].rows_out, 3);
    s.stop().await;
}

/// Spark's own Arrow batches (mapInArrow) carry the Kafka timestamp in microseconds; the
/// JVM writer's in milliseconds. Both count in the latency to the write.
#[tokio::test]
async fn microsecond_kafka_timestamps_count_in_the_write_latency() {
    let s = start().await;
    let mut c = client(&s).await;
    let batch = users_batch(1, 20);
    let micros = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let i = batch.schema().index_of("timestamp").unwrap();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[i] = Field::new("timestamp", micros.clone(), true);
    let mut columns = batch.columns().to_vec();
    columns[i] = cast(&columns[i], &micros).unwrap();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let acks = exchange_acks(&mut c, command("users", false), vec![batch])
        .await
        .unwrap();
    assert_eq!(acks[0].rows_out, 20);
    let text = s.metrics.render();
    assert!(
        text.contains("quiver_write_latency_seconds_count{pipeline=\"users\"} 20\n"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_failed_sink_write_is_an_error_never_an_ack() {
    let s = start_with(Arc::new(DownSink), ServiceConfig::default()).await;
    let mut c = client(&s).await;
    let err = exchange_acks(&mut c, command("users", false), vec![users_batch(1, 10)])
        .await
        .unwrap_err();
    let (code_, msg) = code(err);
    assert_eq!(code_, Code::Unavailable, "{msg}");
    assert!(msg.contains("connection refused"), "{msg}");
    // Rows that were not stored are not shown as passed through either.
    let (_, batches) = sql(&mut c, "SELECT count(*) FROM users").await.unwrap();
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 0);
    // ... nor as written.
    assert!(
        !s.metrics
            .render()
            .contains("quiver_write_latency_seconds_count"),
        "{}",
        s.metrics.render()
    );
    // ... nor as a Kafka position reached.
    assert!(
        !s.metrics.render().contains("quiver_kafka_offset_written"),
        "{}",
        s.metrics.render()
    );
    s.stop().await;
}

#[tokio::test]
async fn an_oversized_message_is_refused() {
    let config = ServiceConfig {
        max_message_bytes: 64 * 1024,
        ..ServiceConfig::default()
    };
    let s = start_with(Arc::new(NoSink), config).await;
    let mut c = client(&s).await;
    let big: Vec<u8> = vec![b' '; 256 * 1024];
    let batch = kafka_batch(&[Some(big.as_slice())], 0, 0);
    let (code_, msg) = code(
        exchange_acks(&mut c, command("users", false), vec![batch])
            .await
            .unwrap_err(),
    );
    // tonic's status for a message over the decoding limit.
    assert_eq!(code_, Code::OutOfRange, "{msg}");
    assert!(msg.contains("message length too large"), "{msg}");
    s.stop().await;
}

#[tokio::test]
async fn with_a_token_every_call_needs_it() {
    let config = ServiceConfig {
        token: Some("s3cret-token".into()),
        ..ServiceConfig::default()
    };
    let s = start_with(Arc::new(NoSink), config).await;

    let mut anonymous = client(&s).await;
    let (code_, _) = code(anonymous.list_flights("").await.err().unwrap());
    assert_eq!(code_, Code::Unauthenticated);
    let (code_, _) = code(
        sql(&mut anonymous, "SELECT 1")
            .await
            .err()
            .map(|e| match e {
                quiver_flight::client::ClientError::Flight(f) => f,
                other => panic!("{other}"),
            })
            .unwrap(),
    );
    assert_eq!(code_, Code::Unauthenticated);

    let mut wrong = connect(&s.endpoint, Some("guess"), None, MAX)
        .await
        .unwrap();
    let (code_, _) = code(wrong.list_flights("").await.err().unwrap());
    assert_eq!(code_, Code::Unauthenticated);

    let mut right = connect(&s.endpoint, Some("s3cret-token"), None, MAX)
        .await
        .unwrap();
    let acks = exchange_acks(&mut right, command("users", false), vec![users_batch(1, 2)])
        .await
        .unwrap();
    assert_eq!(acks[0].rows_out, 2);
    s.stop().await;
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI.
fn tls_files(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=quiver test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    (read("ca.pem"), read("server.pem"), read("server.key"))
}

#[tokio::test]
async fn tls_endpoint_serves_clients_that_trust_its_ca_only() {
    let dir = std::env::temp_dir().join(format!("quiver-tls-{}", std::process::id()));
    let (ca, cert, key) = tls_files(&dir);
    let config = ServiceConfig {
        tls: Some(TlsIdentity::new(cert, key).expect("valid PEM")),
        ..ServiceConfig::default()
    };
    let s = start_with(Arc::new(NoSink), config).await;
    let tls_endpoint = s.endpoint.replace("http://", "grpc+tls://");

    let mut client = connect(&tls_endpoint, None, Some(&ca), MAX).await.unwrap();
    let flights: Vec<_> = client
        .list_flights("")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(flights.len(), 1, "the users pipeline, over TLS");

    let err = connect(&tls_endpoint, None, None, MAX).await.unwrap_err();
    assert!(err.to_string().contains("--tls-ca-file"), "{err}");
    let mut plaintext = connect(&s.endpoint, None, None, MAX).await.unwrap();
    assert!(
        plaintext.list_flights("").await.is_err(),
        "a plaintext client must not get through to a TLS endpoint"
    );
    s.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unusable_tls_files_are_refused_at_start_up() {
    let err = TlsIdentity::new(b"not a certificate".to_vec(), b"not a key".to_vec()).unwrap_err();
    assert!(err.to_string().contains("PEM"), "{err}");
}
