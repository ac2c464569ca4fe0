//! The partner policy: which servers may talk to this one at all. The configuration's
//! `allowed_servers` and `denied_servers` (globs: `*` any run of characters, `?` one) are the
//! base; IT adds and removes patterns at runtime from the admin room, kept in the database
//! (`global` / `federation_policy`) and in force at once. A server is allowed when no allow
//! pattern exists or one matches it, and no deny pattern matches it. This server is always
//! allowed to itself.
//!
//! Every call to another server and every signed request from one goes through
//! [`Policy::check`]: the federation client refuses to call a server not allowed, and the
//! request authentication refuses its requests before any other work.

use std::sync::{Arc, RwLock};

use ruma::{OwnedServerName, ServerName};
use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use crate::error::{Error, Result};
use crate::storage::{Engine, Tree};

const STORED: &[u8] = b"federation_policy";

/// The patterns added at runtime (the configuration's are not stored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeLists {
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
}

/// Compiled patterns: the configuration's and the runtime ones together.
#[derive(Default)]
struct Compiled {
    allowed: Vec<WildMatch>,
    denied: Vec<WildMatch>,
}

pub struct Policy {
    own: OwnedServerName,
    config: RuntimeLists,
    runtime: RwLock<(RuntimeLists, Arc<Compiled>)>,
    global: Tree,
}

/// A list a pattern goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Allowed,
    Denied,
}

impl Policy {
    pub fn load(
        engine: &Arc<Engine>,
        own: OwnedServerName,
        allowed: &[String],
        denied: &[String],
    ) -> Result<Self> {
        let global = engine.tree("global");
        let runtime: RuntimeLists = global.get_json(STORED)?.unwrap_or_default();
        let config = RuntimeLists {
            allowed: allowed.iter().map(|p| normalise(p)).collect(),
            denied: denied.iter().map(|p| normalise(p)).collect(),
        };
        let compiled = Arc::new(compile(&config, &runtime));
        Ok(Self {
            own,
            config,
            runtime: RwLock::new((runtime, compiled)),
            global,
        })
    }

    fn compiled(&self) -> Arc<Compiled> {
        Arc::clone(&self.runtime.read().unwrap_or_else(|e| e.into_inner()).1)
    }

    /// Whether this server may talk to `server`.
    pub fn allows(&self, server: &ServerName) -> bool {
        if server == self.own {
            return true;
        }
        let compiled = self.compiled();
        let name = server.as_str().to_ascii_lowercase();
        let host = server.host().to_ascii_lowercase();
        let matches = |pattern: &WildMatch| pattern.matches(&name) || pattern.matches(&host);
        (compiled.allowed.is_empty() || compiled.allowed.iter().any(matches))
            && !compiled.denied.iter().any(matches)
    }

    /// [`Self::allows`], as the error a client or another server is answered with.
    pub fn check(&self, server: &ServerName) -> Result<()> {
        if self.allows(server) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "Federation with {server} is not allowed by this server's policy"
            )))
        }
    }

    /// The configuration's patterns and the runtime ones.
    pub fn lists(&self) -> (RuntimeLists, RuntimeLists) {
        let runtime = self
            .runtime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        (self.config.clone(), runtime)
    }

    /// Adds `pattern` to a runtime list; false when it was there already (or in the
    /// configuration's list).
    pub fn add(&self, list: List, pattern: &str) -> Result<bool> {
        let pattern = normalise(pattern);
        let in_config = match list {
            List::Allowed => &self.config.allowed,
            List::Denied => &self.config.denied,
        };
        if in_config.contains(&pattern) {
            return Ok(false);
        }
        self.change(|lists| {
            let target = match list {
                List::Allowed => &mut lists.allowed,
                List::Denied => &mut lists.denied,
            };
            if target.contains(&pattern) {
                return false;
            }
            target.push(pattern.clone());
            true
        })
    }

    /// Removes `pattern` from a runtime list; false when it was not there. Patterns of the
    /// configuration file stay (the caller says so).
    pub fn remove(&self, list: List, pattern: &str) -> Result<bool> {
        let pattern = normalise(pattern);
        self.change(|lists| {
            let target = match list {
                List::Allowed => &mut lists.allowed,
                List::Denied => &mut lists.denied,
            };
            let before = target.len();
            target.retain(|p| *p != pattern);
            target.len() != before
        })
    }

    /// Whether `pattern` comes from the configuration file.
    pub fn in_config(&self, list: List, pattern: &str) -> bool {
        let pattern = normalise(pattern);
        match list {
            List::Allowed => self.config.allowed.contains(&pattern),
            List::Denied => self.config.denied.contains(&pattern),
        }
    }

    fn change(&self, edit: impl FnOnce(&mut RuntimeLists) -> bool) -> Result<bool> {
        let mut guard = self.runtime.write().unwrap_or_else(|e| e.into_inner());
        let mut lists = guard.0.clone();
        if !edit(&mut lists) {
            return Ok(false);
        }
        let json = serde_json::to_vec(&lists).map_err(Error::internal)?;
        self.global.insert(STORED, &json)?;
        let compiled = Arc::new(compile(&self.config, &lists));
        *guard = (lists, compiled);
        Ok(true)
    }
}

/// Server names are case-insensitive.
fn normalise(pattern: &str) -> String {
    pattern.trim().to_ascii_lowercase()
}

fn compile(config: &RuntimeLists, runtime: &RuntimeLists) -> Compiled {
    let compile = |a: &[String], b: &[String]| {
        a.iter()
            .chain(b)
            .map(|pattern| WildMatch::new(pattern))
            .collect()
    };
    Compiled {
        allowed: compile(&config.allowed, &runtime.allowed),
        denied: compile(&config.denied, &runtime.denied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], denied: &[&str]) -> (tempfile::TempDir, Policy) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(crate::storage::EngineOptions {
            path: dir.path(),
            cache_capacity_bytes: 1 << 20,
            compression: false,
            statistics: false,
        })
        .unwrap();
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let policy = Policy::load(
            &engine,
            "chat.example.com".try_into().unwrap(),
            &strings(allowed),
            &strings(denied),
        )
        .unwrap();
        (dir, policy)
    }

    fn name(server: &str) -> OwnedServerName {
        server.try_into().unwrap()
    }

    #[test]
    fn no_allow_pattern_allows_every_server_but_the_denied() {
        let (_dir, policy) = policy(&[], &["evil.example", "*.spam.example"]);
        assert!(policy.allows(&name("partner.example")));
        assert!(!policy.allows(&name("evil.example")));
        assert!(!policy.allows(&name("EVIL.example:8448")), "case and port");
        assert!(!policy.allows(&name("a.b.spam.example")));
        assert!(policy.allows(&name("spam.example")));
    }

    #[test]
    fn allow_patterns_admit_only_matching_servers_and_deny_wins() {
        let (_dir, policy) = policy(
            &["partner.example", "*.subsidiary.example", "127.0.0.1?:8448"],
            &["rogue.subsidiary.example"],
        );
        assert!(policy.allows(&name("partner.example")));
        assert!(policy.allows(&name("partner.example:8448")));
        assert!(policy.allows(&name("paris.subsidiary.example")));
        assert!(!policy.allows(&name("rogue.subsidiary.example")));
        assert!(!policy.allows(&name("other.example")));
        assert!(policy.allows(&name("127.0.0.11:8448")));
        assert!(!policy.allows(&name("127.0.0.11:8449")));
        assert!(policy.allows(&name("chat.example.com")), "ourselves");
        let refused = policy.check(&name("other.example")).unwrap_err();
        assert!(refused.message().contains("other.example"));
    }

    #[test]
    fn runtime_patterns_apply_at_once_and_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let engine = Engine::open(crate::storage::EngineOptions {
                path: dir.path(),
                cache_capacity_bytes: 1 << 20,
                compression: false,
                statistics: false,
            })
            .unwrap();
            Policy::load(&engine, name("chat.example.com"), &[], &[]).unwrap()
        };
        let policy = open();
        assert!(policy.add(List::Denied, "Evil.example").unwrap());
        assert!(!policy.add(List::Denied, "evil.example").unwrap(), "once");
        assert!(!policy.allows(&name("evil.example")));
        assert!(policy.add(List::Allowed, "partner.example").unwrap());
        assert!(!policy.allows(&name("other.example")));
        drop(policy);
        let policy = open();
        assert!(!policy.allows(&name("evil.example")));
        assert!(!policy.allows(&name("other.example")));
        assert!(policy.remove(List::Allowed, "partner.example").unwrap());
        assert!(!policy.remove(List::Allowed, "partner.example").unwrap());
        assert!(policy.allows(&name("other.example")));
    }
}
