//! What clients and application services ask of the application services: the ping
//! (`/appservice/{id}/ping`) and the third-party network lookups (`/thirdparty/...`), which
//! bridges answer for the protocols their registrations list.

use std::collections::BTreeMap;
use std::sync::Arc;

use ruma::api::client::appservice::request_ping;
use ruma::api::client::thirdparty::{
    get_location_for_protocol, get_location_for_room_alias, get_protocol, get_protocols,
    get_user_for_protocol, get_user_for_user_id,
};
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::appservice::Appservice;
use crate::service::appservice::outgoing::encode;

/// `POST /_matrix/client/v1/appservice/{appserviceId}/ping`: the server pings the service
/// (`POST /_matrix/app/v1/ping`) and says how long it took.
pub async fn ping(
    services: Arc<Services>,
    request: Ruma<request_ping::v1::Request>,
) -> Result<request_ping::v1::Response> {
    let Some(service) = &request.appservice else {
        return Err(Error::forbidden("Only an application service may ping"));
    };
    if service.id() != request.body.appservice_id {
        return Err(Error::forbidden(
            "An application service may only ping itself",
        ));
    }
    let duration = services
        .appservices
        .queue
        .http()
        .ping(
            service,
            request.body.transaction_id.as_deref().map(|t| t.as_str()),
        )
        .await?;
    Ok(request_ping::v1::Response::new(duration))
}

/// The services that bridge `protocol`.
fn bridging(services: &Services, protocol: &str) -> Vec<Arc<Appservice>> {
    services
        .appservices
        .all()
        .iter()
        .filter(|s| s.registration.protocols.iter().any(|p| p == protocol))
        .cloned()
        .collect()
}

/// One protocol's description: the first bridge's, with every bridge's instances (each
/// named by an `instance_id` that says which bridge and network it is).
async fn protocol(services: &Services, protocol: &str) -> Option<Value> {
    let mut merged: Option<Value> = None;
    for service in bridging(services, protocol) {
        let path = format!("protocol/{}", encode(protocol));
        let Some(mut answer) = services
            .appservices
            .queue
            .http()
            .thirdparty(&service, &path)
            .await
        else {
            continue;
        };
        if !answer.is_object() {
            continue;
        }
        let mut instances = answer["instances"].as_array().cloned().unwrap_or_default();
        for instance in &mut instances {
            if let Some(network) = instance["network_id"].as_str() {
                instance["instance_id"] = json!(format!("{}|{network}", service.id()));
            }
        }
        match &mut merged {
            None => {
                answer["instances"] = json!(instances);
                merged = Some(answer);
            }
            Some(base) => {
                if let Some(list) = base["instances"].as_array_mut() {
                    list.extend(instances);
                }
            }
        }
    }
    merged
}

pub async fn protocols(
    services: Arc<Services>,
    _: Ruma<get_protocols::v3::Request>,
) -> Result<RawJson> {
    let names: std::collections::BTreeSet<String> = services
        .appservices
        .all()
        .iter()
        .flat_map(|s| s.registration.protocols.clone())
        .collect();
    let mut answer = serde_json::Map::new();
    for name in names {
        if let Some(description) = protocol(&services, &name).await {
            answer.insert(name, description);
        }
    }
    Ok(RawJson(Value::Object(answer)))
}

pub async fn get_protocol(
    services: Arc<Services>,
    request: Ruma<get_protocol::v3::Request>,
) -> Result<RawJson> {
    protocol(&services, &request.body.protocol)
        .await
        .map(RawJson)
        .ok_or_else(|| Error::not_found("No bridge here knows this protocol"))
}

/// The lists every service answering `path` gives, together.
async fn lookups(services: &Services, bridges: Vec<Arc<Appservice>>, path: &str) -> Value {
    let mut all = Vec::new();
    for service in bridges {
        if let Some(Value::Array(found)) = services
            .appservices
            .queue
            .http()
            .thirdparty(&service, path)
            .await
        {
            all.extend(found);
        }
    }
    Value::Array(all)
}

fn query_string(fields: &BTreeMap<String, String>) -> String {
    fields
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn location_for_protocol(
    services: Arc<Services>,
    request: Ruma<get_location_for_protocol::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let path = format!(
        "location/{}?{}",
        encode(&body.protocol),
        query_string(&body.fields)
    );
    let bridges = bridging(&services, &body.protocol);
    Ok(RawJson(lookups(&services, bridges, &path).await))
}

pub async fn user_for_protocol(
    services: Arc<Services>,
    request: Ruma<get_user_for_protocol::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let path = format!(
        "user/{}?{}",
        encode(&body.protocol),
        query_string(&body.fields)
    );
    let bridges = bridging(&services, &body.protocol);
    Ok(RawJson(lookups(&services, bridges, &path).await))
}

pub async fn location_for_alias(
    services: Arc<Services>,
    request: Ruma<get_location_for_room_alias::v3::Request>,
) -> Result<RawJson> {
    let path = format!("location?alias={}", encode(request.body.alias.as_str()));
    let bridges = services.appservices.all().to_vec();
    Ok(RawJson(lookups(&services, bridges, &path).await))
}

pub async fn user_for_user_id(
    services: Arc<Services>,
    request: Ruma<get_user_for_user_id::v3::Request>,
) -> Result<RawJson> {
    let path = format!("user?userid={}", encode(request.body.userid.as_str()));
    let bridges = services.appservices.all().to_vec();
    Ok(RawJson(lookups(&services, bridges, &path).await))
}
