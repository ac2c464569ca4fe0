//! The crate's error type. Messages say which request failed and how, because the only
//! thing a benchmark operator sees is the message.

use std::fmt;

use crate::client::ApiError;

#[derive(Debug)]
pub enum BenchError {
    /// Bad options (unknown scenario, unreadable report, ...).
    Config(String),
    /// A request that had to succeed (setup) did not.
    Api(Box<ApiError>),
    /// Reading or writing a file.
    Io(String),
    /// Anything else (a task that panicked, an unexpected server answer).
    Other(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Config(m) => write!(f, "invalid options: {m}"),
            BenchError::Api(e) => write!(f, "{e}"),
            BenchError::Io(m) => write!(f, "I/O error: {m}"),
            BenchError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<ApiError> for BenchError {
    fn from(e: ApiError) -> Self {
        BenchError::Api(Box::new(e))
    }
}

impl From<tokio::task::JoinError> for BenchError {
    fn from(e: tokio::task::JoinError) -> Self {
        BenchError::Other(format!("a benchmark task failed: {e}"))
    }
}
