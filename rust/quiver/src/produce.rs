//! `quiver produce`: user records from randomuser.me or the synthetic generator into Kafka.
//!
//! Settings come in layers, each overriding the one before: built-in defaults, the
//! `[produce]` table of the TOML file given with `--config`, `QUIVER_PRODUCE_*` environment
//! variables (and `QUIVER_KAFKA_BOOTSTRAP`), then the command-line flags. Every layer is
//! parsed by the same clap definitions, so a value means the same wherever it is written.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, CommandFactory, Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use quiver_kafka::{Compression, DeliverySnapshot, KafkaConfig, Producer, TopicStatus};
use quiver_source::randomuser::{Pages, RandomUser, RandomUserConfig};
use tokio::sync::watch;

const ENV_PREFIX: &str = "QUIVER_PRODUCE_";
/// Shared with the tests and the local stack scripts; below `QUIVER_PRODUCE_BOOTSTRAP_SERVERS`.
const ENV_BOOTSTRAP: &str = "QUIVER_KAFKA_BOOTSTRAP";
/// Exit status after Ctrl-C, as shells report a SIGINT death.
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Args, Debug)]
#[command(after_help = "\
Every setting flag can also be written in the [produce] table of the --config file \
(key = flag name, e.g. bootstrap-servers = \"host:9092\") or as an environment variable \
QUIVER_PRODUCE_<FLAG> (e.g. QUIVER_PRODUCE_BOOTSTRAP_SERVERS; QUIVER_KAFKA_BOOTSTRAP also \
works). Precedence: flags > environment > config file > defaults.

Exit status: 0 when every record was delivered, 1 on an error or any undelivered record, \
130 after Ctrl-C (in-flight records are flushed and the summary printed first).")]
pub struct ProduceArgs {
    /// TOML file whose [produce] table holds settings.
    #[arg(long, env = "QUIVER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective settings and exit without producing.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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

/// One layer of settings; `None` leaves the decision to a lower layer.
#[derive(Args, Debug, Default, Clone, PartialEq)]
struct Settings {
    /// Where the records come from [default: randomuser].
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// Stop after this many records have been sent.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
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
    compression: Option<Compression>,
    /// Producer linger in milliseconds [default: 20].
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Producer batch size in bytes [default: 1000000].
    #[arg(long)]
    batch_size: Option<u32>,
    /// A record not acknowledged within this time fails [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration)]
    delivery_timeout: Option<Duration>,
    /// Budget for reaching Kafka and for a new topic to become ready [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
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
    #[arg(long, value_parser = humantime::parse_duration)]
    request_timeout: Option<Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics while running (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of records per second"
        )),
    }
}

impl Settings {
    /// `self` where it has a value, `lower` elsewhere. `count` and `duration` are one choice:
    /// the higher layer that names either decides both.
    fn over(self, lower: Settings) -> Settings {
        let (count, duration) = if self.count.is_some() || self.duration.is_some() {
            (self.count, self.duration)
        } else {
            (lower.count, lower.duration)
        };
        Settings {
            source: self.source.or(lower.source),
            count,
            duration,
            rate: self.rate.or(lower.rate),
            topic: self.topic.or(lower.topic),
            bootstrap_servers: self.bootstrap_servers.or(lower.bootstrap_servers),
            partitions: self.partitions.or(lower.partitions),
            replication_factor: self.replication_factor.or(lower.replication_factor),
            compression: self.compression.or(lower.compression),
            linger_ms: self.linger_ms.or(lower.linger_ms),
            batch_size: self.batch_size.or(lower.batch_size),
            delivery_timeout: self.delivery_timeout.or(lower.delivery_timeout),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            seed: self.seed.or(lower.seed),
            api_url: self.api_url.or(lower.api_url),
            page_size: self.page_size.or(lower.page_size),
            nat: self.nat.or(lower.nat),
            max_attempts: self.max_attempts.or(lower.max_attempts),
            request_timeout: self.request_timeout.or(lower.request_timeout),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
        }
    }
}

/// Parses `--name value` pairs with the flags' own parsers, so the config file and the
/// environment accept exactly what the command line accepts.
#[derive(Parser)]
#[command(no_binary_name = true)]
struct SettingsOnly {
    #[command(flatten)]
    settings: Settings,
}

fn setting_names() -> Vec<String> {
    SettingsOnly::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

fn parse_pairs(pairs: &[(String, String)], origin: impl Fn(&str) -> String) -> Result<Settings> {
    let mut settings = Settings::default();
    // One pair at a time, so that an error names the one entry that is wrong.
    for (name, value) in pairs {
        let layer = SettingsOnly::try_parse_from([format!("--{name}"), value.clone()])
            .map_err(|e| anyhow::anyhow!("{}: {}", origin(name), e.kind()))
            .with_context(|| format!("invalid value {value:?} for {}", origin(name)))?
            .settings;
        settings = layer.over(settings);
    }
    Ok(settings)
}

/// The `[produce]` table of a TOML file.
fn toml_layer(path: &Path) -> Result<Settings> {
    let Some(produce) = crate::config::section(path, "produce")? else {
        return Ok(Settings::default());
    };
    let known = setting_names();
    let mut pairs = Vec::new();
    for (key, value) in &produce {
        let name = key.replace('_', "-");
        if !known.contains(&name) {
            bail!(
                "config file {}: unknown setting [produce] {key} (known: {})",
                path.display(),
                known.join(", ")
            );
        }
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                value.to_string()
            }
            other => bail!(
                "config file {}: [produce] {key} must be a string or a number, not {}",
                path.display(),
                other.type_str()
            ),
        };
        pairs.push((name, value));
    }
    parse_pairs(&pairs, |name| {
        format!("[produce] {name} in {}", path.display())
    })
}

/// `QUIVER_PRODUCE_*` and `QUIVER_KAFKA_BOOTSTRAP` from `vars`.
fn env_layer(vars: &BTreeMap<String, String>) -> Result<Settings> {
    let known = setting_names();
    let mut pairs = Vec::new();
    if let Some(bootstrap) = vars.get(ENV_BOOTSTRAP) {
        pairs.push(("bootstrap-servers".to_string(), bootstrap.clone()));
    }
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let name = rest.to_ascii_lowercase().replace('_', "-");
        if !known.contains(&name) {
            bail!(
                "unknown setting in environment variable {var} (known: {})",
                known
                    .iter()
                    .map(|n| format!("{ENV_PREFIX}{}", n.to_ascii_uppercase().replace('-', "_")))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        pairs.push((name, value.clone()));
    }
    parse_pairs(&pairs, |name| {
        if name == "bootstrap-servers" && !vars.contains_key("QUIVER_PRODUCE_BOOTSTRAP_SERVERS") {
            format!("environment variable {ENV_BOOTSTRAP}")
        } else {
            format!(
                "environment variable {ENV_PREFIX}{}",
                name.to_ascii_uppercase().replace('-', "_")
            )
        }
    })
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
                 (or count/duration in the config file, or QUIVER_PRODUCE_COUNT/DURATION)"
            ),
            (Some(_), Some(_)) => bail!("--count and --duration exclude each other"),
        };
        let kafka_defaults = KafkaConfig::default();
        let kafka = KafkaConfig {
            bootstrap_servers: s
                .bootstrap_servers
                .unwrap_or(kafka_defaults.bootstrap_servers),
            topic: s.topic.unwrap_or(kafka_defaults.topic),
            partitions: s.partitions.unwrap_or(kafka_defaults.partitions),
            replication_factor: s
                .replication_factor
                .unwrap_or(kafka_defaults.replication_factor),
            compression: s.compression.unwrap_or(kafka_defaults.compression),
            linger: s
                .linger_ms
                .map(Duration::from_millis)
                .unwrap_or(kafka_defaults.linger),
            batch_size: s.batch_size.unwrap_or(kafka_defaults.batch_size),
            delivery_timeout: s
                .delivery_timeout
                .unwrap_or(kafka_defaults.delivery_timeout),
            connect_timeout: s.connect_timeout.unwrap_or(kafka_defaults.connect_timeout),
        };
        // A seed is always fixed before the run, so that the summary can name it and the
        // run can be repeated.
        let seed = s.seed.unwrap_or_else(quiver_source::synthetic::new_seed);
        let ru_defaults = RandomUserConfig::default();
        let randomuser = RandomUserConfig {
            base_url: s.api_url.unwrap_or(ru_defaults.base_url.clone()),
            page_size: s.page_size.unwrap_or(ru_defaults.page_size),
            seed: Some(seed.clone()),
            nat: s.nat,
            max_attempts: s.max_attempts.unwrap_or(ru_defaults.max_attempts),
            request_timeout: s.request_timeout.unwrap_or(ru_defaults.request_timeout),
            ..ru_defaults
        };
        Ok(Self {
            source: s.source.unwrap_or(SourceKind::Randomuser),
            amount,
            rate: s.rate,
            seed,
            kafka,
            randomuser,
            metrics_addr: s.metrics_addr,
        })
    }

    fn render(&self) -> String {
        let k = &self.kafka;
        let r = &self.randomuser;
        let amount = match self.amount {
            Amount::Count(n) => format!("count = {n}"),
            Amount::Duration(d) => format!("duration = \"{}\"", humantime::format_duration(d)),
        };
        let mut out = format!("[produce]\nsource = \"{}\"\n{amount}\n", self.source.name());
        if let Some(rate) = self.rate {
            out += &format!("rate = {rate}\n");
        }
        out += &format!(
            "seed = \"{}\"\ntopic = \"{}\"\nbootstrap-servers = \"{}\"\npartitions = {}\n\
             replication-factor = {}\ncompression = \"{}\"\nlinger-ms = {}\nbatch-size = {}\n\
             delivery-timeout = \"{}\"\nconnect-timeout = \"{}\"\n",
            self.seed,
            k.topic,
            k.bootstrap_servers,
            k.partitions,
            k.replication_factor,
            k.compression,
            k.linger.as_millis(),
            k.batch_size,
            humantime::format_duration(k.delivery_timeout),
            humantime::format_duration(k.connect_timeout),
        );
        if self.source == SourceKind::Randomuser {
            out += &format!(
                "api-url = \"{}\"\npage-size = {}\nmax-attempts = {}\nrequest-timeout = \"{}\"\n",
                r.base_url,
                r.page_size,
                r.max_attempts,
                humantime::format_duration(r.request_timeout),
            );
            if let Some(nat) = &r.nat {
                out += &format!("nat = \"{nat}\"\n");
            }
        }
        if let Some(addr) = self.metrics_addr {
            out += &format!("metrics-addr = \"{addr}\"\n");
        }
        out
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
    let toml = match &args.config {
        Some(path) => toml_layer(path)?,
        None => Settings::default(),
    };
    let env = env_layer(&std::env::vars().collect())?;
    let cfg = ProduceConfig::resolve(args.settings.over(env.over(toml)))?;
    if args.print_config {
        print!("{}", cfg.render());
        return Ok(ExitCode::SUCCESS);
    }

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

    fn flags(args: &[&str]) -> Settings {
        SettingsOnly::try_parse_from(args).unwrap().settings
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
    fn layers_override_in_order_defaults_toml_env_flags() {
        let file = write_toml(
            "[produce]\nsource = \"synthetic\"\ncount = 10\ntopic = \"from-toml\"\n\
             partitions = 6\ncompression = \"zstd\"\nlinger_ms = 5\n\
             [serve]\nanything = \"ignored\"\n",
        );
        let toml = toml_layer(file.path()).unwrap();
        let env = env_layer(&vars(&[
            ("QUIVER_PRODUCE_TOPIC", "from-env"),
            ("QUIVER_PRODUCE_PARTITIONS", "4"),
            ("QUIVER_KAFKA_BOOTSTRAP", "env-host:9092"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        let cli = flags(&["--partitions", "2"]);
        let cfg = ProduceConfig::resolve(cli.over(env.over(toml))).unwrap();
        assert_eq!(cfg.source, SourceKind::Synthetic); // toml
        assert_eq!(cfg.amount, Amount::Count(10)); // toml
        assert_eq!(cfg.kafka.topic, "from-env"); // env over toml
        assert_eq!(cfg.kafka.partitions, 2); // flag over env over toml
        assert_eq!(cfg.kafka.compression, Compression::Zstd); // toml
        assert_eq!(cfg.kafka.linger, Duration::from_millis(5)); // toml, snake_case key
        assert_eq!(cfg.kafka.bootstrap_servers, "env-host:9092"); // alias env
        assert_eq!(cfg.kafka.replication_factor, 1); // default
        assert_eq!(cfg.kafka.batch_size, KafkaConfig::default().batch_size); // default
    }

    #[test]
    fn the_specific_bootstrap_variable_beats_the_shared_one() {
        let env = env_layer(&vars(&[
            ("QUIVER_KAFKA_BOOTSTRAP", "shared:1"),
            ("QUIVER_PRODUCE_BOOTSTRAP_SERVERS", "specific:2"),
        ]))
        .unwrap();
        assert_eq!(env.bootstrap_servers.as_deref(), Some("specific:2"));
    }

    #[test]
    fn count_and_duration_are_one_choice_decided_by_the_highest_layer() {
        let toml = flags(&["--count", "100"]);
        let cli = flags(&["--duration", "2m"]);
        let cfg = ProduceConfig::resolve(cli.over(toml)).unwrap();
        assert_eq!(cfg.amount, Amount::Duration(Duration::from_secs(120)));
        let err = ProduceConfig::resolve(Settings::default()).unwrap_err();
        assert!(
            err.to_string().contains("--count N or --duration D"),
            "{err}"
        );
        assert!(SettingsOnly::try_parse_from(["--count", "1", "--duration", "1s"]).is_err());
    }

    #[test]
    fn bad_values_name_where_they_came_from() {
        let err = env_layer(&vars(&[("QUIVER_PRODUCE_PARTITIONS", "many")])).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("QUIVER_PRODUCE_PARTITIONS"), "{message}");
        assert!(message.contains("many"), "{message}");

        let err = env_layer(&vars(&[("QUIVER_PRODUCE_TOPICS", "x")])).unwrap_err();
        assert!(format!("{err:#}").contains("unknown setting"), "{err:#}");

        let file = write_toml("[produce]\ncompresion = \"lz4\"\n");
        let err = toml_layer(file.path()).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("compresion") && message.contains("unknown"),
            "{message}"
        );

        let file = write_toml("[produce]\ncompression = \"brotli\"\n");
        let message = format!("{:#}", toml_layer(file.path()).unwrap_err());
        assert!(
            message.contains("brotli") && message.contains("[produce] compression"),
            "{message}"
        );

        let file = write_toml("[produce\n");
        let message = format!("{:#}", toml_layer(file.path()).unwrap_err());
        assert!(message.contains("not valid TOML"), "{message}");
    }

    #[test]
    fn rate_must_be_positive() {
        assert!(SettingsOnly::try_parse_from(["--rate", "0"]).is_err());
        assert!(SettingsOnly::try_parse_from(["--rate", "-5"]).is_err());
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
