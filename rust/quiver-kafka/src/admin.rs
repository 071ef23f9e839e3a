//! The cluster's metadata and the topic's creation.

use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;

use crate::{Error, KafkaConfig};

/// The cluster's metadata (of one topic, or all): the round trip that proves the brokers
/// answer, failing with the brokers tried and the time allowed.
pub(crate) fn fetch_metadata<C: ClientContext>(
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
    let admin: AdminClient<DefaultClientContext> = cfg
        .client_config()
        .create()
        .map_err(cfg.client_error("admin client"))?;
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
