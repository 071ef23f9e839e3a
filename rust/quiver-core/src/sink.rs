//! Where a pipeline's output goes. A batch counts as stored only after every sink of
//! its pipeline returned `Ok`; callers acknowledge nothing before that.

use crate::error::CoreError;
use crate::pipeline::{Engine, Pipeline, Processed};
use arrow::array::RecordBatch;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a sink stored for one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkReport {
    pub rows_written: u64,
    pub rejects_written: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store could not be reached or timed out; the caller should retry the batch.
    #[error("sink `{sink}` is unavailable: {message}")]
    Unavailable { sink: String, message: String },
    /// The store refused the data; retrying the same batch will not help.
    #[error("sink `{sink}` refused the batch: {message}")]
    Rejected { sink: String, message: String },
}

impl SinkError {
    pub fn sink(&self) -> &str {
        match self {
            Self::Unavailable { sink, .. } | Self::Rejected { sink, .. } => sink,
        }
    }

    /// Whether sending the same batch again can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The name pipeline specs use to refer to this sink.
    fn name(&self) -> &str;

    /// Stores a pipeline's output rows and its decode rejects. Must be idempotent for
    /// a replayed batch (the same rows again).
    async fn write(
        &self,
        pipeline: &str,
        rows: &RecordBatch,
        rejects: &RecordBatch,
    ) -> Result<SinkReport, SinkError>;
}

/// Stores nothing: a pure transform, for tests and benchmarks of everything but a store.
#[derive(Debug, Default)]
pub struct NoSink;

#[async_trait]
impl Sink for NoSink {
    fn name(&self) -> &str {
        "none"
    }

    async fn write(
        &self,
        _pipeline: &str,
        _rows: &RecordBatch,
        _rejects: &RecordBatch,
    ) -> Result<SinkReport, SinkError> {
        Ok(SinkReport::default())
    }
}

/// What storing one batch did, per sink of its pipeline.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub reports: Vec<(String, SinkReport)>,
    pub elapsed: Duration,
}

impl Stored {
    /// Rows every sink of the pipeline stored; 0 for a pipeline without sinks.
    pub fn rows_written(&self) -> u64 {
        self.reports
            .iter()
            .map(|(_, r)| r.rows_written)
            .min()
            .unwrap_or(0)
    }
}

/// One batch after its run through a pipeline to the pipeline's sinks: the figures every
/// engine acknowledges (the Flight service's `BatchAck`, the in-process engine's too).
#[derive(Debug, Clone)]
pub struct BatchRun {
    pub processed: Processed,
    pub stored: Stored,
}

impl BatchRun {
    pub fn rows_in(&self) -> u64 {
        self.processed.rows_in as u64
    }

    pub fn rows_out(&self) -> u64 {
        self.processed.output.num_rows() as u64
    }

    pub fn rows_written(&self) -> u64 {
        self.stored.rows_written()
    }

    pub fn rows_rejected(&self) -> u64 {
        self.processed.rejects.num_rows() as u64
    }
}

/// The sinks of a process, by name, checked to cover every sink its pipelines use, so
/// that a missing sink is a start-up error and not a per-batch one.
#[derive(Debug, Clone, Default)]
pub struct SinkSet {
    sinks: BTreeMap<String, Arc<dyn Sink>>,
}

impl SinkSet {
    pub fn new(engine: &Engine, sinks: Vec<Arc<dyn Sink>>) -> Result<Self, CoreError> {
        let sinks: BTreeMap<_, _> = sinks
            .into_iter()
            .map(|s| (s.name().to_string(), s))
            .collect();
        for p in engine.pipelines() {
            for name in &p.spec().sinks {
                if !sinks.contains_key(name) {
                    return Err(CoreError::UnknownSink {
                        pipeline: p.name().to_string(),
                        sink: name.clone(),
                        configured: sinks.keys().cloned().collect::<Vec<_>>().join(", "),
                    });
                }
            }
        }
        Ok(Self { sinks })
    }

    /// Stores one batch that [`Pipeline::process`] made: the second half of every engine's
    /// per-batch run. The rows go to every sink of the pipeline unless `return_rows` (the
    /// caller takes them back instead of storing them); the rejects always, since a reject
    /// must never be dropped silently. Then both enter the pipeline's recent-output windows.
    pub async fn store_processed(
        &self,
        pipeline: &Pipeline,
        processed: Processed,
        return_rows: bool,
    ) -> Result<BatchRun, SinkError> {
        let stored = if !return_rows {
            self.store(pipeline, &processed.output, &processed.rejects)
                .await?
        } else if processed.rejects.num_rows() > 0 {
            let no_rows = RecordBatch::new_empty(processed.output.schema());
            self.store(pipeline, &no_rows, &processed.rejects).await?
        } else {
            Stored::default()
        };
        pipeline.window().push(processed.output.clone());
        pipeline.rejects_window().push(processed.rejects.clone());
        Ok(BatchRun { processed, stored })
    }

    /// Writes rows and rejects to every sink of `pipeline`, in order, stopping at the first
    /// failure.
    async fn store(
        &self,
        pipeline: &Pipeline,
        rows: &RecordBatch,
        rejects: &RecordBatch,
    ) -> Result<Stored, SinkError> {
        let started = Instant::now();
        let mut reports = Vec::with_capacity(pipeline.spec().sinks.len());
        for name in &pipeline.spec().sinks {
            // SinkSet::new checked that every pipeline's sinks are here.
            let report = self.sinks[name]
                .write(pipeline.name(), rows, rejects)
                .await?;
            reports.push((name.clone(), report));
        }
        Ok(Stored {
            reports,
            elapsed: started.elapsed(),
        })
    }
}
