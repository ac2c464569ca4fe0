//! Why an event could not be placed in a room, kept apart so that the caller can act on it:
//! a peer's malformed event is dropped, a rejected one is marked as such, a gap is filled by
//! fetching what is missing, and only a fault of ours is a server error.

use ruma::OwnedEventId;

use crate::error::{Error, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum PduError {
    /// Malformed for its room version: bad JSON or format, a bad signature or event ID.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// Fails the room's authorization rules.
    #[error("event rejected: {0}")]
    Rejected(String),
    /// Events it refers to are not stored here (prev or auth events): fetch them and retry.
    #[error("{} events it refers to are not stored here (first: {})", .0.len(), .0.first().map(|id| id.as_str()).unwrap_or("?"))]
    Missing(Vec<OwnedEventId>),
    /// The room version needs something this server does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Storage failed or holds something unreadable.
    #[error(transparent)]
    Storage(#[from] Error),
}

impl From<rocksdb::Error> for PduError {
    fn from(err: rocksdb::Error) -> Self {
        Self::Storage(err.into())
    }
}

/// As a client sees it: its own event refused, or a fault of ours.
impl From<PduError> for Error {
    fn from(err: PduError) -> Self {
        match err {
            PduError::Invalid(reason) => Error::bad_json(reason),
            PduError::Rejected(reason) => Error::forbidden(reason),
            PduError::Unsupported(reason) => Error::new(ErrorCode::UnsupportedRoomVersion, reason),
            missing @ PduError::Missing(_) => Error::internal(missing),
            PduError::Storage(err) => err,
        }
    }
}

/// Keeps the first error met inside a callback that cannot return one (ruma's event fetchers
/// answer `Option`), so that a fault is not taken for a missing event.
pub struct FirstError<E>(std::cell::RefCell<Option<E>>);

impl<E> Default for FirstError<E> {
    fn default() -> Self {
        Self(std::cell::RefCell::new(None))
    }
}

impl<E> FirstError<E> {
    /// `result`'s value, or `None` with its error kept.
    pub fn keep<T>(&self, result: Result<Option<T>, E>) -> Option<T> {
        match result {
            Ok(value) => value,
            Err(err) => {
                self.0.borrow_mut().get_or_insert(err);
                None
            }
        }
    }

    /// Fails with the kept error, if any.
    pub fn check(self) -> Result<(), E> {
        match self.0.into_inner() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}
