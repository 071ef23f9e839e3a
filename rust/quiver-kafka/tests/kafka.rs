//! Against a real broker: `QUIVER_BOOTSTRAP_SERVERS` (default 127.0.0.1:9092).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quiver_kafka::{
    Compression, EndOffsets, Error, KafkaConfig, Producer, SOURCE_HEADER, TopicStatus,
    ensure_topic, read_range,
};
use quiver_source::synthetic::Synthetic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

fn bootstrap() -> String {
    std::env::var("QUIVER_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn config(name: &str, partitions: i32, compression: Compression) -> KafkaConfig {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    KafkaConfig {
        bootstrap_servers: bootstrap(),
        topic: format!("quiver-test-{name}-{}-{nanos}", std::process::id()),
        partitions,
        compression,
        connect_timeout: Duration::from_secs(30),
        ..KafkaConfig::default()
    }
}

/// Reads the whole topic: every message with its key, value and source header.
fn consume_all(cfg: &KafkaConfig) -> Vec<(String, String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.bootstrap_servers)
        .set("group.id", format!("{}-check", cfg.topic))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&cfg.topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    // The high watermarks say how many messages the topic holds, whatever was consumed.
    let total: i64 = partitions
        .iter()
        .map(|&p| {
            let (low, high) = consumer
                .fetch_watermarks(&cfg.topic, p, Duration::from_secs(10))
                .unwrap();
            high - low
        })
        .sum();
    consumer.subscribe(&[&cfg.topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.len() as i64) < total && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            let headers = message.headers().unwrap();
            let source = headers
                .iter()
                .find(|h| h.key == SOURCE_HEADER)
                .map(|h| String::from_utf8(h.value.unwrap().to_vec()).unwrap())
                .unwrap();
            out.push((key, value, source));
        }
    }
    assert_eq!(
        out.len() as i64,
        total,
        "consumed fewer than the topic holds"
    );
    out
}

fn produce_and_check(name: &str, n: usize, partitions: i32, compression: Compression) {
    let cfg = config(name, partitions, compression);
    assert_eq!(
        ensure_topic(&cfg).unwrap(),
        TopicStatus::Created {
            partitions: partitions as usize
        }
    );
    let producer = Producer::new(&cfg, "synthetic").unwrap();
    let records: Vec<_> = Synthetic::new(99).take(n).collect();
    for r in &records {
        producer.send(&r.key, r.value.as_bytes()).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let stats = producer.stats().snapshot();
    assert_eq!(
        (stats.sent, stats.delivered, stats.failed),
        (n as u64, n as u64, 0)
    );
    assert_eq!(stats.in_flight(), 0);
    assert_eq!(stats.latency.len(), n as u64);

    let consumed = consume_all(&cfg);
    assert_eq!(consumed.len(), n, "N produced must be exactly N consumed");
    let expected: HashMap<&str, &str> = records
        .iter()
        .map(|r| (r.key.as_str(), r.value.as_str()))
        .collect();
    let mut seen = HashMap::new();
    for (key, value, source) in &consumed {
        assert_eq!(
            expected.get(key.as_str()),
            Some(&value.as_str()),
            "key {key}"
        );
        assert_eq!(source, "synthetic");
        assert!(seen.insert(key.clone(), ()).is_none(), "key {key} twice");
    }
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn n_produced_is_exactly_n_consumed_with_their_keys_lz4() {
    produce_and_check("lz4", 5000, 3, Compression::Lz4);
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn n_produced_is_exactly_n_consumed_with_their_keys_zstd() {
    produce_and_check("zstd", 2000, 2, Compression::Zstd);
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn an_existing_topic_is_reused() {
    let cfg = config("existing", 2, Compression::Lz4);
    assert_eq!(
        ensure_topic(&cfg).unwrap(),
        TopicStatus::Created { partitions: 2 }
    );
    let again = KafkaConfig {
        partitions: 5,
        ..cfg.clone()
    };
    assert_eq!(
        ensure_topic(&again).unwrap(),
        TopicStatus::Existed { partitions: 2 }
    );
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn records_the_broker_refuses_are_counted_as_failed_not_dropped() {
    let cfg = config("refused", 1, Compression::None);
    // A topic that takes no record above 1000 bytes: the broker refuses ours for good.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.bootstrap_servers)
        .create()
        .unwrap();
    let topic =
        NewTopic::new(&cfg.topic, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "1000");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in runtime
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap()
    {
        result.unwrap();
    }
    assert_eq!(
        ensure_topic(&cfg).unwrap(),
        TopicStatus::Existed { partitions: 1 }
    );
    let producer = Producer::new(&cfg, "synthetic").unwrap();
    producer.send("small", b"{}").unwrap();
    // Alone in its batch: the broker judges the size of whole batches.
    producer.flush(Duration::from_secs(60)).unwrap();
    for r in Synthetic::new(5).take(3) {
        producer.send(&r.key, r.value.repeat(2).as_bytes()).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let stats = producer.stats().snapshot();
    assert_eq!((stats.sent, stats.delivered, stats.failed), (4, 1, 3));
    assert_eq!(producer.failed(), 3);
    assert_eq!(stats.in_flight(), 0);
    let failure = stats.first_failure.expect("the first failure is kept");
    assert!(failure.contains(&cfg.topic), "{failure}");
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn an_offset_range_is_read_exactly_and_a_range_outside_the_log_is_refused() {
    let cfg = config("range", 1, Compression::Lz4);
    ensure_topic(&cfg).unwrap();
    let producer = Producer::new(&cfg, "synthetic").unwrap();
    let records: Vec<_> = Synthetic::new(5).take(100).collect();
    for r in &records {
        producer.send(&r.key, r.value.as_bytes()).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let timeout = Duration::from_secs(30);

    let range = read_range(&cfg, 0, Some(20), Some(30), timeout).unwrap();
    let offsets: Vec<i64> = range.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, (20..30).collect::<Vec<_>>());
    for fetched in &range {
        assert_eq!(
            fetched.value.as_deref(),
            Some(records[fetched.offset as usize].value.as_bytes())
        );
        assert!(fetched.timestamp_ms.is_some());
    }
    // Open ends: the whole log as it is now.
    assert_eq!(read_range(&cfg, 0, None, None, timeout).unwrap().len(), 100);
    assert!(
        read_range(&cfg, 0, Some(100), None, timeout)
            .unwrap()
            .is_empty()
    );

    let err = read_range(&cfg, 0, Some(90), Some(120), timeout).unwrap_err();
    assert!(matches!(err, Error::OffsetRange { .. }), "{err}");
    assert!(err.to_string().contains("which holds 0..100"), "{err}");
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn end_offsets_are_every_partition_s_log_bounds() {
    let cfg = config("ends", 2, Compression::Lz4);
    ensure_topic(&cfg).unwrap();
    let ends = EndOffsets::new(&cfg).unwrap();
    let before = ends.of(&cfg.topic).unwrap();
    assert_eq!(
        before
            .iter()
            .map(|e| (e.partition, e.low, e.high))
            .collect::<Vec<_>>(),
        [(0, 0, 0), (1, 0, 0)]
    );
    let producer = Producer::new(&cfg, "synthetic").unwrap();
    for r in Synthetic::new(6).take(50) {
        producer.send(&r.key, r.value.as_bytes()).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let after = ends.of(&cfg.topic).unwrap();
    assert_eq!(after.iter().map(|e| e.high).sum::<i64>(), 50, "{after:?}");
    // A topic that does not exist has no partitions rather than an error.
    assert!(
        ends.of(&format!("{}-missing", cfg.topic))
            .unwrap()
            .is_empty()
    );
}
