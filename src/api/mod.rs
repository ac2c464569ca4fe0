//! The HTTP API: the typed request extractor, the router, and the endpoint handlers.

pub mod body;
pub mod client;
pub mod federation;
pub mod metrics;
pub mod router;
pub mod ruma_wrapper;
pub mod server_auth;
pub mod synapse_admin;

pub use ruma_wrapper::Ruma;
