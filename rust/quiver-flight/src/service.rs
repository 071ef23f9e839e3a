//! The Flight service: Kafka-shaped batches in (DoExchange / DoPut), acknowledgements or
//! transformed rows out, and SQL over the recent output (GetFlightInfo / DoGet).

use crate::ipc::IpcReader;
use crate::metrics::Metrics;
use crate::proto::{BatchAck, ExchangeCommand, SqlQuery};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Int32Type, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use quiver_core::{CoreError, Engine, Pipeline, SinkError, SinkSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// Settings of the Flight endpoint.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Largest gRPC message accepted or sent. Spark micro-batches easily exceed gRPC's
    /// 4 MiB default, so this is raised on both sides.
    pub max_message_bytes: usize,
    /// When set, every call must carry `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// When set, the endpoint speaks TLS only (clients use `grpc+tls://`).
    pub tls: Option<TlsIdentity>,
}

/// The server's certificate chain and private key, PEM-encoded.
#[derive(Clone)]
pub struct TlsIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl TlsIdentity {
    /// Checks that the two parse as a certificate chain and its key, so that a bad file
    /// is a start-up error.
    pub fn new(cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Result<Self, ServeError> {
        let identity = Self { cert_pem, key_pem };
        tonic::transport::Server::builder()
            .tls_config(identity.server_config())
            .map_err(ServeError::Tls)?;
        Ok(identity)
    }

    fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity { .. }")
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 256 * 1024 * 1024,
            token: None,
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("Flight server on {addr} failed: {source}")]
    Transport {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error(
        "the TLS certificate or key of the Flight server is unusable (PEM files expected): {0}"
    )]
    Tls(tonic::transport::Error),
}

/// The service state, cheap to clone (one per connection).
#[derive(Debug, Clone)]
pub struct QuiverFlight {
    engine: Arc<Engine>,
    sinks: Arc<SinkSet>,
    metrics: Metrics,
    batches_in_flight: usize,
}

/// Batches of one exchange processed at once, by default. A real-time stream sends many
/// small batches on one exchange; one at a time, each would wait for the previous one's
/// sink round trip, and a stream whose batches arrive faster than that falls behind.
pub const DEFAULT_BATCHES_IN_FLIGHT: usize = 4;

impl QuiverFlight {
    /// `sinks` must come from `SinkSet::new` over the same engine.
    pub fn new(engine: Arc<Engine>, sinks: SinkSet, metrics: Metrics) -> Self {
        // Every sink's error count exists from the start, at 0: a rate over a counter that
        // appears only with the first error would show no data rather than no errors.
        for pipeline in engine.pipelines() {
            for sink in &pipeline.spec().sinks {
                metrics.sink_errors.with_label_values(&[sink]);
            }
        }
        Self {
            engine,
            sinks: Arc::new(sinks),
            metrics,
            batches_in_flight: DEFAULT_BATCHES_IN_FLIGHT,
        }
    }

    /// How many batches of one exchange are decoded, transformed and stored at once (at
    /// least 1). Their acknowledgements still go out in the order the batches came in, and
    /// each only after its own batch is stored; the write timestamps of the Cassandra sink
    /// keep the newest version of a row whatever order the writes land in.
    pub fn with_batches_in_flight(mut self, batches: usize) -> Self {
        self.batches_in_flight = batches.max(1);
        self
    }

    fn pipeline(&self, name: &str) -> Result<Arc<Pipeline>, Status> {
        self.engine.pipeline(name).map_err(core_status)
    }

    /// Decode, transform and store one batch; the ack is built only after every sink
    /// succeeded.
    async fn run_batch(
        &self,
        pipeline: &Arc<Pipeline>,
        cmd: &ExchangeCommand,
        sequence: u64,
        batch: RecordBatch,
        store: bool,
    ) -> Result<(BatchAck, RecordBatch), Status> {
        let name = pipeline.name();
        let _inflight = InflightGuard::new(&self.metrics);
        let outcome = self
            .run_batch_inner(pipeline, cmd, sequence, batch, store)
            .await;
        let label = if outcome.is_ok() { "ok" } else { "error" };
        self.metrics.batches.with_label_values(&[name, label]).inc();
        outcome
    }

    async fn run_batch_inner(
        &self,
        pipeline: &Arc<Pipeline>,
        cmd: &ExchangeCommand,
        sequence: u64,
        batch: RecordBatch,
        store: bool,
    ) -> Result<(BatchAck, RecordBatch), Status> {
        let name = pipeline.name();
        // Decode and SQL keep a core busy for tens of milliseconds per batch. On a runtime
        // worker they would also hold up the tasks queued behind them on that worker (the
        // connection receiving the next batch among them), so they run on a blocking
        // thread and the transfer of the next batch overlaps this one's work.
        let kafka_timestamps = batch.column_by_name("timestamp").cloned();
        let kafka_positions = store.then(|| KafkaPositions::of(&batch)).flatten();
        let job = pipeline.clone();
        let processed = tokio::task::spawn_blocking(move || {
            tokio::runtime::Handle::current().block_on(job.process(&batch))
        })
        .await
        .map_err(|e| Status::internal(format!("the batch's processing stopped: {e}")))?
        .map_err(|e| {
            let status = core_status(e);
            tracing::warn!(pipeline = name, batch_id = cmd.batch_id, partition = cmd.partition, attempt = cmd.attempt, %status, "batch failed");
            status
        })?;
        let m = &self.metrics;
        m.rows_in
            .with_label_values(&[name])
            .inc_by(processed.rows_in as u64);
        m.rows_rejected
            .with_label_values(&[name])
            .inc_by(processed.rejects.num_rows() as u64);
        m.stage_seconds
            .with_label_values(&[name, "decode"])
            .observe(processed.timings.decode.as_secs_f64());
        m.stage_seconds
            .with_label_values(&[name, "sql"])
            .observe(processed.timings.sql.as_secs_f64());

        let run = self
            .sinks
            .store_processed(pipeline, processed, !store)
            .await
            .map_err(|e| {
                m.sink_errors.with_label_values(&[e.sink()]).inc();
                tracing::warn!(pipeline = name, batch_id = cmd.batch_id, partition = cmd.partition, error = %e, "sink write failed; batch not acknowledged");
                sink_status(e)
            })?;
        if !run.stored.reports.is_empty() {
            for (sink_name, report) in &run.stored.reports {
                m.rows_written
                    .with_label_values(&[name, sink_name])
                    .inc_by(report.rows_written);
            }
            m.stage_seconds
                .with_label_values(&[name, "sink"])
                .observe(run.stored.elapsed.as_secs_f64());
            if let (true, Some(timestamps)) = (store, &kafka_timestamps) {
                observe_write_latency(m, name, timestamps);
            }
        }
        if let Some(positions) = kafka_positions {
            positions.record(m, name);
        }
        let ack = BatchAck {
            pipeline: name.to_string(),
            batch_id: cmd.batch_id,
            partition: cmd.partition,
            attempt: cmd.attempt,
            sequence,
            rows_in: run.rows_in(),
            rows_out: run.rows_out(),
            rows_written: run.rows_written(),
            rows_rejected: run.rows_rejected(),
            decode_micros: micros(run.processed.timings.decode),
            sql_micros: micros(run.processed.timings.sql),
            sink_micros: micros(run.stored.elapsed),
        };
        Ok((ack, run.processed.output))
    }

    /// Runs an exchange's input batches through `run_batch`, up to `batches_in_flight` at
    /// once, and yields their results in input order.
    fn run_batches(
        &self,
        pipeline: Arc<Pipeline>,
        cmd: ExchangeCommand,
        batches: InputBatches,
        store: bool,
    ) -> impl Stream<Item = Result<(BatchAck, RecordBatch), Status>> + Send + 'static {
        let svc = self.clone();
        batches
            .enumerate()
            .map(move |(seq, batch)| {
                let (svc, pipeline, cmd) = (svc.clone(), pipeline.clone(), cmd.clone());
                async move {
                    let batch = batch.map_err(flight_status)?;
                    svc.run_batch(&pipeline, &cmd, seq as u64, batch, store)
                        .await
                }
            })
            .buffered(self.batches_in_flight)
    }

    /// Reads the command from the first message and returns the pipeline, the command
    /// and the decoded input batches.
    async fn open_exchange(
        &self,
        mut input: Streaming<FlightData>,
    ) -> Result<(Arc<Pipeline>, ExchangeCommand, InputBatches), Status> {
        let first = input.message().await?.ok_or_else(|| {
            Status::invalid_argument(
                "the stream was empty: send a FlightDescriptor (CMD = ExchangeCommand) with the schema, then batches",
            )
        })?;
        let descriptor = first.flight_descriptor.clone().ok_or_else(|| {
            Status::invalid_argument(
                "the first message has no FlightDescriptor: set it to CMD with a serialized quiver.v1.ExchangeCommand",
            )
        })?;
        if descriptor.r#type() != DescriptorType::Cmd {
            return Err(Status::invalid_argument(
                "the FlightDescriptor must be of type CMD carrying a quiver.v1.ExchangeCommand",
            ));
        }
        let cmd = ExchangeCommand::decode(descriptor.cmd.as_ref()).map_err(|e| {
            Status::invalid_argument(format!(
                "the descriptor's cmd is not a quiver.v1.ExchangeCommand: {e}"
            ))
        })?;
        let pipeline = self.pipeline(&cmd.pipeline)?;
        let mut reader = IpcReader::default();
        let batches = stream::once(async move { Ok(first) })
            .chain(input)
            .map_err(|s| FlightError::Tonic(Box::new(s)))
            .try_filter_map(move |data| std::future::ready(reader.read(data)));
        Ok((pipeline, cmd, read_ahead(batches)))
    }

    /// The pipeline named by a PATH descriptor `[pipeline]` or `[pipeline, input|output]`.
    fn path_target(&self, d: &FlightDescriptor) -> Result<(Arc<Pipeline>, bool), Status> {
        match d.path.as_slice() {
            [name] => Ok((self.pipeline(name)?, false)),
            [name, which] if which == "output" => Ok((self.pipeline(name)?, false)),
            [name, which] if which == "input" => Ok((self.pipeline(name)?, true)),
            _ => Err(Status::invalid_argument(format!(
                "descriptor path {:?} must be [pipeline] or [pipeline, \"input\"|\"output\"]",
                d.path
            ))),
        }
    }

    fn pipeline_info(&self, p: &Pipeline) -> Result<FlightInfo, Status> {
        let query = SqlQuery {
            sql: format!("SELECT * FROM \"{}\"", p.name()),
        };
        FlightInfo::new()
            .try_with_schema(&p.output_schema())
            .map_err(|e| Status::internal(format!("encoding schema of `{}`: {e}", p.name())))
            .map(|info| {
                info.with_descriptor(FlightDescriptor::new_path(vec![p.name().to_string()]))
                    .with_endpoint(
                        FlightEndpoint::new().with_ticket(Ticket::new(query.encode_to_vec())),
                    )
                    .with_total_records(p.window().rows() as i64)
            })
    }

    fn sql_of(bytes: &[u8]) -> Result<String, Status> {
        let q = SqlQuery::decode(bytes).map_err(|e| {
            Status::invalid_argument(format!("expected a serialized quiver.v1.SqlQuery: {e}"))
        })?;
        if q.sql.trim().is_empty() {
            return Err(Status::invalid_argument("the SqlQuery has an empty `sql`"));
        }
        Ok(q.sql)
    }
}

struct InflightGuard<'a>(&'a Metrics);

impl<'a> InflightGuard<'a> {
    fn new(m: &'a Metrics) -> Self {
        m.inflight_batches.inc();
        Self(m)
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.inflight_batches.dec();
    }
}

/// The input batches of one exchange, in order.
type InputBatches = BoxStream<'static, Result<RecordBatch, FlightError>>;

/// Receives and decodes the next input batch on a runtime task while the current one is
/// processed, so that receiving it (gRPC reassembles each message into one buffer: tens
/// of MiB per Spark batch) does not add to the exchange's time. One batch is held ahead
/// at most.
fn read_ahead(
    batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
) -> InputBatches {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut batches = std::pin::pin!(batches);
        while let Some(batch) = batches.next().await {
            // A closed channel means the call ended (error or client gone): stop reading.
            if tx.send(batch).await.is_err() {
                break;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) }).boxed()
}

/// Observes, for every record of a stored batch, the time from its Kafka timestamp to now.
/// Records without a timestamp (clients that are not Spark may leave it out) are skipped.
fn observe_write_latency(m: &Metrics, pipeline: &str, timestamps: &ArrayRef) {
    // Spark's Arrow batches carry microseconds, the JVM writer's milliseconds.
    let DataType::Timestamp(_, zone) = timestamps.data_type() else {
        return;
    };
    let Ok(timestamps) = cast(
        timestamps,
        &DataType::Timestamp(TimeUnit::Millisecond, zone.clone()),
    ) else {
        return;
    };
    let timestamps = timestamps.as_primitive::<TimestampMillisecondType>();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let histogram = m.write_latency_seconds.with_label_values(&[pipeline]);
    for ts in timestamps.iter().flatten() {
        // A clock step can put a timestamp in the future; that record took no time.
        histogram.observe((now_ms - ts).max(0) as f64 / 1000.0);
    }
}

/// The Kafka coordinates of an input batch, kept to record how far each partition has
/// been stored once the sinks succeed.
struct KafkaPositions {
    topics: ArrayRef,
    partitions: ArrayRef,
    offsets: ArrayRef,
}

impl KafkaPositions {
    /// `None` when the batch lacks the columns (its schema is checked later, by the decoder).
    fn of(batch: &RecordBatch) -> Option<Self> {
        let column = |name| batch.column_by_name(name).cloned();
        Some(Self {
            topics: column("topic")?,
            partitions: column("partition")?,
            offsets: column("offset")?,
        })
    }

    fn record(&self, m: &Metrics, pipeline: &str) {
        let (Some(topics), Some(partitions), Some(offsets)) = (
            self.topics.as_string_opt::<i32>(),
            self.partitions.as_primitive_opt::<Int32Type>(),
            self.offsets.as_primitive_opt::<Int64Type>(),
        ) else {
            return;
        };
        let mut highest = std::collections::BTreeMap::new();
        for i in 0..offsets.len() {
            let key = (
                topics.is_valid(i).then(|| topics.value(i)),
                partitions.value(i),
            );
            let offset = offsets.value(i);
            highest
                .entry(key)
                .and_modify(|o: &mut i64| *o = (*o).max(offset))
                .or_insert(offset);
        }
        for ((topic, partition), offset) in highest {
            m.offset_written(pipeline, topic.unwrap_or(""), partition, offset);
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

fn core_status(e: CoreError) -> Status {
    match &e {
        CoreError::UnknownPipeline { .. } => Status::not_found(e.to_string()),
        CoreError::InputSchema(_) | CoreError::Query(_) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

fn sink_status(e: SinkError) -> Status {
    if e.is_retryable() {
        Status::unavailable(e.to_string())
    } else {
        Status::internal(e.to_string())
    }
}

fn flight_status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => Status::invalid_argument(format!("reading the Arrow stream: {other}")),
    }
}

fn ack_data(ack: &BatchAck) -> FlightData {
    FlightData {
        app_metadata: ack.encode_to_vec().into(),
        ..Default::default()
    }
}

/// Encodes output with the encoder's default ~2 MiB messages, so that even a client that
/// kept gRPC's 4 MiB receive limit can read any result.
fn encode_batches(
    schema: Arc<Schema>,
    batches: BoxStream<'static, Result<RecordBatch, FlightError>>,
) -> BoxStream<'static, Result<FlightData, Status>> {
    FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(flight_status)
        .boxed()
}

#[tonic::async_trait]
impl FlightService for QuiverFlight {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "no handshake: send `authorization: Bearer <token>` on every call when the server has a token",
        ))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let infos = self
            .engine
            .pipelines()
            .map(|p| self.pipeline_info(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(
            stream::iter(infos.into_iter().map(Ok)).boxed(),
        ))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let d = request.into_inner();
        if d.r#type() == DescriptorType::Path {
            let (p, _) = self.path_target(&d)?;
            return Ok(Response::new(self.pipeline_info(&p)?));
        }
        let sql = Self::sql_of(&d.cmd)?;
        let schema = self.engine.query_schema(&sql).await.map_err(core_status)?;
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("encoding the query schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(d.cmd.clone())))
            .with_descriptor(d);
        Ok(Response::new(info))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "queries finish quickly: use GetFlightInfo instead of PollFlightInfo",
        ))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let d = request.into_inner();
        let schema = if d.r#type() == DescriptorType::Path {
            let (p, input) = self.path_target(&d)?;
            if input {
                p.input_schema()
            } else {
                p.output_schema()
            }
        } else {
            let sql = Self::sql_of(&d.cmd)?;
            self.engine.query_schema(&sql).await.map_err(core_status)?
        };
        let result = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| {
                Status::internal(format!("encoding the schema: {e}"))
            })?;
        Ok(Response::new(result))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let sql = Self::sql_of(&request.into_inner().ticket)?;
        let (schema, batches) = self.engine.query(&sql).await.map_err(core_status)?;
        let batches = stream::iter(batches.into_iter().map(Ok)).boxed();
        Ok(Response::new(encode_batches(schema, batches)))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let (pipeline, cmd, batches) = self.open_exchange(request.into_inner()).await?;
        let out = self
            .run_batches(pipeline, cmd, batches, true)
            .map_ok(|(ack, _)| PutResult {
                app_metadata: ack.encode_to_vec().into(),
            })
            .boxed();
        Ok(Response::new(out))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented(format!(
            "action `{}` is not supported; quiver has no actions",
            request.into_inner().r#type
        )))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(stream::empty().boxed()))
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let (pipeline, cmd, batches) = self.open_exchange(request.into_inner()).await?;
        let return_rows = cmd.return_rows;
        let output_schema = pipeline.output_schema();
        let results = self.run_batches(pipeline, cmd, batches, !return_rows);
        if return_rows {
            let rows = results
                .map_ok(|(_, rows)| rows)
                .map_err(|s| FlightError::Tonic(Box::new(s)))
                .boxed();
            return Ok(Response::new(encode_batches(output_schema, rows)));
        }
        Ok(Response::new(
            results.map_ok(|(ack, _)| ack_data(&ack)).boxed(),
        ))
    }
}

/// Whether `given` is the bearer token `expected`, compared in a time that does not
/// reveal how long a prefix matched. The HTTP endpoints check their tokens with it too.
pub fn token_matches(expected: &str, given: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn check_token(expected: &str, metadata: &MetadataMap) -> Result<(), Status> {
    let given = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Status::unauthenticated(
                "this server needs `authorization: Bearer <token>` (QUIVER_TOKEN)",
            )
        })?;
    if token_matches(expected, given) {
        Ok(())
    } else {
        Err(Status::unauthenticated("the bearer token is wrong"))
    }
}

/// HTTP/2 flow-control windows: how much a peer may send before it hears back. A stream's
/// window holds a few of Spark's default Arrow batches (10,000 records, ~11 MiB), so the
/// next batch crosses while the current one is processed instead of waiting for window
/// updates; this is also the most a connection buffers unread.
pub const STREAM_WINDOW_BYTES: u32 = 32 * 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;

/// Serves `svc` on an already bound listener until `shutdown` resolves; in-flight calls
/// are allowed to finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    svc: QuiverFlight,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let server = FlightServiceServer::new(svc)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let token = config.token.clone();
    let auth = move |req: Request<()>| match &token {
        Some(t) => check_token(t, req.metadata()).map(|_| req),
        None => Ok(req),
    };
    let service = tonic::service::interceptor::InterceptedService::new(server, auth);
    // HTTP/2's default flow-control window is 64 KiB: a client may send only that much
    // before it waits for the server's window update, so a micro-batch of tens of MiB
    // crossed loopback in hundreds of round trips. Larger frames (default 16 KiB) cut
    // the per-frame work on both sides.
    let mut builder = tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(Some(1024 * 1024));
    if let Some(tls) = &config.tls {
        builder = builder
            .tls_config(tls.server_config())
            .map_err(ServeError::Tls)?;
    }
    // tonic sets TCP_NODELAY only on sockets it binds itself. Without it Nagle's
    // algorithm holds each small frame (an ack, a window update) until the client's TCP
    // acknowledges the previous one, and the client waits on those frames.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|source| ServeError::Transport { addr, source })
}
