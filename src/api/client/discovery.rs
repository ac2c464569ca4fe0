//! Server discovery: `/versions`, `/capabilities` and the `.well-known` documents.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::Method;
use ruma::api::client::discovery::{get_capabilities, get_supported_versions};
use serde_json::json;

use crate::api::Ruma;
use crate::api::router::{RawJson, Routes};
use crate::error::{Error, Result};
use crate::service::Services;

pub fn routes(router: Routes) -> Routes {
    router
        .ruma(versions)
        .ruma(capabilities)
        .on(Method::GET, "/.well-known/matrix/client", well_known_client)
        .on(Method::GET, "/.well-known/matrix/server", well_known_server)
        .on(
            Method::GET,
            "/.well-known/matrix/support",
            well_known_support,
        )
}

/// Spec versions whose account and session APIs Conclave serves. Clients refuse servers that
/// list none they know, so the current line is listed; `unstable_features` lists a feature
/// only once it truly works.
const VERSIONS: &[&str] = &[
    "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11",
    "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19",
];

async fn versions(
    _: Arc<Services>,
    _: Ruma<get_supported_versions::Request>,
) -> Result<get_supported_versions::Response> {
    let versions = VERSIONS.iter().map(|v| (*v).to_owned()).collect();
    let mut response = get_supported_versions::Response::new(versions);
    // Simplified sliding sync (MSC4186): Element X requires it; proven with matrix-sdk's
    // room list service (tests/element_x_sdk.rs).
    response.unstable_features =
        BTreeMap::from([("org.matrix.simplified_msc3575".to_owned(), true)]);
    Ok(response)
}

/// Capabilities, with the ones that are on by default stated explicitly (ruma leaves them out,
/// and some clients only trust what is listed).
async fn capabilities(
    services: Arc<Services>,
    _: Ruma<get_capabilities::v3::Request>,
) -> Result<RawJson> {
    use get_capabilities::v3::{
        Capabilities, ChangePasswordCapability, ProfileFieldsCapability, RoomVersionStability,
        RoomVersionsCapability, ThirdPartyIdChangesCapability,
    };
    let mut capabilities = Capabilities::new();
    capabilities.change_password = ChangePasswordCapability::new(true);
    capabilities.thirdparty_id_changes = ThirdPartyIdChangesCapability::new(false);
    capabilities.profile_fields = Some(ProfileFieldsCapability::new(true));
    let available = crate::service::rooms::SUPPORTED_VERSIONS
        .into_iter()
        .map(|version| (version, RoomVersionStability::Stable))
        .collect();
    capabilities.room_versions =
        RoomVersionsCapability::new(services.config.default_room_version.clone(), available);
    let mut body = serde_json::to_value(&capabilities).map_err(Error::internal)?;
    if let Some(object) = body.as_object_mut() {
        for enabled in ["m.change_password", "m.set_displayname", "m.set_avatar_url"] {
            object.insert(enabled.to_owned(), json!({ "enabled": true }));
        }
    }
    Ok(RawJson(json!({ "capabilities": body })))
}

/// Tells clients where the Client-Server API lives; only when configured (as Synapse does),
/// since a guess would send clients behind a reverse proxy to the wrong place.
async fn well_known_client(State(services): State<Arc<Services>>) -> Response {
    match &services.config.well_known.client {
        Some(base_url) => Json(json!({ "m.homeserver": { "base_url": base_url } })).into_response(),
        None => Error::not_found("No client base URL is configured").into_response(),
    }
}

/// Whom to contact about this server; 404 when nothing is configured, as the spec says.
async fn well_known_support(State(services): State<Arc<Services>>) -> Response {
    let known = &services.config.well_known;
    if known.support_contacts.is_empty() && known.support_page.is_none() {
        return Error::not_found("No support contacts are configured").into_response();
    }
    let mut answer = json!({ "contacts": known.support_contacts.iter().map(|contact| {
        let mut entry = json!({ "role": contact.role });
        if let Some(id) = &contact.matrix_id {
            entry["matrix_id"] = json!(id);
        }
        if let Some(email) = &contact.email_address {
            entry["email_address"] = json!(email);
        }
        entry
    }).collect::<Vec<_>>() });
    if let Some(page) = &known.support_page {
        answer["support_page"] = json!(page);
    }
    Json(answer).into_response()
}

/// Delegation for federation; only served when configured, as a wrong answer is worse than none.
async fn well_known_server(State(services): State<Arc<Services>>) -> Response {
    match &services.config.well_known.server {
        Some(server) => Json(json!({ "m.server": server })).into_response(),
        None => Error::not_found("No server delegation is configured").into_response(),
    }
}
