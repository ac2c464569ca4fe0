//! User-interactive authentication (UIA), one mechanism for every endpoint that needs it:
//! registration, password change, device deletion, deactivation and (later) cross-signing.
//!
//! Sessions live in memory: they last minutes, and a client whose session vanished with a
//! restart simply starts a new one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::api::client::uiaa::{AuthData, AuthFlow, AuthType, UiaaInfo, UserIdentifier};
use ruma::api::error::{ErrorKind, StandardErrorBody};
use ruma::{OwnedUserId, UserId};

use super::users;
use crate::error::{Error, ErrorCode, Result};

const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 60);
const MAX_SESSIONS: usize = 10_000;

#[derive(Default)]
pub struct Service {
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    /// The account that must prove itself (None during registration).
    user_id: Option<OwnedUserId>,
    completed: Vec<AuthType>,
    registration_token: Option<String>,
    created: Instant,
}

/// What a completed authentication established.
#[derive(Debug, Default)]
pub struct Completed {
    /// The registration token the client presented, to be consumed on account creation.
    pub registration_token: Option<String>,
}

/// What the endpoint demands.
pub struct Requirement<'a> {
    /// The account that must authenticate, if any (password stages check against it).
    pub user_id: Option<&'a UserId>,
    pub flows: Vec<AuthFlow>,
}

impl Requirement<'_> {
    /// The usual requirement of a signed-in user: their password.
    pub fn password(user_id: &UserId) -> Requirement<'_> {
        Requirement {
            user_id: Some(user_id),
            flows: vec![AuthFlow::new(vec![AuthType::Password])],
        }
    }
}

impl Service {
    /// Runs one step of UIA. Returns `Ok` once a whole flow is complete; otherwise the `Err`
    /// carries the 401 body telling the client what is left.
    pub async fn authenticate(
        &self,
        users: &users::Service,
        requirement: Requirement<'_>,
        auth: Option<&AuthData>,
    ) -> Result<Completed> {
        let Some(auth) = auth else {
            let session_id = self.start_session(requirement.user_id);
            return Err(uiaa_error(&requirement.flows, &[], session_id, None));
        };

        let (session_id, mut session) = match auth.session().and_then(|id| self.take_session(id)) {
            Some(found) => found,
            None => (new_session_id(), Session::new(requirement.user_id)),
        };
        if session.user_id.as_deref() != requirement.user_id {
            return Err(Error::forbidden(
                "This authentication session belongs to another request",
            ));
        }

        let stage_result = self
            .run_stage(users, &requirement, auth, &mut session)
            .await;
        let stage = match stage_result {
            Ok(Some(stage)) => stage,
            Ok(None) => {
                // Fallback acknowledgement: nothing new completed.
                let completed = session.completed.clone();
                self.put_session(session_id.clone(), session);
                return Err(uiaa_error(&requirement.flows, &completed, session_id, None));
            }
            Err(StageError::Retry(message)) => {
                let completed = session.completed.clone();
                self.put_session(session_id.clone(), session);
                let body = StandardErrorBody::new(ErrorKind::Forbidden, message.to_owned());
                return Err(uiaa_error(
                    &requirement.flows,
                    &completed,
                    session_id,
                    Some(body),
                ));
            }
            Err(StageError::Fatal(error)) => return Err(error),
        };

        if !session.completed.contains(&stage) {
            session.completed.push(stage);
        }
        let done = requirement.flows.iter().any(|flow| {
            flow.stages
                .iter()
                .all(|stage| session.completed.contains(stage))
        });
        if done {
            return Ok(Completed {
                registration_token: session.registration_token,
            });
        }
        let completed = session.completed.clone();
        self.put_session(session_id.clone(), session);
        Err(uiaa_error(&requirement.flows, &completed, session_id, None))
    }

    async fn run_stage(
        &self,
        users: &users::Service,
        requirement: &Requirement<'_>,
        auth: &AuthData,
        session: &mut Session,
    ) -> Result<Option<AuthType>, StageError> {
        let Some(stage) = auth.auth_type() else {
            return Ok(None);
        };
        let offered = requirement
            .flows
            .iter()
            .any(|flow| flow.stages.contains(&stage));
        if !offered {
            return Err(StageError::Fatal(Error::new(
                ErrorCode::Unrecognized,
                format!("The authentication stage {stage} is not offered here"),
            )));
        }
        match auth {
            AuthData::Password(password) => {
                let Some(user_id) = requirement.user_id else {
                    return Err(StageError::Retry(
                        "Password authentication is not possible here",
                    ));
                };
                let named = match &password.identifier {
                    UserIdentifier::Matrix(id) => names_user(&id.user, user_id),
                    _ => false,
                };
                if !named {
                    return Err(StageError::Retry("You can only authenticate as yourself"));
                }
                let valid = users
                    .check_password(user_id, &password.password)
                    .await
                    .map_err(StageError::Fatal)?;
                if !valid {
                    return Err(StageError::Retry("Invalid password"));
                }
            }
            AuthData::RegistrationToken(token) => {
                let valid = users
                    .registration_token_valid(&token.token)
                    .map_err(StageError::Fatal)?;
                if !valid {
                    return Err(StageError::Retry("Invalid registration token"));
                }
                session.registration_token = Some(token.token.clone());
            }
            AuthData::Dummy(_) => {}
            AuthData::FallbackAcknowledgement(_) => return Ok(None),
            _ => {
                return Err(StageError::Fatal(Error::new(
                    ErrorCode::Unrecognized,
                    format!("The authentication stage {stage} is not supported"),
                )));
            }
        }
        Ok(Some(stage))
    }

    fn start_session(&self, user_id: Option<&UserId>) -> String {
        let id = new_session_id();
        self.put_session(id.clone(), Session::new(user_id));
        id
    }

    fn put_session(&self, id: String, session: Session) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, session| session.created.elapsed() < SESSION_LIFETIME);
        }
        sessions.insert(id, session);
    }

    fn take_session(&self, id: &str) -> Option<(String, Session)> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .remove_entry(id)
            .filter(|(_, session)| session.created.elapsed() < SESSION_LIFETIME)
    }
}

enum StageError {
    /// The stage failed; the client may try again in the same session.
    Retry(&'static str),
    Fatal(Error),
}

impl Session {
    fn new(user_id: Option<&UserId>) -> Self {
        Self {
            user_id: user_id.map(ToOwned::to_owned),
            completed: Vec::new(),
            registration_token: None,
            created: Instant::now(),
        }
    }
}

/// Whether a login identifier (localpart or full user ID, any case) names `user_id`.
pub fn names_user(identifier: &str, user_id: &UserId) -> bool {
    let identifier = identifier.to_lowercase();
    if identifier.starts_with('@') {
        identifier == user_id.as_str().to_lowercase()
    } else {
        identifier == user_id.localpart()
    }
}

fn new_session_id() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn uiaa_error(
    flows: &[AuthFlow],
    completed: &[AuthType],
    session: String,
    auth_error: Option<StandardErrorBody>,
) -> Error {
    let mut info = UiaaInfo::new(flows.to_vec());
    info.completed = completed.to_vec();
    info.session = Some(session);
    info.params = serde_json::value::to_raw_value(&serde_json::json!({})).ok();
    info.auth_error = auth_error.map(Box::new);
    Error::Uiaa(Box::new(info))
}
