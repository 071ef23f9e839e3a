//! Reading an offset range back (the batch leg's Kafka source).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use crate::admin::fetch_metadata;
use crate::{Error, KafkaConfig};

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
        .map_err(cfg.client_error("consumer"))?;
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

/// A partition's log bounds: its first retained offset and the offset the next record gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEnds {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

/// Reads the log bounds of topics again and again over one client (a lag monitor asks
/// every few seconds; a new client per call would mean a new connection each time).
pub struct EndOffsets {
    consumer: BaseConsumer,
    cfg: KafkaConfig,
}

impl EndOffsets {
    /// Creates the client; nothing is sent to the brokers yet.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, Error> {
        let consumer = cfg
            .client_config()
            .set("group.id", "quiver-end-offsets")
            .set("enable.auto.commit", "false")
            .create()
            .map_err(cfg.client_error("consumer"))?;
        Ok(Self {
            consumer,
            cfg: cfg.clone(),
        })
    }

    /// Whether the cluster answers a metadata request within `connect_timeout`.
    pub fn reachable(&self) -> Result<(), Error> {
        fetch_metadata(self.consumer.client(), &self.cfg, None).map(drop)
    }

    /// Every partition of `topic` with its bounds, in partition order. Blocks up to the
    /// config's `connect_timeout` per round trip.
    pub fn of(&self, topic: &str) -> Result<Vec<LogEnds>, Error> {
        let metadata = fetch_metadata(self.consumer.client(), &self.cfg, Some(topic))?;
        let mut partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        partitions.sort_unstable();
        partitions
            .into_iter()
            .map(|partition| {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(topic, partition, self.cfg.connect_timeout)
                    .map_err(|error| Error::Consume {
                        topic: topic.to_string(),
                        partition,
                        error,
                    })?;
                Ok(LogEnds {
                    partition,
                    low,
                    high,
                })
            })
            .collect()
    }
}
