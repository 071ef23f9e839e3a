//! Prometheus metrics of the service, registered in their own registry so tests and
//! several services in one process do not collide.

use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// The process's CPU time, memory and file descriptors under the names every
    /// Prometheus client uses (`process_*`, no `quiver_` prefix), so one query covers every
    /// component.
    process: Registry,
    pub batches: IntCounterVec,
    pub rows_in: IntCounterVec,
    pub rows_written: IntCounterVec,
    pub rows_rejected: IntCounterVec,
    pub stage_seconds: HistogramVec,
    pub write_latency_seconds: HistogramVec,
    pub sink_errors: IntCounterVec,
    pub inflight_batches: IntGauge,
    offset_written: IntGaugeVec,
    /// Serialises `offset_written`'s read-compare-set: batches of one partition may be
    /// stored concurrently and the gauge must only move forward.
    offset_lock: Arc<Mutex<()>>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("quiver".into()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let batches = counter(
            "batches_total",
            "Input batches by pipeline and outcome (ok, error).",
            &["pipeline", "outcome"],
        )?;
        let rows_in = counter("rows_in_total", "Records received.", &["pipeline"])?;
        let rows_written = counter(
            "rows_written_total",
            "Rows stored by the sinks.",
            &["pipeline", "sink"],
        )?;
        let rows_rejected = counter(
            "rows_rejected_total",
            "Records that could not be decoded (sent to the rejects table).",
            &["pipeline"],
        )?;
        let sink_errors = counter(
            "sink_errors_total",
            "Failed sink writes (each fails its batch back to the caller).",
            &["sink"],
        )?;
        // Micro-batches take from tens of microseconds (decode of a small batch) to
        // seconds (a slow sink), so the buckets span 10 µs .. ~10 s.
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("stage_seconds", "Time per batch in each stage.")
                .buckets(prometheus::exponential_buckets(1e-5, 4.0, 11)?),
            &["pipeline", "stage"],
        )?;
        registry.register(Box::new(stage_seconds.clone()))?;
        // End-to-end latency of a record: from its Kafka timestamp to the moment the sinks
        // acknowledged its batch, i.e. to the write, not to the decode. Buckets are fine
        // in the milliseconds that real-time mode reaches and coarse up to a minute.
        let write_latency_seconds = HistogramVec::new(
            HistogramOpts::new(
                "write_latency_seconds",
                "Per record: Kafka timestamp to the sinks' acknowledgement of its batch.",
            )
            .buckets(vec![
                0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["pipeline"],
        )?;
        registry.register(Box::new(write_latency_seconds.clone()))?;
        let inflight_batches = IntGauge::new("inflight_batches", "Batches being processed.")?;
        registry.register(Box::new(inflight_batches.clone()))?;
        // Kafka lag is the broker's end offset minus this (minus one): the gauge says how
        // far each partition has been written, whichever engine or attempt wrote it.
        let offset_written = IntGaugeVec::new(
            Opts::new(
                "kafka_offset_written",
                "Highest Kafka offset whose record (row or reject) the sinks have stored.",
            ),
            &["pipeline", "topic", "partition"],
        )?;
        registry.register(Box::new(offset_written.clone()))?;
        let process = Registry::new();
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            process,
            batches,
            rows_in,
            rows_written,
            rows_rejected,
            stage_seconds,
            write_latency_seconds,
            sink_errors,
            inflight_batches,
            offset_written,
            offset_lock: Arc::default(),
        })
    }

    /// Records that `pipeline` stored `topic`'s `partition` up to `offset` (a replayed,
    /// older batch leaves the gauge where it is).
    pub fn offset_written(&self, pipeline: &str, topic: &str, partition: i32, offset: i64) {
        let _serial = self.offset_lock.lock().unwrap_or_else(|p| p.into_inner());
        let gauge =
            self.offset_written
                .with_label_values(&[pipeline, topic, &partition.to_string()]);
        if offset > gauge.get() {
            gauge.set(offset);
        }
    }

    /// Every metric's current value, as the Prometheus client holds them.
    pub fn gather(&self) -> Vec<MetricFamily> {
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        families
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which the
        // constructors above cannot produce.
        let _ = TextEncoder::new().encode(&self.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
