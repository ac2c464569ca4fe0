//! Users in Synapse's admin API.

use std::sync::Arc;

use ruma::api::client::admin::get_user_info;
use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use super::endpoints::*;
use crate::api::Ruma;
use crate::api::router::{CreatedJson, RawJson};
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

/// The caller, who must be a server administrator.
pub(super) fn require_admin<T>(services: &Services, request: &Ruma<T>) -> Result<OwnedUserId> {
    let user = request.user()?;
    if !services.users.is_admin(user)? {
        return Err(Error::forbidden("You are not a server admin"));
    }
    Ok(user.to_owned())
}

/// A user of this server that exists, else Synapse's errors.
pub(super) fn local_account(services: &Services, user: &UserId) -> Result<()> {
    if user.server_name() != services.server_name() {
        return Err(Error::invalid_param(
            "This endpoint can only be used with local users",
        ));
    }
    if !services.users.exists(user)? {
        return Err(Error::not_found("User not found"));
    }
    Ok(())
}

/// Synapse's user object.
fn user_json(services: &Services, user: &UserId) -> Result<Value> {
    let field = |name: &str| -> Result<Value> {
        Ok(services
            .users
            .profile_field(user, name)?
            .unwrap_or(Value::Null))
    };
    let last_seen = services
        .users
        .devices(user)?
        .into_iter()
        .filter_map(|(_, device)| device.last_seen_ts)
        .max();
    Ok(json!({
        "name": user,
        "displayname": field("displayname")?,
        "avatar_url": field("avatar_url")?,
        "threepids": [],
        "external_ids": [],
        "admin": services.users.is_admin(user)?,
        "deactivated": services.users.is_deactivated(user)?,
        "erased": services.users.is_erased(user)?,
        "shadow_banned": false,
        "locked": services.users.is_locked(user),
        "suspended": services.users.is_suspended(user),
        "is_guest": false,
        "user_type": null,
        "appservice_id": services.users.appservice_of(user)?,
        "approved": true,
        // Milliseconds, as Synapse's list; one user's details give seconds (see
        // `single_user_json`).
        "creation_ts": services.users.created_at(user)?,
        "last_seen_ts": last_seen,
    }))
}

/// One user's details: as a list entry, but `creation_ts` in seconds, as Synapse gives it
/// there (the synapse-admin UI multiplies it by 1000).
fn single_user_json(services: &Services, user: &UserId) -> Result<Value> {
    let mut json = user_json(services, user)?;
    if let Some(ms) = json["creation_ts"].as_u64() {
        json["creation_ts"] = json!(ms / 1000);
    }
    Ok(json)
}

pub async fn server_version(_: Arc<Services>, _: Ruma<server_version::Request>) -> Result<RawJson> {
    Ok(RawJson(
        json!({ "server_version": format!("Conclave {}", env!("CARGO_PKG_VERSION")) }),
    ))
}

pub async fn list(services: Arc<Services>, request: Ruma<list_users::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let query = &request.body;
    let (from, limit) = super::paging(query.from.as_deref(), query.limit)?;
    let backwards = match query.dir.as_deref() {
        None | Some("f") => false,
        Some("b") => true,
        Some(_) => return Err(Error::invalid_param("Unknown direction: use f or b")),
    };
    let by_name = match query.order_by.as_deref() {
        None | Some("name") => true,
        Some("displayname") => false,
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "Unknown value for order_by: {other}"
            )));
        }
    };
    // Synapse: `name` matches the localpart or the display name, `user_id` the whole ID.
    let name = query.name.as_deref().map(str::to_lowercase);
    let id_part = query.user_id.as_deref().map(str::to_lowercase);
    let mut users = Vec::new();
    for (user, deactivated) in services.users.all_accounts()? {
        if user == services.admin.bot || (deactivated && query.deactivated != Some(true)) {
            continue;
        }
        if let Some(admins) = query.admins
            && services.users.is_admin(&user)? != admins
        {
            continue;
        }
        let entry = user_json(&services, &user)?;
        if let Some(name) = &name
            && !user.localpart().to_lowercase().contains(name)
            && !entry["displayname"]
                .as_str()
                .is_some_and(|shown| shown.to_lowercase().contains(name))
        {
            continue;
        }
        if let Some(part) = &id_part
            && !user.as_str().to_lowercase().contains(part)
        {
            continue;
        }
        users.push(entry);
    }
    if !by_name {
        users.sort_by(|a, b| a["displayname"].as_str().cmp(&b["displayname"].as_str()));
    }
    if backwards {
        users.reverse();
    }
    let total = users.len();
    let page: Vec<Value> = users.into_iter().skip(from).take(limit).collect();
    let mut answer = json!({ "users": page, "total": total });
    if from + limit < total {
        answer["next_token"] = json!((from + limit).to_string());
    }
    Ok(RawJson(answer))
}

pub async fn get(services: Arc<Services>, request: Ruma<user::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    local_account(&services, &request.body.user_id)?;
    Ok(RawJson(single_user_json(&services, &request.body.user_id)?))
}

/// Creates or modifies an account (201 when created).
pub async fn put(services: Arc<Services>, request: Ruma<put_user::Request>) -> Result<PutAnswer> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let user = &body.user_id;
    if user.server_name() != services.server_name() {
        return Err(Error::invalid_param(
            "This endpoint can only be used with local users",
        ));
    }
    if *user == services.admin.bot {
        return Err(Error::forbidden("That is the server's own bot account"));
    }
    let mut changed = Vec::new();
    let created = !services.users.exists(user)?;
    let result: Result<()> = async {
        if created {
            let password = body.password.clone().ok_or_else(|| {
                Error::new(
                    ErrorCode::MissingParam,
                    "A password is required to create a user",
                )
            })?;
            let hash = services.users.hash_password(password).await?;
            services.users.create_account(user, &hash, None)?;
            changed.push("created");
        } else if let Some(password) = &body.password {
            let hash = services.users.hash_password(password.clone()).await?;
            if services.users.is_deactivated(user)? {
                services.users.reactivate(user, &hash)?;
            } else {
                services.users.set_password_hash(user, &hash)?;
            }
            if body.logout_devices {
                services.remove_all_devices(user, None)?;
            }
            changed.push("password");
        }
        if let Some(name) = &body.displayname {
            services.users.set_profile_field(
                user,
                "displayname",
                Some(&Value::String(name.clone())),
            )?;
            changed.push("displayname");
        }
        if let Some(avatar) = &body.avatar_url {
            services.users.set_profile_field(
                user,
                "avatar_url",
                Some(&Value::String(avatar.clone())),
            )?;
            changed.push("avatar_url");
        }
        if let Some(is_admin) = body.admin {
            crate::admin::set_admin(&services, user, is_admin).await?;
            changed.push("admin");
        }
        if let Some(locked) = body.locked {
            services.users.set_locked(user, locked)?;
            changed.push("locked");
        }
        if body.deactivated == Some(true) && !services.users.is_deactivated(user)? {
            services.deactivate_account(user, false).await?;
            changed.push("deactivated");
        }
        Ok(())
    }
    .await;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "PUT /_synapse/admin/v2/users/{user} ({})",
            changed.join(", ")
        ),
        result.is_ok(),
    );
    result?;
    let user = single_user_json(&services, user)?;
    Ok(if created {
        PutAnswer::Created(CreatedJson(user))
    } else {
        PutAnswer::Modified(RawJson(user))
    })
}

/// 201 with the new user, or 200 with the modified one.
pub enum PutAnswer {
    Created(CreatedJson),
    Modified(RawJson),
}

impl crate::api::router::HandlerOutput for PutAnswer {
    fn into_http(self) -> axum::response::Response {
        match self {
            PutAnswer::Created(answer) => answer.into_http(),
            PutAnswer::Modified(answer) => answer.into_http(),
        }
    }
}

pub async fn deactivate(
    services: Arc<Services>,
    request: Ruma<deactivate::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let user = &request.body.user_id;
    local_account(&services, user)?;
    let erase = request.body.erase;
    let result = if services.users.is_deactivated(user)? {
        // Nothing left to leave; an erasure asked for later is recorded.
        if erase {
            services.users.set_erased(user, true)
        } else {
            Ok(())
        }
    } else {
        services.deactivate_account(user, erase).await.map(|_| ())
    };
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!("POST /_synapse/admin/v1/deactivate/{user} (erase: {erase})"),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(json!({ "id_server_unbind_result": "success" })))
}

pub async fn reset_password(
    services: Arc<Services>,
    request: Ruma<reset_password::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    local_account(&services, &body.user_id)?;
    if services.users.is_deactivated(&body.user_id)? {
        return Err(Error::forbidden("The user is deactivated"));
    }
    let hash = services
        .users
        .hash_password(body.new_password.clone())
        .await?;
    let result = services
        .users
        .set_password_hash(&body.user_id, &hash)
        .and_then(|()| {
            if body.logout_devices {
                services.remove_all_devices(&body.user_id, None)
            } else {
                Ok(())
            }
        });
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/reset_password/{} (logout_devices: {})",
            body.user_id, body.logout_devices
        ),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(json!({})))
}

pub async fn get_admin(
    services: Arc<Services>,
    request: Ruma<get_admin::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    local_account(&services, &request.body.user_id)?;
    Ok(RawJson(
        json!({ "admin": services.users.is_admin(&request.body.user_id)? }),
    ))
}

pub async fn set_admin(
    services: Arc<Services>,
    request: Ruma<set_admin::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    local_account(&services, &body.user_id)?;
    if body.user_id == admin && !body.admin {
        return Err(Error::invalid_param("You may not demote yourself."));
    }
    let result = crate::admin::set_admin(&services, &body.user_id, body.admin).await;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "PUT /_synapse/admin/v1/users/{}/admin ({})",
            body.user_id, body.admin
        ),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(json!({})))
}

/// Devices with their last connection, as Synapse's whois and the spec's carry them.
fn sessions(services: &Services, user: &UserId) -> Result<Value> {
    let mut devices = serde_json::Map::new();
    for (device_id, device) in services.users.devices(user)? {
        let connections: Vec<Value> = device
            .last_seen_ip
            .iter()
            .map(|ip| json!({ "ip": ip, "last_seen": device.last_seen_ts, "user_agent": null }))
            .collect();
        devices.insert(
            device_id.to_string(),
            json!({ "sessions": [{ "connections": connections }] }),
        );
    }
    Ok(Value::Object(devices))
}

pub async fn whois(services: Arc<Services>, request: Ruma<whois::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    local_account(&services, &request.body.user_id)?;
    Ok(RawJson(json!({
        "user_id": request.body.user_id,
        "devices": sessions(&services, &request.body.user_id)?,
    })))
}

/// The spec's `GET /_matrix/client/v3/admin/whois/{userId}`: administrators may look up anyone,
/// users themselves.
pub async fn spec_whois(
    services: Arc<Services>,
    request: Ruma<get_user_info::v3::Request>,
) -> Result<RawJson> {
    let caller = request.user()?;
    let user = &request.body.user_id;
    if caller != user && !services.users.is_admin(caller)? {
        return Err(Error::forbidden("You are not a server admin"));
    }
    local_account(&services, user)?;
    Ok(RawJson(json!({
        "user_id": user,
        "devices": sessions(&services, user)?,
    })))
}

pub async fn joined_rooms(
    services: Arc<Services>,
    request: Ruma<joined_rooms::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    local_account(&services, &request.body.user_id)?;
    let rooms: Vec<String> = services
        .rooms
        .memberships_of(&request.body.user_id)?
        .into_iter()
        .filter(|(_, membership)| membership == "join")
        .map(|(room, _)| room.to_string())
        .collect();
    Ok(RawJson(
        json!({ "total": rooms.len(), "joined_rooms": rooms }),
    ))
}

/// A user's pushers, as Synapse lists them (the client API's fields).
pub async fn pushers(services: Arc<Services>, request: Ruma<pushers::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    local_account(&services, &request.body.user_id)?;
    let pushers: Vec<serde_json::Value> = services
        .pushers
        .pushers(&request.body.user_id)?
        .into_iter()
        .map(|stored| serde_json::to_value(stored.pusher))
        .collect::<std::result::Result<_, _>>()?;
    Ok(RawJson(
        json!({ "total": pushers.len(), "pushers": pushers }),
    ))
}

pub async fn send_server_notice(
    services: Arc<Services>,
    request: Ruma<send_server_notice::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    local_account(&services, &body.user_id)?;
    if !body.content.get("body").is_some_and(Value::is_string) {
        return Err(Error::new(
            ErrorCode::MissingParam,
            "content.body is required",
        ));
    }
    let mut content = body.content.clone();
    content
        .entry("msgtype")
        .or_insert_with(|| json!("m.server_notice"));
    let result =
        crate::admin::notices::send_content(&services, &body.user_id, Value::Object(content)).await;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/send_server_notice to {}",
            body.user_id
        ),
        result.is_ok(),
    );
    let (_, event_id) = result?;
    Ok(RawJson(json!({ "event_id": event_id })))
}
