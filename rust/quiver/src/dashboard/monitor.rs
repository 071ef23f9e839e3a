//! What the dashboard's live charts show: the service's Prometheus metrics sampled once a
//! second into rates and latency percentiles, and the health of what the service depends
//! on (Cassandra, and Kafka for the lag per partition).

use prometheus::proto::MetricFamily;
use quiver_cassandra::CassandraSink;
use quiver_flight::Metrics;
use quiver_kafka::EndOffsets;
use quiver_postgres::{BatchReader, LoadedRun, PostgresConfig, PostgresError, RunSummary};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds of history kept (and shown to a page opened late): ten minutes.
const HISTORY: usize = 600;
/// The sampling step; the page polls at the same pace.
pub const STEP: Duration = Duration::from_secs(1);
/// Kafka and Cassandra are asked every few steps: each check is a network round trip.
const PROBE_EVERY: u64 = 2;
/// The batch runs are compared less often: each is up to a hundred reads by key.
const COMPARE_EVERY: u64 = 15;
const RUNS_COMPARED: i64 = 5;
const IDS_PER_RUN: i64 = 10_000;

/// One step of the live charts. Rates are per second over the step; times are in ms and
/// `None` when nothing happened in the step (a gap in the chart, not a zero).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// End of the step, ms since the epoch.
    pub t: i64,
    pub rows_in: f64,
    pub rows_written: f64,
    pub rows_rejected: f64,
    pub batches: f64,
    pub batch_errors: f64,
    pub sink_errors: f64,
    /// Kafka timestamp to the sinks' acknowledgement, over the records stored in the step.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Mean decode + SQL time of the step's batches.
    pub process_ms: Option<f64>,
    /// Mean and 99th percentile of the time the sinks took per batch.
    pub store_ms: Option<f64>,
    pub store_p99_ms: Option<f64>,
    pub inflight_batches: i64,
    /// The Spark driver's latest micro-batch (or real-time batch) duration and its
    /// rates, as the driver last reported them; `None` without a driver to ask.
    pub spark_batch_ms: Option<f64>,
    pub spark_input_rows_per_s: Option<f64>,
    pub spark_processed_rows_per_s: Option<f64>,
}

/// A dependency's state as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Part {
    /// `ok`, `down`, `off` (not configured) or `unknown` (not checked yet).
    pub state: &'static str,
    /// What was checked, or what failed and how to fix it.
    pub detail: String,
    pub checked_at_ms: Option<i64>,
}

impl Part {
    fn unknown(detail: impl Into<String>) -> Self {
        Self {
            state: "unknown",
            detail: detail.into(),
            checked_at_ms: None,
        }
    }

    fn off(detail: impl Into<String>) -> Self {
        Self {
            state: "off",
            detail: detail.into(),
            checked_at_ms: None,
        }
    }

    fn checked(ok: Result<String, String>, now_ms: i64) -> Self {
        let (state, detail) = match ok {
            Ok(detail) => ("ok", detail),
            Err(detail) => ("down", detail),
        };
        Self {
            state,
            detail,
            checked_at_ms: Some(now_ms),
        }
    }
}

/// Kafka lag of one partition: how far the log is ahead of what the sinks stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lag {
    pub pipeline: String,
    pub topic: String,
    pub partition: i32,
    /// The offset the partition's next record will get.
    pub end_offset: i64,
    /// The highest offset stored, `None` before the first.
    pub written_offset: Option<i64>,
    /// Records in the log not yet stored (from the log's start when none is stored yet).
    pub lag: i64,
}

/// The dependencies the monitor checks; `None` for one the service does not use.
pub struct Probes {
    pub cassandra: Option<Arc<CassandraSink>>,
    /// The client and the bootstrap servers it asks (for the page's text).
    pub kafka: Option<(Arc<EndOffsets>, String)>,
    /// The Spark driver's UI (`http://host:4040`), whose Prometheus servlet reports each
    /// streaming query's progress.
    pub spark_ui: Option<String>,
    /// Where the batch leg loads (its runs are compared with Cassandra).
    pub postgres: Option<PostgresProbe>,
}

/// The batch leg's Postgres, connected on first use and again after a failure.
pub struct PostgresProbe {
    config: PostgresConfig,
    reader: tokio::sync::Mutex<Option<BatchReader>>,
}

impl PostgresProbe {
    pub fn new(config: PostgresConfig) -> Self {
        Self {
            config,
            reader: tokio::sync::Mutex::default(),
        }
    }

    async fn recent_runs(&self) -> Result<(String, Vec<LoadedRun>), PostgresError> {
        let mut reader = self.reader.lock().await;
        let connected = match reader.take() {
            Some(connected) => connected,
            None => BatchReader::connect(&self.config).await?,
        };
        let runs = connected.recent_runs(RUNS_COMPARED, IDS_PER_RUN).await?;
        let target = connected.target().to_string();
        // Kept only after a good read: a failed one reconnects next time.
        *reader = Some(connected);
        Ok((target, runs))
    }
}

/// A batch run (Postgres) against the stream (Cassandra): how many of its users both hold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunCheck {
    #[serde(flatten)]
    pub run: RunSummary,
    /// Ids looked up (all of the run's, up to [`IDS_PER_RUN`]).
    pub checked: u64,
    /// Of those, how many Cassandra has; `None` when Cassandra could not be asked.
    pub in_cassandra: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub cassandra: Part,
    pub kafka: Part,
    pub spark: Part,
    pub postgres: Part,
    pub lag: Vec<Lag>,
    pub runs: Vec<RunCheck>,
}

/// One streaming query's progress as the driver's metrics servlet shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SparkProgress {
    batch_ms: Option<f64>,
    input_rows_per_s: Option<f64>,
    processed_rows_per_s: Option<f64>,
}

/// Reads a streaming query's gauges from Spark's `PrometheusServlet` text: lines such as
/// `metrics_<namespace>_driver_spark_streaming_<query>_latency_Value{type="gauges"} 421`.
/// Returns the query's name and its progress (the first query, if several run).
fn spark_progress(text: &str) -> Option<(String, SparkProgress)> {
    let mut query: Option<String> = None;
    let mut progress = SparkProgress::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let name = name.split('{').next().unwrap_or(name);
        let Some((_, rest)) = name.split_once("_driver_spark_streaming_") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        for (suffix, slot) in [
            ("_latency_Value", &mut progress.batch_ms),
            ("_inputRate_total_Value", &mut progress.input_rows_per_s),
            (
                "_processingRate_total_Value",
                &mut progress.processed_rows_per_s,
            ),
        ] {
            if let Some(q) = rest.strip_suffix(suffix)
                && query.get_or_insert_with(|| q.to_string()) == q
            {
                *slot = Some(value);
            }
        }
    }
    query.map(|q| (q, progress))
}

/// The counters of one sample, summed over their labels.
#[derive(Debug, Clone, Default)]
struct Totals {
    rows_in: f64,
    rows_written: f64,
    rows_rejected: f64,
    batches_ok: f64,
    batches_error: f64,
    sink_errors: f64,
    latency: Histogram,
    process: Histogram,
    store: Histogram,
    inflight: i64,
}

/// A Prometheus histogram summed over label sets: cumulative counts by upper bound.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn add(&mut self, h: &prometheus::proto::Histogram) {
        if self.buckets.is_empty() {
            self.buckets = h
                .get_bucket()
                .iter()
                .map(|b| (b.upper_bound(), 0))
                .collect();
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(h.get_bucket()) {
            mine.1 += theirs.cumulative_count();
        }
        self.count += h.get_sample_count();
        self.sum += h.get_sample_sum();
    }

    /// What was observed since `before`.
    fn since(&self, before: &Histogram) -> Histogram {
        let old = |i: usize| before.buckets.get(i).map_or(0, |b| b.1);
        Histogram {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, &(bound, n))| (bound, n.saturating_sub(old(i))))
                .collect(),
            count: self.count.saturating_sub(before.count),
            sum: self.sum - before.sum,
        }
    }

    /// The `q` quantile in seconds, interpolated inside its bucket as Prometheus'
    /// `histogram_quantile` does (so its resolution is the buckets'); `None` when empty.
    /// Observations above the last bound count as that bound.
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank {
                if !bound.is_finite() {
                    return Some(lower.0);
                }
                let in_bucket = (cumulative - lower.1) as f64;
                let into = if in_bucket > 0.0 {
                    (rank - lower.1 as f64) / in_bucket
                } else {
                    1.0
                };
                return Some(lower.0 + (bound - lower.0) * into);
            }
            lower = (bound, cumulative);
        }
        Some(lower.0)
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> Option<&'a str> {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

impl Totals {
    fn of(families: &[MetricFamily]) -> Self {
        let mut t = Totals::default();
        for family in families {
            for m in family.get_metric() {
                let counter = m.get_counter().get_value();
                match family.name() {
                    "quiver_rows_in_total" => t.rows_in += counter,
                    "quiver_rows_written_total" => t.rows_written += counter,
                    "quiver_rows_rejected_total" => t.rows_rejected += counter,
                    "quiver_sink_errors_total" => t.sink_errors += counter,
                    "quiver_batches_total" if label(m, "outcome") == Some("ok") => {
                        t.batches_ok += counter
                    }
                    "quiver_batches_total" => t.batches_error += counter,
                    "quiver_write_latency_seconds" => t.latency.add(m.get_histogram()),
                    "quiver_stage_seconds" => match label(m, "stage") {
                        Some("sink") => t.store.add(m.get_histogram()),
                        _ => t.process.add(m.get_histogram()),
                    },
                    "quiver_inflight_batches" => t.inflight = m.get_gauge().get_value() as i64,
                    _ => {}
                }
            }
        }
        t
    }
}

/// Written offsets by pipeline, topic and partition, from `quiver_kafka_offset_written`.
fn written_offsets(families: &[MetricFamily]) -> BTreeMap<(String, String, i32), i64> {
    families
        .iter()
        .filter(|f| f.name() == "quiver_kafka_offset_written")
        .flat_map(|f| f.get_metric())
        .filter_map(|m| {
            Some((
                (
                    label(m, "pipeline")?.to_string(),
                    label(m, "topic")?.to_string(),
                    label(m, "partition")?.parse().ok()?,
                ),
                m.get_gauge().get_value() as i64,
            ))
        })
        .collect()
}

/// Lag of every partition of the topics the pipelines have stored from.
fn lag_of(
    written: &BTreeMap<(String, String, i32), i64>,
    ends: &BTreeMap<String, Vec<quiver_kafka::LogEnds>>,
) -> Vec<Lag> {
    let pipelines_of = |topic: &str| -> BTreeSet<&str> {
        written
            .keys()
            .filter(|(_, t, _)| t == topic)
            .map(|(p, _, _)| p.as_str())
            .collect()
    };
    let mut out = Vec::new();
    for (topic, partitions) in ends {
        for pipeline in pipelines_of(topic) {
            for end in partitions {
                let key = (pipeline.to_string(), topic.clone(), end.partition);
                let written_offset = written.get(&key).copied();
                let next = written_offset.map_or(end.low, |o| o + 1);
                out.push(Lag {
                    pipeline: pipeline.to_string(),
                    topic: topic.clone(),
                    partition: end.partition,
                    end_offset: end.high,
                    written_offset,
                    lag: (end.high - next).max(0),
                });
            }
        }
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct State {
    points: VecDeque<Point>,
    last: Option<(i64, Totals)>,
    health: Health,
    spark: SparkProgress,
}

/// Samples the service's metrics every [`STEP`] and checks its dependencies.
pub struct Monitor {
    metrics: Metrics,
    http: reqwest::Client,
    state: RwLock<State>,
}

impl Monitor {
    /// Fails only when the HTTP client for the Spark driver cannot be built (its TLS
    /// backend does not start).
    pub fn new(metrics: Metrics, probes: &Probes) -> Result<Self, reqwest::Error> {
        let cassandra = match probes.cassandra {
            Some(_) => Part::unknown("not checked yet"),
            None => Part::off("the service stores nothing (--sink none)"),
        };
        let kafka = match &probes.kafka {
            Some((_, bootstrap)) => Part::unknown(format!("{bootstrap}: not checked yet")),
            None => Part::off(
                "no Kafka address: set QUIVER_BOOTSTRAP_SERVERS (or bootstrap-servers in [serve]) to see the lag",
            ),
        };
        let spark = match &probes.spark_ui {
            Some(ui) => Part::unknown(format!("{ui}: not checked yet")),
            None => Part::off(
                "no driver UI address: set QUIVER_SPARK_UI (or spark_ui in [serve]) to see Spark's batch durations",
            ),
        };
        let postgres = match &probes.postgres {
            Some(p) => Part::unknown(format!("{}: not checked yet", p.config.url)),
            None => Part::off(
                "no Postgres address: set QUIVER_POSTGRES_URL (and QUIVER_POSTGRES_PASSWORD_FILE) to compare batch runs with the stream",
            ),
        };
        Ok(Self {
            metrics,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
            state: RwLock::new(State {
                points: VecDeque::with_capacity(HISTORY),
                last: None,
                health: Health {
                    cassandra,
                    kafka,
                    spark,
                    postgres,
                    lag: Vec::new(),
                    runs: Vec::new(),
                },
                spark: SparkProgress::default(),
            }),
        })
    }

    /// Samples and probes until the task is aborted.
    pub async fn run(self: Arc<Self>, probes: Probes) {
        let mut tick = tokio::time::interval(STEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for step in 0u64.. {
            tick.tick().await;
            self.sample(now_ms());
            if step % PROBE_EVERY == 0 {
                self.probe(&probes).await;
            }
            if step % COMPARE_EVERY == 0
                && let Some(postgres) = &probes.postgres
            {
                let (part, runs) = compare_runs(postgres, probes.cassandra.as_deref()).await;
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                state.health.postgres = part;
                state.health.runs = runs;
            }
        }
    }

    /// Adds the step that ends at `now` (ms); the first call only sets the baseline.
    fn sample(&self, now: i64) {
        let totals = Totals::of(&self.metrics.gather());
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some((then, before)) = state.last.take()
            && now > then
        {
            let mut point = point(now, (now - then) as f64 / 1000.0, &totals, &before);
            point.spark_batch_ms = state.spark.batch_ms;
            point.spark_input_rows_per_s = state.spark.input_rows_per_s;
            point.spark_processed_rows_per_s = state.spark.processed_rows_per_s;
            if state.points.len() == HISTORY {
                state.points.pop_front();
            }
            state.points.push_back(point);
        }
        state.last = Some((now, totals));
    }

    async fn probe(&self, probes: &Probes) {
        let cassandra = match &probes.cassandra {
            Some(sink) => Some(Part::checked(
                sink.ping()
                    .await
                    .map(|()| "answers".to_string())
                    .map_err(|e| e.to_string()),
                now_ms(),
            )),
            None => None,
        };
        let kafka = match &probes.kafka {
            Some((client, bootstrap)) => {
                let written = written_offsets(&self.metrics.gather());
                let topics: BTreeSet<String> = written.keys().map(|(_, t, _)| t.clone()).collect();
                let client = client.clone();
                let asked = tokio::task::spawn_blocking(move || {
                    client.reachable().map_err(|e| e.to_string())?;
                    topics
                        .into_iter()
                        .map(|topic| {
                            let ends = client.of(&topic).map_err(|e| e.to_string())?;
                            Ok((topic, ends))
                        })
                        .collect::<Result<BTreeMap<_, _>, String>>()
                })
                .await;
                let (part, lag) = match asked {
                    Ok(Ok(ends)) => (Ok(format!("{bootstrap}: answers")), lag_of(&written, &ends)),
                    Ok(Err(e)) => (Err(e), Vec::new()),
                    Err(e) => (Err(format!("the Kafka check stopped: {e}")), Vec::new()),
                };
                Some((Part::checked(part, now_ms()), lag))
            }
            None => None,
        };
        let spark = match &probes.spark_ui {
            Some(ui) => Some(self.spark(ui).await),
            None => None,
        };
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some((part, progress)) = spark {
            state.health.spark = part;
            state.spark = progress;
        }
        if let Some(c) = cassandra {
            state.health.cassandra = c;
        }
        if let Some((k, lag)) = kafka {
            state.health.kafka = k;
            state.health.lag = lag;
        }
    }

    /// Asks the driver's metrics servlet for its streaming query's progress.
    async fn spark(&self, ui: &str) -> (Part, SparkProgress) {
        let url = format!("{}/metrics/prometheus/", ui.trim_end_matches('/'));
        let answer = async {
            let response = self.http.get(&url).send().await?.error_for_status()?;
            response.text().await
        }
        .await;
        let (part, progress) = match answer {
            Ok(text) => match spark_progress(&text) {
                Some((query, progress)) => (
                    Ok(format!(
                        "{ui}: query {query}, last batch {}",
                        progress
                            .batch_ms
                            .map_or("–".into(), |ms| format!("{ms:.0} ms"))
                    )),
                    progress,
                ),
                None => (
                    Err(format!(
                        "{ui} answers but runs no streaming query with metrics (spark.sql.streaming.metricsEnabled)"
                    )),
                    SparkProgress::default(),
                ),
            },
            Err(e) => (
                Err(format!(
                    "no Spark driver answers at {url} ({e}); is the Spark job running?"
                )),
                SparkProgress::default(),
            ),
        };
        (Part::checked(part, now_ms()), progress)
    }

    /// The steps that end after `after` (ms since the epoch), oldest first.
    pub fn points_after(&self, after: i64) -> Vec<Point> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .points
            .iter()
            .filter(|p| p.t > after)
            .cloned()
            .collect()
    }

    pub fn health(&self) -> Health {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .health
            .clone()
    }
}

/// The latest batch runs, each with how many of its users Cassandra holds.
async fn compare_runs(
    postgres: &PostgresProbe,
    cassandra: Option<&CassandraSink>,
) -> (Part, Vec<RunCheck>) {
    let (target, runs) = match postgres.recent_runs().await {
        Ok(found) => found,
        Err(e) => return (Part::checked(Err(e.to_string()), now_ms()), Vec::new()),
    };
    let mut checks = Vec::with_capacity(runs.len());
    for run in runs {
        let in_cassandra = match cassandra {
            Some(sink) => sink.count_present(&run.ids).await.ok(),
            None => None,
        };
        checks.push(RunCheck {
            checked: run.ids.len() as u64,
            run: run.run,
            in_cassandra,
        });
    }
    let detail = format!("{target}: {} batch run(s)", checks.len());
    (Part::checked(Ok(detail), now_ms()), checks)
}

fn point(t: i64, seconds: f64, now: &Totals, before: &Totals) -> Point {
    let rate = |a: f64, b: f64| ((a - b) / seconds).max(0.0);
    let ms = |s: Option<f64>| s.map(|s| s * 1000.0);
    let latency = now.latency.since(&before.latency);
    let store = now.store.since(&before.store);
    let process = now.process.since(&before.process);
    let batches = now.batches_ok + now.batches_error - before.batches_ok - before.batches_error;
    Point {
        t,
        rows_in: rate(now.rows_in, before.rows_in),
        rows_written: rate(now.rows_written, before.rows_written),
        rows_rejected: rate(now.rows_rejected, before.rows_rejected),
        batches: (batches / seconds).max(0.0),
        batch_errors: rate(now.batches_error, before.batches_error),
        sink_errors: rate(now.sink_errors, before.sink_errors),
        latency_p50_ms: ms(latency.quantile(0.50)),
        latency_p95_ms: ms(latency.quantile(0.95)),
        latency_p99_ms: ms(latency.quantile(0.99)),
        // Decode and SQL are two observations per batch; their sum over the step's
        // batches is what one batch took on average.
        process_ms: ms((process.count > 0).then(|| process.sum / (process.count as f64 / 2.0))),
        store_ms: ms(store.mean()),
        store_p99_ms: ms(store.quantile(0.99)),
        inflight_batches: now.inflight,
        spark_batch_ms: None,
        spark_input_rows_per_s: None,
        spark_processed_rows_per_s: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(buckets: &[(f64, u64)]) -> Histogram {
        Histogram {
            buckets: buckets.to_vec(),
            count: buckets.last().map_or(0, |b| b.1),
            sum: 0.0,
        }
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        // 100 observations: 50 up to 10 ms, 40 in (10, 20], 10 in (20, 50].
        let h = histogram(&[(0.01, 50), (0.02, 90), (0.05, 100), (f64::INFINITY, 100)]);
        assert_eq!(h.quantile(0.5), Some(0.01));
        let p75 = h.quantile(0.75).unwrap();
        assert!((p75 - 0.01625).abs() < 1e-9, "{p75}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((p99 - 0.047).abs() < 1e-9, "{p99}");
        assert_eq!(histogram(&[(0.01, 0)]).quantile(0.5), None);
        // Above the last finite bound: that bound, not infinity.
        let over = histogram(&[(0.01, 0), (f64::INFINITY, 3)]);
        assert_eq!(over.quantile(0.99), Some(0.01));
    }

    #[test]
    fn a_step_is_the_difference_of_two_samples() {
        let metrics = Metrics::new().unwrap();
        let monitor = Monitor::new(
            metrics.clone(),
            &Probes {
                cassandra: None,
                kafka: None,
                spark_ui: None,
                postgres: None,
            },
        )
        .unwrap();
        monitor.sample(1_000);
        assert!(
            monitor.points_after(0).is_empty(),
            "the first sample is the baseline"
        );
        metrics.rows_in.with_label_values(&["users"]).inc_by(300);
        metrics
            .rows_rejected
            .with_label_values(&["users"])
            .inc_by(4);
        metrics
            .rows_written
            .with_label_values(&["users", "cassandra"])
            .inc_by(296);
        metrics
            .batches
            .with_label_values(&["users", "ok"])
            .inc_by(3);
        metrics.batches.with_label_values(&["users", "error"]).inc();
        for _ in 0..99 {
            metrics
                .write_latency_seconds
                .with_label_values(&["users"])
                .observe(0.004);
        }
        metrics
            .write_latency_seconds
            .with_label_values(&["users"])
            .observe(2.5);
        monitor.sample(3_000);
        let points = monitor.points_after(0);
        assert_eq!(points.len(), 1);
        let p = &points[0];
        assert_eq!(p.t, 3_000);
        assert_eq!(
            (p.rows_in, p.rows_written, p.rows_rejected),
            (150.0, 148.0, 2.0)
        );
        assert_eq!((p.batches, p.batch_errors), (2.0, 0.5));
        let p50 = p.latency_p50_ms.unwrap();
        assert!(p50 > 3.0 && p50 <= 5.0, "{p50}");
        assert!(p.latency_p99_ms.unwrap() <= 5.0, "{p:?}");
        assert!(p.store_ms.is_none(), "no batch was stored: a gap, not 0");

        monitor.sample(4_000);
        let quiet = &monitor.points_after(3_000)[0];
        assert_eq!((quiet.rows_in, quiet.latency_p50_ms), (0.0, None));
    }

    #[test]
    fn spark_s_query_progress_is_read_from_its_metrics_servlet() {
        let text = "metrics_quiver_driver_LiveListenerBus_queue_streams_size_Value{type=\"gauges\"} 0\n\
            metrics_quiver_driver_spark_streaming_quiver_stream_users_latency_Number{type=\"gauges\"} 421\n\
            metrics_quiver_driver_spark_streaming_quiver_stream_users_latency_Value{type=\"gauges\"} 421\n\
            metrics_quiver_driver_spark_streaming_quiver_stream_users_inputRate_total_Value{type=\"gauges\"} 1997.5\n\
            metrics_quiver_driver_spark_streaming_quiver_stream_users_processingRate_total_Value{type=\"gauges\"} 4736.9\n";
        let (query, progress) = spark_progress(text).unwrap();
        assert_eq!(query, "quiver_stream_users");
        assert_eq!(
            progress,
            SparkProgress {
                batch_ms: Some(421.0),
                input_rows_per_s: Some(1997.5),
                processed_rows_per_s: Some(4736.9),
            }
        );
        assert!(spark_progress("metrics_master_apps_Value 0\n").is_none());
    }

    #[test]
    fn lag_is_the_log_end_minus_what_was_stored() {
        let written = BTreeMap::from([(("users".to_string(), "t".to_string(), 0), 89)]);
        let ends = BTreeMap::from([(
            "t".to_string(),
            vec![
                quiver_kafka::LogEnds {
                    partition: 0,
                    low: 0,
                    high: 100,
                },
                quiver_kafka::LogEnds {
                    partition: 1,
                    low: 5,
                    high: 25,
                },
            ],
        )]);
        let lag = lag_of(&written, &ends);
        let rows: Vec<_> = lag
            .iter()
            .map(|l| (l.partition, l.written_offset, l.end_offset, l.lag))
            .collect();
        assert_eq!(rows, [(0, Some(89), 100, 10), (1, None, 25, 20)]);
    }
}
