//! Kafka edge of quiver: an idempotent, keyed producer that accounts for every message,
//! topic creation, and reading back an offset range (the batch leg's Kafka source).
//!
//! The API is synchronous: the producer's I/O runs on librdkafka's threads and delivery
//! reports arrive on a polling thread, so a plain loop can feed it at full speed.

mod admin;
mod config;
mod consumer;
mod error;
mod producer;

pub use admin::{TopicStatus, ensure_topic};
pub use config::{Compression, KafkaConfig};
pub use consumer::{EndOffsets, Fetched, LogEnds, read_range};
pub use error::Error;
pub use producer::{DeliveryContext, DeliverySnapshot, DeliveryStats, Producer, SOURCE_HEADER};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
