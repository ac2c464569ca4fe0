//! Conclave: a Matrix homeserver for private, on-premise deployment.

pub mod admin;
pub mod api;
pub mod backup;
pub mod config;
pub mod error;
pub mod server;
pub mod service;
pub mod storage;
pub mod tls_listener;
