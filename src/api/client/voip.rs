//! `GET /voip/turnServer`: TURN credentials for calls. With coturn's shared secret
//! (`use-auth-secret`) each user gets a user name `<expiry>:<user ID>` and, as password, the
//! HMAC-SHA1 of it under the secret — coturn checks both without asking us; they expire
//! after `turn_ttl`.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use ruma::api::client::voip::get_turn_server_info;
use serde_json::json;

use crate::api::Ruma;
use crate::api::router::{RawJson, Routes};
use crate::error::{Error, Result};
use crate::service::Services;

pub fn routes(router: Routes) -> Routes {
    router.ruma(turn_server)
}

async fn turn_server(
    services: Arc<Services>,
    request: Ruma<get_turn_server_info::v3::Request>,
) -> Result<RawJson> {
    let user = request.user()?;
    let turn = &services.config.turn;
    if turn.turn_uris.is_empty() {
        // As Synapse answers: no relays, nothing to say.
        return Ok(RawJson(json!({})));
    }
    let (username, password) = match (&turn.turn_secret, &turn.turn_username, &turn.turn_password) {
        (Some(secret), _, _) => {
            let expiry = crate::service::now_millis() / 1000 + turn.turn_ttl;
            let username = format!("{expiry}:{user}");
            (username.clone(), shared_secret_password(secret, &username)?)
        }
        (None, Some(username), Some(password)) => (username.clone(), password.clone()),
        _ => {
            return Err(Error::Internal(
                "turn_uris is set without turn_secret or turn_username/turn_password".into(),
            ));
        }
    };
    Ok(RawJson(json!({
        "username": username,
        "password": password,
        "uris": turn.turn_uris,
        "ttl": turn.turn_ttl,
    })))
}

/// coturn's REST-API password: base64 (padded) of HMAC-SHA1(secret, user name).
fn shared_secret_password(secret: &str, username: &str) -> Result<String> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).map_err(Error::internal)?;
    mac.update(username.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut encoded =
        ruma::serde::Base64::<ruma::serde::base64::Standard, _>::new(digest.to_vec()).encode();
    while encoded.len() % 4 != 0 {
        encoded.push('=');
    }
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_password_is_what_coturn_computes() {
        // As `echo -n 1600000000:@alice:example.org |
        // openssl dgst -sha1 -hmac secret -binary | base64`.
        let password =
            super::shared_secret_password("secret", "1600000000:@alice:example.org").unwrap();
        assert_eq!(password, "n3p9gPXHj9n7weF/mfuMy1b7bk0=");
    }
}
