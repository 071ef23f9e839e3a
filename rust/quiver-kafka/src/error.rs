//! What can go wrong at the Kafka edge, with what was tried.

use std::time::Duration;

use rdkafka::error::KafkaError;

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
