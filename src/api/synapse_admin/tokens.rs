//! Registration tokens in Synapse's admin API.

use std::sync::Arc;

use rand::Rng;
use serde_json::{Value, json};

use super::endpoints::*;
use super::users::require_admin;
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::users::RegistrationTokenInfo;

/// Synapse's token object (`pending` is always 0: a use is counted when it completes).
fn token_json(token: &str, info: &RegistrationTokenInfo) -> Value {
    json!({
        "token": token,
        "uses_allowed": info.uses_allowed,
        "pending": 0,
        "completed": info.completed,
        "expiry_time": info.expiry_time_ms,
    })
}

pub async fn list(services: Arc<Services>, request: Ruma<list_tokens::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let tokens: Vec<Value> = services
        .users
        .registration_tokens()?
        .iter()
        .filter(|(_, info)| {
            request
                .body
                .valid
                .is_none_or(|valid| info.usable() == valid)
        })
        .map(|(token, info)| token_json(token, info))
        .collect();
    Ok(RawJson(json!({ "registration_tokens": tokens })))
}

pub async fn get(services: Arc<Services>, request: Ruma<get_token::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let token = &request.body.token;
    let info = services
        .users
        .registration_token(token)?
        .ok_or_else(|| Error::not_found(format!("No such registration token: {token}")))?;
    Ok(RawJson(token_json(token, &info)))
}

pub async fn new(services: Arc<Services>, request: Ruma<new_token::Request>) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let length = body.length.unwrap_or(16);
    if !(1..=64).contains(&length) {
        return Err(Error::invalid_param("length must be between 1 and 64"));
    }
    let token = body.token.clone().unwrap_or_else(|| {
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(length as usize)
            .map(char::from)
            .collect()
    });
    let result = services
        .users
        .put_registration_token(&token, body.uses_allowed, body.expiry_time);
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/registration_tokens/new (uses_allowed: {:?})",
            body.uses_allowed
        ),
        result.is_ok(),
    );
    result?;
    let info = services
        .users
        .registration_token(&token)?
        .ok_or_else(|| Error::internal("the new token was not stored"))?;
    Ok(RawJson(token_json(&token, &info)))
}

pub async fn update(
    services: Arc<Services>,
    request: Ruma<update_token::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let updated = services.users.update_registration_token(
        &body.token,
        body.uses_allowed,
        body.expiry_time,
    )?;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        "PUT /_synapse/admin/v1/registration_tokens/<token>".to_owned(),
        updated.is_some(),
    );
    let info = updated
        .ok_or_else(|| Error::not_found(format!("No such registration token: {}", body.token)))?;
    Ok(RawJson(token_json(&body.token, &info)))
}

pub async fn delete(
    services: Arc<Services>,
    request: Ruma<delete_token::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let removed = services
        .users
        .revoke_registration_token(&request.body.token)?;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        "DELETE /_synapse/admin/v1/registration_tokens/<token>".to_owned(),
        removed,
    );
    if !removed {
        return Err(Error::not_found(format!(
            "No such registration token: {}",
            request.body.token
        )));
    }
    Ok(RawJson(json!({})))
}
