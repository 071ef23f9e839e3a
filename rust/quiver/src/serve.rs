//! `quiver serve`: the Flight service, the metrics/health endpoint, and the sinks.
//!
//! Its settings are the `[serve]` table of the one settings layer (`crate::settings`).

use crate::dashboard::{Dashboard, Link, Monitor, PostgresProbe, Probes};
use crate::settings::{self, ConfigArgs, Layered, List, defaulted, duration};
use anyhow::{Context, Result, bail};
use quiver_cassandra::{CassandraConfig, CassandraSink};
use quiver_core::{Engine, PipelineSpec, Sink, SinkSet};
use quiver_flight::{Metrics, QuiverFlight, ServiceConfig, TlsIdentity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Every setting is also a key of the [serve] table of the --config file (e.g. \
window-rows = 5000) and an environment variable QUIVER_<KEY> (e.g. QUIVER_WINDOW_ROWS); \
flags > environment > config file > defaults. Secrets: the bearer token from QUIVER_TOKEN or \
--token-file, the Cassandra password from QUIVER_CASSANDRA_PASSWORD or \
--cassandra-password-file, Postgres's from QUIVER_POSTGRES_PASSWORD or \
--postgres-password-file. docs/SETTINGS.md lists every key.")]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum SinkKind {
    Cassandra,
    None,
}

/// The `[serve]` keys; `None` leaves the decision to a lower layer.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    /// Where output goes: `cassandra`, or `none` for a pure transform service [default: cassandra].
    #[arg(long)]
    sink: Option<SinkKind>,
    /// Flight (gRPC) listen address [default: 127.0.0.1:50051].
    #[arg(long, value_name = "ADDR")]
    flight_listen: Option<SocketAddr>,
    /// HTTP listen address for the dashboard (/), /metrics and /healthz [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Largest Flight message received or sent, in bytes.
    #[arg(long)]
    max_message_bytes: Option<usize>,
    /// Rows of recent output kept per pipeline for `quiver sql` [default: 100000].
    #[arg(long)]
    window_rows: Option<usize>,
    /// Batches of one exchange processed at once (a real-time stream sends many small ones).
    #[arg(long)]
    batches_in_flight: Option<usize>,
    /// File holding the Flight bearer token (or the token itself in QUIVER_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// PEM certificate chain: with --tls-key-file, Flight speaks TLS only.
    #[arg(long, value_name = "FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    tls_key_file: Option<PathBuf>,
    /// Cassandra contact points, host:port[,host:port].
    #[arg(long, value_name = "HOST:PORT,...")]
    cassandra_nodes: Option<List>,
    /// Keyspace of created_users and rejected_users, created if missing.
    #[arg(long)]
    cassandra_keyspace: Option<String>,
    /// Replicas of each row, used when the keyspace is created.
    #[arg(long)]
    cassandra_replication_factor: Option<u32>,
    /// NetworkTopologyStrategy in this datacenter, and writes there first (SimpleStrategy when unset).
    #[arg(long)]
    cassandra_datacenter: Option<String>,
    /// Write consistency level by its CQL name (e.g. LOCAL_QUORUM).
    #[arg(long)]
    cassandra_consistency: Option<String>,
    /// Writes in flight at once.
    #[arg(long)]
    cassandra_concurrency: Option<usize>,
    /// How long a write waits, retrying, for Cassandra to come back before its batch fails.
    #[arg(long, value_parser = duration::parse)]
    #[serde(with = "duration")]
    cassandra_retry_window: Option<Duration>,
    /// How long one request to Cassandra may take.
    #[arg(long, value_parser = duration::parse)]
    #[serde(with = "duration")]
    cassandra_request_timeout: Option<Duration>,
    /// With --cassandra-password-file (or QUIVER_CASSANDRA_PASSWORD), when Cassandra requires a login.
    #[arg(long)]
    cassandra_username: Option<String>,
    /// File holding the Cassandra password.
    #[arg(long, value_name = "FILE")]
    cassandra_password_file: Option<PathBuf>,
    /// Kafka's bootstrap servers, for the dashboard's lag per partition (off when unset).
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// The Spark driver's UI (http://host:4040), for Spark's batch durations (off when unset).
    #[arg(long, value_name = "URL")]
    spark_ui: Option<String>,
    /// Links the dashboard shows to the stack's other tools: NAME=URL[,NAME=URL]
    /// (a list of tables with `name` and `url` in the config file).
    #[arg(long, value_name = "NAME=URL,...")]
    dashboard_links: Option<Links>,
    /// The batch leg's Postgres, whose runs the dashboard compares with Cassandra (off when unset).
    #[arg(long)]
    postgres_url: Option<String>,
    /// File holding the Postgres password (or the password itself in QUIVER_POSTGRES_PASSWORD).
    #[arg(long, value_name = "FILE")]
    postgres_password_file: Option<PathBuf>,
    /// The batch leg's users table in Postgres.
    #[arg(long)]
    users_table: Option<String>,
    /// The pipelines to run (config file only): a list of tables with `name` and, for SQL
    /// other than the built-in users pipeline, `sql-file` (relative to the file's folder).
    #[arg(skip)]
    pipelines: Option<Vec<PipelineSettings>>,
}

impl Layered for Settings {
    const TABLE: &'static str = "serve";
    const ALIASES: &'static [settings::Alias] = &[
        settings::KAFKA_BOOTSTRAP,
        settings::Alias {
            old: "postgres-users-table",
            new: "users-table",
            unit: None,
        },
        settings::Alias {
            old: "cassandra-retry-window-ms",
            new: "cassandra-retry-window",
            unit: Some("ms"),
        },
        settings::Alias {
            old: "cassandra-request-timeout-ms",
            new: "cassandra-request-timeout",
            unit: Some("ms"),
        },
    ];
    const FILE_ONLY: &'static [&'static str] = &["pipelines"];

    fn defaults() -> Self {
        let c = CassandraConfig::default();
        Settings {
            sink: Some(SinkKind::Cassandra),
            flight_listen: Some(([127, 0, 0, 1], 50051).into()),
            http_listen: Some(([127, 0, 0, 1], 9464).into()),
            max_message_bytes: Some(ServiceConfig::default().max_message_bytes),
            window_rows: Some(100_000),
            batches_in_flight: Some(quiver_flight::DEFAULT_BATCHES_IN_FLIGHT),
            cassandra_nodes: Some(List(c.nodes)),
            cassandra_keyspace: Some(c.keyspace),
            cassandra_replication_factor: Some(c.replication_factor),
            cassandra_datacenter: c.datacenter,
            cassandra_consistency: Some(quiver_cassandra::consistency_name(c.consistency).into()),
            cassandra_concurrency: Some(c.concurrency),
            cassandra_retry_window: Some(c.retry_window),
            cassandra_request_timeout: Some(c.request_timeout),
            users_table: Some(quiver_postgres::PostgresConfig::default().users_table),
            ..Settings::default()
        }
    }
}

/// The dashboard's links: `NAME=URL,...` on the command line and in the environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct Links(Vec<Link>);

impl std::str::FromStr for Links {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Link::parse_list(s).map(Links)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PipelineSettings {
    name: String,
    /// SQL over `raw_users`; relative paths are taken from the config file's folder.
    sql_file: Option<PathBuf>,
}

/// The loaded settings with the dashboard's links checked (a file's links have not been
/// through `Link::parse_list`).
fn checked(loaded: settings::Loaded<Settings>) -> Result<Settings> {
    let mut s = loaded.settings;
    if let Some(Links(links)) = s.dashboard_links.take() {
        let links = links
            .into_iter()
            .map(Link::checked)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("dashboard-links (QUIVER_DASHBOARD_LINKS): {e}"))?;
        s.dashboard_links = Some(Links(links));
    }
    Ok(s)
}

fn pipeline_specs(s: &Settings) -> Result<Vec<PipelineSpec>> {
    let mut specs = match s.pipelines.as_deref() {
        None | Some([]) => vec![PipelineSpec::users()],
        Some(pipelines) => pipelines
            .iter()
            .map(|p| match &p.sql_file {
                None => Ok(PipelineSpec::users_with_sql(
                    &p.name,
                    quiver_core::pipeline::USERS_SQL,
                )),
                Some(path) => {
                    let sql = std::fs::read_to_string(path).with_context(|| {
                        format!(
                            "reading the SQL of pipeline `{}` from {}",
                            p.name,
                            path.display()
                        )
                    })?;
                    Ok(PipelineSpec::users_with_sql(&p.name, &sql))
                }
            })
            .collect::<Result<Vec<_>>>()?,
    };
    for spec in &mut specs {
        spec.sinks = match defaulted(s.sink) {
            SinkKind::Cassandra => vec!["cassandra".into()],
            SinkKind::None => vec![],
        };
    }
    Ok(specs)
}

fn token(s: &Settings, env: &BTreeMap<String, String>) -> Result<Option<String>> {
    settings::secret(env, "QUIVER_TOKEN", s.token_file.as_deref(), "token")
}

fn tls(s: &Settings) -> Result<Option<TlsIdentity>> {
    let (cert, key) = match (&s.tls_cert_file, &s.tls_key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => bail!(
            "TLS needs both a certificate and a key file (tls-cert-file and tls-key-file, or QUIVER_TLS_CERT_FILE and QUIVER_TLS_KEY_FILE)"
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
    let Some(loaded) = settings::for_run(&args.config, args.settings)? else {
        return Ok(());
    };
    let env = settings::environment();
    let settings = checked(loaded)?;
    let specs = pipeline_specs(&settings)?;
    let window_rows = defaulted(settings.window_rows);
    let engine = Arc::new(
        Engine::new(specs, window_rows)
            .await
            .context("the pipelines' SQL is invalid; fix it before starting")?,
    );
    let token = token(&settings, &env)?;
    let tls = tls(&settings)?;
    let flight_listen = defaulted(settings.flight_listen);
    let http_listen = defaulted(settings.http_listen);
    let flight_listener = bind(flight_listen, "Flight", "QUIVER_FLIGHT_LISTEN").await?;
    let http_listener = bind(http_listen, "HTTP metrics", "QUIVER_HTTP_LISTEN").await?;

    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    let mut cassandra_probe = None;
    let sink_kind = defaulted(settings.sink);
    match sink_kind {
        SinkKind::None => {}
        SinkKind::Cassandra => {
            let password = settings::secret(
                &env,
                "QUIVER_CASSANDRA_PASSWORD",
                settings.cassandra_password_file.as_deref(),
                "Cassandra password",
            )?;
            let credentials = match (&settings.cassandra_username, password) {
                (Some(u), Some(p)) => Some((u.clone(), p)),
                (None, None) => None,
                _ => bail!(
                    "Cassandra credentials need both a username and a password (cassandra-username, and cassandra-password-file or QUIVER_CASSANDRA_PASSWORD)"
                ),
            };
            let consistency = defaulted(settings.cassandra_consistency.clone());
            let sink = CassandraSink::connect(CassandraConfig {
                nodes: defaulted(settings.cassandra_nodes.clone()).0,
                keyspace: defaulted(settings.cassandra_keyspace.clone()),
                replication_factor: defaulted(settings.cassandra_replication_factor),
                datacenter: settings.cassandra_datacenter.clone(),
                consistency: quiver_cassandra::consistency_from_name(&consistency)
                    .context("cassandra-consistency (QUIVER_CASSANDRA_CONSISTENCY)")?,
                concurrency: defaulted(settings.cassandra_concurrency).max(1),
                retry_window: defaulted(settings.cassandra_retry_window),
                request_timeout: defaulted(settings.cassandra_request_timeout),
                credentials,
            })
            .await?;
            let sink = Arc::new(sink);
            cassandra_probe = Some(sink.clone());
            sinks.push(sink);
        }
    }
    let kafka_probe = match &settings.bootstrap_servers {
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
        .with_batches_in_flight(defaulted(settings.batches_in_flight));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    if let Some(ui) = &settings.spark_ui
        && !(ui.starts_with("http://") || ui.starts_with("https://"))
    {
        bail!(
            "spark-ui (QUIVER_SPARK_UI) must be an http:// or https:// URL such as http://127.0.0.1:4040, not {ui:?}"
        );
    }
    let postgres_probe = match &settings.postgres_url {
        Some(url) => {
            let defaults = quiver_postgres::PostgresConfig::default();
            Some(PostgresProbe::new(quiver_postgres::PostgresConfig {
                url: url.clone(),
                password: settings::secret(
                    &env,
                    "QUIVER_POSTGRES_PASSWORD",
                    settings.postgres_password_file.as_deref(),
                    "Postgres password",
                )?,
                users_table: defaulted(settings.users_table.clone()),
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
        links: settings
            .dashboard_links
            .clone()
            .map(|l| l.0)
            .unwrap_or_default(),
        window_rows,
    });
    let router = crate::http::health_and_metrics(move || metrics.render())
        .merge(crate::dashboard::router(dashboard));
    let http = tokio::spawn(
        axum::serve(http_listener, router)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let config = ServiceConfig {
        max_message_bytes: defaulted(settings.max_message_bytes),
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
        flight = %flight_listen,
        http = %http_listen,
        dashboard = %format!("http://{http_listen}/"),
        sink = ?sink_kind,
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

    type Env = BTreeMap<String, String>;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(config: Option<PathBuf>, flags: Settings, env: &Env) -> Result<Settings> {
        checked(settings::load(config.as_deref(), flags, env)?)
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
    fn every_key_and_its_default_is_in_the_settings_table() {
        crate::settings::assert_documented::<Settings>();
    }

    #[test]
    fn defaults_bind_loopback_and_need_no_file() {
        let s = load(None, Settings::default(), &env(&[])).unwrap();
        assert_eq!(defaulted(s.flight_listen).to_string(), "127.0.0.1:50051");
        assert_eq!(defaulted(s.http_listen).to_string(), "127.0.0.1:9464");
        assert_eq!(s.sink, Some(SinkKind::Cassandra));
        assert!(s.cassandra_username.is_none() && s.cassandra_password_file.is_none());
        let c = CassandraConfig::default();
        assert_eq!(s.cassandra_nodes, Some(List(c.nodes)));
        assert_eq!(s.cassandra_retry_window, Some(c.retry_window));
    }

    #[test]
    fn file_then_environment_then_flags() {
        let scratch = scratch();
        let dir = scratch.path();
        let file = write(
            dir,
            "quiver.toml",
            "[serve]\nsink = \"none\"\nwindow-rows = 5\nflight-listen = \"127.0.0.1:6000\"\n\
             cassandra-keyspace = \"from_file\"\ncassandra-retry-window = \"5s\"\n[produce]\ncount = 10\n",
        );
        let env = env(&[
            ("QUIVER_CASSANDRA_KEYSPACE", "from_env"),
            ("QUIVER_CASSANDRA_NODES", "10.0.0.1:9042, 10.0.0.2:9042"),
            ("QUIVER_CASSANDRA_RETRY_WINDOW", "2.5"),
        ]);
        let flags = settings::flags(&["--flight-listen", "127.0.0.1:7000"]).unwrap();
        let s = load(Some(file), flags, &env).unwrap();
        assert_eq!(s.sink, Some(SinkKind::None));
        assert_eq!(s.window_rows, Some(5));
        assert_eq!(s.cassandra_keyspace.as_deref(), Some("from_env"));
        assert_eq!(
            defaulted(s.cassandra_nodes).0,
            vec!["10.0.0.1:9042", "10.0.0.2:9042"]
        );
        // A bare number is seconds, as the Spark job reads the same variable.
        assert_eq!(s.cassandra_retry_window, Some(Duration::from_millis(2500)));
        assert_eq!(defaulted(s.flight_listen).to_string(), "127.0.0.1:7000");
    }

    #[test]
    fn the_earlier_file_form_still_loads_with_a_warning_per_key() {
        let scratch = scratch();
        let dir = scratch.path();
        let file = write(
            dir,
            "quiver.toml",
            "[serve]\nwindow_rows = 5\nkafka_bootstrap = \"k1:9092\"\npostgres_users_table = \"t\"\n\
             [serve.cassandra]\nkeyspace = \"ks\"\nretry_window_ms = 1500\n\
             [[serve.pipelines]]\nname = \"users\"\nsql_file = \"users.sql\"\n",
        );
        let loaded = settings::load(Some(&file), Settings::default(), &env(&[])).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.window_rows, Some(5));
        assert_eq!(s.bootstrap_servers.as_deref(), Some("k1:9092"));
        assert_eq!(s.users_table.as_deref(), Some("t"));
        assert_eq!(s.cassandra_keyspace.as_deref(), Some("ks"));
        assert_eq!(s.cassandra_retry_window, Some(Duration::from_millis(1500)));
        let pipeline = &s.pipelines.as_ref().unwrap()[0];
        assert_eq!(pipeline.sql_file, Some(dir.join("users.sql")));
        let warnings = loaded.warnings.join("\n");
        for expected in [
            "[serve] window_rows is an old spelling: write `window-rows`",
            "[serve] kafka_bootstrap is an old spelling: write `bootstrap-servers`",
            "[serve] postgres_users_table is an old spelling: write `users-table`",
            "[serve.cassandra] keyspace is an old spelling: write `cassandra-keyspace`",
            "[serve.cassandra] retry_window_ms is an old spelling: write `cassandra-retry-window`",
            "sql_file is an old spelling: write `sql-file`",
        ] {
            assert!(
                warnings.contains(expected),
                "{expected:?} not in\n{warnings}"
            );
        }
    }

    #[test]
    fn tls_needs_a_certificate_and_a_key_that_parse() {
        let scratch = scratch();
        let dir = scratch.path();
        let s = load(
            None,
            Settings::default(),
            &env(&[("QUIVER_TLS_CERT_FILE", "/x/cert.pem")]),
        )
        .unwrap();
        let err = tls(&s).unwrap_err().to_string();
        assert!(err.contains("both a certificate and a key"), "{err}");

        let cert = write(dir, "cert.pem", "not PEM");
        let key = write(dir, "key.pem", "not PEM either");
        let file = write(
            dir,
            "quiver.toml",
            &format!("[serve]\ntls-cert-file = {cert:?}\ntls-key-file = {key:?}\n"),
        );
        let s = load(Some(file), Settings::default(), &env(&[])).unwrap();
        let err = format!("{:#}", tls(&s).unwrap_err());
        assert!(err.contains("cert.pem") && err.contains("PEM"), "{err}");
        let s = load(None, Settings::default(), &env(&[])).unwrap();
        assert!(tls(&s).unwrap().is_none());
    }

    #[test]
    fn a_misspelt_setting_is_an_error() {
        let scratch = scratch();
        let dir = scratch.path();
        let file = write(dir, "quiver.toml", "[serve]\nwindw-rows = 5\n");
        let err = format!(
            "{:#}",
            load(Some(file), Settings::default(), &env(&[])).unwrap_err()
        );
        assert!(
            err.contains("windw-rows") && err.contains("quiver.toml"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let err = load(
            None,
            Settings::default(),
            &env(&[("QUIVER_WINDOW_ROWS", "lots")]),
        )
        .unwrap_err();
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
            "[serve]\nsink = \"none\"\n[[serve.pipelines]]\nname = \"mine\"\nsql-file = \"mine.sql\"\n",
        );
        let s = load(Some(file), Settings::default(), &env(&[])).unwrap();
        let specs = pipeline_specs(&s).unwrap();
        assert_eq!(specs[0].name, "mine");
        assert!(specs[0].sql.contains("login_uuid AS id"));
        assert!(specs[0].sinks.is_empty());

        let missing = write(
            dir,
            "missing.toml",
            "[[serve.pipelines]]\nname = \"x\"\nsql-file = \"nope.sql\"\n",
        );
        let s = load(Some(missing), Settings::default(), &env(&[])).unwrap();
        let err = pipeline_specs(&s).unwrap_err();
        assert!(format!("{err:#}").contains("nope.sql"), "{err:#}");
    }

    #[test]
    fn dashboard_links_and_kafka_come_from_the_file_or_the_environment() {
        let scratch = scratch();
        let dir = scratch.path();
        let file = write(
            dir,
            "quiver.toml",
            "[serve]\nbootstrap-servers = \"k1:9092\"\n\
             [[serve.dashboard-links]]\nname = \"Spark UI\"\nurl = \"http://127.0.0.1:9090\"\n",
        );
        let s = load(Some(file.clone()), Settings::default(), &env(&[])).unwrap();
        assert_eq!(s.bootstrap_servers.as_deref(), Some("k1:9092"));
        assert_eq!(s.dashboard_links.unwrap().0[0].name, "Spark UI");
        let vars = env(&[
            ("QUIVER_BOOTSTRAP_SERVERS", "k2:9092"),
            ("QUIVER_DASHBOARD_LINKS", "Airflow=http://127.0.0.1:8080"),
        ]);
        let s = load(Some(file), Settings::default(), &vars).unwrap();
        assert_eq!(s.bootstrap_servers.as_deref(), Some("k2:9092"));
        assert_eq!(s.dashboard_links.unwrap().0[0].url, "http://127.0.0.1:8080");

        let bad = write(
            dir,
            "bad.toml",
            "[[serve.dashboard-links]]\nname = \"x\"\nurl = \"javascript:alert(1)\"\n",
        );
        let err = load(Some(bad), Settings::default(), &env(&[])).unwrap_err();
        assert!(
            format!("{err:#}").contains("http:// or https://"),
            "{err:#}"
        );
        let err = load(
            None,
            Settings::default(),
            &env(&[("QUIVER_DASHBOARD_LINKS", "no-url")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("QUIVER_DASHBOARD_LINKS"),
            "{err:#}"
        );
    }
}
