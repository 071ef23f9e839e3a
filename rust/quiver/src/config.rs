//! The one `--config` file every subcommand reads: each takes its own table (`[serve]`,
//! `[produce]`, `[batch]`) and leaves the others alone, so one file can configure them all.
//! Within a table unknown keys are errors (each subcommand checks its own), and so is a
//! table that no subcommand reads, which is most likely a misspelt one.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// The tables a config file may hold, one per subcommand that takes `--config`.
pub const SECTIONS: [&str; 3] = ["serve", "produce", "batch"];

/// The `[section]` table of the TOML file at `path`; `None` when the file has none.
pub fn section(path: &Path, section: &str) -> Result<Option<toml::Table>> {
    debug_assert!(SECTIONS.contains(&section));
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut file: toml::Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let known = SECTIONS.map(|s| format!("[{s}]")).join(", ");
    for (key, value) in &file {
        if !SECTIONS.contains(&key.as_str()) {
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
    Ok(match file.remove(section) {
        Some(toml::Value::Table(table)) => Some(table),
        _ => None,
    })
}

/// The `[section]` table as `T` (a serde type with `deny_unknown_fields`), or `T`'s
/// defaults when the file has no such table.
pub fn typed_section<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    name: &str,
) -> Result<T> {
    match section(path, name)? {
        Some(table) => toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("config file {}: [{name}] is invalid", path.display())),
        None => Ok(T::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn each_subcommand_sees_only_its_table() {
        let f = file("[serve]\nsink = \"none\"\n[produce]\ncount = 3\n[batch]\ncount = 4\n");
        let serve = section(f.path(), "serve").unwrap().unwrap();
        assert_eq!(serve.keys().collect::<Vec<_>>(), ["sink"]);
        let batch = section(f.path(), "batch").unwrap().unwrap();
        assert_eq!(batch["count"].as_integer(), Some(4));
    }

    #[test]
    fn a_missing_table_is_none() {
        let f = file("[produce]\ncount = 3\n");
        assert!(section(f.path(), "serve").unwrap().is_none());
    }

    #[test]
    fn an_unknown_table_or_top_level_key_is_an_error() {
        for text in ["[sevre]\nsink = \"none\"\n", "sink = \"none\"\n"] {
            let f = file(text);
            let err = format!("{:#}", section(f.path(), "serve").unwrap_err());
            assert!(err.contains("[serve], [produce], [batch]"), "{err}");
        }
    }
}
