//! `[global.well_known]`: the `/.well-known/matrix/*` documents.

use serde::{Deserialize, Serialize};

/// `[global.well_known]`, as in Conduit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WellKnown {
    /// Base URL clients should use (`/.well-known/matrix/client`). When unset that URL
    /// answers 404: a guess would be wrong behind a reverse proxy.
    pub client: Option<String>,
    /// `host:port` other servers should connect to
    /// (`/.well-known/matrix/server`).
    pub server: Option<String>,
    /// Who users should contact about the server (`/.well-known/matrix/support`), shown by
    /// Element when something goes wrong.
    pub support_contacts: Vec<SupportContact>,
    /// A page explaining how to get help.
    pub support_page: Option<String>,
}

/// `[[global.well_known.support_contacts]]`: at least one of `matrix_id` and
/// `email_address`; `role` is `m.role.admin` (default) or `m.role.security`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportContact {
    #[serde(default = "SupportContact::default_role")]
    pub role: String,
    pub matrix_id: Option<ruma::OwnedUserId>,
    pub email_address: Option<String>,
}

impl SupportContact {
    fn default_role() -> String {
        "m.role.admin".to_owned()
    }
}
