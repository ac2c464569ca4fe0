//! The one error type of the server. Every failure a client can see maps to a Matrix error body
//! (`errcode`, `error`) with the status the spec gives for it; internal failures become
//! `M_UNKNOWN` 500 without leaking their details, which go to the log instead.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use ruma::api::client::uiaa::UiaaInfo;
use serde_json::json;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Matrix error codes used by the server, with the extra fields some of them carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    Forbidden,
    UnknownToken {
        soft_logout: bool,
    },
    MissingToken,
    /// An administrator locked the account: every request but logout fails until unlocked.
    UserLocked,
    /// An administrator suspended the account: it may read, leave and redact its own events.
    UserSuspended,
    BadJson,
    NotJson,
    NotFound,
    LimitExceeded {
        retry_after_ms: u64,
    },
    Unknown,
    Unrecognized,
    Unauthorized,
    UserDeactivated,
    UserInUse,
    InvalidUsername,
    InvalidParam,
    MissingParam,
    TooLarge,
    WeakPassword,
    Exclusive,
    KeyTooLarge,
    ProfileTooLarge,
    UnsupportedRoomVersion,
    /// A joining server supports none of the room's versions (`make_join`).
    IncompatibleRoomVersion,
    /// A restricted join that no member of this server can authorise.
    UnableToAuthoriseJoin,
    RoomInUse,
    InvalidRoomState,
    BadAlias,
    /// An asynchronous upload targeted media that already has content.
    CannotOverwriteMedia,
    /// Media created with `/create` whose content has not arrived yet.
    NotYetUploaded,
    /// A sliding sync `pos` the server does not know (expired, or from before a restart).
    UnknownPos,
    /// A key backup write named a version that is not the current one.
    WrongRoomKeysVersion {
        current_version: Option<String>,
    },
    /// Pinging an application service that has no URL.
    UrlNotSet,
    /// The application service answered a ping with an error status.
    BadStatus {
        status: u16,
        body: String,
    },
    /// The application service could not be reached.
    ConnectionFailed,
    /// The application service did not answer in time.
    ConnectionTimeout,
}

impl ErrorCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Forbidden => "M_FORBIDDEN",
            Self::UnknownToken { .. } => "M_UNKNOWN_TOKEN",
            Self::MissingToken => "M_MISSING_TOKEN",
            Self::UserLocked => "M_USER_LOCKED",
            Self::UserSuspended => "M_USER_SUSPENDED",
            Self::BadJson => "M_BAD_JSON",
            Self::NotJson => "M_NOT_JSON",
            Self::NotFound => "M_NOT_FOUND",
            Self::LimitExceeded { .. } => "M_LIMIT_EXCEEDED",
            Self::Unknown => "M_UNKNOWN",
            Self::Unrecognized => "M_UNRECOGNIZED",
            Self::Unauthorized => "M_UNAUTHORIZED",
            Self::UserDeactivated => "M_USER_DEACTIVATED",
            Self::UserInUse => "M_USER_IN_USE",
            Self::InvalidUsername => "M_INVALID_USERNAME",
            Self::InvalidParam => "M_INVALID_PARAM",
            Self::MissingParam => "M_MISSING_PARAM",
            Self::TooLarge => "M_TOO_LARGE",
            Self::WeakPassword => "M_WEAK_PASSWORD",
            Self::Exclusive => "M_EXCLUSIVE",
            Self::KeyTooLarge => "M_KEY_TOO_LARGE",
            Self::ProfileTooLarge => "M_PROFILE_TOO_LARGE",
            Self::UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            Self::IncompatibleRoomVersion => "M_INCOMPATIBLE_ROOM_VERSION",
            Self::UnableToAuthoriseJoin => "M_UNABLE_TO_AUTHORISE_JOIN",
            Self::RoomInUse => "M_ROOM_IN_USE",
            Self::InvalidRoomState => "M_INVALID_ROOM_STATE",
            Self::BadAlias => "M_BAD_ALIAS",
            Self::WrongRoomKeysVersion { .. } => "M_WRONG_ROOM_KEYS_VERSION",
            Self::CannotOverwriteMedia => "M_CANNOT_OVERWRITE_MEDIA",
            Self::UnknownPos => "M_UNKNOWN_POS",
            Self::NotYetUploaded => "M_NOT_YET_UPLOADED",
            Self::UrlNotSet => "M_URL_NOT_SET",
            Self::BadStatus { .. } => "M_BAD_STATUS",
            Self::ConnectionFailed => "M_CONNECTION_FAILED",
            Self::ConnectionTimeout => "M_CONNECTION_TIMEOUT",
        }
    }

    /// The HTTP status the spec pairs with this code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden
            | Self::UserDeactivated
            | Self::UserSuspended
            | Self::WrongRoomKeysVersion { .. } => StatusCode::FORBIDDEN,
            Self::UnknownToken { .. }
            | Self::MissingToken
            | Self::Unauthorized
            | Self::UserLocked => StatusCode::UNAUTHORIZED,
            Self::NotFound | Self::Unrecognized => StatusCode::NOT_FOUND,
            Self::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::CannotOverwriteMedia => StatusCode::CONFLICT,
            Self::NotYetUploaded | Self::ConnectionTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::BadStatus { .. } | Self::ConnectionFailed => StatusCode::BAD_GATEWAY,
            Self::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadJson
            | Self::NotJson
            | Self::UserInUse
            | Self::InvalidUsername
            | Self::InvalidParam
            | Self::MissingParam
            | Self::WeakPassword
            | Self::Exclusive
            | Self::KeyTooLarge
            | Self::ProfileTooLarge
            | Self::UnsupportedRoomVersion
            | Self::IncompatibleRoomVersion
            | Self::UnableToAuthoriseJoin
            | Self::RoomInUse
            | Self::InvalidRoomState
            | Self::BadAlias
            | Self::UrlNotSet
            | Self::UnknownPos => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error to show the client as it is.
    #[error("{code:?}: {message}")]
    Matrix {
        code: ErrorCode,
        status: StatusCode,
        message: Cow<'static, str>,
    },

    /// User-interactive authentication must continue: answered with 401 and the UIA state.
    #[error("user-interactive authentication required")]
    Uiaa(Box<UiaaInfo>),

    /// Storage failed or holds something unreadable.
    #[error("database error: {0}")]
    Database(String),

    /// Another process holds the database.
    #[error(
        "the database at {0} is in use by another Conclave process; stop it first (only one \
         server may open a database)"
    )]
    DatabaseLocked(String),

    /// Any other internal failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// What a person is told: a Matrix error's message, or the error itself.
    pub fn message(&self) -> String {
        match self {
            Error::Matrix { message, .. } => message.to_string(),
            other => other.to_string(),
        }
    }

    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        let status = code.status();
        Self::Matrix {
            code,
            status,
            message: message.into(),
        }
    }

    /// Same code, with a status other than the usual one (e.g. 405 for `M_UNRECOGNIZED`).
    pub fn with_status(
        code: ErrorCode,
        status: StatusCode,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Matrix {
            code,
            status,
            message: message.into(),
        }
    }

    /// Same error answered with 400, for codes whose usual status is another.
    pub fn with_bad_request(self) -> Self {
        match self {
            Self::Matrix { code, message, .. } => Self::Matrix {
                code,
                status: StatusCode::BAD_REQUEST,
                message,
            },
            other => other,
        }
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn bad_json(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::BadJson, message)
    }

    pub fn invalid_param(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidParam, message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }

    /// The errcode string, for logs and tests.
    pub fn errcode(&self) -> &'static str {
        match self {
            Self::Matrix { code, .. } => code.as_str(),
            Self::Uiaa(_) => "M_FORBIDDEN",
            _ => "M_UNKNOWN",
        }
    }
}

impl From<rocksdb::Error> for Error {
    fn from(err: rocksdb::Error) -> Self {
        Self::Database(err.into_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::Database(format!("stored JSON unreadable: {err}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Matrix {
                code,
                status,
                message,
            } => {
                let mut body = json!({ "errcode": code.as_str(), "error": message });
                match code {
                    ErrorCode::UnknownToken { soft_logout } => {
                        body["soft_logout"] = soft_logout.into();
                    }
                    // The client keeps its session and offers to log out (MSC3939).
                    ErrorCode::UserLocked => {
                        body["soft_logout"] = true.into();
                    }
                    ErrorCode::LimitExceeded { retry_after_ms } => {
                        body["retry_after_ms"] = retry_after_ms.into();
                    }
                    ErrorCode::WrongRoomKeysVersion { current_version } => {
                        body["current_version"] = current_version.into();
                    }
                    ErrorCode::BadStatus {
                        status,
                        body: answer,
                    } => {
                        body["status"] = status.into();
                        body["body"] = answer.into();
                    }
                    _ => {}
                }
                (status, body)
            }
            Self::Uiaa(info) => (
                StatusCode::UNAUTHORIZED,
                serde_json::to_value(&*info).unwrap_or_else(|_| json!({})),
            ),
            other => {
                tracing::error!(error = %other, "internal error while handling request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "errcode": "M_UNKNOWN", "error": "Internal server error" }),
                )
            }
        };
        let retry_after = retry_after_header(&body);
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(retry) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, retry);
        }
        response
    }
}

/// Spec v1.19 recommends a `Retry-After` header alongside `retry_after_ms`.
fn retry_after_header(body: &serde_json::Value) -> Option<http::HeaderValue> {
    let ms = body.get("retry_after_ms")?.as_u64()?;
    http::HeaderValue::from_str(&ms.div_ceil(1000).to_string()).ok()
}
