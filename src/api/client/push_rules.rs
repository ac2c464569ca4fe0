//! Push rules, stored as the `m.push_rules` global account data; a user without stored rules
//! has the server-default rule set.

use std::sync::Arc;

use ruma::UserId;
use ruma::api::client::push::{
    delete_pushrule, get_pushrule, get_pushrule_actions, get_pushrule_enabled, get_pushrules_all,
    get_pushrules_global_scope, set_pushrule, set_pushrule_actions, set_pushrule_enabled,
};
use ruma::push::{InsertPushRuleError, RemovePushRuleError, Ruleset};
use serde_json::json;

use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

const PUSH_RULES: &str = "m.push_rules";

/// The user's push rules: the stored set, or the server defaults.
pub fn load(services: &Services, user_id: &UserId) -> Result<Ruleset> {
    services.account_data.push_rules(user_id)
}

fn store(services: &Services, user_id: &UserId, ruleset: &Ruleset) -> Result<()> {
    services
        .account_data
        .set(user_id, None, PUSH_RULES, &json!({ "global": ruleset }))
}

fn rule_not_found() -> Error {
    Error::not_found("Push rule not found")
}

/// The ruleset as JSON with all five kinds present: ruma omits empty ones, but clients (and
/// Synapse) expect every kind listed.
fn ruleset_json(ruleset: &Ruleset) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(ruleset).map_err(Error::internal)?;
    if let Some(object) = value.as_object_mut() {
        for kind in ["override", "content", "room", "sender", "underride"] {
            object.entry(kind).or_insert_with(|| json!([]));
        }
    }
    Ok(value)
}

pub async fn get_all(
    services: Arc<Services>,
    request: Ruma<get_pushrules_all::v3::Request>,
) -> Result<RawJson> {
    let ruleset = load(&services, request.user()?)?;
    Ok(RawJson(json!({ "global": ruleset_json(&ruleset)? })))
}

pub async fn get_global(
    services: Arc<Services>,
    request: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<RawJson> {
    let ruleset = load(&services, request.user()?)?;
    Ok(RawJson(ruleset_json(&ruleset)?))
}

pub async fn get_rule(
    services: Arc<Services>,
    request: Ruma<get_pushrule::v3::Request>,
) -> Result<get_pushrule::v3::Response> {
    let body = &request.body;
    let ruleset = load(&services, request.user()?)?;
    let rule = ruleset
        .get(body.kind.clone(), &body.rule_id)
        .ok_or_else(rule_not_found)?;
    Ok(get_pushrule::v3::Response::new(rule.to_owned().into()))
}

pub async fn set_rule(
    services: Arc<Services>,
    request: Ruma<set_pushrule::v3::Request>,
) -> Result<set_pushrule::v3::Response> {
    let user_id = request.user()?;
    let body = &request.body;
    let mut ruleset = load(&services, user_id)?;
    ruleset
        .insert(
            body.rule.clone(),
            body.after.as_deref(),
            body.before.as_deref(),
        )
        .map_err(|error| match error {
            InsertPushRuleError::UnknownRuleId => Error::new(
                ErrorCode::Unknown,
                "The rule given in 'before' or 'after' does not exist",
            )
            .with_bad_request(),
            other => Error::invalid_param(other.to_string()),
        })?;
    store(&services, user_id, &ruleset)?;
    Ok(set_pushrule::v3::Response::new())
}

pub async fn delete_rule(
    services: Arc<Services>,
    request: Ruma<delete_pushrule::v3::Request>,
) -> Result<delete_pushrule::v3::Response> {
    let user_id = request.user()?;
    let body = &request.body;
    let mut ruleset = load(&services, user_id)?;
    ruleset
        .remove(body.kind.clone(), &body.rule_id)
        .map_err(|error| match error {
            RemovePushRuleError::NotFound => rule_not_found(),
            other => Error::invalid_param(other.to_string()),
        })?;
    store(&services, user_id, &ruleset)?;
    Ok(delete_pushrule::v3::Response::new())
}

pub async fn get_enabled(
    services: Arc<Services>,
    request: Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<get_pushrule_enabled::v3::Response> {
    let body = &request.body;
    let ruleset = load(&services, request.user()?)?;
    let rule = ruleset
        .get(body.kind.clone(), &body.rule_id)
        .ok_or_else(rule_not_found)?;
    Ok(get_pushrule_enabled::v3::Response::new(rule.enabled()))
}

pub async fn set_enabled(
    services: Arc<Services>,
    request: Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<set_pushrule_enabled::v3::Response> {
    let user_id = request.user()?;
    let body = &request.body;
    let mut ruleset = load(&services, user_id)?;
    ruleset
        .set_enabled(body.kind.clone(), &body.rule_id, body.enabled)
        .map_err(|_| rule_not_found())?;
    store(&services, user_id, &ruleset)?;
    Ok(set_pushrule_enabled::v3::Response::new())
}

pub async fn get_actions(
    services: Arc<Services>,
    request: Ruma<get_pushrule_actions::v3::Request>,
) -> Result<get_pushrule_actions::v3::Response> {
    let body = &request.body;
    let ruleset = load(&services, request.user()?)?;
    let rule = ruleset
        .get(body.kind.clone(), &body.rule_id)
        .ok_or_else(rule_not_found)?;
    Ok(get_pushrule_actions::v3::Response::new(
        rule.actions().to_vec(),
    ))
}

pub async fn set_actions(
    services: Arc<Services>,
    request: Ruma<set_pushrule_actions::v3::Request>,
) -> Result<set_pushrule_actions::v3::Response> {
    let user_id = request.user()?;
    let body = &request.body;
    let mut ruleset = load(&services, user_id)?;
    ruleset
        .set_actions(body.kind.clone(), &body.rule_id, body.actions.clone())
        .map_err(|_| rule_not_found())?;
    store(&services, user_id, &ruleset)?;
    Ok(set_pushrule_actions::v3::Response::new())
}
