//! The Matrix client-server endpoints the benchmark uses: registration (user-interactive
//! auth), the Synapse admin API, login, rooms, messages, filters and /sync.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Answer, Api, ApiError, INITIAL_SYNC_TIMEOUT, Policy, REQUEST_TIMEOUT, Req, enc};

/// How users are created.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Open registration (`m.login.dummy`).
    Open,
    /// Registration with `m.login.registration_token`.
    Token(String),
    /// Synapse admin API (`PUT /_synapse/admin/v2/users/...`) with this admin token.
    Admin {
        token: String,
        server_name: String,
        /// Also lift the per-user rate limits (`override_ratelimit`).
        lift_rate_limits: bool,
    },
}

/// A logged-in simulated user with its own connection pool.
#[derive(Clone)]
pub struct User {
    pub api: Api,
    pub localpart: String,
    pub user_id: String,
    pub password: String,
    pub access_token: String,
    pub device_id: String,
}

/// A device session from a login.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub device_id: String,
}

/// Creates (and logs in) an account by whichever means `auth` says.
pub async fn create_user(
    api: Api,
    auth: &Auth,
    localpart: &str,
    password: &str,
    policy: Policy,
) -> Result<User, ApiError> {
    let session = match auth {
        Auth::Open => register(&api, localpart, password, None, policy).await?,
        Auth::Token(token) => register(&api, localpart, password, Some(token), policy).await?,
        Auth::Admin {
            token,
            server_name,
            lift_rate_limits,
        } => {
            let user_id = format!("@{localpart}:{server_name}");
            let req = Req::put(format!("/_synapse/admin/v2/users/{}", enc(&user_id)))
                .token(token)
                .json(&json!({ "password": password, "admin": false, "displayname": localpart }));
            api.call(&req, policy).await?;
            if *lift_rate_limits {
                let req = Req::post(format!(
                    "/_synapse/admin/v1/users/{}/override_ratelimit",
                    enc(&user_id)
                ))
                .token(token)
                .json(&json!({ "messages_per_second": 0, "burst_count": 0 }));
                // Not every server has this endpoint; the benchmark still works without it.
                let _ = api.call(&req, policy).await;
            }
            login(&api, localpart, password, policy).await?
        }
    };
    Ok(User {
        api,
        localpart: localpart.to_owned(),
        user_id: session.user_id,
        password: password.to_owned(),
        access_token: session.access_token,
        device_id: session.device_id,
    })
}

/// `POST /register` through user-interactive auth: ask for the flows, pick one made only of
/// stages we can complete (`m.login.dummy`, `m.login.registration_token` when a token was
/// given), then complete its stages in order.
pub async fn register(
    api: &Api,
    localpart: &str,
    password: &str,
    token: Option<&str>,
    policy: Policy,
) -> Result<Session, ApiError> {
    const PATH: &str = "/_matrix/client/v3/register?kind=user";
    let mut body = json!({
        "username": localpart,
        "password": password,
        "initial_device_display_name": "conclave-bench",
        "inhibit_login": false,
    });
    let mut uia = match api.call(&Req::post(PATH).json(&body), policy).await {
        Ok(answer) => return session_from(&answer.body, "POST /register"),
        Err(e) => uia_state(e)?,
    };
    let flows: Vec<Vec<String>> = uia
        .get("flows")
        .and_then(Value::as_array)
        .map(|flows| {
            flows
                .iter()
                .map(|f| {
                    f.get("stages")
                        .and_then(Value::as_array)
                        .map(|s| {
                            s.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(stages) = choose_flow(&flows, token.is_some()) else {
        return Err(ApiError::other(
            "POST /register",
            format!(
                "no registration flow we can complete (offered: {flows:?}; pass \
                 --registration-token or --admin-token)"
            ),
        ));
    };
    let session = uia
        .get("session")
        .and_then(Value::as_str)
        .map(str::to_owned);
    for stage in stages {
        let completed = uia
            .get("completed")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|s| s.as_str() == Some(stage.as_str())));
        if completed {
            continue;
        }
        let mut auth = json!({ "type": stage });
        if let Some(session) = &session {
            auth["session"] = json!(session);
        }
        if stage == "m.login.registration_token" {
            auth["token"] = json!(token.unwrap_or_default());
        }
        body["auth"] = auth;
        match api.call(&Req::post(PATH).json(&body), policy).await {
            Ok(answer) => return session_from(&answer.body, "POST /register"),
            Err(e) => uia = uia_state(e)?,
        }
    }
    Err(ApiError::other(
        "POST /register",
        "all auth stages completed but the server still did not register the account",
    ))
}

/// The shortest offered flow whose stages are all ones we can complete.
pub fn choose_flow(flows: &[Vec<String>], have_token: bool) -> Option<Vec<String>> {
    let can = |stage: &String| {
        stage == "m.login.dummy" || (have_token && stage == "m.login.registration_token")
    };
    flows
        .iter()
        .filter(|f| f.iter().all(can))
        .min_by_key(|f| f.len())
        .cloned()
}

/// A 401 with a UIA body is the next step of the dance; anything else is a real failure.
/// A 401 carrying an `errcode` means the stage itself failed (a wrong token, say).
fn uia_state(e: ApiError) -> Result<Value, ApiError> {
    match (&e.status, &e.json, &e.errcode) {
        (Some(401), Some(body), None) if body.get("flows").is_some() => Ok((**body).clone()),
        _ => Err(e),
    }
}

fn session_from(body: &Value, what: &str) -> Result<Session, ApiError> {
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::other(what, format!("the answer has no {name}: {body}")))
    };
    Ok(Session {
        user_id: field("user_id")?,
        access_token: field("access_token")?,
        device_id: field("device_id")?,
    })
}

/// `m.login.password` login, creating a new device.
pub async fn login(
    api: &Api,
    user: &str,
    password: &str,
    policy: Policy,
) -> Result<Session, ApiError> {
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user },
        "password": password,
        "initial_device_display_name": "conclave-bench",
    });
    let answer = api
        .call(&Req::post("/_matrix/client/v3/login").json(&body), policy)
        .await?;
    session_from(&answer.body, "POST /login")
}

impl User {
    /// A cheap authenticated request, used to open the connection before a timed burst.
    pub async fn warm_up(&self) -> Result<(), ApiError> {
        let req = Req::get("/_matrix/client/v3/account/whoami").token(&self.access_token);
        self.api.call(&req, Policy::Setup).await.map(|_| ())
    }

    /// A public room (so members can join without invites); returns its ID.
    pub async fn create_room(&self, name: &str, policy: Policy) -> Result<String, ApiError> {
        let body = json!({ "preset": "public_chat", "name": name });
        let req = Req::post("/_matrix/client/v3/createRoom")
            .token(&self.access_token)
            .json(&body);
        let answer = self.api.call(&req, policy).await?;
        answer
            .body
            .get("room_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::other("POST /createRoom", "the answer has no room_id"))
    }

    pub async fn join(&self, room_id: &str, policy: Policy) -> Result<(), ApiError> {
        let req = Req::post(format!("/_matrix/client/v3/join/{}", enc(room_id)))
            .token(&self.access_token)
            .json(&json!({}));
        self.api.call(&req, policy).await.map(|_| ())
    }

    /// Sends a text message; returns the event ID.
    pub async fn send_message(
        &self,
        room_id: &str,
        txn_id: &str,
        content: &Value,
        policy: Policy,
    ) -> Result<String, ApiError> {
        let req = Req::put(format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            enc(room_id),
            enc(txn_id)
        ))
        .token(&self.access_token)
        .json(content);
        let answer = self.api.call(&req, policy).await?;
        Ok(answer
            .body
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    /// Uploads a filter; returns its ID.
    pub async fn upload_filter(&self, filter: &Value) -> Result<String, ApiError> {
        let req = Req::post(format!(
            "/_matrix/client/v3/user/{}/filter",
            enc(&self.user_id)
        ))
        .token(&self.access_token)
        .json(filter);
        let answer = self.api.call(&req, Policy::Setup).await?;
        answer
            .body
            .get("filter_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::other("POST /filter", "the answer has no filter_id"))
    }

    /// `GET /sync` with `token` (this user's or a fresh device's). Without `since` it is an
    /// initial sync and gets the long timeout.
    pub async fn sync(
        &self,
        token: &str,
        since: Option<&str>,
        filter_id: &str,
        timeout_ms: u64,
        policy: Policy,
    ) -> Result<Answer, ApiError> {
        let mut path = format!(
            "/_matrix/client/v3/sync?filter={}&timeout={timeout_ms}",
            enc(filter_id)
        );
        let mut req_timeout = REQUEST_TIMEOUT.max(Duration::from_millis(timeout_ms + 30_000));
        match since {
            Some(since) => path.push_str(&format!("&since={}", enc(since))),
            None => req_timeout = req_timeout.max(INITIAL_SYNC_TIMEOUT),
        }
        let req = Req::get(path).token(token).timeout(req_timeout);
        self.api.call(&req, policy).await
    }

    /// Logs in again: a fresh device, as a new client would have.
    pub async fn login_fresh(&self, policy: Policy) -> Result<Session, ApiError> {
        login(&self.api, &self.localpart, &self.password, policy).await
    }

    /// Logs out a device (not this user's main one), so repeated runs leave no pile of them.
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        let req = Req::post("/_matrix/client/v3/logout")
            .token(token)
            .json(&json!({}));
        self.api.call(&req, Policy::Setup).await.map(|_| ())
    }
}

/// `next_batch` of a sync answer.
pub fn next_batch(body: &Value) -> Option<String> {
    body.get("next_batch")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Every timeline event of joined rooms in a sync answer, with its room ID.
pub fn timeline_events(body: &Value) -> Vec<(&str, &Value)> {
    let mut out = Vec::new();
    if let Some(rooms) = body.pointer("/rooms/join").and_then(Value::as_object) {
        for (room_id, room) in rooms {
            if let Some(events) = room.pointer("/timeline/events").and_then(Value::as_array) {
                out.extend(events.iter().map(|e| (room_id.as_str(), e)));
            }
        }
    }
    out
}

/// Number of joined rooms in a sync answer.
pub fn joined_room_count(body: &Value) -> usize {
    body.pointer("/rooms/join")
        .and_then(Value::as_object)
        .map_or(0, |rooms| rooms.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_completable_flow() {
        let flows = vec![
            vec!["m.login.email.identity".to_owned()],
            vec![
                "m.login.registration_token".to_owned(),
                "m.login.dummy".to_owned(),
            ],
            vec!["m.login.dummy".to_owned()],
        ];
        assert_eq!(
            choose_flow(&flows, false),
            Some(vec!["m.login.dummy".to_owned()])
        );
        let token_only = vec![vec!["m.login.registration_token".to_owned()]];
        assert_eq!(choose_flow(&token_only, false), None);
        assert_eq!(choose_flow(&token_only, true), Some(token_only[0].clone()));
    }

    #[test]
    fn reads_sync_timelines() {
        let body = json!({
            "next_batch": "s2",
            "rooms": { "join": {
                "!a:x": { "timeline": { "events": [ {"event_id": "$1"}, {"event_id": "$2"} ] } },
                "!b:x": { "state": {} }
            } }
        });
        assert_eq!(next_batch(&body).as_deref(), Some("s2"));
        let events = timeline_events(&body);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, "!a:x");
        assert_eq!(joined_room_count(&body), 2);
    }
}
