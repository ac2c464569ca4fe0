//! Turning TOML text plus `CONCLAVE_*` environment variables into a [`Config`].
//!
//! The file and the environment are merged into one TOML table *before*
//! deserializing, so both go through the same validation and error paths.
//! Unknown keys are found by diffing against the key tree of
//! `Config::default()` rather than with `deny_unknown_fields`: an operator
//! reusing a Conduit file should get a warning for options we don't have,
//! not a server that refuses to start.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use toml::{Table, Value};

use super::{Config, ConfigError, SECRET_KEYS};

/// Prefix of environment variables that override configuration keys.
pub(super) const ENV_PREFIX: &str = "CONCLAVE_";
/// Names the configuration file; it is not itself a configuration key.
const CONFIG_PATH_VAR: &str = "CONCLAVE_CONFIG";

/// Conduit options that Conclave understands to be Conduit's but does not
/// implement. Warned about separately so a migrating operator can tell a
/// deliberately unsupported option from a typo.
const CONDUIT_ONLY_KEYS: &[&str] = &[
    "allow_check_for_updates",
    "allow_encryption",
    "allow_jaeger",
    "allow_room_creation",
    "allow_unstable_room_versions",
    "cleanup_second_interval",
    "conduit_cache_capacity_modifier",
    "default_room_version",
    "emergency_password",
    "enable_lightning_bolt",
    "jwt_secret",
    "max_concurrent_requests",
    "max_fetch_prev_events",
    "media",
    "pdu_cache_capacity",
    "proxy",
    "rocksdb_max_open_files",
    "tracing_flame",
];

/// Remembers which keys were set by environment variables, so an error can
/// point at `CONCLAVE_PORT` rather than at a file that says something else.
struct Sources {
    file: String,
    /// Dotted key path below `[global]` -> environment variable name.
    env: BTreeMap<String, String>,
}

impl Sources {
    /// Where the value at `path` (relative to `[global]`, as printed by
    /// serde_path_to_error, e.g. `well_known.client` or `trusted_servers[0]`)
    /// came from.
    fn origin_of(&self, path: &str) -> String {
        let from_env = self
            .env
            .iter()
            .filter(|(key, _)| {
                path == key.as_str()
                    || path
                        .strip_prefix(key.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(key, _)| key.len());
        match from_env {
            Some((_, var)) => format!("environment variable {var}"),
            None => self.file.clone(),
        }
    }

    fn invalid(&self, path: &str, message: String) -> ConfigError {
        let key = if path.is_empty() || path == "." {
            "global".to_owned()
        } else {
            format!("global.{path}")
        };
        // Serde messages quote the offending value; never echo a secret.
        let top = path.split(['.', '[']).next().unwrap_or_default();
        let message = if SECRET_KEYS.contains(&top) {
            "invalid value (not shown: the key holds a secret)".to_owned()
        } else {
            message
        };
        ConfigError::InvalidValue {
            key,
            origin: self.origin_of(path),
            message,
        }
    }
}

/// Parses, merges, checks and validates. `file_origin` describes the TOML
/// text in error messages (e.g. `configuration file /etc/conclave.toml`).
pub(super) fn load(
    text: Option<&str>,
    file_origin: String,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let mut sources = Sources {
        file: file_origin,
        env: BTreeMap::new(),
    };

    let mut root: Table = match text {
        Some(text) => toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: sources.file.clone(),
            message: e.to_string().trim_end().to_owned(),
        })?,
        None => Table::new(),
    };

    let known = known_keys();
    let mut global = match root.remove("global") {
        Some(Value::Table(table)) => table,
        Some(_) => {
            return Err(sources.invalid("", "expected a table ([global])".to_owned()));
        }
        None => Table::new(),
    };
    for key in root.keys() {
        if known.contains_key(key) {
            warnings.push(format!(
                "configuration key {key} is outside the [global] table (ignored); \
                 move it below [global]"
            ));
        } else {
            warnings.push(format!(
                "unknown configuration key {key} outside [global] (ignored)"
            ));
        }
    }

    apply_env(&mut global, &known, env, &mut sources, &mut warnings);
    strip_unknown(&mut global, &known, "", &sources, &mut warnings);
    fill_nested_defaults(&mut global, &default_table());

    let config: Config = serde_path_to_error::deserialize(Value::Table(global)).map_err(|e| {
        let path = e.path().to_string();
        sources.invalid(&path, e.inner().message().to_owned())
    })?;
    config
        .validate()
        .map_err(|(path, message)| sources.invalid(&path, message))?;
    Ok((config, warnings))
}

/// The tree of known keys, from the defaults. serde_json keeps `None`
/// options as `null`, so optional keys are known too (TOML would drop them).
fn known_keys() -> serde_json::Map<String, Json> {
    match serde_json::to_value(Config::default()) {
        Ok(Json::Object(map)) => map,
        // Config is a plain struct of strings, numbers and nested structs;
        // failing here is a programming error, not a user error.
        other => panic!("default Config must serialize to an object, got {other:?}"),
    }
}

/// The defaults as a TOML table (`None` options are simply absent).
fn default_table() -> Table {
    match Table::try_from(Config::default()) {
        Ok(table) => table,
        Err(e) => panic!("default Config must serialize to TOML: {e}"),
    }
}

/// Completes partially given nested tables from the *field's* default.
/// Without this, `[global.registration_rate_limit] burst = 10` would take
/// `per_second` from `RateLimit::default()` (the login limit) instead of
/// the registration default, because serde fills a nested struct's missing
/// fields from that type's `Default`.
fn fill_nested_defaults(table: &mut Table, defaults: &Table) {
    for (key, default) in defaults {
        if let (Value::Table(default), Some(Value::Table(given))) = (default, table.get_mut(key)) {
            for (inner_key, inner_default) in default {
                if !given.contains_key(inner_key) {
                    given.insert(inner_key.clone(), inner_default.clone());
                }
            }
            fill_nested_defaults(given, default);
        }
    }
}

/// Overlays `CONCLAVE_*` variables onto the `[global]` table.
fn apply_env(
    global: &mut Table,
    known: &serde_json::Map<String, Json>,
    env: impl IntoIterator<Item = (String, String)>,
    sources: &mut Sources,
    warnings: &mut Vec<String>,
) {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| {
            name.get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
                && !name.eq_ignore_ascii_case(CONFIG_PATH_VAR)
        })
        .collect();
    // Sorted so `CONCLAVE_WELL_KNOWN` is applied before
    // `CONCLAVE_WELL_KNOWN__CLIENT` and the more specific one wins,
    // whatever order the OS lists them in.
    vars.sort();

    for (name, raw) in vars {
        let lowered = name[ENV_PREFIX.len()..].to_ascii_lowercase();
        let segments: Vec<&str> = lowered.split("__").collect();
        if segments.iter().any(|s| s.is_empty()) {
            warnings.push(format!(
                "ignoring environment variable {name}: malformed key \
                 (use __ only between key names)"
            ));
            continue;
        }
        let default = lookup(known, &segments);
        sources.env.insert(segments.join("."), name.clone());
        match env_value(&raw, default) {
            Some(value) => set_path(global, &segments, value),
            None => remove_path(global, &segments),
        }
    }
}

/// Finds the default value at a key path, if the key is known.
fn lookup<'a>(known: &'a serde_json::Map<String, Json>, segments: &[&str]) -> Option<&'a Json> {
    let (first, rest) = segments.split_first()?;
    let value = known.get(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    match value {
        Json::Object(map) => lookup(map, rest),
        _ => None,
    }
}

/// Interprets an environment value. Returns `None` to unset an optional key.
///
/// Values are TOML when they parse as TOML, so `true`, `8008` and
/// `["a", "b"]` get their natural types. The key's default type breaks ties:
/// a string key keeps the raw text (a numeric registration token stays a
/// string), a list key also accepts `a,b,c`, and an empty value unsets an
/// optional key (handy for `VAR=${VAR:-}` in compose files).
fn env_value(raw: &str, default: Option<&Json>) -> Option<Value> {
    let parsed = parse_toml_value(raw);
    match (default, parsed) {
        (Some(Json::Null), _) if raw.trim().is_empty() => None,
        (_, Some(Value::String(s))) => Some(Value::String(s)),
        (Some(Json::String(_) | Json::Null), _) => Some(Value::String(raw.to_owned())),
        (Some(Json::Array(_)), Some(Value::Array(items))) => Some(Value::Array(items)),
        (Some(Json::Array(_)), _) => Some(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
        (_, Some(value)) => Some(value),
        (_, None) => Some(Value::String(raw.to_owned())),
    }
}

/// Parses a single TOML value (not a document) by wrapping it as `v = ...`.
/// Text that smuggles in extra keys or tables is rejected.
fn parse_toml_value(raw: &str) -> Option<Value> {
    let mut table: Table = toml::from_str(&format!("v = {raw}")).ok()?;
    if table.len() != 1 {
        return None;
    }
    table.remove("v")
}

/// Sets a nested key, creating (or replacing non-table) parents: the
/// environment wins over whatever the file had there.
fn set_path(table: &mut Table, segments: &[&str], value: Value) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else {
            return;
        };
        current = next;
    }
    current.insert((*last).to_owned(), value);
}

fn remove_path(table: &mut Table, segments: &[&str]) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = table;
    for segment in parents {
        match current.get_mut(*segment) {
            Some(Value::Table(next)) => current = next,
            _ => return,
        }
    }
    current.remove(*last);
}

/// Removes keys that aren't in `known`, warning about each one. Recurses
/// into nested tables whose defaults are also tables (`well_known`, rate
/// limits); anything else is left for serde to type-check.
fn strip_unknown(
    table: &mut Table,
    known: &serde_json::Map<String, Json>,
    prefix: &str,
    sources: &Sources,
    warnings: &mut Vec<String>,
) {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(&key) {
            None => {
                table.remove(&key);
                let from = match sources.env.get(&path) {
                    Some(var) => format!(", set by environment variable {var}"),
                    None => String::new(),
                };
                if prefix.is_empty() && CONDUIT_ONLY_KEYS.contains(&key.as_str()) {
                    warnings.push(format!(
                        "configuration key global.{path} is a Conduit option that Conclave \
                         does not use (ignored{from})"
                    ));
                } else {
                    warnings.push(format!(
                        "unknown configuration key global.{path} (ignored{from})"
                    ));
                }
            }
            Some(Json::Object(sub)) => {
                if let Some(Value::Table(inner)) = table.get_mut(&key) {
                    strip_unknown(inner, sub, &path, sources, warnings);
                }
            }
            Some(_) => {}
        }
    }
}
