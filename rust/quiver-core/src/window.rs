//! A bounded window of a pipeline's most recent output, queryable with SQL.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::TableProvider;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

/// Keeps whole batches until their rows exceed `max_rows`, then drops the oldest.
#[derive(Debug)]
pub struct OutputWindow {
    schema: SchemaRef,
    max_rows: usize,
    state: RwLock<Window>,
}

#[derive(Debug, Default)]
struct Window {
    batches: VecDeque<RecordBatch>,
    rows: usize,
}

impl OutputWindow {
    pub fn new(schema: SchemaRef, max_rows: usize) -> Self {
        Self {
            schema,
            max_rows,
            state: RwLock::default(),
        }
    }

    /// Adds a batch (no-op for an empty one or a zero-sized window).
    pub fn push(&self, batch: RecordBatch) {
        if batch.num_rows() == 0 || self.max_rows == 0 {
            return;
        }
        let mut w = self.state.write().unwrap_or_else(|p| p.into_inner());
        w.rows += batch.num_rows();
        w.batches.push_back(batch);
        while w.rows > self.max_rows && w.batches.len() > 1 {
            if let Some(old) = w.batches.pop_front() {
                w.rows -= old.num_rows();
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.state.read().unwrap_or_else(|p| p.into_inner()).rows
    }

    fn snapshot(&self) -> Vec<RecordBatch> {
        let w = self.state.read().unwrap_or_else(|p| p.into_inner());
        w.batches.iter().cloned().collect()
    }
}

#[async_trait]
impl TableProvider for OutputWindow {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let source = MemorySourceConfig::try_new(
            &[self.snapshot()],
            self.schema.clone(),
            projection.cloned(),
        )?
        .with_limit(limit);
        Ok(DataSourceExec::from_data_source(source))
    }
}
