//! `quiver produce`: user records from randomuser.me or the synthetic generator into Kafka.
//!
//! Its settings are the `[produce]` table of the one settings layer (`crate::settings`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use quiver_kafka::{Compression, DeliverySnapshot, KafkaConfig, Producer, TopicStatus};
use quiver_source::randomuser::{Pages, RandomUser, RandomUserConfig};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal as _;
use tokio::sync::watch;

use crate::settings::{self, ConfigArgs, Layered, defaulted, duration};

/// Exit status after Ctrl-C, as shells report a SIGINT death.
const EXIT_INTERRUPTED: u8 = 130;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Every setting is also a key of the [produce] table of the --config file (e.g. \
bootstrap-servers = \"host:9092\") and an environment variable QUIVER_<KEY> (e.g. \
QUIVER_BOOTSTRAP_SERVERS); flags > environment > config file > defaults. docs/SETTINGS.md \
lists every key.

Exit status: 0 when every record was delivered, 1 on an error or any undelivered record, \
130 after Ctrl-C (in-flight records are flushed and the summary printed first).")]
pub struct ProduceArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    Randomuser,
    Synthetic,
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            SourceKind::Randomuser => "randomuser",
            SourceKind::Synthetic => "synthetic",
        }
    }
}

/// The `[produce]` keys; `None` leaves the decision to a lower layer.
#[derive(clap::Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    /// Where the records come from [default: randomuser].
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// Stop after this many records have been sent.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = duration::parse)]
    #[serde(with = "duration")]
    duration: Option<Duration>,
    /// Send at most this many records per second [default: as fast as possible].
    #[arg(long, value_name = "PER_SECOND", value_parser = positive_rate)]
    rate: Option<f64>,
    /// Kafka topic [default: users_created].
    #[arg(long)]
    topic: Option<String>,
    /// Kafka bootstrap servers [default: 127.0.0.1:9092].
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Partitions of the topic when it has to be created [default: 3].
    #[arg(long)]
    partitions: Option<i32>,
    /// Replication factor of the topic when it has to be created [default: 1].
    #[arg(long)]
    replication_factor: Option<i32>,
    /// none, lz4, zstd or snappy [default: lz4].
    #[arg(long)]
    #[serde(with = "settings::as_text")]
    compression: Option<Compression>,
    /// Producer linger in milliseconds [default: 20].
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Producer batch size in bytes [default: 1000000].
    #[arg(long)]
    batch_size: Option<u32>,
    /// A record not acknowledged within this time fails [default: 60s].
    #[arg(long, value_parser = duration::parse)]
    #[serde(with = "duration")]
    delivery_timeout: Option<Duration>,
    /// Budget for reaching Kafka and for a new topic to become ready [default: 10s].
    #[arg(long, value_parser = duration::parse)]
    #[serde(with = "duration")]
    connect_timeout: Option<Duration>,
    /// Seed: the same seed gives the same records (synthetic: an integer or any text;
    /// randomuser: the API's seed) [default: a random one, printed in the summary].
    #[arg(long)]
    seed: Option<String>,
    /// randomuser API base URL [default: https://randomuser.me/api/1.4/].
    #[arg(long)]
    api_url: Option<String>,
    /// randomuser users per request, at most 5000 [default: 5000].
    #[arg(long)]
    page_size: Option<u32>,
    /// randomuser nationalities, comma-separated (e.g. gb,fr) [default: all].
    #[arg(long)]
    nat: Option<String>,
    /// randomuser attempts per page before giving up [default: 6].
    #[arg(long)]
    max_attempts: Option<u32>,
    /// randomuser request timeout [default: 60s].
    #[arg(long, value_parser = duration::parse)]
    #[serde(with = "duration")]
    request_timeout: Option<Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics while running (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
}

impl Layered for Settings {
    const TABLE: &'static str = "produce";
    const ALIASES: &'static [settings::Alias] = &[settings::KAFKA_BOOTSTRAP];
    const OLD_ENV_PREFIX: Option<&'static str> = Some("QUIVER_PRODUCE_");
    const ONE_CHOICE: &'static [&'static str] = &["count", "duration"];

    fn defaults() -> Self {
        let k = KafkaConfig::default();
        let r = RandomUserConfig::default();
        Settings {
            source: Some(SourceKind::Randomuser),
            topic: Some(k.topic),
            bootstrap_servers: Some(k.bootstrap_servers),
            partitions: Some(k.partitions),
            replication_factor: Some(k.replication_factor),
            compression: Some(k.compression),
            linger_ms: Some(k.linger.as_millis() as u64),
            batch_size: Some(k.batch_size),
            delivery_timeout: Some(k.delivery_timeout),
            connect_timeout: Some(k.connect_timeout),
            api_url: Some(r.base_url),
            page_size: Some(r.page_size),
            nat: r.nat,
            max_attempts: Some(r.max_attempts),
            request_timeout: Some(r.request_timeout),
            ..Settings::default()
        }
    }
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of records per second"
        )),
    }
}

/// How much to produce.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Amount {
    Count(u64),
    Duration(Duration),
}

/// The effective settings, defaults applied.
#[derive(Debug, Clone)]
struct ProduceConfig {
    source: SourceKind,
    amount: Amount,
    rate: Option<f64>,
    seed: String,
    kafka: KafkaConfig,
    randomuser: RandomUserConfig,
    metrics_addr: Option<SocketAddr>,
}

impl ProduceConfig {
    fn resolve(s: Settings) -> Result<Self> {
        let amount = match (s.count, s.duration) {
            (Some(n), None) => Amount::Count(n),
            (None, Some(d)) => Amount::Duration(d),
            (None, None) => bail!(
                "say how much to produce: --count N or --duration D \
                 (or count/duration in the config file, or QUIVER_COUNT/QUIVER_DURATION)"
            ),
            (Some(_), Some(_)) => bail!("--count and --duration exclude each other"),
        };
        let kafka = KafkaConfig {
            bootstrap_servers: defaulted(s.bootstrap_servers),
            topic: defaulted(s.topic),
            partitions: defaulted(s.partitions),
            replication_factor: defaulted(s.replication_factor),
            compression: defaulted(s.compression),
            linger: Duration::from_millis(defaulted(s.linger_ms)),
            batch_size: defaulted(s.batch_size),
            delivery_timeout: defaulted(s.delivery_timeout),
            connect_timeout: defaulted(s.connect_timeout),
        };
        // A seed is always fixed before the run, so that the summary can name it and the
        // run can be repeated.
        let seed = s.seed.unwrap_or_else(quiver_source::synthetic::new_seed);
        let randomuser = RandomUserConfig {
            base_url: defaulted(s.api_url),
            page_size: defaulted(s.page_size),
            seed: Some(seed.clone()),
            nat: s.nat,
            max_attempts: defaulted(s.max_attempts),
            request_timeout: defaulted(s.request_timeout),
            ..RandomUserConfig::default()
        };
        Ok(Self {
            source: defaulted(s.source),
            amount,
            rate: s.rate,
            seed,
            kafka,
            randomuser,
            metrics_addr: s.metrics_addr,
        })
    }
}

/// Counters the producer does not see.
#[derive(Default)]
struct SourceCounters {
    missing_key: AtomicU64,
    pages: AtomicU64,
    retries: AtomicU64,
}

pub fn run(args: ProduceArgs) -> Result<ExitCode> {
    let Some(loaded) = settings::for_run(&args.config, args.settings)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let cfg = ProduceConfig::resolve(loaded.settings)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: flushing what is in flight (Ctrl-C again to abort)");
                stop.store(true, Ordering::SeqCst);
                let _ = stop_tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
            }
        });
    }

    let k = &cfg.kafka;
    match quiver_kafka::ensure_topic(k).with_context(|| {
        format!(
            "cannot prepare topic {:?} on {} for producing",
            k.topic, k.bootstrap_servers
        )
    })? {
        TopicStatus::Created { partitions } => {
            tracing::info!(topic = %k.topic, partitions, "created topic")
        }
        TopicStatus::Existed { partitions } if partitions as i32 != k.partitions => {
            tracing::info!(
                topic = %k.topic, partitions, requested = k.partitions,
                "topic exists with a different partition count; using it as it is"
            )
        }
        TopicStatus::Existed { .. } => {}
    }
    let producer = Producer::new(k, cfg.source.name()).with_context(|| {
        format!(
            "cannot create the Kafka producer for {}",
            k.bootstrap_servers
        )
    })?;
    let counters = Arc::new(SourceCounters::default());

    if let Some(addr) = cfg.metrics_addr {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot serve metrics on {addr} (--metrics-addr)"))?;
        let stats = producer.stats();
        let counters = counters.clone();
        let labels = format!("source=\"{}\",topic=\"{}\"", cfg.source.name(), k.topic);
        let router = crate::http::health_and_metrics(move || {
            render_metrics(&labels, &stats.snapshot(), &counters)
        });
        runtime.spawn(axum::serve(listener, router).into_future());
        tracing::info!("serving Prometheus metrics at http://{addr}/metrics");
    }

    let bar = progress_bar(cfg.amount);
    let started = Instant::now();
    let mut feed = Feed {
        producer: &producer,
        amount: cfg.amount,
        rate: cfg.rate,
        started,
        stop: &stop,
        bar: &bar,
        sent: 0,
    };
    let produced = match cfg.source {
        SourceKind::Synthetic => {
            feed.synthetic(quiver_source::synthetic::seed_from_text(&cfg.seed))
        }
        SourceKind::Randomuser => feed.randomuser(&cfg.randomuser, &runtime, stop_rx, &counters),
    };
    bar.finish_and_clear();
    // Whatever ended the loop, what was enqueued is flushed and accounted for.
    let flushed = producer.flush(k.delivery_timeout + Duration::from_secs(5));
    let elapsed = started.elapsed();
    let snapshot = producer.stats().snapshot();
    print_summary(&cfg, &snapshot, &counters, elapsed);

    produced?;
    flushed.context("producing stopped")?;
    let undelivered = snapshot.failed + snapshot.in_flight();
    if undelivered > 0 {
        bail!(
            "{undelivered} of {} records were not delivered to topic {:?} on {} \
             ({} failed, {} still unacknowledged after the flush); first failure: {}",
            snapshot.sent,
            k.topic,
            k.bootstrap_servers,
            snapshot.failed,
            snapshot.in_flight(),
            snapshot.first_failure.as_deref().unwrap_or("none reported"),
        );
    }
    if stop.load(Ordering::SeqCst) {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Hands records to the producer until the amount is reached or Ctrl-C, at the given rate.
struct Feed<'a> {
    producer: &'a Producer,
    amount: Amount,
    rate: Option<f64>,
    started: Instant,
    stop: &'a AtomicBool,
    bar: &'a ProgressBar,
    sent: u64,
}

impl Feed<'_> {
    /// How many more records may be sent now; 0 ends the run.
    fn room(&self) -> u64 {
        if self.stop.load(Ordering::Relaxed) {
            return 0;
        }
        // With an idempotent producer a failed delivery means the broker or the topic is
        // unusable (it already retried internally): stop instead of failing every record.
        // The final error reports the failure.
        if self.producer.failed() > 0 {
            return 0;
        }
        match self.amount {
            Amount::Count(n) => n - self.sent,
            Amount::Duration(d) if self.started.elapsed() >= d => 0,
            Amount::Duration(_) => u64::MAX,
        }
    }

    fn send(&mut self, key: &str, value: &[u8]) -> Result<()> {
        if let Some(rate) = self.rate {
            let due = self.started + Duration::from_secs_f64(self.sent as f64 / rate);
            let ahead = due.saturating_duration_since(Instant::now());
            // Sleeping per record at high rates would cost more than the gap between records;
            // the schedule is absolute, so records catch up after each sleep.
            if ahead >= Duration::from_millis(1) {
                std::thread::sleep(ahead);
            }
        }
        self.producer.send(key, value)?;
        self.sent += 1;
        // Drawing per record would cost more than producing it.
        if self.sent.is_multiple_of(1024) {
            self.bar.set_position(self.sent);
        }
        Ok(())
    }

    fn synthetic(&mut self, seed: u64) -> Result<()> {
        let mut value = String::with_capacity(1536);
        let mut index = 0;
        while self.room() > 0 {
            value.clear();
            let key = quiver_source::synthetic::write_record(seed, index, &mut value);
            index += 1;
            self.send(&key, value.as_bytes())?;
        }
        Ok(())
    }

    fn randomuser(
        &mut self,
        cfg: &RandomUserConfig,
        runtime: &tokio::runtime::Runtime,
        mut stop: watch::Receiver<bool>,
        counters: &SourceCounters,
    ) -> Result<()> {
        let client = RandomUser::new(cfg.clone()).context("cannot set up the randomuser source")?;
        let users = match self.amount {
            Amount::Count(n) => Some(n),
            Amount::Duration(_) => None,
        };
        let mut pages = Pages::new(client, users);
        while self.room() > 0 {
            let number = pages.next_number();
            let fetched = runtime.block_on(async {
                tokio::select! {
                    page = pages.next() => Some(page),
                    _ = stop.wait_for(|stopped| *stopped) => None,
                }
            });
            let Some(page) = fetched else { break };
            let page = page?;
            counters.pages.fetch_add(1, Ordering::Relaxed);
            counters
                .retries
                .fetch_add(u64::from(page.attempts - 1), Ordering::Relaxed);
            if page.missing_key > 0 {
                counters
                    .missing_key
                    .fetch_add(page.missing_key, Ordering::Relaxed);
                tracing::warn!(
                    page = number,
                    skipped = page.missing_key,
                    "records without login.uuid cannot be keyed; not sent"
                );
            }
            for record in page.records {
                if self.room() == 0 {
                    break;
                }
                self.send(&record.key, record.value.as_bytes())?;
            }
        }
        Ok(())
    }
}

fn progress_bar(amount: Amount) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match amount {
        Amount::Count(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:30} {human_pos}/{human_len} records  {per_sec}  eta {eta}",
            )
            .expect("static template"),
        ),
        Amount::Duration(_) => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {human_pos} records  {per_sec}  {elapsed}")
                .expect("static template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_summary(
    cfg: &ProduceConfig,
    s: &DeliverySnapshot,
    counters: &SourceCounters,
    elapsed: Duration,
) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "quiver produce: {} -> topic {:?} on {} (seed {}, {} compression)",
        cfg.source.name(),
        cfg.kafka.topic,
        cfg.kafka.bootstrap_servers,
        cfg.seed,
        cfg.kafka.compression
    );
    println!(
        "  sent        {} records ({:.1} MB key+value)",
        s.sent,
        s.sent_bytes as f64 / 1e6
    );
    println!(
        "  delivered   {}   failed {}   unacknowledged {}",
        s.delivered,
        s.failed,
        s.in_flight()
    );
    println!(
        "  throughput  {:.0} msgs/s, {:.2} MB/s delivered over {:.2} s",
        s.delivered as f64 / secs,
        s.delivered_bytes as f64 / 1e6 / secs,
        secs
    );
    if s.latency.is_empty() {
        println!("  latency     no deliveries");
    } else {
        println!(
            "  latency     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (enqueue to broker ack)",
            s.latency_quantile(0.50).as_secs_f64() * 1e3,
            s.latency_quantile(0.99).as_secs_f64() * 1e3,
            s.latency.max() as f64 / 1e3
        );
    }
    if cfg.source == SourceKind::Randomuser {
        println!(
            "  randomuser  {} pages, {} retried attempts",
            counters.pages.load(Ordering::Relaxed),
            counters.retries.load(Ordering::Relaxed)
        );
    }
    let missing = counters.missing_key.load(Ordering::Relaxed);
    if missing > 0 {
        println!("  skipped     {missing} records without login.uuid (not sent)");
    }
    if let Some(failure) = &s.first_failure {
        println!("  first failure: {failure}");
    }
}

/// Prometheus text exposition of the run.
fn render_metrics(labels: &str, s: &DeliverySnapshot, c: &SourceCounters) -> String {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        out +=
            &format!("# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{labels}}} {value}\n");
    };
    counter(
        "quiver_produce_sent_total",
        "Records handed to the Kafka producer.",
        s.sent,
    );
    counter(
        "quiver_produce_sent_bytes_total",
        "Key plus value bytes handed to the producer.",
        s.sent_bytes,
    );
    counter(
        "quiver_produce_delivered_total",
        "Records acknowledged by Kafka.",
        s.delivered,
    );
    counter(
        "quiver_produce_failed_total",
        "Records Kafka did not accept.",
        s.failed,
    );
    counter(
        "quiver_produce_skipped_no_key_total",
        "Records without login.uuid, not sent.",
        c.missing_key.load(Ordering::Relaxed),
    );
    counter(
        "quiver_produce_source_pages_total",
        "randomuser pages fetched.",
        c.pages.load(Ordering::Relaxed),
    );
    counter(
        "quiver_produce_source_retries_total",
        "randomuser attempts that were retried.",
        c.retries.load(Ordering::Relaxed),
    );
    let name = "quiver_produce_delivery_latency_seconds";
    out += &format!("# HELP {name} Enqueue to broker acknowledgement.\n# TYPE {name} summary\n");
    for q in [0.5, 0.9, 0.99, 0.999] {
        out += &format!(
            "{name}{{{labels},quantile=\"{q}\"}} {}\n",
            s.latency.value_at_quantile(q) as f64 / 1e6
        );
    }
    let sum: f64 = s
        .latency
        .iter_recorded()
        .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
        .sum::<f64>()
        / 1e6;
    out += &format!(
        "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {}\n",
        s.latency.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::settings::load;
    use std::collections::BTreeMap;

    fn flags(args: &[&str]) -> Settings {
        crate::settings::flags(args).unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write_toml(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn every_key_and_its_default_is_in_the_settings_table() {
        crate::settings::assert_documented::<Settings>();
    }

    #[test]
    fn layers_override_in_order_defaults_toml_env_flags() {
        let file = write_toml(
            "[produce]\nsource = \"synthetic\"\ncount = 10\ntopic = \"from-toml\"\n\
             partitions = 6\ncompression = \"zstd\"\nlinger-ms = 5\n\
             [serve]\nanything = \"ignored\"\n",
        );
        let env = vars(&[
            ("QUIVER_TOPIC", "from-env"),
            ("QUIVER_PARTITIONS", "4"),
            ("QUIVER_BOOTSTRAP_SERVERS", "env-host:9092"),
            ("UNRELATED", "x"),
        ]);
        let loaded = load(Some(file.path()), flags(&["--partitions", "2"]), &env).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let cfg = ProduceConfig::resolve(loaded.settings).unwrap();
        assert_eq!(cfg.source, SourceKind::Synthetic); // toml
        assert_eq!(cfg.amount, Amount::Count(10)); // toml
        assert_eq!(cfg.kafka.topic, "from-env"); // env over toml
        assert_eq!(cfg.kafka.partitions, 2); // flag over env over toml
        assert_eq!(cfg.kafka.compression, Compression::Zstd); // toml
        assert_eq!(cfg.kafka.linger, Duration::from_millis(5)); // toml
        assert_eq!(cfg.kafka.bootstrap_servers, "env-host:9092"); // env
        assert_eq!(cfg.kafka.replication_factor, 1); // default
        assert_eq!(cfg.kafka.batch_size, KafkaConfig::default().batch_size); // default
    }

    #[test]
    fn old_names_still_work_with_a_warning_and_lose_to_the_new_ones() {
        let file = write_toml("[produce]\nlinger_ms = 5\n");
        let env = vars(&[
            ("QUIVER_PRODUCE_TOPIC", "old-topic"),
            ("QUIVER_KAFKA_BOOTSTRAP", "old:1"),
            ("QUIVER_PRODUCE_PARTITIONS", "4"),
            ("QUIVER_PARTITIONS", "5"),
        ]);
        let loaded = load(Some(file.path()), Settings::default(), &env).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.linger_ms, Some(5));
        assert_eq!(s.topic.as_deref(), Some("old-topic"));
        assert_eq!(s.bootstrap_servers.as_deref(), Some("old:1"));
        assert_eq!(s.partitions, Some(5));
        let warnings = loaded.warnings.join("\n");
        for expected in [
            "linger_ms is an old spelling: write `linger-ms`",
            "QUIVER_PRODUCE_TOPIC is an old name: use QUIVER_TOPIC",
            "QUIVER_KAFKA_BOOTSTRAP is an old name: use QUIVER_BOOTSTRAP_SERVERS",
            "QUIVER_PRODUCE_PARTITIONS is ignored: QUIVER_PARTITIONS is set",
        ] {
            assert!(
                warnings.contains(expected),
                "{expected:?} not in\n{warnings}"
            );
        }
    }

    #[test]
    fn count_and_duration_are_one_choice_decided_by_the_highest_layer() {
        let file = write_toml("[produce]\ncount = 100\n");
        let loaded = load(Some(file.path()), flags(&["--duration", "2m"]), &vars(&[])).unwrap();
        let cfg = ProduceConfig::resolve(loaded.settings).unwrap();
        assert_eq!(cfg.amount, Amount::Duration(Duration::from_secs(120)));
        let none = load(None, Settings::default(), &vars(&[])).unwrap();
        let err = ProduceConfig::resolve(none.settings).unwrap_err();
        assert!(
            err.to_string().contains("--count N or --duration D"),
            "{err}"
        );
        assert!(crate::settings::flags::<Settings>(&["--count", "1", "--duration", "1s"]).is_err());
    }

    #[test]
    fn bad_values_name_where_they_came_from() {
        let err = load(
            None,
            Settings::default(),
            &vars(&[("QUIVER_PARTITIONS", "many")]),
        )
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("QUIVER_PARTITIONS"), "{message}");
        assert!(message.contains("many"), "{message}");

        let err = load(
            None,
            Settings::default(),
            &vars(&[("QUIVER_PRODUCE_TOPICS", "x")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("names no setting"), "{err:#}");

        let file = write_toml("[produce]\ncompresion = \"lz4\"\n");
        let message = format!(
            "{:#}",
            load(Some(file.path()), Settings::default(), &vars(&[])).unwrap_err()
        );
        assert!(
            message.contains("compresion") && message.contains("unknown"),
            "{message}"
        );

        let file = write_toml("[produce]\ncompression = \"brotli\"\n");
        let message = format!(
            "{:#}",
            load(Some(file.path()), Settings::default(), &vars(&[])).unwrap_err()
        );
        assert!(
            message.contains("brotli") && message.contains("[produce]"),
            "{message}"
        );

        let file = write_toml("[produce\n");
        let message = format!(
            "{:#}",
            load(Some(file.path()), Settings::default(), &vars(&[])).unwrap_err()
        );
        assert!(message.contains("not valid TOML"), "{message}");
    }

    #[test]
    fn rate_must_be_positive() {
        assert!(crate::settings::flags::<Settings>(&["--rate", "0"]).is_err());
        assert!(crate::settings::flags::<Settings>(&["--rate", "-5"]).is_err());
        assert_eq!(flags(&["--rate", "2.5"]).rate, Some(2.5));
    }

    #[test]
    fn metrics_expose_counters_and_latency_quantiles() {
        let mut latency = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        latency.record(1000).unwrap();
        latency.record(3000).unwrap();
        let snapshot = DeliverySnapshot {
            sent: 5,
            sent_bytes: 500,
            delivered: 2,
            delivered_bytes: 200,
            failed: 1,
            latency,
            first_failure: None,
        };
        let counters = SourceCounters::default();
        counters.missing_key.store(7, Ordering::Relaxed);
        let text = render_metrics("source=\"s\",topic=\"t\"", &snapshot, &counters);
        assert!(text.contains("quiver_produce_sent_total{source=\"s\",topic=\"t\"} 5\n"));
        assert!(text.contains("quiver_produce_failed_total{source=\"s\",topic=\"t\"} 1\n"));
        assert!(text.contains("quiver_produce_skipped_no_key_total{source=\"s\",topic=\"t\"} 7\n"));
        assert!(text.contains(
            "quiver_produce_delivery_latency_seconds_count{source=\"s\",topic=\"t\"} 2\n"
        ));
        assert!(text.contains("# TYPE quiver_produce_delivery_latency_seconds summary"));
    }
}
