//! Pipelines: a name, the `users` decoder, one SQL query, and the sinks it feeds.
//!
//! Each pipeline's SQL is planned once, at start-up, against an empty `raw_users` table.
//! Per batch only the physical plan's in-memory scan is swapped for one over the new rows:
//! planning costs milliseconds, executing a projection over a batch a fraction of that.

use crate::decode::{Decoded, UserFields, decode_user_fields, reject_input_rows};
use crate::error::{CoreError, SchemaProblem};
use crate::schema::{
    INPUT_TABLE, created_users_schema, kafka_input_schema, rejects_schema, users_schema,
};
use crate::window::OutputWindow;
use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::datatypes::{Int32Type, Int64Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::MemTable;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The default `users` pipeline's SQL, kept as a file so it can be read and replaced.
pub const USERS_SQL: &str = include_str!("../../../pipelines/users.sql");

/// How a pipeline turns Kafka values into the rows its SQL reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// randomuser.me 1.4 result objects (JSON) into `raw_users`.
    RandomUser,
}

impl Decoder {
    fn decode(
        self,
        input: &RecordBatch,
        now_ms: i64,
        reads: UserFields,
    ) -> Result<Decoded, CoreError> {
        match self {
            Self::RandomUser => decode_user_fields(input, now_ms, reads),
        }
    }

    fn input_schema(self) -> SchemaRef {
        match self {
            Self::RandomUser => kafka_input_schema(),
        }
    }

    fn table(self) -> (&'static str, SchemaRef) {
        match self {
            Self::RandomUser => (INPUT_TABLE, users_schema()),
        }
    }
}

/// What a pipeline is, before it is planned.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub name: String,
    pub decoder: Decoder,
    pub sql: String,
    /// The table the SQL result is written to; the result must match its schema.
    pub sink_table: String,
    pub sink_schema: SchemaRef,
    /// Names of the sinks (e.g. `cassandra`) the service should write to.
    pub sinks: Vec<String>,
}

impl PipelineSpec {
    /// The `users` pipeline with the repository's `pipelines/users.sql`.
    pub fn users() -> Self {
        Self::users_with_sql("users", USERS_SQL)
    }

    /// A pipeline over the randomuser decoder with the caller's SQL, feeding
    /// `created_users`.
    pub fn users_with_sql(name: &str, sql: &str) -> Self {
        Self {
            name: name.to_string(),
            decoder: Decoder::RandomUser,
            sql: sql.to_string(),
            sink_table: "created_users".into(),
            sink_schema: created_users_schema(),
            sinks: vec!["cassandra".into()],
        }
    }
}

/// Wall time per stage for one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    pub decode: Duration,
    pub sql: Duration,
}

/// The outcome of one input batch.
#[derive(Debug, Clone)]
pub struct Processed {
    /// Rows in the sink table's schema.
    pub output: RecordBatch,
    pub rejects: RecordBatch,
    pub rows_in: usize,
    pub timings: StageTimings,
}

/// A planned pipeline, shared by every request that uses it.
pub struct Pipeline {
    spec: PipelineSpec,
    plan: Arc<dyn ExecutionPlan>,
    /// The decoded columns the plan reads; the decoder leaves the others null.
    reads: UserFields,
    ctx: SessionContext,
    window: Arc<OutputWindow>,
    rejects_window: Arc<OutputWindow>,
}

impl Pipeline {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    pub fn input_schema(&self) -> SchemaRef {
        self.spec.decoder.input_schema()
    }

    pub fn output_schema(&self) -> SchemaRef {
        self.spec.sink_schema.clone()
    }

    /// The most recent output batches, kept for SQL over the live stream.
    pub fn window(&self) -> &Arc<OutputWindow> {
        &self.window
    }

    /// The most recent rejects, queryable as `<pipeline>_rejects`.
    pub fn rejects_window(&self) -> &Arc<OutputWindow> {
        &self.rejects_window
    }

    /// Decodes and transforms one Kafka-shaped batch. Bad records go to `rejects`; an
    /// error means the batch as a whole could not be processed.
    pub async fn process(&self, input: &RecordBatch) -> Result<Processed, CoreError> {
        let started = Instant::now();
        let now = now_ms();
        let decoded = self.spec.decoder.decode(input, now, self.reads)?;
        let decoded_at = Instant::now();
        let (output, rejects) = match self.transform(decoded.rows.clone()).await {
            Ok(output) => (output, decoded.rejects),
            Err(CoreError::Execute { .. }) => {
                let (output, failed) = self.transform_isolating(&decoded.rows).await?;
                let sql_rejects = reject_input_rows(input, &failed, now)?;
                let rejects =
                    concat_batches(&decoded.rejects.schema(), [&decoded.rejects, &sql_rejects])?;
                (output, rejects)
            }
            Err(e) => return Err(e),
        };
        let timings = StageTimings {
            decode: decoded_at - started,
            sql: decoded_at.elapsed(),
        };
        Ok(Processed {
            output,
            rejects,
            rows_in: input.num_rows(),
            timings,
        })
    }

    /// After the SQL failed on a batch: runs it over halves of the rows, down to single
    /// rows, so that only the records it cannot transform are set apart, as
    /// (partition, offset, reason); the rest is transformed as usual. Costs about
    /// 2·log2(n) extra runs per failing record, and nothing while no record fails.
    async fn transform_isolating(
        &self,
        rows: &RecordBatch,
    ) -> Result<(RecordBatch, Vec<(i32, i64, String)>), CoreError> {
        let partition = rows
            .column_by_name("kafka_partition")
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
            .ok_or_else(|| CoreError::InputSchema("raw_users has no kafka_partition".into()))?;
        let offset = rows
            .column_by_name("kafka_offset")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| CoreError::InputSchema("raw_users has no kafka_offset".into()))?;
        let mut outputs = Vec::new();
        let mut failed = Vec::new();
        // Second halves are pushed first, so slices are transformed in row order.
        let mut pending = vec![(0, rows.num_rows())];
        while let Some((start, len)) = pending.pop() {
            match self.transform(rows.slice(start, len)).await {
                Ok(output) => outputs.push(output),
                Err(CoreError::Execute { message, .. }) if len == 1 => failed.push((
                    partition.value(start),
                    offset.value(start),
                    format!(
                        "pipeline `{}`: the SQL failed on this record: {message}",
                        self.spec.name
                    ),
                )),
                Err(CoreError::Execute { .. }) => {
                    let half = len / 2;
                    pending.push((start + half, len - half));
                    pending.push((start, half));
                }
                Err(e) => return Err(e),
            }
        }
        let output = concat_batches(&self.spec.sink_schema, &outputs)?;
        Ok((output, failed))
    }

    /// Runs the planned SQL over already-decoded `raw_users` rows.
    pub async fn transform(&self, rows: RecordBatch) -> Result<RecordBatch, CoreError> {
        if rows.num_rows() == 0 {
            return Ok(RecordBatch::new_empty(self.spec.sink_schema.clone()));
        }
        let exec_err = |e: DataFusionError| CoreError::Execute {
            pipeline: self.spec.name.clone(),
            message: e.strip_backtrace(),
        };
        let plan = bind_rows(self.plan.clone(), rows).map_err(exec_err)?;
        let schema = plan.schema();
        let batches = collect(plan, self.ctx.task_ctx()).await.map_err(exec_err)?;
        let merged = concat_batches(&schema, &batches)?;
        conform(&merged, &self.spec.sink_schema)
    }
}

/// Replaces the plan's in-memory scans of the decoded rows with scans of `rows`, keeping
/// the projection and limit the optimiser pushed into each.
fn bind_rows(
    plan: Arc<dyn ExecutionPlan>,
    rows: RecordBatch,
) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
    let input = rows.schema();
    let partitions = [vec![rows]];
    plan.transform_up(|node| {
        let Some(mem) = input_scan(&node, &input) else {
            return Ok(Transformed::no(node));
        };
        let source = MemorySourceConfig::try_new(
            &partitions,
            mem.original_schema(),
            mem.projection().clone(),
        )?
        .with_limit(datafusion::datasource::source::DataSource::fetch(mem));
        let exec: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(source);
        Ok(Transformed::yes(exec))
    })
    .map(|t| t.data)
}

/// `node` if it scans the decoded rows (schema `input`). The recent-output windows a
/// query may also read are in-memory scans too, of other schemas.
fn input_scan<'p>(
    node: &'p Arc<dyn ExecutionPlan>,
    input: &SchemaRef,
) -> Option<&'p MemorySourceConfig> {
    node.downcast_ref::<DataSourceExec>()
        .and_then(|ds| ds.data_source().downcast_ref::<MemorySourceConfig>())
        .filter(|mem| mem.original_schema() == *input)
}

/// The columns of the decoded rows that `plan` reads, or `None` if it does not read them.
fn input_columns(plan: &Arc<dyn ExecutionPlan>, input: &SchemaRef) -> Option<UserFields> {
    let mut scans = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(mem) = input_scan(node, input) {
            scans.push(mem.projection().clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    if scans.is_empty() {
        return None;
    }
    Some(match scans.into_iter().collect::<Option<Vec<_>>>() {
        Some(projections) => UserFields::at(projections.into_iter().flatten()),
        None => UserFields::ALL,
    })
}

/// Whether a value of type `found` may be written to a column of type `expected`
/// without changing its meaning. DataFusion's string functions may return Utf8View or
/// LargeUtf8 where the table holds Utf8, and timestamps may carry another unit.
fn convertible(found: &DataType, expected: &DataType) -> bool {
    use DataType::*;
    if found == expected || *found == Null {
        return true;
    }
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    match (found, expected) {
        (f, e) if string(f) && string(e) => true,
        (Timestamp(_, ftz), Timestamp(_, etz)) => ftz.is_some() == etz.is_some(),
        (f, e) if f.is_integer() && e.is_integer() => {
            arrow::compute::can_cast_types(f, e) && int_width(f) <= int_width(e)
        }
        _ => false,
    }
}

fn int_width(t: &DataType) -> usize {
    t.primitive_width().unwrap_or(usize::MAX)
}

fn check_schema(found: &SchemaRef, expected: &SchemaRef) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    for e in expected.fields() {
        match found.field_with_name(e.name()) {
            Err(_) => problems.push(SchemaProblem::MissingColumn {
                name: e.name().clone(),
                expected: e.data_type().clone(),
            }),
            Ok(f) if !convertible(f.data_type(), e.data_type()) => {
                problems.push(SchemaProblem::WrongType {
                    name: e.name().clone(),
                    found: f.data_type().clone(),
                    expected: e.data_type().clone(),
                })
            }
            Ok(f) if f.is_nullable() && !e.is_nullable() => {
                problems.push(SchemaProblem::Nullable {
                    name: e.name().clone(),
                })
            }
            Ok(_) => {}
        }
    }
    for f in found.fields() {
        if expected.field_with_name(f.name()).is_err() {
            problems.push(SchemaProblem::UnexpectedColumn {
                name: f.name().clone(),
            });
        }
    }
    problems
}

/// Reorders and casts a SQL result into the sink table's schema (validated at start-up,
/// so this only changes representation, never meaning).
fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, CoreError> {
    let schema = batch.schema();
    let columns = target
        .fields()
        .iter()
        .map(|f| {
            let col = batch.column(schema.index_of(f.name())?);
            if col.data_type() == f.data_type() {
                Ok(col.clone())
            } else {
                cast(col, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn classify(pipeline: &str, e: DataFusionError) -> CoreError {
    let pipeline = pipeline.to_string();
    let message = e.strip_backtrace();
    match e.find_root() {
        DataFusionError::SQL(..) => CoreError::SqlSyntax { pipeline, message },
        DataFusionError::SchemaError(se, _)
            if matches!(**se, datafusion::common::SchemaError::FieldNotFound { .. }) =>
        {
            CoreError::UnknownColumn { pipeline, message }
        }
        _ => CoreError::Plan { pipeline, message },
    }
}

/// The process's one DataFusion session and its planned pipelines.
pub struct Engine {
    ctx: SessionContext,
    pipelines: BTreeMap<String, Arc<Pipeline>>,
}

impl Engine {
    /// Plans every pipeline; any invalid SQL fails here, before data flows.
    /// `window_rows` bounds the rows of recent output kept per pipeline for queries.
    pub async fn new(specs: Vec<PipelineSpec>, window_rows: usize) -> Result<Self, CoreError> {
        let ctx = session();
        let mut pipelines = BTreeMap::new();
        for spec in specs {
            if pipelines.contains_key(&spec.name) {
                return Err(CoreError::DuplicatePipeline(spec.name));
            }
            let (table, schema) = spec.decoder.table();
            if spec.name == table {
                return Err(CoreError::Plan {
                    pipeline: spec.name.clone(),
                    message: format!(
                        "`{table}` names the decoded input table; rename the pipeline"
                    ),
                });
            }
            if !ctx
                .table_exist(table)
                .map_err(|e| classify(&spec.name, e))?
            {
                // Empty: plans are made against it and bound to each batch's rows later.
                let empty =
                    MemTable::try_new(schema, vec![vec![]]).map_err(|e| classify(&spec.name, e))?;
                ctx.register_table(table, Arc::new(empty))
                    .map_err(|e| classify(&spec.name, e))?;
            }
            let (plan, reads) = plan(&ctx, &spec).await?;
            let window = Arc::new(OutputWindow::new(spec.sink_schema.clone(), window_rows));
            ctx.register_table(spec.name.as_str(), window.clone())
                .map_err(|e| classify(&spec.name, e))?;
            let rejects_window = Arc::new(OutputWindow::new(rejects_schema(), window_rows));
            ctx.register_table(format!("{}_rejects", spec.name), rejects_window.clone())
                .map_err(|e| classify(&spec.name, e))?;
            pipelines.insert(
                spec.name.clone(),
                Arc::new(Pipeline {
                    spec,
                    plan,
                    reads,
                    ctx: ctx.clone(),
                    window,
                    rejects_window,
                }),
            );
        }
        Ok(Self { ctx, pipelines })
    }

    pub fn pipeline(&self, name: &str) -> Result<Arc<Pipeline>, CoreError> {
        self.pipelines
            .get(name)
            .cloned()
            .ok_or_else(|| CoreError::UnknownPipeline {
                name: name.to_string(),
                known: self
                    .pipelines
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub fn pipelines(&self) -> impl Iterator<Item = &Arc<Pipeline>> {
        self.pipelines.values()
    }

    /// Plans a read-only query over the pipelines' recent-output windows (each visible
    /// as a table named after its pipeline).
    pub async fn query_schema(&self, sql: &str) -> Result<SchemaRef, CoreError> {
        let df = self.query_frame(sql).await?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// Runs a read-only query over the recent-output windows.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), CoreError> {
        let df = self.query_frame(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df
            .collect()
            .await
            .map_err(|e| CoreError::Query(e.strip_backtrace()))?;
        Ok((schema, batches))
    }

    async fn query_frame(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame, CoreError> {
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        self.ctx
            .sql_with_options(sql, read_only)
            .await
            .map_err(|e| CoreError::Query(e.strip_backtrace()))
    }
}

fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    )
}

fn session() -> SessionContext {
    // One partition: a micro-batch is small and the service runs batches concurrently,
    // so intra-query parallelism would only add repartitioning.
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(true);
    // `VARCHAR` in a query means Utf8, the type of the decoded columns and of the sink
    // tables. As Utf8View, every string an expression touched was converted to views and
    // back.
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    // Plans are made against an empty table and reused for every batch, so no rule may
    // bake the planning-time statistics into the plan.
    let rules = PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| r.name() != "aggregate_statistics")
        .collect();
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rules(rules)
        .build();
    SessionContext::new_with_state(state)
}

async fn plan(
    ctx: &SessionContext,
    spec: &PipelineSpec,
) -> Result<(Arc<dyn ExecutionPlan>, UserFields), CoreError> {
    let not_query = |message: String| CoreError::NotAQuery {
        pipeline: spec.name.clone(),
        table: spec.decoder.table().0.into(),
        message,
    };
    let logical = ctx
        .state()
        .create_logical_plan(&spec.sql)
        .await
        .map_err(|e| classify(&spec.name, e))?;
    // Checked before the plan reaches the context, which would execute DDL at once.
    if !is_query(&logical) {
        return Err(not_query(format!(
            "found a {} statement",
            logical
                .display()
                .to_string()
                .split(':')
                .next()
                .unwrap_or("non-query")
        )));
    }
    let df = ctx
        .execute_logical_plan(logical)
        .await
        .map_err(|e| classify(&spec.name, e))?;
    let found: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let problems = check_schema(&found, &spec.sink_schema);
    if !problems.is_empty() {
        return Err(CoreError::SchemaMismatch {
            pipeline: spec.name.clone(),
            table: spec.sink_table.clone(),
            problems,
        });
    }
    let plan = df
        .create_physical_plan()
        .await
        .map_err(|e| classify(&spec.name, e))?;
    let reads = input_columns(&plan, &spec.decoder.table().1).ok_or_else(|| {
        not_query("the query does not read its rows from the decoded records".into())
    })?;
    Ok((plan, reads))
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("spec", &self.spec)
            .field("window_rows", &self.window.rows())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pipelines", &self.pipelines.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
