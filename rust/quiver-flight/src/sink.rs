//! Where a pipeline's output goes. The service acknowledges a batch only after every
//! sink of its pipeline returned `Ok`.

use arrow::array::RecordBatch;
use async_trait::async_trait;

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

#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
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

/// `--sink none`: a pure transform service; nothing is stored.
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
