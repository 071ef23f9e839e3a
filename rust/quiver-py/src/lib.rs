//! `quiver._native`: the Rust core inside a Python process. It decodes and transforms
//! Arrow batches with a pipeline's SQL, stores them through the Cassandra sink, and runs
//! DataFusion SQL over batches. The Spark job's in-process engine uses it on the
//! executors, with no network hop to a service.
//!
//! Batches cross between pyarrow and Rust without copies (`arrow_ffi`). Rust work runs
//! with the GIL released, on a runtime made in the process that uses it (`runtime`).

mod arrow_ffi;
mod runtime;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use quiver_cassandra::{CassandraConfig, CassandraError};
use quiver_core::{CoreError, PipelineSpec, Sink, SinkError, SinkSet};
use runtime::PerProcess;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

create_exception!(
    quiver,
    QuiverError,
    PyException,
    "Base class of quiver's errors."
);
create_exception!(
    quiver,
    PipelineError,
    QuiverError,
    "A pipeline's SQL or input is invalid; the same call will fail again."
);
create_exception!(
    quiver,
    SinkUnavailableError,
    QuiverError,
    "A sink could not be reached or timed out; retrying the batch can succeed."
);
create_exception!(
    quiver,
    SinkRejectedError,
    QuiverError,
    "A sink refused the batch; retrying the same batch will not help."
);

fn core_err(e: CoreError) -> PyErr {
    PipelineError::new_err(e.to_string())
}

fn sink_err(e: SinkError) -> PyErr {
    if e.is_retryable() {
        SinkUnavailableError::new_err(e.to_string())
    } else {
        SinkRejectedError::new_err(e.to_string())
    }
}

fn runtime_err(e: std::io::Error) -> PyErr {
    PyRuntimeError::new_err(format!("starting quiver's tokio runtime failed: {e}"))
}

/// Runs a future to completion with the GIL released.
fn block_on<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime::runtime().map_err(runtime_err)?;
    Ok(py.detach(|| rt.block_on(future)))
}

/// The pipelines of one process, each planned once and reused for every batch.
#[pyclass(frozen, module = "quiver")]
struct Engine {
    inner: Arc<quiver_core::Engine>,
}

#[pymethods]
impl Engine {
    /// `pipelines` maps a pipeline name to its SQL over `raw_users`, or to None for the
    /// repository's `pipelines/users.sql`; by default the one `users` pipeline. Every
    /// pipeline feeds the `cassandra` sink.
    #[new]
    #[pyo3(signature = (pipelines = None))]
    fn new(py: Python<'_>, pipelines: Option<BTreeMap<String, Option<String>>>) -> PyResult<Self> {
        let specs = match pipelines {
            None => vec![PipelineSpec::users()],
            Some(map) => map
                .into_iter()
                .map(|(name, sql)| {
                    PipelineSpec::users_with_sql(
                        &name,
                        sql.as_deref().unwrap_or(quiver_core::pipeline::USERS_SQL),
                    )
                })
                .collect(),
        };
        // No recent-output window: `sql()` takes the batches to query explicitly.
        let engine = block_on(py, quiver_core::Engine::new(specs, 0))?.map_err(core_err)?;
        Ok(Self {
            inner: Arc::new(engine),
        })
    }

    #[getter]
    fn pipelines(&self) -> Vec<String> {
        self.inner
            .pipelines()
            .map(|p| p.name().to_string())
            .collect()
    }

    /// The Kafka-shaped schema `process` takes (Spark's Kafka source columns).
    fn input_schema<'py>(&self, py: Python<'py>, pipeline: &str) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.pipeline(pipeline).map_err(core_err)?;
        arrow_ffi::export_schema(py, &p.input_schema())
    }

    /// The schema of the rows `process` returns (the sink table's).
    fn output_schema<'py>(&self, py: Python<'py>, pipeline: &str) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.pipeline(pipeline).map_err(core_err)?;
        arrow_ffi::export_schema(py, &p.output_schema())
    }

    /// Decodes a Kafka-shaped batch and runs the pipeline's SQL over it. Records that
    /// cannot be decoded come back in `rejects`, with the reason; they never fail the call.
    fn process(
        &self,
        py: Python<'_>,
        pipeline: &str,
        batch: &Bound<'_, PyAny>,
    ) -> PyResult<Processed> {
        let p = self.inner.pipeline(pipeline).map_err(core_err)?;
        let input = arrow_ffi::import_batch(batch)?;
        let processed = block_on(py, async move { p.process(&input).await })?.map_err(core_err)?;
        Ok(Processed { inner: processed })
    }

    /// The sinks a batch run stores into, checked once: every sink the pipelines name must
    /// be among them (`cassandra`).
    fn sinks(&self, py: Python<'_>, sinks: Vec<Py<CassandraSink>>) -> PyResult<Sinks> {
        let made = Sinks {
            engine: self.inner.clone(),
            sinks,
            set: PerProcess::new(),
        };
        made.set(py)?;
        Ok(made)
    }
}

/// The sinks of an engine, from `Engine.sinks`: `run` decodes, transforms and stores one
/// batch, as the Flight service does for each batch it receives.
#[pyclass(frozen, module = "quiver")]
struct Sinks {
    engine: Arc<quiver_core::Engine>,
    sinks: Vec<Py<CassandraSink>>,
    // Made from this process's connections: a forked child makes its own.
    set: PerProcess<SinkSet>,
}

impl Sinks {
    fn set(&self, py: Python<'_>) -> PyResult<Arc<SinkSet>> {
        self.set.get_or_try_init(|| {
            let sinks = self
                .sinks
                .iter()
                .map(|s| s.get().connection(py, true).map(|c| c as Arc<dyn Sink>))
                .collect::<PyResult<Vec<_>>>()?;
            SinkSet::new(&self.engine, sinks).map_err(core_err)
        })
    }
}

#[pymethods]
impl Sinks {
    /// Decodes a Kafka-shaped batch, runs the pipeline's SQL and stores the rows and the
    /// rejects in every sink of the pipeline. Returns only when all of them stored it;
    /// raises `SinkUnavailableError` when a retry can help.
    fn run(&self, py: Python<'_>, pipeline: &str, batch: &Bound<'_, PyAny>) -> PyResult<BatchRun> {
        let p = self.engine.pipeline(pipeline).map_err(core_err)?;
        let input = arrow_ffi::import_batch(batch)?;
        let set = self.set(py)?;
        let run = block_on(py, async move {
            let processed = p.process(&input).await.map_err(core_err)?;
            set.store_processed(&p, processed, false)
                .await
                .map_err(sink_err)
        })??;
        Ok(BatchRun { inner: run })
    }
}

/// One batch after decoding and SQL.
#[pyclass(frozen, module = "quiver")]
struct Processed {
    inner: quiver_core::Processed,
}

#[pymethods]
impl Processed {
    /// The transformed rows, a `pyarrow.RecordBatch` in the sink table's schema.
    #[getter]
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        arrow_ffi::export_batch(py, &self.inner.output)
    }

    /// Records that could not be decoded: Kafka coordinates, raw value and reason.
    #[getter]
    fn rejects<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        arrow_ffi::export_batch(py, &self.inner.rejects)
    }

    #[getter]
    fn rows_in(&self) -> usize {
        self.inner.rows_in
    }

    #[getter]
    fn rows_out(&self) -> usize {
        self.inner.output.num_rows()
    }

    #[getter]
    fn rows_rejected(&self) -> usize {
        self.inner.rejects.num_rows()
    }

    #[getter]
    fn decode_seconds(&self) -> f64 {
        self.inner.timings.decode.as_secs_f64()
    }

    #[getter]
    fn sql_seconds(&self) -> f64 {
        self.inner.timings.sql.as_secs_f64()
    }
}

/// What `Sinks.run` did with one batch: the figures of its acknowledgement.
#[pyclass(frozen, module = "quiver")]
struct BatchRun {
    inner: quiver_core::BatchRun,
}

#[pymethods]
impl BatchRun {
    #[getter]
    fn rows_in(&self) -> u64 {
        self.inner.rows_in()
    }

    #[getter]
    fn rows_out(&self) -> u64 {
        self.inner.rows_out()
    }

    /// Rows every sink of the pipeline stored.
    #[getter]
    fn rows_written(&self) -> u64 {
        self.inner.rows_written()
    }

    #[getter]
    fn rows_rejected(&self) -> u64 {
        self.inner.rows_rejected()
    }

    /// Per sink: (rows written, rejects written).
    #[getter]
    fn reports(&self) -> BTreeMap<String, (u64, u64)> {
        self.inner
            .stored
            .reports
            .iter()
            .map(|(name, r)| (name.clone(), (r.rows_written, r.rejects_written)))
            .collect()
    }

    #[getter]
    fn decode_seconds(&self) -> f64 {
        self.inner.processed.timings.decode.as_secs_f64()
    }

    #[getter]
    fn sql_seconds(&self) -> f64 {
        self.inner.processed.timings.sql.as_secs_f64()
    }

    #[getter]
    fn sink_seconds(&self) -> f64 {
        self.inner.stored.elapsed.as_secs_f64()
    }
}

/// The Cassandra sink: `created_users` and `rejected_users` in `keyspace`, created if
/// missing. It connects when made, and again in a forked child, whose inherited
/// connections belong to the parent.
#[pyclass(frozen, module = "quiver")]
struct CassandraSink {
    config: CassandraConfig,
    connection: PerProcess<quiver_cassandra::CassandraSink>,
}

impl CassandraSink {
    /// This process's connection, made on first use; `waiting` rides out an outage for
    /// up to the retry window (a worker joining the stream), else it fails at once.
    fn connection(
        &self,
        py: Python<'_>,
        waiting: bool,
    ) -> PyResult<Arc<quiver_cassandra::CassandraSink>> {
        self.connection.get_or_try_init(|| {
            let config = self.config.clone();
            let connected = if waiting {
                block_on(py, quiver_cassandra::CassandraSink::connect_waiting(config))?
            } else {
                block_on(py, quiver_cassandra::CassandraSink::connect(config))?
            };
            connected.map_err(|e| match e {
                CassandraError::BadKeyspace(_)
                | CassandraError::BadNode(_)
                | CassandraError::BadReplicationFactor
                | CassandraError::BadConsistency(_)
                | CassandraError::UnknownDatacenter { .. } => PyValueError::new_err(e.to_string()),
                CassandraError::Connect { .. } => SinkUnavailableError::new_err(e.to_string()),
                CassandraError::Schema { .. } => SinkRejectedError::new_err(e.to_string()),
            })
        })
    }
}

#[pymethods]
impl CassandraSink {
    /// Settings left out (None) take the Rust sink's defaults. It connects at once and
    /// fails when Cassandra cannot be reached, or with `wait`, waits up to the retry
    /// window for it (a process joining a running stream during an outage).
    #[new]
    #[pyo3(signature = (
        nodes = None,
        keyspace = None,
        *,
        replication_factor = None,
        datacenter = None,
        consistency = None,
        concurrency = None,
        retry_window_seconds = None,
        request_timeout_seconds = None,
        username = None,
        password = None,
        wait = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        nodes: Option<Vec<String>>,
        keyspace: Option<String>,
        replication_factor: Option<u32>,
        datacenter: Option<String>,
        consistency: Option<String>,
        concurrency: Option<usize>,
        retry_window_seconds: Option<f64>,
        request_timeout_seconds: Option<f64>,
        username: Option<String>,
        password: Option<String>,
        wait: bool,
    ) -> PyResult<Self> {
        let seconds = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v).map_err(|_| {
                PyValueError::new_err(format!("{name}={v} must be a number of seconds ≥ 0"))
            })
        };
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "Cassandra credentials need both username and password",
                ));
            }
        };
        if concurrency == Some(0) {
            return Err(PyValueError::new_err("concurrency must be at least 1"));
        }
        let d = CassandraConfig::default();
        let config = CassandraConfig {
            nodes: nodes.unwrap_or(d.nodes),
            keyspace: keyspace.unwrap_or(d.keyspace),
            replication_factor: replication_factor.unwrap_or(d.replication_factor),
            datacenter: datacenter.or(d.datacenter),
            consistency: match consistency {
                Some(name) => quiver_cassandra::consistency_from_name(&name)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?,
                None => d.consistency,
            },
            concurrency: concurrency.unwrap_or(d.concurrency),
            retry_window: match retry_window_seconds {
                Some(v) => seconds("retry_window_seconds", v)?,
                None => d.retry_window,
            },
            request_timeout: match request_timeout_seconds {
                Some(v) => seconds("request_timeout_seconds", v)?,
                None => d.request_timeout,
            },
            credentials,
        };
        let sink = Self {
            config,
            connection: PerProcess::new(),
        };
        // Connect now, so that a wrong address fails here and not at the first batch.
        sink.connection(py, wait)?;
        Ok(sink)
    }

    #[getter]
    fn keyspace(&self) -> &str {
        &self.config.keyspace
    }

    fn __repr__(&self) -> String {
        format!(
            "CassandraSink(nodes={:?}, keyspace={:?})",
            self.config.nodes, self.config.keyspace
        )
    }
}

/// Runs DataFusion SQL over in-memory batches: `tables` maps each table name to a record
/// batch or a list of batches of one schema. Returns the result batches.
#[pyfunction]
fn sql<'py>(
    py: Python<'py>,
    query: &str,
    tables: BTreeMap<String, Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let mut registered = Vec::with_capacity(tables.len());
    for (name, value) in tables {
        let batches: Vec<RecordBatch> = if value.hasattr("__arrow_c_array__")? {
            vec![arrow_ffi::import_batch(&value)?]
        } else {
            value
                .try_iter()?
                .map(|b| arrow_ffi::import_batch(&b?))
                .collect::<PyResult<_>>()?
        };
        let Some(first) = batches.first() else {
            return Err(PyValueError::new_err(format!(
                "table `{name}` has no batches; pass at least one (it may have 0 rows) so its schema is known"
            )));
        };
        let schema = first.schema();
        let table = MemTable::try_new(schema, vec![batches])
            .map_err(|e| PyValueError::new_err(format!("table `{name}`: {e}")))?;
        registered.push((name, table));
    }
    let query = query.to_string();
    let results = block_on(py, async move {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        for (name, table) in registered {
            ctx.register_table(name.as_str(), Arc::new(table))?;
        }
        ctx.sql(&query).await?.collect().await
    })?
    .map_err(|e| PipelineError::new_err(format!("SQL failed: {}", e.strip_backtrace())))?;
    results
        .iter()
        .map(|b| arrow_ffi::export_batch(py, b))
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The core's own warnings (Cassandra unavailable, then back) on the process's stderr,
    // which Spark keeps in the executor's log; RUST_LOG chooses more. A host program that
    // set up tracing itself keeps its own.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    m.add_class::<Engine>()?;
    m.add_class::<Processed>()?;
    m.add_class::<Sinks>()?;
    m.add_class::<BatchRun>()?;
    m.add_class::<CassandraSink>()?;
    m.add_function(wrap_pyfunction!(sql, m)?)?;
    m.add("QuiverError", py.get_type::<QuiverError>())?;
    m.add("PipelineError", py.get_type::<PipelineError>())?;
    m.add(
        "SinkUnavailableError",
        py.get_type::<SinkUnavailableError>(),
    )?;
    m.add("SinkRejectedError", py.get_type::<SinkRejectedError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
