//! The idempotent, keyed producer and the accounting of its deliveries.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::ThreadedProducer;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use crate::admin::fetch_metadata;
use crate::{Error, KafkaConfig};

/// Header that names the source of each record.
pub const SOURCE_HEADER: &str = "source";

/// Counters of one producer, updated from the delivery-report thread.
pub struct DeliveryStats {
    started: Instant,
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    failed: AtomicU64,
    /// Enqueue-to-acknowledgement time in microseconds.
    latency_us: Mutex<Histogram<u64>>,
    first_failure: Mutex<Option<String>>,
}

/// A consistent-enough copy of [`DeliveryStats`] for summaries and metrics.
#[derive(Debug, Clone)]
pub struct DeliverySnapshot {
    pub sent: u64,
    /// Key plus value bytes of the messages handed to the producer.
    pub sent_bytes: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub failed: u64,
    pub latency: Histogram<u64>,
    pub first_failure: Option<String>,
}

impl DeliverySnapshot {
    /// Messages neither acknowledged nor failed yet.
    pub fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.delivered + self.failed)
    }

    /// A latency quantile (0.0..=1.0).
    pub fn latency_quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(q))
    }
}

impl DeliveryStats {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            sent: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid"),
            ),
            first_failure: Mutex::new(None),
        }
    }

    fn micros_since_start(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub fn snapshot(&self) -> DeliverySnapshot {
        // Deliveries are read first so that in_flight can never go negative.
        let delivered = self.delivered.load(Ordering::Acquire);
        let delivered_bytes = self.delivered_bytes.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        DeliverySnapshot {
            sent: self.sent.load(Ordering::Acquire),
            sent_bytes: self.sent_bytes.load(Ordering::Acquire),
            delivered,
            delivered_bytes,
            failed,
            latency: lock(&self.latency_us).clone(),
            first_failure: lock(&self.first_failure).clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves only counters behind; they are still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Receives librdkafka's delivery reports.
pub struct DeliveryContext {
    stats: std::sync::Arc<DeliveryStats>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    /// Enqueue time in microseconds since the producer started: no allocation per message.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, enqueued_us: usize) {
        let stats = &self.stats;
        match result {
            Ok(message) => {
                let latency = stats
                    .micros_since_start()
                    .saturating_sub(enqueued_us as u64);
                lock(&stats.latency_us).saturating_record(latency.max(1));
                let bytes = (message.payload_len() + message.key_len()) as u64;
                stats.delivered_bytes.fetch_add(bytes, Ordering::Release);
                stats.delivered.fetch_add(1, Ordering::Release);
            }
            Err((error, message)) => {
                stats.failed.fetch_add(1, Ordering::Release);
                let mut first = lock(&stats.first_failure);
                if first.is_none() {
                    *first = Some(format!(
                        "topic {:?} partition {}: {error}",
                        message.topic(),
                        message.partition()
                    ));
                }
            }
        }
    }
}

/// Idempotent, acks=all producer keyed by the caller; every message ends up counted as
/// delivered or failed.
pub struct Producer {
    inner: ThreadedProducer<DeliveryContext>,
    topic: String,
    headers: OwnedHeaders,
    stats: std::sync::Arc<DeliveryStats>,
}

impl Producer {
    /// `source` is written into the [`SOURCE_HEADER`] of every message.
    pub fn new(cfg: &KafkaConfig, source: &str) -> Result<Self, Error> {
        cfg.validate()?;
        let stats = std::sync::Arc::new(DeliveryStats::new());
        let inner: ThreadedProducer<DeliveryContext> = cfg
            .producer_config()
            .create_with_context(DeliveryContext {
                stats: stats.clone(),
            })
            .map_err(cfg.client_error("producer"))?;
        // Connecting and learning the partition leaders now, instead of with the first
        // records, keeps start-up out of their delivery latency and fails early when the
        // cluster cannot be reached.
        fetch_metadata(inner.client(), cfg, Some(&cfg.topic))?;
        let headers = OwnedHeaders::new().insert(Header {
            key: SOURCE_HEADER,
            value: Some(source),
        });
        Ok(Self {
            inner,
            topic: cfg.topic.clone(),
            headers,
            stats,
        })
    }

    pub fn stats(&self) -> std::sync::Arc<DeliveryStats> {
        self.stats.clone()
    }

    /// Messages that could not be delivered so far; cheap enough to check per message.
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(Ordering::Acquire)
    }

    /// Enqueues one message; waits while librdkafka's local queue is full.
    pub fn send(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let mut record =
            BaseRecord::with_opaque_to(&self.topic, self.stats.micros_since_start() as usize)
                .key(key)
                .payload(value)
                .headers(self.headers.clone());
        loop {
            match self.inner.send(record) {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Release);
                    self.stats
                        .sent_bytes
                        .fetch_add((key.len() + value.len()) as u64, Ordering::Release);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The polling thread drains delivery reports; give it and the
                    // network a moment.
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => {
                    return Err(Error::Enqueue {
                        topic: self.topic.clone(),
                        error,
                    });
                }
            }
        }
    }

    /// Waits for every enqueued message to be acknowledged or to fail, up to `timeout`.
    /// Returns a fatal producer error if librdkafka raised one.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        // A timeout is not an error here: what is still in flight shows in the snapshot.
        let _ = self.inner.flush(timeout);
        match self.inner.client().fatal_error() {
            Some((code, reason)) => Err(Error::Fatal(format!("{code}: {reason}"))),
            None => Ok(()),
        }
    }
}
