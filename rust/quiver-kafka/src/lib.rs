//! Kafka edge of quiver: an idempotent, keyed producer that accounts for every message,
//! topic creation, and reading back an offset range (the batch leg's Kafka source).
//!
//! The API is synchronous: the producer's I/O runs on librdkafka's threads and delivery
//! reports arrive on a polling thread, so a plain loop can feed it at full speed.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::metadata::Metadata;
use rdkafka::producer::ThreadedProducer;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

/// Header that names the source of each record.
pub const SOURCE_HEADER: &str = "source";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid Kafka setting: {0}")]
    Config(String),
    #[error("cannot create the Kafka {what} for {bootstrap}: {error}")]
    Client {
        what: &'static str,
        bootstrap: String,
        error: KafkaError,
    },
    #[error(
        "cannot reach Kafka at {bootstrap} (asked the cluster for metadata, waited {timeout:?}): \
         {error}; is the broker running (scripts/stack up kafka) and is the address right?"
    )]
    Unreachable {
        bootstrap: String,
        timeout: Duration,
        error: KafkaError,
    },
    #[error(
        "cannot create topic {topic:?} ({partitions} partitions, replication factor \
         {replication_factor}) on {bootstrap}: {reason}"
    )]
    CreateTopic {
        topic: String,
        partitions: i32,
        replication_factor: i32,
        bootstrap: String,
        reason: String,
    },
    #[error(
        "topic {topic:?} on {bootstrap} did not get a leader for every partition within {timeout:?}"
    )]
    TopicNotReady {
        topic: String,
        bootstrap: String,
        timeout: Duration,
    },
    #[error("cannot enqueue a message for topic {topic:?}: {error}")]
    Enqueue { topic: String, error: KafkaError },
    #[error("the Kafka producer stopped with a fatal error: {0}")]
    Fatal(String),
    #[error(
        "offsets {from}..{to} of topic {topic:?} partition {partition} are not all in the log, \
         which holds {low}..{high}; pick a range inside it"
    )]
    OffsetRange {
        topic: String,
        partition: i32,
        from: i64,
        to: i64,
        low: i64,
        high: i64,
    },
    #[error("reading topic {topic:?} partition {partition} failed: {error}")]
    Consume {
        topic: String,
        partition: i32,
        error: KafkaError,
    },
    #[error(
        "reading topic {topic:?} partition {partition}: got up to offset {reached} of {from}..{to} \
         within {timeout:?}"
    )]
    ConsumeTimeout {
        topic: String,
        partition: i32,
        from: i64,
        to: i64,
        reached: i64,
        timeout: Duration,
    },
}

/// Compression codecs librdkafka carries in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    #[default]
    Lz4,
    Zstd,
    Snappy,
}

impl Compression {
    /// The name Kafka clients use (`compression.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            "snappy" => Ok(Compression::Snappy),
            other => Err(Error::Config(format!(
                "unknown compression {other:?} (expected none, lz4, zstd or snappy)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    /// Used only when the topic is created.
    pub partitions: i32,
    pub replication_factor: i32,
    pub compression: Compression,
    /// How long a batch may wait for more records; a few ms buy much larger batches.
    pub linger: Duration,
    /// Upper bound of a batch in bytes.
    pub batch_size: u32,
    /// A message not acknowledged within this time fails (and is reported).
    pub delivery_timeout: Duration,
    /// Budget for reaching the cluster and for a new topic to get its leaders.
    pub connect_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic: "users_created".into(),
            partitions: 3,
            replication_factor: 1,
            compression: Compression::Lz4,
            linger: Duration::from_millis(20),
            batch_size: 1_000_000,
            delivery_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl KafkaConfig {
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        config
    }

    fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("client.id", "quiver-produce")
            // Idempotence makes broker-side retries duplicate-free and keeps per-partition
            // order; it requires acks=all, stated here for the reader.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", self.compression.as_str())
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("batch.size", self.batch_size.to_string())
            // librdkafka's default local queue (1 GiB) lets a fast source run far ahead of
            // the broker: records then wait there for seconds and memory churns. 16 MiB
            // holds the five requests an idempotent producer keeps in flight plus the
            // batches being filled; measured on the 2-core machine, more only added
            // latency (docs/BENCHMARKS.md).
            .set("queue.buffering.max.kbytes", "16384")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            );
        config
    }

    fn validate(&self) -> Result<(), Error> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(Error::Config("bootstrap servers are empty".into()));
        }
        if self.topic.trim().is_empty() {
            return Err(Error::Config("topic is empty".into()));
        }
        if self.partitions < 1 {
            return Err(Error::Config(format!(
                "partitions must be at least 1, got {}",
                self.partitions
            )));
        }
        if self.replication_factor < 1 {
            return Err(Error::Config(format!(
                "replication factor must be at least 1, got {}",
                self.replication_factor
            )));
        }
        Ok(())
    }
}

/// The cluster's metadata (of one topic, or all): the round trip that proves the brokers
/// answer, failing with the brokers tried and the time allowed.
fn fetch_metadata<C: ClientContext>(
    client: &Client<C>,
    cfg: &KafkaConfig,
    topic: Option<&str>,
) -> Result<Metadata, Error> {
    client
        .fetch_metadata(topic, cfg.connect_timeout)
        .map_err(|error| Error::Unreachable {
            bootstrap: cfg.bootstrap_servers.clone(),
            timeout: cfg.connect_timeout,
            error,
        })
}

/// What [`ensure_topic`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicStatus {
    Created { partitions: usize },
    Existed { partitions: usize },
}

/// Checks that the cluster answers, creates the topic if it is missing and waits until every
/// partition has a leader, so the first send cannot race the creation.
pub fn ensure_topic(cfg: &KafkaConfig) -> Result<TopicStatus, Error> {
    cfg.validate()?;
    let admin: AdminClient<DefaultClientContext> =
        cfg.client_config()
            .create()
            .map_err(|error| Error::Client {
                what: "admin client",
                bootstrap: cfg.bootstrap_servers.clone(),
                error,
            })?;
    let metadata = fetch_metadata(admin.inner(), cfg, None)?;
    if let Some(topic) = metadata.topics().iter().find(|t| t.name() == cfg.topic)
        && topic.error().is_none()
    {
        return Ok(TopicStatus::Existed {
            partitions: topic.partitions().len(),
        });
    }

    let create_error = |reason: String| Error::CreateTopic {
        topic: cfg.topic.clone(),
        partitions: cfg.partitions,
        replication_factor: cfg.replication_factor,
        bootstrap: cfg.bootstrap_servers.clone(),
        reason,
    };
    let new_topic = NewTopic::new(
        &cfg.topic,
        cfg.partitions,
        TopicReplication::Fixed(cfg.replication_factor),
    );
    let options = AdminOptions::new().operation_timeout(Some(cfg.connect_timeout));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| create_error(format!("cannot start an I/O runtime: {e}")))?;
    let results = runtime
        .block_on(admin.create_topics([&new_topic], &options))
        .map_err(|e| create_error(e.to_string()))?;
    let mut created = true;
    for result in results {
        match result {
            Ok(_) => {}
            // Another producer may have created it between our metadata call and now.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => created = false,
            Err((_, code)) => return Err(create_error(code.to_string())),
        }
    }

    let deadline = Instant::now() + cfg.connect_timeout;
    loop {
        let metadata = fetch_metadata(admin.inner(), cfg, Some(&cfg.topic))?;
        let ready = metadata.topics().iter().find(|t| {
            t.name() == cfg.topic
                && t.error().is_none()
                && !t.partitions().is_empty()
                && t.partitions().iter().all(|p| p.leader() >= 0)
        });
        if let Some(topic) = ready {
            let partitions = topic.partitions().len();
            return Ok(if created {
                TopicStatus::Created { partitions }
            } else {
                TopicStatus::Existed { partitions }
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::TopicNotReady {
                topic: cfg.topic.clone(),
                bootstrap: cfg.bootstrap_servers.clone(),
                timeout: cfg.connect_timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
            .map_err(|error| Error::Client {
                what: "producer",
                bootstrap: cfg.bootstrap_servers.clone(),
                error,
            })?;
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

/// One message read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub partition: i32,
    pub offset: i64,
    /// The message's CreateTime, in ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Reads offsets `from..to` (end exclusive) of one partition of `cfg.topic`; `from = None`
/// starts at the partition's first retained offset, `to = None` stops at its end as it is
/// when the call starts. A range outside the
/// log is an error, so a batch never silently covers less than was asked for.
pub fn read_range(
    cfg: &KafkaConfig,
    partition: i32,
    from: Option<i64>,
    to: Option<i64>,
    timeout: Duration,
) -> Result<Vec<Fetched>, Error> {
    let consume_err = |error| Error::Consume {
        topic: cfg.topic.clone(),
        partition,
        error,
    };
    let consumer: BaseConsumer = cfg
        .client_config()
        .set("group.id", "quiver-batch")
        .set("enable.auto.commit", "false")
        // The end of the partition is reported, so reading stops there rather than at
        // the deadline.
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|error| Error::Client {
            what: "consumer",
            bootstrap: cfg.bootstrap_servers.clone(),
            error,
        })?;
    fetch_metadata(consumer.client(), cfg, Some(&cfg.topic))?;
    let (low, high) = consumer
        .fetch_watermarks(&cfg.topic, partition, cfg.connect_timeout)
        .map_err(consume_err)?;
    let from = from.unwrap_or(low);
    let to = to.unwrap_or(high);
    if from < low || to > high || from > to {
        return Err(Error::OffsetRange {
            topic: cfg.topic.clone(),
            partition,
            from,
            to,
            low,
            high,
        });
    }
    let mut out = Vec::with_capacity((to - from) as usize);
    if from == to {
        return Ok(out);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&cfg.topic, partition, Offset::Offset(from))
        .map_err(consume_err)?;
    consumer.assign(&assignment).map_err(consume_err)?;
    let deadline = Instant::now() + timeout;
    let mut reached = from - 1;
    while reached < to - 1 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::ConsumeTimeout {
                topic: cfg.topic.clone(),
                partition,
                from,
                to,
                reached,
                timeout,
            });
        }
        match consumer.poll(left.min(Duration::from_millis(500))) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => return Err(consume_err(error)),
            Some(Ok(message)) => {
                reached = message.offset();
                if reached >= to {
                    break;
                }
                out.push(Fetched {
                    partition,
                    offset: reached,
                    timestamp_ms: message.timestamp().to_millis(),
                    value: message.payload().map(<[u8]>::to_vec),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_names_round_trip_and_unknown_ones_are_refused() {
        for c in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            assert_eq!(c.as_str().parse::<Compression>().unwrap(), c);
        }
        assert_eq!("ZSTD".parse::<Compression>().unwrap(), Compression::Zstd);
        let err = "brotli".parse::<Compression>().unwrap_err();
        assert!(err.to_string().contains("brotli"), "{err}");
    }

    #[test]
    fn producer_settings_are_idempotent_acks_all_and_batched() {
        let cfg = KafkaConfig {
            compression: Compression::Zstd,
            linger: Duration::from_millis(7),
            ..KafkaConfig::default()
        };
        let config = cfg.producer_config();
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("linger.ms"), Some("7"));
        assert_eq!(config.get("batch.size"), Some("1000000"));
    }

    #[test]
    fn bad_settings_are_refused_before_touching_the_network() {
        for cfg in [
            KafkaConfig {
                partitions: 0,
                ..KafkaConfig::default()
            },
            KafkaConfig {
                topic: " ".into(),
                ..KafkaConfig::default()
            },
            KafkaConfig {
                bootstrap_servers: String::new(),
                ..KafkaConfig::default()
            },
        ] {
            assert!(matches!(ensure_topic(&cfg), Err(Error::Config(_))));
            assert!(matches!(Producer::new(&cfg, "test"), Err(Error::Config(_))));
        }
    }

    #[test]
    fn a_broker_that_is_down_is_reported_with_its_address() {
        // Port 9 (discard) is not a Kafka broker on any test machine.
        let cfg = KafkaConfig {
            bootstrap_servers: "127.0.0.1:9".into(),
            connect_timeout: Duration::from_millis(500),
            ..KafkaConfig::default()
        };
        let err = ensure_topic(&cfg).unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    }

    #[test]
    fn a_producer_for_a_broker_that_is_down_is_refused_with_its_address() {
        let cfg = KafkaConfig {
            bootstrap_servers: "127.0.0.1:9".into(),
            connect_timeout: Duration::from_millis(500),
            ..KafkaConfig::default()
        };
        let err = Producer::new(&cfg, "test").err().expect("no broker there");
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    }
}
