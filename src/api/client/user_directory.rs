//! `POST /user_directory/search`: find people by user ID or display name.

use std::collections::BTreeSet;
use std::sync::Arc;

use ruma::api::client::user_directory::search_users;
use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::Result;
use crate::service::Services;

/// The users the searcher may find when the directory is not server-wide: those sharing a
/// room with them, and members of public rooms.
fn visible_users(services: &Services, searcher: &UserId) -> Result<BTreeSet<OwnedUserId>> {
    let rooms = &services.rooms;
    let mut room_ids = rooms.rooms_with_membership(searcher, "join")?;
    room_ids.extend(rooms.public_rooms()?);
    let mut users = BTreeSet::new();
    for room_id in room_ids {
        for (user, membership) in rooms.members(&room_id)? {
            if membership == "join" {
                users.insert(user);
            }
        }
    }
    Ok(users)
}

pub async fn search(
    services: Arc<Services>,
    request: Ruma<search_users::v3::Request>,
) -> Result<RawJson> {
    let searcher = request.user()?;
    let body = &request.body;
    let limit = usize::try_from(u64::from(body.limit))
        .unwrap_or(10)
        .clamp(1, 1000);
    let terms: Vec<String> = body
        .search_term
        .to_lowercase()
        .split_whitespace()
        .map(ToOwned::to_owned)
        .collect();
    let candidates: Vec<OwnedUserId> = if services.config.user_directory_search_all_users {
        services.users.active_users()?
    } else {
        visible_users(&services, searcher)?.into_iter().collect()
    };

    let mut results = Vec::new();
    let mut limited = false;
    for user in candidates {
        if user.server_name() != services.server_name() || services.users.is_deactivated(&user)? {
            continue;
        }
        // As Synapse: bridges' puppets and bots are not people of this server.
        if services.appservices.claiming_user(&user).is_some() {
            continue;
        }
        let display_name = services
            .users
            .profile_field(&user, "displayname")?
            .and_then(|v| v.as_str().map(ToOwned::to_owned));
        let haystack = format!(
            "{} {}",
            user.as_str().to_lowercase(),
            display_name.as_deref().unwrap_or_default().to_lowercase()
        );
        if !terms.iter().all(|term| haystack.contains(term.as_str())) {
            continue;
        }
        if results.len() >= limit {
            limited = true;
            break;
        }
        let mut entry = json!({ "user_id": user });
        if let Some(name) = display_name {
            entry["display_name"] = json!(name);
        }
        if let Some(Value::String(avatar)) = services.users.profile_field(&user, "avatar_url")? {
            entry["avatar_url"] = json!(avatar);
        }
        results.push(entry);
    }
    Ok(RawJson(json!({ "results": results, "limited": limited })))
}
