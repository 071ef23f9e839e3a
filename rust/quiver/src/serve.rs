//! `quiver serve`: the Flight service, the metrics/health endpoint, and the sinks.
//!
//! Settings come from, in rising priority: built-in defaults, the `[serve]` table of a
//! TOML file (`--config`), `QUIVER_*` environment variables, and command-line flags.

use crate::dashboard::{Dashboard, Link, Monitor, PostgresProbe, Probes};
use anyhow::{Context, Result, bail};
use quiver_cassandra::{CassandraConfig, CassandraSink};
use quiver_core::{Engine, PipelineSpec, Sink, SinkSet};
use quiver_flight::{Metrics, QuiverFlight, ServiceConfig, TlsIdentity};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    /// TOML file whose [serve] table holds settings.
    #[arg(long, env = "QUIVER_CONFIG")]
    config: Option<PathBuf>,
    /// Where output goes: `cassandra`, or `none` for a pure transform service.
    #[arg(long, env = "QUIVER_SINK")]
    sink: Option<SinkKind>,
    /// Flight (gRPC) listen address.
    #[arg(long, env = "QUIVER_FLIGHT_LISTEN")]
    flight_listen: Option<SocketAddr>,
    /// HTTP listen address for the dashboard (/), /metrics and /healthz.
    #[arg(long, env = "QUIVER_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum SinkKind {
    Cassandra,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    flight_listen: SocketAddr,
    http_listen: SocketAddr,
    sink: SinkKind,
    max_message_bytes: usize,
    /// Rows of recent output kept per pipeline for `quiver sql`.
    window_rows: usize,
    /// Batches of one exchange processed at once (a real-time stream sends many small ones).
    batches_in_flight: usize,
    /// File holding the bearer token (the token itself only via QUIVER_TOKEN).
    token_file: Option<PathBuf>,
    /// PEM certificate chain and private key: with both, Flight speaks TLS only.
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    cassandra: CassandraSettings,
    pipelines: Vec<PipelineSettings>,
    /// Kafka's bootstrap servers, for the dashboard's lag per partition (off when unset).
    kafka_bootstrap: Option<String>,
    /// Links the dashboard shows to the stack's other tools (Spark UI, Airflow, ...).
    dashboard_links: Vec<Link>,
    /// The Spark driver's UI (http://host:4040), for Spark's batch durations (off when unset).
    spark_ui: Option<String>,
    /// The batch leg's Postgres, whose runs the dashboard compares with Cassandra (off
    /// when unset); the password only from a file.
    postgres_url: Option<String>,
    postgres_password_file: Option<PathBuf>,
    /// The batch leg's users table [default: batch_users].
    postgres_users_table: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            flight_listen: ([127, 0, 0, 1], 50051).into(),
            http_listen: ([127, 0, 0, 1], 9464).into(),
            sink: SinkKind::Cassandra,
            max_message_bytes: ServiceConfig::default().max_message_bytes,
            window_rows: 100_000,
            batches_in_flight: quiver_flight::DEFAULT_BATCHES_IN_FLIGHT,
            token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            cassandra: CassandraSettings::default(),
            pipelines: Vec::new(),
            kafka_bootstrap: None,
            dashboard_links: Vec::new(),
            spark_ui: None,
            postgres_url: None,
            postgres_password_file: None,
            postgres_users_table: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CassandraSettings {
    nodes: Vec<String>,
    keyspace: String,
    replication_factor: u32,
    /// NetworkTopologyStrategy in this datacenter (SimpleStrategy when unset).
    datacenter: Option<String>,
    /// Write consistency level by its CQL name.
    consistency: String,
    concurrency: usize,
    /// How long a write waits for Cassandra to come back before its batch fails.
    retry_window_ms: u64,
    request_timeout_ms: u64,
    username: Option<String>,
    password_file: Option<PathBuf>,
}

impl Default for CassandraSettings {
    fn default() -> Self {
        let d = CassandraConfig::default();
        Self {
            nodes: d.nodes,
            keyspace: d.keyspace,
            replication_factor: d.replication_factor,
            datacenter: d.datacenter,
            consistency: quiver_cassandra::consistency_name(d.consistency).into(),
            concurrency: d.concurrency,
            retry_window_ms: d.retry_window.as_millis() as u64,
            request_timeout_ms: d.request_timeout.as_millis() as u64,
            username: None,
            password_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineSettings {
    name: String,
    /// SQL over `raw_users`; relative paths are taken from the config file's folder.
    sql_file: Option<PathBuf>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_parse<T: std::str::FromStr>(env: Env, name: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    env(name)
        .map(|v| {
            v.parse()
                .map_err(|e| anyhow::anyhow!("environment variable {name}={v:?} is invalid: {e}"))
        })
        .transpose()
}

fn read_secret(path: &Path, what: &str) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} file {}", path.display()))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(s)
}

/// Settings from the file, then `env` (the process environment outside tests), then flags.
fn load(args: &Args, env: Env) -> Result<(Settings, PathBuf)> {
    let (mut s, base) = match &args.config {
        Some(path) => {
            let s: Settings = crate::config::typed_section(path, "serve")?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (s, base)
        }
        None => (Settings::default(), PathBuf::from(".")),
    };
    if let Some(v) = env_parse(env, "QUIVER_MAX_MESSAGE_BYTES")? {
        s.max_message_bytes = v;
    }
    if let Some(v) = env_parse(env, "QUIVER_WINDOW_ROWS")? {
        s.window_rows = v;
    }
    if let Some(v) = env_parse(env, "QUIVER_BATCHES_IN_FLIGHT")? {
        s.batches_in_flight = v;
    }
    if let Some(v) = env("QUIVER_TOKEN_FILE") {
        s.token_file = Some(v.into());
    }
    if let Some(v) = env("QUIVER_TLS_CERT_FILE") {
        s.tls_cert_file = Some(v.into());
    }
    if let Some(v) = env("QUIVER_TLS_KEY_FILE") {
        s.tls_key_file = Some(v.into());
    }
    if let Some(v) = env("QUIVER_CASSANDRA_NODES") {
        s.cassandra.nodes = v.split(',').map(|n| n.trim().to_string()).collect();
    }
    if let Some(v) = env("QUIVER_CASSANDRA_KEYSPACE") {
        s.cassandra.keyspace = v;
    }
    if let Some(v) = env_parse(env, "QUIVER_CASSANDRA_REPLICATION_FACTOR")? {
        s.cassandra.replication_factor = v;
    }
    if let Some(v) = env("QUIVER_CASSANDRA_DATACENTER") {
        s.cassandra.datacenter = Some(v);
    }
    if let Some(v) = env("QUIVER_CASSANDRA_CONSISTENCY") {
        s.cassandra.consistency = v;
    }
    // In seconds, as the Spark job's --cassandra-retry-window reads the same variable.
    if let Some(v) = env_parse::<f64>(env, "QUIVER_CASSANDRA_RETRY_WINDOW")? {
        s.cassandra.retry_window_ms = Duration::try_from_secs_f64(v)
            .map_err(|e| {
                anyhow::anyhow!("environment variable QUIVER_CASSANDRA_RETRY_WINDOW={v}: {e}")
            })?
            .as_millis() as u64;
    }
    if let Some(v) = env("QUIVER_CASSANDRA_USERNAME") {
        s.cassandra.username = Some(v);
    }
    if let Some(v) = env("QUIVER_CASSANDRA_PASSWORD_FILE") {
        s.cassandra.password_file = Some(v.into());
    }
    if let Some(v) = env("QUIVER_KAFKA_BOOTSTRAP") {
        s.kafka_bootstrap = Some(v);
    }
    if let Some(v) = env("QUIVER_SPARK_UI") {
        s.spark_ui = Some(v);
    }
    if let Some(v) = env("QUIVER_POSTGRES_URL") {
        s.postgres_url = Some(v);
    }
    if let Some(v) = env("QUIVER_POSTGRES_PASSWORD_FILE") {
        s.postgres_password_file = Some(v.into());
    }
    if let Some(v) = env("QUIVER_DASHBOARD_LINKS") {
        s.dashboard_links = Link::parse_list(&v)
            .map_err(|e| anyhow::anyhow!("environment variable QUIVER_DASHBOARD_LINKS: {e}"))?;
    }
    s.dashboard_links = std::mem::take(&mut s.dashboard_links)
        .into_iter()
        .map(Link::checked)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("[serve] dashboard_links: {e}"))?;
    // clap already merged the flags with their QUIVER_* variables.
    if let Some(v) = args.sink {
        s.sink = v;
    }
    if let Some(v) = args.flight_listen {
        s.flight_listen = v;
    }
    if let Some(v) = args.http_listen {
        s.http_listen = v;
    }
    Ok((s, base))
}

fn pipeline_specs(s: &Settings, base: &Path) -> Result<Vec<PipelineSpec>> {
    let mut specs = if s.pipelines.is_empty() {
        vec![PipelineSpec::users()]
    } else {
        s.pipelines
            .iter()
            .map(|p| match &p.sql_file {
                None => Ok(PipelineSpec::users_with_sql(
                    &p.name,
                    quiver_core::pipeline::USERS_SQL,
                )),
                Some(file) => {
                    let path = base.join(file);
                    let sql = std::fs::read_to_string(&path).with_context(|| {
                        format!(
                            "reading the SQL of pipeline `{}` from {}",
                            p.name,
                            path.display()
                        )
                    })?;
                    Ok(PipelineSpec::users_with_sql(&p.name, &sql))
                }
            })
            .collect::<Result<Vec<_>>>()?
    };
    for spec in &mut specs {
        spec.sinks = match s.sink {
            SinkKind::Cassandra => vec!["cassandra".into()],
            SinkKind::None => vec![],
        };
    }
    Ok(specs)
}

fn token(s: &Settings) -> Result<Option<String>> {
    if let Some(t) = env_var("QUIVER_TOKEN") {
        return Ok(Some(t));
    }
    s.token_file
        .as_deref()
        .map(|p| read_secret(p, "token"))
        .transpose()
}

fn tls(s: &Settings) -> Result<Option<TlsIdentity>> {
    let (cert, key) = match (&s.tls_cert_file, &s.tls_key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => bail!(
            "TLS needs both a certificate and a key file (tls_cert_file and tls_key_file, or QUIVER_TLS_CERT_FILE and QUIVER_TLS_KEY_FILE)"
        ),
    };
    let read = |path: &Path, what: &str| {
        std::fs::read(path).with_context(|| format!("reading the TLS {what} {}", path.display()))
    };
    let identity = TlsIdentity::new(read(cert, "certificate")?, read(key, "key")?)
        .with_context(|| format!("TLS with {} and {}", cert.display(), key.display()))?;
    Ok(Some(identity))
}

async fn bind(addr: SocketAddr, what: &str, var: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen for {what} on {addr} (port taken? stop the other process or set {var})"
        )
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let (settings, base) = load(&args, &env_var)?;
    let specs = pipeline_specs(&settings, &base)?;
    let engine = Arc::new(
        Engine::new(specs, settings.window_rows)
            .await
            .context("the pipelines' SQL is invalid; fix it before starting")?,
    );
    let token = token(&settings)?;
    let tls = tls(&settings)?;
    let flight_listener = bind(settings.flight_listen, "Flight", "QUIVER_FLIGHT_LISTEN").await?;
    let http_listener = bind(settings.http_listen, "HTTP metrics", "QUIVER_HTTP_LISTEN").await?;

    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    let mut cassandra_probe = None;
    match settings.sink {
        SinkKind::None => {}
        SinkKind::Cassandra => {
            let c = &settings.cassandra;
            let credentials = match (&c.username, &c.password_file) {
                (Some(u), Some(p)) => Some((u.clone(), read_secret(p, "Cassandra password")?)),
                (None, None) => None,
                _ => bail!(
                    "Cassandra credentials need both a username and a password file (QUIVER_CASSANDRA_USERNAME, QUIVER_CASSANDRA_PASSWORD_FILE)"
                ),
            };
            let sink = CassandraSink::connect(CassandraConfig {
                nodes: c.nodes.clone(),
                keyspace: c.keyspace.clone(),
                replication_factor: c.replication_factor,
                datacenter: c.datacenter.clone(),
                consistency: quiver_cassandra::consistency_from_name(&c.consistency)
                    .context("[serve.cassandra] consistency (QUIVER_CASSANDRA_CONSISTENCY)")?,
                concurrency: c.concurrency.max(1),
                retry_window: Duration::from_millis(c.retry_window_ms),
                request_timeout: Duration::from_millis(c.request_timeout_ms),
                credentials,
            })
            .await?;
            let sink = Arc::new(sink);
            cassandra_probe = Some(sink.clone());
            sinks.push(sink);
        }
    }
    let kafka_probe = match &settings.kafka_bootstrap {
        Some(bootstrap) => {
            let cfg = quiver_kafka::KafkaConfig {
                bootstrap_servers: bootstrap.clone(),
                // A dashboard check, not a start-up: a down broker must not hold it long.
                connect_timeout: Duration::from_secs(2),
                ..quiver_kafka::KafkaConfig::default()
            };
            let client = quiver_kafka::EndOffsets::new(&cfg)
                .with_context(|| format!("the dashboard's Kafka client for {bootstrap}"))?;
            Some((Arc::new(client), bootstrap.clone()))
        }
        None => None,
    };

    let metrics = Metrics::new().context("registering metrics")?;
    let sinks = SinkSet::new(&engine, sinks)?;
    let svc = QuiverFlight::new(engine.clone(), sinks, metrics.clone())
        .with_batches_in_flight(settings.batches_in_flight);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    if let Some(ui) = &settings.spark_ui
        && !(ui.starts_with("http://") || ui.starts_with("https://"))
    {
        bail!(
            "spark_ui (QUIVER_SPARK_UI) must be an http:// or https:// URL such as http://127.0.0.1:4040, not {ui:?}"
        );
    }
    let postgres_probe = match &settings.postgres_url {
        Some(url) => {
            let defaults = quiver_postgres::PostgresConfig::default();
            Some(PostgresProbe::new(quiver_postgres::PostgresConfig {
                url: url.clone(),
                password: settings
                    .postgres_password_file
                    .as_deref()
                    .map(|p| read_secret(p, "Postgres password"))
                    .transpose()?,
                users_table: settings
                    .postgres_users_table
                    .clone()
                    .unwrap_or(defaults.users_table),
                // A dashboard check: a Postgres that is down must not hold it long.
                connect_timeout: Duration::from_secs(2),
                ..defaults
            }))
        }
        None => None,
    };
    let probes = Probes {
        cassandra: cassandra_probe,
        kafka: kafka_probe,
        spark_ui: settings.spark_ui.clone(),
        postgres: postgres_probe,
    };
    let monitor =
        Arc::new(Monitor::new(metrics.clone(), &probes).context("the dashboard's HTTP client")?);
    let monitoring = tokio::spawn(monitor.clone().run(probes));
    let dashboard = Arc::new(Dashboard {
        engine: engine.clone(),
        monitor,
        token: token.clone(),
        links: settings.dashboard_links.clone(),
        window_rows: settings.window_rows,
    });
    let router = crate::http::health_and_metrics(move || metrics.render())
        .merge(crate::dashboard::router(dashboard));
    let http = tokio::spawn(
        axum::serve(http_listener, router)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let config = ServiceConfig {
        max_message_bytes: settings.max_message_bytes,
        token: token.clone(),
        tls: tls.clone(),
    };
    let mut flight = tokio::spawn(quiver_flight::serve(
        flight_listener,
        svc,
        config,
        stopped(stop_rx.clone()),
    ));
    tracing::info!(
        flight = %settings.flight_listen,
        http = %settings.http_listen,
        dashboard = %format!("http://{}/", settings.http_listen),
        sink = ?settings.sink,
        auth = token.is_some(),
        tls = tls.is_some(),
        pipelines = %engine.pipelines().map(|p| p.name().to_string()).collect::<Vec<_>>().join(","),
        "quiver serve ready"
    );
    tokio::select! {
        () = shutdown_signal() => {}
        ended = &mut flight => {
            let _ = stop_tx.send(true);
            ended.context("Flight server task")??;
            bail!("the Flight server stopped by itself; see the log above");
        }
    }
    tracing::info!("shutting down: finishing in-flight batches");
    monitoring.abort();
    let _ = stop_tx.send(true);
    flight.await.context("Flight server task")??;
    http.await
        .context("HTTP server task")?
        .context("HTTP server")?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> Args {
        Args {
            config,
            sink: None,
            flight_listen: None,
            http_listen: None,
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A directory removed when the test ends, pass or fail.
    fn scratch() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn defaults_bind_loopback_and_need_no_file() {
        let (s, _) = load(&args(None), &|_| None).unwrap();
        assert_eq!(s.flight_listen.to_string(), "127.0.0.1:50051");
        assert_eq!(s.http_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(s.sink, SinkKind::Cassandra);
        assert!(s.cassandra.username.is_none() && s.cassandra.password_file.is_none());
    }

    #[test]
    fn file_then_environment_then_flags() {
        let scratch = scratch();
        let dir = scratch.path();
        let file = write(
            dir,
            "quiver.toml",
            "[serve]\nsink = \"none\"\nwindow_rows = 5\nflight_listen = \"127.0.0.1:6000\"\n\
             [serve.cassandra]\nkeyspace = \"from_file\"\n[produce]\ncount = 10\n",
        );
        let env = |k: &str| match k {
            "QUIVER_CASSANDRA_KEYSPACE" => Some("from_env".to_string()),
            "QUIVER_CASSANDRA_NODES" => Some("10.0.0.1:9042, 10.0.0.2:9042".to_string()),
            _ => None,
        };
        let mut a = args(Some(file));
        a.flight_listen = Some("127.0.0.1:7000".parse().unwrap());
        let (s, _) = load(&a, &env).unwrap();
        assert_eq!(s.sink, SinkKind::None);
        assert_eq!(s.window_rows, 5);
        assert_eq!(s.cassandra.keyspace, "from_env");
        assert_eq!(s.cassandra.nodes, vec!["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert_eq!(s.flight_listen.to_string(), "127.0.0.1:7000");
    }

    #[test]
    fn tls_needs_a_certificate_and_a_key_that_parse() {
        let scratch = scratch();
        let dir = scratch.path();
        let env_cert_only =
            |k: &str| (k == "QUIVER_TLS_CERT_FILE").then(|| "/x/cert.pem".to_string());
        let (s, _) = load(&args(None), &env_cert_only).unwrap();
        let err = tls(&s).unwrap_err().to_string();
        assert!(err.contains("both a certificate and a key"), "{err}");

        let cert = write(dir, "cert.pem", "not PEM");
        let key = write(dir, "key.pem", "not PEM either");
        let file = write(
            dir,
            "quiver.toml",
            &format!("[serve]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\n"),
        );
        let (s, _) = load(&args(Some(file)), &|_| None).unwrap();
        let err = format!("{:#}", tls(&s).unwrap_err());
        assert!(err.contains("cert.pem") && err.contains("PEM"), "{err}");
        assert!(
            tls(&load(&args(None), &|_| None).unwrap().0)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_misspelt_setting_is_an_error() {
        let scratch = scratch();
        let dir = scratch.path();
        let file = write(dir, "quiver.toml", "[serve]\nwindw_rows = 5\n");
        let err = load(&args(Some(file)), &|_| None).unwrap_err();
        assert!(format!("{err:#}").contains("windw_rows"), "{err:#}");
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let env = |k: &str| (k == "QUIVER_WINDOW_ROWS").then(|| "lots".to_string());
        let err = load(&args(None), &env).unwrap_err();
        assert!(
            err.to_string().contains("QUIVER_WINDOW_ROWS=\"lots\""),
            "{err}"
        );
    }

    #[test]
    fn pipeline_sql_files_are_read_relative_to_the_config() {
        let scratch = scratch();
        let dir = scratch.path();
        write(dir, "mine.sql", "SELECT login_uuid AS id FROM raw_users");
        let file = write(
            dir,
            "quiver.toml",
            "[serve]\nsink = \"none\"\n[[serve.pipelines]]\nname = \"mine\"\nsql_file = \"mine.sql\"\n",
        );
        let (s, base) = load(&args(Some(file)), &|_| None).unwrap();
        let specs = pipeline_specs(&s, &base).unwrap();
        assert_eq!(specs[0].name, "mine");
        assert!(specs[0].sql.contains("login_uuid AS id"));
        assert!(specs[0].sinks.is_empty());

        let missing = write(
            dir,
            "missing.toml",
            "[[serve.pipelines]]\nname = \"x\"\nsql_file = \"nope.sql\"\n",
        );
        let (s, base) = load(&args(Some(missing)), &|_| None).unwrap();
        let err = pipeline_specs(&s, &base).unwrap_err();
        assert!(format!("{err:#}").contains("nope.sql"), "{err:#}");
    }

    #[test]
    fn dashboard_links_and_kafka_come_from_the_file_or_the_environment() {
        let scratch = scratch();
        let dir = scratch.path();
        let file = write(
            dir,
            "quiver.toml",
            "[serve]\nkafka_bootstrap = \"k1:9092\"\n\
             [[serve.dashboard_links]]\nname = \"Spark UI\"\nurl = \"http://127.0.0.1:9090\"\n",
        );
        let (s, _) = load(&args(Some(file.clone())), &|_| None).unwrap();
        assert_eq!(s.kafka_bootstrap.as_deref(), Some("k1:9092"));
        assert_eq!(s.dashboard_links[0].name, "Spark UI");
        let env = |k: &str| match k {
            "QUIVER_KAFKA_BOOTSTRAP" => Some("k2:9092".to_string()),
            "QUIVER_DASHBOARD_LINKS" => Some("Airflow=http://127.0.0.1:8080".to_string()),
            _ => None,
        };
        let (s, _) = load(&args(Some(file)), &env).unwrap();
        assert_eq!(s.kafka_bootstrap.as_deref(), Some("k2:9092"));
        assert_eq!(s.dashboard_links[0].url, "http://127.0.0.1:8080");

        let bad = write(
            dir,
            "bad.toml",
            "[[serve.dashboard_links]]\nname = \"x\"\nurl = \"javascript:alert(1)\"\n",
        );
        let err = load(&args(Some(bad)), &|_| None).unwrap_err();
        assert!(
            format!("{err:#}").contains("http:// or https://"),
            "{err:#}"
        );
        let env = |k: &str| (k == "QUIVER_DASHBOARD_LINKS").then(|| "no-url".to_string());
        let err = load(&args(None), &env).unwrap_err();
        assert!(
            format!("{err:#}").contains("QUIVER_DASHBOARD_LINKS"),
            "{err:#}"
        );
    }

    #[test]
    fn an_empty_secret_file_is_refused() {
        let scratch = scratch();
        let dir = scratch.path();
        let path = write(dir, "token", "  \n");
        let err = read_secret(&path, "token").unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
