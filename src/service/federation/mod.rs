//! Calling other servers: where a server name leads ([`discovery`]) and the HTTPS client with
//! the operator's certificate and address policies ([`client`]).

pub mod backfill;
pub mod client;
pub mod discovery;
pub mod edus;
pub mod inbound;
pub mod incoming;
pub mod membership;
pub mod origin_limits;
pub mod partners;
pub mod sender;
pub mod state_answer;
pub mod transaction;

pub use client::FederationClient;
