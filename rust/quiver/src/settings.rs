//! One settings layer for every subcommand that has settings (`serve`, `produce`, `batch`).
//!
//! A subcommand's settings are one struct in which each field is one key, spelt in
//! kebab-case. The key `flight-listen` is the flag `--flight-listen`, the entry
//! `flight-listen = …` in the subcommand's table of the `--config` file, and the
//! environment variable `QUIVER_FLIGHT_LISTEN`; a key means the same thing in every
//! subcommand (and in the Spark job) that has it. Every field is an `Option`, so the struct
//! is also one layer, and the layers merge in one way, each over the one before: the
//! defaults (data, taken from the library crates' `Default`s), the file, the environment,
//! the flags. Flags and environment values go through the same clap parsers, and the file
//! through serde with `deny_unknown_fields`. docs/SETTINGS.md lists every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The tables a config file may hold, one per subcommand that has settings.
const TABLES: [&str; 3] = ["serve", "produce", "batch"];

/// A subcommand's settings: one struct, one field per key, every field optional.
pub trait Layered:
    clap::Args + clap::FromArgMatches + Serialize + DeserializeOwned + Default
{
    /// The subcommand's table in the config file.
    const TABLE: &'static str;
    /// Earlier spellings that still work, each with a warning that names the key.
    const ALIASES: &'static [Alias] = &[];
    /// The prefix of the subcommand's earlier environment variables (`QUIVER_PRODUCE_`),
    /// which still work with a warning; an unknown name under it is an error.
    const OLD_ENV_PREFIX: Option<&'static str> = None;
    /// Keys that are one choice (produce's `count` and `duration`): a layer that names
    /// any of them decides all of them.
    const ONE_CHOICE: &'static [&'static str] = &[];
    /// Keys that only a config file can hold (a list of tables has no flag).
    const FILE_ONLY: &'static [&'static str] = &[];

    /// The lowest layer: every key that has a default, taken from the library crates.
    fn defaults() -> Self;
}

/// `QUIVER_KAFKA_BOOTSTRAP` (and serve's `kafka_bootstrap`), from before Kafka's brokers had
/// one key in every subcommand.
pub const KAFKA_BOOTSTRAP: Alias = Alias {
    old: "kafka-bootstrap",
    new: "bootstrap-servers",
    unit: None,
};

/// An earlier spelling of a key: `old` in the config file, `QUIVER_OLD` in the environment.
pub struct Alias {
    pub old: &'static str,
    pub new: &'static str,
    /// A unit the old key's bare number was in (`"ms"`); the new key takes a duration.
    pub unit: Option<&'static str>,
}

/// The options of every subcommand with settings, besides its keys.
#[derive(clap::Args, Debug, Default)]
pub struct ConfigArgs {
    /// TOML file whose table for this subcommand ([serve], [produce] or [batch]) holds
    /// settings; the other tables are left to the other subcommands.
    #[arg(long, env = "QUIVER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective settings, as the config file's table, and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Settings with every layer merged.
#[derive(Debug)]
pub struct Loaded<T> {
    pub settings: T,
    /// Old spellings that were used, each naming the new one.
    pub warnings: Vec<String>,
}

/// The value of a key that `Layered::defaults` sets, after `load`.
pub fn defaulted<V>(value: Option<V>) -> V {
    value.expect("Layered::defaults sets every key that has a default")
}

/// Loads the settings of a subcommand as it runs: from the process environment, logging
/// each old spelling that was used. With `--print-config` it prints them and gives `None`.
pub fn for_run<T: Layered>(args: &ConfigArgs, flags: T) -> Result<Option<Loaded<T>>> {
    let loaded = load(args.config.as_deref(), flags, &environment())?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if args.print_config {
        print!("{}", render(&loaded.settings)?);
        return Ok(None);
    }
    Ok(Some(loaded))
}

/// The process environment, with names and values that are not UTF-8 left out.
pub fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The environment variable of `key`: `QUIVER_` and the key in upper case, `-` as `_`.
fn env_name(key: &str) -> String {
    format!("QUIVER_{}", key.to_ascii_uppercase().replace('-', "_"))
}

/// Merges the defaults, the config file (if any), `env` and `flags`, in that order.
pub fn load<T: Layered>(
    config: Option<&Path>,
    flags: T,
    env: &BTreeMap<String, String>,
) -> Result<Loaded<T>> {
    let mut warnings = Vec::new();
    let mut merged = table_of(&T::defaults())?;
    if let Some(path) = config {
        over::<T>(&mut merged, file_layer::<T>(path, &mut warnings)?);
    }
    over::<T>(&mut merged, env_layer::<T>(env, &mut warnings)?);
    over::<T>(&mut merged, table_of(&flags)?);
    let settings = toml::Value::Table(merged)
        .try_into()
        .context("merging the settings' layers")?;
    Ok(Loaded { settings, warnings })
}

/// `settings` as the config file's table, for `--print-config`.
fn render<T: Layered>(settings: &T) -> Result<String> {
    let mut file = toml::Table::new();
    file.insert(T::TABLE.into(), toml::Value::Table(table_of(settings)?));
    Ok(toml::to_string(&file)?)
}

/// A secret: the variable `var` holds it, or else the file `file` does (trimmed; an empty
/// or unreadable file is an error). Never a flag or a config value, which `ps` and
/// repositories would show.
pub fn secret(
    env: &BTreeMap<String, String>,
    var: &str,
    file: Option<&Path>,
    what: &str,
) -> Result<Option<String>> {
    if let Some(value) = env.get(var).filter(|v| !v.is_empty()) {
        return Ok(Some(value.clone()));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(Some(text.to_string()))
}

fn table_of<T: Serialize>(layer: &T) -> Result<toml::Table> {
    toml::Table::try_from(layer).context("a settings layer that TOML cannot hold")
}

/// `layer` over `merged`; a layer that names one key of a choice takes the whole choice.
fn over<T: Layered>(merged: &mut toml::Table, layer: toml::Table) {
    if T::ONE_CHOICE.iter().any(|k| layer.contains_key(*k)) {
        for key in T::ONE_CHOICE {
            merged.remove(*key);
        }
    }
    merged.extend(layer);
}

/// The keys that have a flag (and so an environment variable), in their order.
fn flag_keys<T: Layered>() -> Vec<String> {
    command::<T>()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

/// `args` parsed as flags alone, as the tests give them.
#[cfg(test)]
pub fn flags<T: Layered>(args: &[&str]) -> std::result::Result<T, clap::Error> {
    T::from_arg_matches(&command::<T>().try_get_matches_from(args)?)
}

/// Checks that docs/SETTINGS.md's table marks exactly `T`'s keys in `T`'s column, and
/// gives each key that `T` has a default for that default.
#[cfg(test)]
pub fn assert_documented<T: Layered>() {
    let doc = include_str!("../../../docs/SETTINGS.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Every key"))
        .expect("docs/SETTINGS.md has its section \"Every key\"");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let at = |name: &str| {
        rows[0]
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("docs/SETTINGS.md's table has a column {name}"))
    };
    let (column, default) = (at(T::TABLE), at("Default"));
    let defaults = table_of(&T::defaults()).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for row in rows
        .iter()
        .filter(|r| r[1].starts_with('`') && r[column] == "✓")
    {
        let key = row[1].trim_matches('`');
        documented.insert(key.to_string());
        let Some(value) = defaults.get(key) else {
            continue;
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        assert!(
            row[default].contains(&format!("`{text}`")),
            "docs/SETTINGS.md gives `{key}` the default {:?}, quiver {} `{text}`",
            row[default],
            T::TABLE
        );
    }
    let mut keys: std::collections::BTreeSet<String> = flag_keys::<T>().into_iter().collect();
    keys.extend(T::FILE_ONLY.iter().map(|k| k.to_string()));
    assert_eq!(documented, keys, "docs/SETTINGS.md's [{}] column", T::TABLE);
}

fn command<T: Layered>() -> clap::Command {
    T::augment_args(clap::Command::new(T::TABLE).no_binary_name(true))
}

/// One key's value parsed by its flag's parser, as a layer of its own.
fn parse_one<T: Layered>(key: &str, value: &str) -> std::result::Result<T, String> {
    let first_line = |e: clap::Error| {
        let text = e.to_string();
        let line = text.lines().next().unwrap_or_default();
        line.trim_start_matches("error: ").to_string()
    };
    let matches = command::<T>()
        .try_get_matches_from([format!("--{key}={value}")])
        .map_err(first_line)?;
    T::from_arg_matches(&matches).map_err(first_line)
}

/// `QUIVER_<KEY>` for every key with a flag, and the old names that still work, as a layer
/// (each value parsed alone by its flag's parser, so that an error names its variable).
fn env_layer<T: Layered>(
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<toml::Table> {
    let keys = flag_keys::<T>();
    // (variable, key) in rising priority: aliases, the old prefix, the key's own name.
    let mut names: Vec<(String, String)> = Vec::new();
    for alias in T::ALIASES {
        names.push((env_name(alias.old), alias.new.to_string()));
    }
    if let Some(prefix) = T::OLD_ENV_PREFIX {
        for var in env.keys().filter(|v| v.starts_with(prefix)) {
            let key = var[prefix.len()..].to_ascii_lowercase().replace('_', "-");
            if !keys.contains(&key) {
                bail!(
                    "environment variable {var} names no setting of `quiver {}` (its settings: {})",
                    T::TABLE,
                    keys.iter()
                        .map(|k| env_name(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            names.push((var.clone(), key));
        }
    }
    names.extend(keys.iter().map(|k| (env_name(k), k.clone())));

    let mut chosen: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (var, key) in names {
        let Some(value) = env.get(&var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let new = env_name(&key);
        if var != new {
            warnings.push(if env.get(&new).is_some_and(|v| !v.is_empty()) {
                format!("environment variable {var} is ignored: {new} is set (its new name)")
            } else {
                format!("environment variable {var} is an old name: use {new} (the old one still works in this release)")
            });
        }
        chosen.insert(key, (var, value.clone()));
    }
    let mut layer = toml::Table::new();
    for (key, (var, value)) in chosen {
        let one: T = parse_one(&key, &value)
            .map_err(|e| anyhow!("environment variable {var}={value:?} is invalid: {e}"))?;
        over::<T>(&mut layer, table_of(&one)?);
    }
    Ok(layer)
}

/// The subcommand's table of the file at `path`, old spellings renamed, checked as `T`.
fn file_layer<T: Layered>(path: &Path, warnings: &mut Vec<String>) -> Result<toml::Table> {
    let Some(raw) = file_table(path, T::TABLE)? else {
        return Ok(toml::Table::new());
    };
    let mut known = flag_keys::<T>();
    known.extend(T::FILE_ONLY.iter().map(|k| k.to_string()));
    let table = T::TABLE;
    let file = path.display();
    let mut entries: Vec<(String, String, toml::Value)> = Vec::new();
    for (key, value) in raw {
        match value {
            // `[serve.cassandra] nodes = …` is the earlier form of `cassandra-nodes = …`.
            toml::Value::Table(inner)
                if !known.contains(&key)
                    && known.iter().any(|k| k.starts_with(&format!("{key}-"))) =>
            {
                for (k, v) in inner {
                    entries.push((format!("[{table}.{key}] {k}"), format!("{key}-{k}"), v));
                }
            }
            value => entries.push((format!("[{table}] {key}"), key, value)),
        }
    }
    let mut layer = toml::Table::new();
    for (written, key, value) in entries {
        let kebab = key.replace('_', "-");
        let (new, mut value) = match T::ALIASES.iter().find(|a| a.old == kebab) {
            Some(alias) => match (alias.unit, value.as_integer()) {
                (Some(unit), Some(n)) => (
                    alias.new.to_string(),
                    toml::Value::String(format!("{n}{unit}")),
                ),
                _ => (alias.new.to_string(), value),
            },
            None => (kebab, value),
        };
        kebab_nested_keys(&mut value, &format!("[{table}] {new}"), &file, warnings);
        from_folder(&new, &mut value, path.parent().unwrap_or(Path::new("")));
        if written != format!("[{table}] {new}") && known.contains(&new) {
            warnings.push(format!(
                "config file {file}: {written} is an old spelling: write `{new}` in [{table}] (the old one still works in this release)"
            ));
        }
        if layer.insert(new.clone(), value).is_some() {
            bail!(
                "config file {file}: [{table}] sets `{new}` twice (once in an old spelling); keep `{new}`"
            );
        }
    }
    // Checked here, so that an error names the file.
    toml::Value::Table(layer.clone())
        .try_into::<T>()
        .with_context(|| format!("config file {file}: [{table}] is invalid"))?;
    Ok(layer)
}

/// A key ending in `-file` names a file: written relative in a config file, it is read from
/// the file's folder, wherever the program runs (in a list of tables too).
fn from_folder(key: &str, value: &mut toml::Value, folder: &Path) {
    match value {
        toml::Value::String(file)
            if key.ends_with("-file") && Path::new(file.as_str()).is_relative() =>
        {
            *file = folder.join(file.as_str()).to_string_lossy().into_owned();
        }
        toml::Value::Array(items) => {
            for item in items {
                if let toml::Value::Table(table) = item {
                    for (k, v) in table.iter_mut() {
                        from_folder(k, v, folder);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Keys of the tables in a list of tables (`[[serve.pipelines]] sql_file`), in kebab-case.
fn kebab_nested_keys(
    value: &mut toml::Value,
    at: &str,
    file: impl std::fmt::Display,
    warnings: &mut Vec<String>,
) {
    let toml::Value::Array(items) = value else {
        return;
    };
    for item in items {
        let toml::Value::Table(t) = item else {
            continue;
        };
        let old: Vec<String> = t.keys().filter(|k| k.contains('_')).cloned().collect();
        for key in old {
            let new = key.replace('_', "-");
            warnings.push(format!(
                "config file {file}: {at} … {key} is an old spelling: write `{new}` (the old one still works in this release)"
            ));
            if let Some(v) = t.remove(&key) {
                t.insert(new, v);
            }
        }
    }
}

/// The `[table]` of the TOML file at `path`; `None` when the file has none. A table that
/// no subcommand reads is an error: most likely a misspelt one.
fn file_table(path: &Path, table: &str) -> Result<Option<toml::Table>> {
    debug_assert!(TABLES.contains(&table));
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut file: toml::Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let known = TABLES.map(|s| format!("[{s}]")).join(", ");
    for (key, value) in &file {
        if !TABLES.contains(&key.as_str()) {
            bail!(
                "config file {}: `{key}` is not one of its tables ({known}); \
                 each subcommand's settings go in its own table",
                path.display()
            );
        }
        if !value.is_table() {
            bail!(
                "config file {}: `{key}` must be a table ([{key}]), not a {}",
                path.display(),
                value.type_str()
            );
        }
    }
    Ok(match file.remove(table) {
        Some(toml::Value::Table(table)) => Some(table),
        _ => None,
    })
}

/// Durations, written as `90s`, `1m 30s`, `500ms`, or a bare number of seconds (as the
/// Spark job's options take them), and printed in the first form.
pub mod duration {
    use super::Duration;
    use serde::{Deserializer, Serializer, de};

    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<f64>() {
            return Duration::try_from_secs_f64(seconds)
                .map_err(|e| format!("{text:?} is not a duration: {e}"));
        }
        humantime::parse_duration(text).map_err(|e| {
            format!(
                "{text:?} is not a duration such as 30s, 1m 30s, 500ms or a number of seconds: {e}"
            )
        })
    }

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse(v).map(Some).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Values written as their text (`compression = "lz4"`), read with `FromStr`.
pub mod as_text {
    use serde::{Deserialize as _, Deserializer, Serializer, de};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse()
            .map(Some)
            .map_err(|e| de::Error::custom(format!("{text:?}: {e}")))
    }
}

/// A comma-separated list on the command line and in the environment (`a:9042, b:9042`),
/// an array in the config file.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct List(pub Vec<String>);

impl std::str::FromStr for List {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let items: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_string)
            .collect();
        if items.is_empty() {
            return Err(format!("{s:?} lists nothing"));
        }
        Ok(List(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subcommand's settings in small: every kind of key the real ones have.
    #[derive(clap::Args, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
    struct Probe {
        #[arg(long)]
        window_rows: Option<u32>,
        #[arg(long, value_parser = duration::parse)]
        #[serde(with = "duration")]
        retry_window: Option<Duration>,
        #[arg(long)]
        nodes: Option<List>,
        #[arg(long)]
        bootstrap_servers: Option<String>,
        #[arg(long, conflicts_with = "duration")]
        count: Option<u64>,
        #[arg(long)]
        duration: Option<u64>,
        #[arg(long)]
        token_file: Option<PathBuf>,
    }

    impl Layered for Probe {
        const TABLE: &'static str = "serve";
        const ALIASES: &'static [Alias] = &[
            KAFKA_BOOTSTRAP,
            Alias {
                old: "retry-window-ms",
                new: "retry-window",
                unit: Some("ms"),
            },
        ];
        const ONE_CHOICE: &'static [&'static str] = &["count", "duration"];
        fn defaults() -> Self {
            Probe {
                window_rows: Some(100),
                retry_window: Some(Duration::from_secs(60)),
                ..Probe::default()
            }
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_layer_over_the_one_before() {
        let f = file("[serve]\nwindow-rows = 5\nnodes = [\"f:1\"]\ncount = 3\n[batch]\nx = 1\n");
        let loaded = load(
            Some(f.path()),
            flags::<Probe>(&["--duration", "9"]).unwrap(),
            &env(&[("QUIVER_NODES", "e:1, e:2"), ("QUIVER_RETRY_WINDOW", "90s")]),
        )
        .unwrap();
        let s = loaded.settings;
        assert_eq!(s.window_rows, Some(5)); // file over default
        assert_eq!(s.nodes, Some(List(vec!["e:1".into(), "e:2".into()]))); // env over file
        assert_eq!(s.retry_window, Some(Duration::from_secs(90))); // env over default
        // The flags named `duration`, so the file's `count` no longer counts.
        assert_eq!((s.count, s.duration), (None, Some(9)));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn the_printed_settings_read_back_as_the_same_settings() {
        let settings = Probe {
            nodes: Some(List(vec!["a:1".into()])),
            ..Probe::defaults()
        };
        let text = render(&settings).unwrap();
        assert!(text.starts_with("[serve]\n"), "{text}");
        assert!(text.contains("retry-window = \"1m\""), "{text}");
        let f = file(&text);
        let loaded = load(Some(f.path()), Probe::default(), &env(&[])).unwrap();
        assert_eq!(loaded.settings, settings);
    }

    #[test]
    fn an_old_name_and_its_new_one_at_once() {
        let f = file("[serve]\nkafka-bootstrap = \"a:1\"\nbootstrap-servers = \"b:1\"\n");
        let err = format!(
            "{:#}",
            load(Some(f.path()), Probe::default(), &env(&[])).unwrap_err()
        );
        assert!(err.contains("sets `bootstrap-servers` twice"), "{err}");
        let f = file("[serve]\nretry_window_ms = 250\n");
        let loaded = load(Some(f.path()), Probe::default(), &env(&[])).unwrap();
        assert_eq!(
            loaded.settings.retry_window,
            Some(Duration::from_millis(250))
        );
        assert!(
            loaded.warnings[0].contains("write `retry-window`"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn bad_input_names_the_file_or_variable_and_the_key() {
        let f = file("[serve]\nwindow-rows = \"many\"\n");
        let err = format!(
            "{:#}",
            load(Some(f.path()), Probe::default(), &env(&[])).unwrap_err()
        );
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        assert!(err.contains("window-rows"), "{err}");
        let err = load(
            None,
            Probe::default(),
            &env(&[("QUIVER_RETRY_WINDOW", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("QUIVER_RETRY_WINDOW=\"soon\""), "{err}");
        assert!(err.contains("not a duration"), "{err}");
        let err = load(None, Probe::default(), &env(&[("QUIVER_NODES", " , ")])).unwrap_err();
        assert!(err.to_string().contains("lists nothing"), "{err}");
    }

    #[test]
    fn an_unknown_table_or_top_level_key_is_an_error() {
        for text in ["[sevre]\nsink = \"none\"\n", "sink = \"none\"\n"] {
            let f = file(text);
            let err = format!(
                "{:#}",
                load(Some(f.path()), Probe::default(), &env(&[])).unwrap_err()
            );
            assert!(err.contains("[serve], [produce], [batch]"), "{err}");
        }
        // A sub-table is read as the earlier form of prefixed keys only where such keys exist.
        let f = file("[serve.window]\nrows = 5\n[serve.sauce]\nx = 1\n");
        let err = format!(
            "{:#}",
            load(Some(f.path()), Probe::default(), &env(&[])).unwrap_err()
        );
        assert!(err.contains("unknown field `sauce`"), "{err}");
        let f = file("[serve.window]\nrows = 5\n");
        let loaded = load(Some(f.path()), Probe::default(), &env(&[])).unwrap();
        assert_eq!(loaded.settings.window_rows, Some(5));
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_else_its_file() {
        let f = file("  s3cret\n");
        let from_file = secret(&env(&[]), "QUIVER_TOKEN", Some(f.path()), "token").unwrap();
        assert_eq!(from_file.as_deref(), Some("s3cret"));
        let vars = env(&[("QUIVER_TOKEN", "from-env")]);
        let from_env = secret(&vars, "QUIVER_TOKEN", Some(f.path()), "token").unwrap();
        assert_eq!(from_env.as_deref(), Some("from-env"));
        assert_eq!(
            secret(&env(&[]), "QUIVER_TOKEN", None, "token").unwrap(),
            None
        );
        let empty = file("  \n");
        let err = secret(&env(&[]), "QUIVER_TOKEN", Some(empty.path()), "token").unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[test]
    fn a_relative_file_in_a_config_file_is_read_from_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quiver.toml");
        std::fs::write(&path, "[serve]\ntoken-file = \"secrets/token\"\n").unwrap();
        let loaded = load(Some(&path), Probe::default(), &env(&[])).unwrap();
        assert_eq!(
            loaded.settings.token_file,
            Some(dir.path().join("secrets/token"))
        );
        std::fs::write(&path, "[serve]\ntoken-file = \"/abs/token\"\n").unwrap();
        let loaded = load(Some(&path), Probe::default(), &env(&[])).unwrap();
        assert_eq!(
            loaded.settings.token_file,
            Some(PathBuf::from("/abs/token"))
        );
        // From the command line or the environment, a path is the working directory's.
        let loaded = load(
            Some(&path),
            Probe::default(),
            &env(&[("QUIVER_TOKEN_FILE", "t")]),
        )
        .unwrap();
        assert_eq!(loaded.settings.token_file, Some(PathBuf::from("t")));
    }

    #[test]
    fn durations_in_every_form() {
        assert_eq!(duration::parse("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration::parse("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(duration::parse("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration::parse("-1").is_err());
        assert!(duration::parse("later").is_err());
    }
}
