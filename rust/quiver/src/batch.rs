//! `quiver batch`: the batch leg. A bounded set of records (from randomuser.me, the
//! synthetic generator, or an offset range of a Kafka topic) goes through the same
//! pipeline SQL as the stream and is loaded into Postgres `batch_users`; records that
//! cannot be decoded go to `batch_rejects` with the reason.
//!
//! Settings come from, in rising priority: defaults, the `[batch]` table of the
//! `--config` file, `QUIVER_*` environment variables, and flags.
//!
//! Every load is identified by a run id, by default derived from what was read (source,
//! seed and count, or topic, partition and offsets). Users are upserted by `id` and
//! rejects by (run id, partition, offset), so running the same batch again changes
//! nothing but `loaded_at`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use arrow::array::RecordBatch;
use clap::ValueEnum;
use quiver_core::schema::kafka_input_batch;
use quiver_core::{Engine, PipelineSpec};
use quiver_kafka::KafkaConfig;
use quiver_postgres::{PostgresConfig, PostgresSink};
use quiver_source::randomuser::{Pages, RandomUser, RandomUserConfig};
use serde::{Deserialize, Serialize};

use crate::settings::{self, ConfigArgs, Layered, defaulted, duration};

/// Records handed to the pipeline at once: big enough to amortise the per-batch cost,
/// small enough that decoding never holds much more than one page of JSON.
const CHUNK: usize = 10_000;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Every setting is also a key of the [batch] table of the --config file (e.g. \
source = \"synthetic\") and an environment variable QUIVER_<KEY> (e.g. QUIVER_SOURCE); \
flags > environment > config file > defaults. The Postgres password comes from \
QUIVER_POSTGRES_PASSWORD or the file in --postgres-password-file; `scripts/stack env` prints \
the local stack's. docs/SETTINGS.md lists every key.")]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Source {
    Randomuser,
    Synthetic,
    Kafka,
}

/// The `[batch]` keys; `None` leaves the decision to a lower layer.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    /// Where the records come from [default: randomuser].
    #[arg(long, value_enum)]
    source: Option<Source>,
    /// Records to read (randomuser, synthetic).
    #[arg(long)]
    count: Option<u64>,
    /// The same seed gives the same records and the same run id (randomuser, synthetic)
    /// [default: a random one, printed in the summary].
    #[arg(long)]
    seed: Option<String>,
    /// randomuser API base URL [default: https://randomuser.me/api/1.4/].
    #[arg(long)]
    api_url: Option<String>,
    /// Kafka bootstrap servers (kafka) [default: 127.0.0.1:9092].
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Kafka topic (kafka) [default: users_created].
    #[arg(long)]
    topic: Option<String>,
    /// Kafka partition to read (kafka) [default: 0].
    #[arg(long)]
    partition: Option<i32>,
    /// First offset to read (kafka) [default: the partition's first].
    #[arg(long)]
    from_offset: Option<i64>,
    /// Offset to stop before (kafka) [default: the partition's end when the run starts].
    #[arg(long)]
    to_offset: Option<i64>,
    /// Names this load; loading the same run id again replaces its rows
    /// [default: derived from the source and what was read].
    #[arg(long)]
    run_id: Option<String>,
    /// The pipeline SQL over `raw_users` [default: pipelines/users.sql, built in].
    #[arg(long, value_name = "FILE")]
    sql_file: Option<PathBuf>,
    /// Postgres to load into [default: postgresql://quiver@127.0.0.1:5432/quiver].
    #[arg(long)]
    postgres_url: Option<String>,
    /// File holding the Postgres password.
    #[arg(long, value_name = "FILE")]
    postgres_password_file: Option<PathBuf>,
    /// Table of the transformed rows [default: batch_users].
    #[arg(long)]
    users_table: Option<String>,
    /// Table of the records that could not be decoded [default: batch_rejects].
    #[arg(long)]
    rejects_table: Option<String>,
    /// Budget for reaching Kafka or Postgres, and for reading the Kafka range [default: 30s].
    #[arg(long, value_parser = duration::parse)]
    #[serde(with = "duration")]
    timeout: Option<Duration>,
}

impl Layered for Settings {
    const TABLE: &'static str = "batch";
    const ALIASES: &'static [settings::Alias] = &[settings::KAFKA_BOOTSTRAP];
    const OLD_ENV_PREFIX: Option<&'static str> = Some("QUIVER_BATCH_");

    fn defaults() -> Self {
        let k = KafkaConfig::default();
        let p = PostgresConfig::default();
        Settings {
            source: Some(Source::Randomuser),
            bootstrap_servers: Some(k.bootstrap_servers),
            topic: Some(k.topic),
            postgres_url: Some(p.url),
            users_table: Some(p.users_table),
            rejects_table: Some(p.rejects_table),
            // Reading a Kafka range takes longer than a connection: the batch's own budget.
            timeout: Some(Duration::from_secs(30)),
            ..Settings::default()
        }
    }
}

/// What to read, resolved.
#[derive(Debug, Clone)]
enum Plan {
    Randomuser {
        count: u64,
        seed: String,
        api_url: Option<String>,
    },
    Synthetic {
        count: u64,
        seed: String,
    },
    Kafka {
        kafka: KafkaConfig,
        partition: i32,
        from: Option<i64>,
        to: Option<i64>,
    },
}

fn plan(s: &Settings) -> Result<Plan> {
    let source = defaulted(s.source);
    let count = || match s.count {
        Some(0) | None => bail!(
            "say how many records to read: --count N (at least 1; or count in [batch], or QUIVER_COUNT)"
        ),
        Some(n) => Ok(n),
    };
    let seed = || {
        s.seed
            .clone()
            .unwrap_or_else(quiver_source::synthetic::new_seed)
    };
    let kafka_only = [
        ("--partition", s.partition.is_some()),
        ("--from-offset", s.from_offset.is_some()),
        ("--to-offset", s.to_offset.is_some()),
    ];
    if source != Source::Kafka
        && let Some((flag, _)) = kafka_only.iter().find(|(_, set)| *set)
    {
        bail!("{flag} reads an offset range and needs --source kafka");
    }
    Ok(match source {
        Source::Randomuser => Plan::Randomuser {
            count: count()?,
            seed: seed(),
            api_url: s.api_url.clone(),
        },
        Source::Synthetic => Plan::Synthetic {
            count: count()?,
            seed: seed(),
        },
        Source::Kafka => {
            if s.count.is_some() || s.seed.is_some() {
                bail!(
                    "--count and --seed do not apply to --source kafka; give the range with --from-offset and --to-offset"
                );
            }
            let kafka = KafkaConfig {
                bootstrap_servers: defaulted(s.bootstrap_servers.clone()),
                topic: defaulted(s.topic.clone()),
                connect_timeout: defaulted(s.timeout),
                ..KafkaConfig::default()
            };
            let partition = s.partition.unwrap_or(0);
            if partition < 0 {
                bail!("--partition {partition} is negative");
            }
            if let (Some(from), Some(to)) = (s.from_offset, s.to_offset)
                && from > to
            {
                bail!("--from-offset {from} is after --to-offset {to}");
            }
            Plan::Kafka {
                kafka,
                partition,
                from: s.from_offset,
                to: s.to_offset,
            }
        }
    })
}

/// Kafka-shaped input rows; records from outside Kafka have no topic, partition 0 and
/// their position in the source as offset.
#[derive(Default)]
struct Input {
    topic: Option<String>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
    values: Vec<Option<Vec<u8>>>,
}

impl Input {
    fn push(
        &mut self,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<Vec<u8>>,
    ) {
        self.partitions.push(partition);
        self.offsets.push(offset);
        self.timestamps.push(timestamp_ms);
        self.values.push(value);
    }

    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn batches(&self) -> impl Iterator<Item = RecordBatch> + '_ {
        (0..self.len()).step_by(CHUNK).map(move |start| {
            let end = (start + CHUNK).min(self.len());
            let values: Vec<Option<&[u8]>> = self.values[start..end]
                .iter()
                .map(Option::as_deref)
                .collect();
            kafka_input_batch(
                self.topic.as_deref(),
                &self.partitions[start..end],
                &self.offsets[start..end],
                &self.timestamps[start..end],
                &values,
            )
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Reads the planned records; returns them and the run id they define.
async fn read(plan: &Plan, timeout: Duration) -> Result<(Input, String)> {
    let mut input = Input::default();
    let run_id = match plan {
        Plan::Synthetic { count, seed } => {
            let fetched = now_ms();
            let generator = quiver_source::synthetic::Synthetic::new(
                quiver_source::synthetic::seed_from_text(seed),
            );
            for (i, record) in generator.take(*count as usize).enumerate() {
                input.push(0, i as i64, Some(fetched), Some(record.value.into_bytes()));
            }
            format!("synthetic-{seed}-{count}")
        }
        Plan::Randomuser {
            count,
            seed,
            api_url,
        } => {
            let defaults = RandomUserConfig::default();
            let client = RandomUser::new(RandomUserConfig {
                base_url: api_url.clone().unwrap_or(defaults.base_url.clone()),
                seed: Some(seed.clone()),
                ..defaults
            })
            .context("cannot set up the randomuser source")?;
            let mut pages = Pages::new(client, Some(*count));
            while (input.len() as u64) < *count {
                let page = pages.next().await?;
                let fetched = now_ms();
                for record in page
                    .records
                    .into_iter()
                    .take((*count - input.len() as u64) as usize)
                {
                    let position = input.len() as i64;
                    input.push(0, position, Some(fetched), Some(record.value.into_bytes()));
                }
            }
            format!("randomuser-{seed}-{count}")
        }
        Plan::Kafka {
            kafka,
            partition,
            from,
            to,
        } => {
            let (kafka, partition, from, to) = (kafka.clone(), *partition, *from, *to);
            let fetched = tokio::task::spawn_blocking(move || {
                quiver_kafka::read_range(&kafka, partition, from, to, timeout)
                    .map(|r| (r, kafka))
                    .map_err(anyhow::Error::from)
            })
            .await
            .context("the Kafka reader stopped")?;
            let (records, kafka) = fetched?;
            input.topic = Some(kafka.topic.clone());
            let first = records.first().map_or(from.unwrap_or(0), |r| r.offset);
            let end = records.last().map_or(first, |r| r.offset + 1);
            for r in records {
                input.push(r.partition, r.offset, r.timestamp_ms, r.value);
            }
            format!("kafka-{}-{partition}-{first}-{end}", kafka.topic)
        }
    };
    Ok((input, run_id))
}

fn pipeline_sql(path: Option<&Path>) -> Result<String> {
    match path {
        None => Ok(quiver_core::pipeline::USERS_SQL.to_string()),
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the pipeline SQL {}", p.display())),
    }
}

pub fn run(args: Args) -> Result<()> {
    let Some(loaded) = settings::for_run(&args.config, args.settings)? else {
        return Ok(());
    };
    let settings = loaded.settings;
    let password = settings::secret(
        &settings::environment(),
        "QUIVER_POSTGRES_PASSWORD",
        settings.postgres_password_file.as_deref(),
        "Postgres password",
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(batch(settings, password))
}

async fn batch(s: Settings, password: Option<String>) -> Result<()> {
    let started = Instant::now();
    let plan = plan(&s)?;
    let timeout = defaulted(s.timeout);
    let mut spec = PipelineSpec::users_with_sql("users", &pipeline_sql(s.sql_file.as_deref())?);
    // No per-batch sinks: the chunks are only processed here, and the Postgres load below
    // stores them all in one transaction.
    spec.sinks = Vec::new();
    // Planned before anything is read, so bad SQL fails at once.
    let engine = Engine::new(vec![spec], 0)
        .await
        .context("the pipeline's SQL is invalid; fix it before loading")?;
    let pipeline = engine.pipeline("users")?;
    let pg = PostgresConfig {
        url: defaulted(s.postgres_url.clone()),
        password,
        users_table: defaulted(s.users_table.clone()),
        rejects_table: defaulted(s.rejects_table.clone()),
        connect_timeout: timeout,
    };
    // Connecting (and creating the tables) before reading fails fast on a wrong address.
    let mut sink = PostgresSink::connect(&pg).await?;

    let (input, derived_run_id) = read(&plan, timeout).await?;
    let run_id = s.run_id.clone().unwrap_or(derived_run_id);
    let read_done = Instant::now();
    let (mut rows, mut rejects) = (Vec::new(), Vec::new());
    for chunk in input.batches() {
        let processed = pipeline
            .process(&chunk)
            .await
            .context("transforming the batch failed")?;
        rows.push(processed.output);
        rejects.push(processed.rejects);
    }
    let transformed = Instant::now();
    let report = sink.load(&run_id, &rows, &rejects).await?;
    let source = match &plan {
        Plan::Randomuser { seed, .. } => format!("randomuser (seed {seed})"),
        Plan::Synthetic { seed, .. } => format!("synthetic (seed {seed})"),
        Plan::Kafka {
            kafka, partition, ..
        } => {
            format!(
                "kafka topic {:?} partition {partition} on {}",
                kafka.topic, kafka.bootstrap_servers
            )
        }
    };
    println!(
        "quiver batch: {source} -> postgres {} (run {run_id})",
        sink.target()
    );
    println!(
        "  read        {} records in {:.2} s",
        input.len(),
        (read_done - started).as_secs_f64()
    );
    println!(
        "  transformed {} rows, {} rejects in {:.2} s",
        rows.iter().map(RecordBatch::num_rows).sum::<usize>(),
        rejects.iter().map(RecordBatch::num_rows).sum::<usize>(),
        (transformed - read_done).as_secs_f64()
    );
    println!(
        "  loaded      {} rows into {}, {} rejects into {} in {:.2} s",
        report.rows,
        pg.users_table,
        report.rejects,
        pg.rejects_table,
        transformed.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(source: Source) -> Settings {
        Settings {
            source: Some(source),
            ..Settings::defaults()
        }
    }

    #[test]
    fn every_key_and_its_default_is_in_the_settings_table() {
        crate::settings::assert_documented::<Settings>();
    }

    #[test]
    fn a_count_is_required_outside_kafka() {
        let err = plan(&settings(Source::Synthetic)).unwrap_err();
        assert!(err.to_string().contains("--count N"), "{err}");
    }

    #[test]
    fn offsets_need_the_kafka_source() {
        let s = Settings {
            count: Some(5),
            from_offset: Some(3),
            ..settings(Source::Synthetic)
        };
        let err = plan(&s).unwrap_err();
        assert!(
            err.to_string()
                .contains("--from-offset reads an offset range"),
            "{err}"
        );
    }

    #[test]
    fn a_backwards_range_is_refused() {
        let s = Settings {
            from_offset: Some(9),
            to_offset: Some(3),
            ..settings(Source::Kafka)
        };
        let err = plan(&s).unwrap_err();
        assert!(err.to_string().contains("after --to-offset"), "{err}");
    }

    #[test]
    fn the_batch_table_of_a_shared_file_is_read_and_checked() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            "[serve]\nsink = \"none\"\n[batch]\nsource = \"synthetic\"\ncount = 7\ntimeout = \"5s\"\n",
        )
        .unwrap();
        let flags = Settings {
            count: Some(9),
            seed: Some("42".into()),
            ..Settings::default()
        };
        let env = [("QUIVER_BATCH_SEED".to_string(), "old".to_string())].into();
        let loaded = crate::settings::load(Some(f.path()), flags, &env).unwrap();
        assert_eq!(loaded.settings.source, Some(Source::Synthetic));
        assert_eq!(loaded.settings.timeout, Some(Duration::from_secs(5)));
        assert!(matches!(
            plan(&loaded.settings).unwrap(),
            Plan::Synthetic { count: 9, seed } if seed == "42"
        ));
        assert!(
            loaded.warnings[0].contains("use QUIVER_SEED"),
            "{:?}",
            loaded.warnings
        );

        std::fs::write(f.path(), "[batch]\ncuont = 7\n").unwrap();
        let err = format!(
            "{:#}",
            crate::settings::load(Some(f.path()), Settings::default(), &Default::default())
                .unwrap_err()
        );
        assert!(err.contains("cuont"), "{err}");
    }
}
