//! Accounts made or entered from outside the client API: Synapse's shared-secret registration
//! (`register_new_matrix_user`, provisioning scripts) and an administrator's "log in as".

use std::sync::Arc;

use serde_json::json;

use super::endpoints::*;
use super::users::{local_account, require_admin};
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::users::Availability;
use crate::service::users::shared_secret::Registration;

/// A 400 with `M_UNKNOWN`, as Synapse's plain `SynapseError`.
fn unknown(message: &'static str) -> Error {
    Error::with_status(ErrorCode::Unknown, http::StatusCode::BAD_REQUEST, message)
}

/// A field Synapse requires: 400 `M_BAD_JSON` without it.
fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| Error::bad_json(format!("{name} must be specified")))
}

pub async fn nonce(services: Arc<Services>, _: Ruma<register_nonce::Request>) -> Result<RawJson> {
    let nonce = services.users.shared_secret_nonces.issue().ok_or_else(|| {
        Error::new(
            ErrorCode::LimitExceeded {
                retry_after_ms: 60_000,
            },
            "Too many registration nonces are outstanding",
        )
    })?;
    Ok(RawJson(json!({ "nonce": nonce })))
}

/// Records a shared-secret registration in the audit log, with no secret in it.
fn record_registration(services: &Services, ip: std::net::IpAddr, action: String, ok: bool) {
    let entry = crate::admin::audit::Entry {
        ts: crate::service::now_millis(),
        actor: "registration shared secret".to_owned(),
        origin: format!("admin API from {ip}"),
        action,
        outcome: if ok { "ok" } else { "failed" }.to_owned(),
    };
    if let Err(error) = services.admin.audit.append(&entry) {
        tracing::error!(%error, "cannot write the audit log");
    }
}

pub async fn register(
    services: Arc<Services>,
    request: Ruma<shared_secret_register::Request>,
) -> Result<RawJson> {
    let Some(secret) = services.config.registration_shared_secret.clone() else {
        return Err(unknown("Shared secret registration is not enabled"));
    };
    services.rate_limit.check(
        format!("register:{}", request.client_ip),
        &services.config.registration_rate_limit,
    )?;
    let body = &request.body;
    let nonce = required(&body.nonce, "nonce")?;
    if !services.users.shared_secret_nonces.take(nonce) {
        return Err(unknown("unrecognised nonce"));
    }
    let username = required(&body.username, "username")?;
    if username.len() > 512 || username.contains('\0') {
        return Err(unknown("Invalid username"));
    }
    let password = required(&body.password, "password")?;
    if password.len() > 512 || password.contains('\0') {
        return Err(unknown("Invalid password"));
    }
    if body.user_type.is_some() {
        return Err(unknown("Invalid user type"));
    }
    let mac = required(&body.mac, "mac")?;
    let admin = body.admin.unwrap_or(false);
    let registration = Registration {
        nonce,
        username,
        password,
        admin,
        user_type: None,
    };
    let action = |detail: &str| {
        format!(
            "POST /_synapse/admin/v1/register {username} (admin: {admin}, password and mac \
             <redacted>){detail}"
        )
    };
    if !registration.mac_matches(&secret, mac) {
        record_registration(
            &services,
            request.client_ip,
            action(": HMAC incorrect"),
            false,
        );
        // Synapse's plain SynapseError: 403 with M_UNKNOWN.
        return Err(Error::with_status(
            ErrorCode::Unknown,
            http::StatusCode::FORBIDDEN,
            "HMAC incorrect",
        ));
    }

    let result = create(&services, &request, username, password, admin).await;
    record_registration(&services, request.client_ip, action(""), result.is_ok());
    result
}

async fn create(
    services: &Services,
    request: &Ruma<shared_secret_register::Request>,
    username: &str,
    password: &str,
    admin: bool,
) -> Result<RawJson> {
    let user_id = match services
        .users
        .availability(username, services.server_name())?
    {
        Availability::Available(user_id) if user_id != services.admin.bot => user_id,
        Availability::Available(_) | Availability::Taken => {
            return Err(Error::new(ErrorCode::UserInUse, "User ID already taken."));
        }
        Availability::Invalid(why) => {
            return Err(Error::new(ErrorCode::InvalidUsername, why));
        }
    };
    let hash = services.users.hash_password(password.to_owned()).await?;
    let first = services.users.create_account(&user_id, &hash, None)?;
    tracing::info!(%user_id, admin, "account registered with the shared secret");
    if first {
        crate::admin::welcome_first_admin(services, &user_id).await?;
    } else if admin {
        crate::admin::set_admin(services, &user_id, true).await?;
    }
    if let Some(name) = &request.body.displayname {
        services.users.set_profile_field(
            &user_id,
            "displayname",
            Some(&serde_json::Value::String(name.clone())),
        )?;
    }
    let tokens =
        services
            .users
            .login_device(&user_id, None, None, Some(request.client_ip), false)?;
    Ok(RawJson(json!({
        "user_id": user_id,
        "home_server": services.server_name(),
        "access_token": tokens.access_token,
        "device_id": tokens.device_id,
    })))
}

/// An administrator logs in as a user (for support): a token on a hidden device, which the
/// user's device lists do not show, until `valid_until_ms` if given.
pub async fn login_as(
    services: Arc<Services>,
    request: Ruma<login_as::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let user = &body.user_id;
    if user.server_name() != services.server_name() {
        return Err(unknown("Only local users can be logged in as"));
    }
    local_account(&services, user)?;
    if *user == admin {
        return Err(unknown("Cannot use admin API to login as self"));
    }
    if *user == services.admin.bot {
        return Err(Error::forbidden("That is the server's own bot account"));
    }
    if services.users.is_deactivated(user)? {
        return Err(Error::forbidden("The user is deactivated"));
    }
    let result = services.users.login_hidden(user, body.valid_until_ms);
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/users/{user}/login (valid_until_ms: {:?})",
            body.valid_until_ms
        ),
        result.is_ok(),
    );
    Ok(RawJson(json!({ "access_token": result? })))
}
