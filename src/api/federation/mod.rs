//! The Server-Server API, served on the federation listener (see [`crate::server`]).

mod discovery;
mod query;

use super::router::Routes;

/// Registers the federation endpoints.
pub fn routes(router: Routes) -> Routes {
    router
        .ruma(discovery::server_keys)
        .ruma(discovery::server_version)
        .ruma(query::profile)
        .ruma(query::directory)
}
