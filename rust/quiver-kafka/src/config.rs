//! Where the brokers are and how the producer batches and compresses.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

use crate::Error;

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
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        config
    }

    pub(crate) fn producer_config(&self) -> ClientConfig {
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

    /// The error of a Kafka `what` (client, consumer, producer) that could not be created
    /// for these brokers.
    pub(crate) fn client_error(&self, what: &'static str) -> impl FnOnce(KafkaError) -> Error + '_ {
        move |error| Error::Client {
            what,
            bootstrap: self.bootstrap_servers.clone(),
            error,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
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
}
