//! An application service's registration: Synapse's YAML format, checked once and compiled
//! (namespace regexes, the sender's user ID) so lookups on the request path are cheap.

use regex::{Regex, RegexSet};
use ruma::{OwnedUserId, RoomAliasId, RoomId, ServerName, UserId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The registration file, as bridges generate it (mautrix, matrix-appservice-bridge) and
/// Synapse reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    /// Where transactions go; `null` for a service that only calls the server.
    pub url: Option<String>,
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    #[serde(default)]
    pub namespaces: Namespaces,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    /// Typing, receipts and presence in transactions (MSC2409; bridges also write the
    /// unstable key).
    #[serde(
        default,
        alias = "de.sorunome.msc2409.push_ephemeral",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub receive_ephemeral: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Namespaces {
    #[serde(default)]
    pub users: Vec<Namespace>,
    #[serde(default)]
    pub aliases: Vec<Namespace>,
    #[serde(default)]
    pub rooms: Vec<Namespace>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(default)]
    pub exclusive: bool,
    pub regex: String,
}

/// One kind of namespace compiled: every regex, and the exclusive ones apart.
#[derive(Debug)]
pub struct Compiled {
    all: RegexSet,
    exclusive: RegexSet,
}

impl Compiled {
    /// Regexes match from the start of the ID, as Synapse's (Python `re.match`) do.
    fn new(kind: &str, namespaces: &[Namespace]) -> Result<Self> {
        let anchored = |only_exclusive: bool| -> Vec<String> {
            namespaces
                .iter()
                .filter(|n| !only_exclusive || n.exclusive)
                .map(|n| format!("^(?:{})", n.regex))
                .collect()
        };
        for namespace in namespaces {
            Regex::new(&namespace.regex).map_err(|e| {
                invalid(format!(
                    "the {kind} namespace regex {:?} is not valid: {e}",
                    namespace.regex
                ))
            })?;
        }
        let set = |patterns: Vec<String>| {
            RegexSet::new(patterns).map_err(|e| invalid(format!("{kind} namespaces: {e}")))
        };
        Ok(Self {
            all: set(anchored(false))?,
            exclusive: set(anchored(true))?,
        })
    }

    pub fn matches(&self, id: &str) -> bool {
        self.all.is_match(id)
    }

    pub fn claims(&self, id: &str) -> bool {
        self.exclusive.is_match(id)
    }
}

/// A registration ready for use.
#[derive(Debug)]
pub struct Appservice {
    pub registration: Registration,
    /// The service's own user (`sender_localpart` on this server).
    pub sender: OwnedUserId,
    pub users: Compiled,
    pub aliases: Compiled,
    pub rooms: Compiled,
    /// Where the registration came from: a file in the config, or the admin room.
    pub source: Source,
    /// SHA-256 of `as_token`: requests' tokens are compared with it in constant time.
    pub as_token_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(std::path::PathBuf),
    AdminRoom,
}

impl Appservice {
    /// Checks and compiles a registration for this server.
    pub fn new(registration: Registration, server: &ServerName, source: Source) -> Result<Self> {
        let id = &registration.id;
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_whitespace) {
            return Err(invalid(format!(
                "the id {id:?} must be 1 to 255 characters without spaces"
            )));
        }
        for (key, token) in [
            ("as_token", &registration.as_token),
            ("hs_token", &registration.hs_token),
        ] {
            if token.len() < 16 {
                return Err(invalid(format!(
                    "{key} must be at least 16 characters (make one with `pwgen -s 64 1`)"
                )));
            }
        }
        if registration.as_token == registration.hs_token {
            return Err(invalid(
                "as_token and hs_token must differ: each proves a different side".to_owned(),
            ));
        }
        if let Some(url) = &registration.url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| invalid(format!("url {url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid(format!("url {url:?} must be http or https")));
            }
        }
        let sender = UserId::parse(format!("@{}:{server}", registration.sender_localpart))
            .map_err(|e| {
                invalid(format!(
                    "sender_localpart {:?} does not make a user ID: {e}",
                    registration.sender_localpart
                ))
            })?;
        let namespaces = &registration.namespaces;
        Ok(Self {
            users: Compiled::new("users", &namespaces.users)?,
            aliases: Compiled::new("aliases", &namespaces.aliases)?,
            rooms: Compiled::new("rooms", &namespaces.rooms)?,
            sender,
            as_token_hash: sha256(&registration.as_token),
            registration,
            source,
        })
    }

    /// Parses a registration from its YAML.
    pub fn from_yaml(yaml: &str, server: &ServerName, source: Source) -> Result<Self> {
        let registration: Registration = serde_yaml::from_str(yaml)
            .map_err(|e| invalid(format!("the registration is not valid: {e}")))?;
        Self::new(registration, server, source)
    }

    pub fn id(&self) -> &str {
        &self.registration.id
    }

    /// Whether the service may act as `user_id`: its own user, or one in its namespace.
    pub fn may_act_as(&self, user_id: &UserId) -> bool {
        user_id == self.sender || self.users.matches(user_id.as_str())
    }

    /// Exempt from rate limits (`rate_limited: false`).
    pub fn unlimited(&self) -> bool {
        self.registration.rate_limited == Some(false)
    }

    pub fn is_interested_in_room(&self, room_id: &RoomId) -> bool {
        self.rooms.matches(room_id.as_str())
    }

    pub fn is_interested_in_alias(&self, alias: &RoomAliasId) -> bool {
        self.aliases.matches(alias.as_str())
    }
}

pub fn sha256(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn invalid(message: String) -> Error {
    Error::invalid_param(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r##"
id: irc
url: "http://127.0.0.1:9000"
as_token: "as_token_0123456789"
hs_token: "hs_token_0123456789"
sender_localpart: irc_bot
namespaces:
  users:
    - exclusive: true
      regex: "@irc_.*"
  aliases:
    - exclusive: false
      regex: "#irc_.*:example\\.org"
  rooms: []
de.sorunome.msc2409.push_ephemeral: true
"##;

    #[test]
    fn parses_synapse_registrations() {
        let server = ServerName::parse("example.org").unwrap();
        let service = Appservice::from_yaml(YAML, &server, Source::AdminRoom).unwrap();
        assert_eq!(service.id(), "irc");
        assert_eq!(service.sender, "@irc_bot:example.org");
        assert!(service.registration.receive_ephemeral);
        assert!(service.users.claims("@irc_alice:example.org"));
        assert!(!service.users.claims("@alice:example.org"));
        // Anchored at the start, as Synapse matches.
        assert!(!service.users.matches("@x_irc_alice:example.org"));
        assert!(service.aliases.matches("#irc_chan:example.org"));
        assert!(!service.aliases.claims("#irc_chan:example.org"));
    }

    #[test]
    fn refuses_bad_registrations() {
        let server = ServerName::parse("example.org").unwrap();
        let same_tokens = YAML.replace("hs_token_0123456789", "as_token_0123456789");
        assert!(Appservice::from_yaml(&same_tokens, &server, Source::AdminRoom).is_err());
        let bad_regex = YAML.replace("@irc_.*", "@irc_(");
        assert!(Appservice::from_yaml(&bad_regex, &server, Source::AdminRoom).is_err());
        assert!(Appservice::from_yaml("id: [", &server, Source::AdminRoom).is_err());
    }
}
