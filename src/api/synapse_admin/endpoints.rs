//! Synapse's admin API as ruma endpoint types, so that its requests pass the same extractor as
//! the client API's (authentication, the body rule, the route table the fuzzer walks). Paths,
//! parameters and bodies follow Synapse's documentation; handlers answer with JSON built to
//! Synapse's response shapes.

use ruma::api::auth_scheme::{AccessToken, NoAuthentication};
use ruma::api::{request, response};
use ruma::metadata;

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

macro_rules! empty_response {
    () => {
        /// Answered with JSON built by the handler.
        #[response]
        #[derive(Default)]
        pub struct Response {}
    };
}

/// An endpoint whose only parameter is the user in its path.
macro_rules! user_path_endpoint {
    ($name:ident, $method:ident, $path:literal) => {
        pub mod $name {
            use super::*;

            metadata! {
                method: $method,
                rate_limited: false,
                authentication: AccessToken,
                history: { unstable => $path, }
            }

            #[request]
            pub struct Request {
                #[ruma_api(path)]
                pub user_id: ruma::OwnedUserId,
            }

            empty_response!();
        }
    };
}

mod media;
mod rooms;
mod tokens;
pub use media::*;
pub use rooms::*;
pub use tokens::*;

pub mod server_version {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: NoAuthentication,
        history: { unstable => "/_synapse/admin/v1/server_version", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {}

    empty_response!();
}

pub mod list_users {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v2/users", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        /// Offset into the list (Synapse's `next_token`).
        #[ruma_api(query)]
        pub from: Option<String>,
        #[ruma_api(query)]
        pub limit: Option<ruma::UInt>,
        /// Only users whose ID or display name contains this.
        #[ruma_api(query)]
        pub name: Option<String>,
        #[ruma_api(query)]
        pub user_id: Option<String>,
        #[ruma_api(query)]
        pub guests: Option<bool>,
        #[ruma_api(query)]
        pub deactivated: Option<bool>,
        #[ruma_api(query)]
        pub admins: Option<bool>,
        #[ruma_api(query)]
        pub order_by: Option<String>,
        #[ruma_api(query)]
        pub dir: Option<String>,
    }

    empty_response!();
}

user_path_endpoint!(user, GET, "/_synapse/admin/v2/users/{user_id}");

pub mod put_user {
    use super::*;

    metadata! {
        method: PUT,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v2/users/{user_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        pub password: Option<String>,
        #[serde(default = "ruma::serde::default_true")]
        pub logout_devices: bool,
        pub displayname: Option<String>,
        pub avatar_url: Option<String>,
        pub admin: Option<bool>,
        pub deactivated: Option<bool>,
        pub locked: Option<bool>,
        /// Accepted and ignored: Conclave stores no e-mail addresses or phone numbers.
        pub threepids: Option<serde_json::Value>,
    }

    empty_response!();
}

pub mod deactivate {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/deactivate/{user_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        #[serde(default)]
        pub erase: bool,
    }

    empty_response!();
}

pub mod reset_password {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/reset_password/{user_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        pub new_password: String,
        #[serde(default = "ruma::serde::default_true")]
        pub logout_devices: bool,
    }

    empty_response!();
}

user_path_endpoint!(get_admin, GET, "/_synapse/admin/v1/users/{user_id}/admin");

pub mod set_admin {
    use super::*;

    metadata! {
        method: PUT,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/users/{user_id}/admin", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        pub admin: bool,
    }

    empty_response!();
}

user_path_endpoint!(whois, GET, "/_synapse/admin/v1/whois/{user_id}");

user_path_endpoint!(
    joined_rooms,
    GET,
    "/_synapse/admin/v1/users/{user_id}/joined_rooms"
);

user_path_endpoint!(pushers, GET, "/_synapse/admin/v1/users/{user_id}/pushers");

pub mod send_server_notice {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/send_server_notice", }
    }

    #[request]
    pub struct Request {
        pub user_id: ruma::OwnedUserId,
        pub content: serde_json::Map<String, serde_json::Value>,
    }

    empty_response!();
}

pub mod event_reports {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/event_reports", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        #[ruma_api(query)]
        pub from: Option<String>,
        #[ruma_api(query)]
        pub limit: Option<ruma::UInt>,
        #[ruma_api(query)]
        pub dir: Option<String>,
        #[ruma_api(query)]
        pub room_id: Option<String>,
        /// Reports by this user.
        #[ruma_api(query)]
        pub user_id: Option<String>,
    }

    empty_response!();
}

pub mod event_report {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/event_reports/{report_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub report_id: String,
    }

    empty_response!();
}

pub mod delete_event_report {
    use super::*;

    metadata! {
        method: DELETE,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/event_reports/{report_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub report_id: String,
    }

    empty_response!();
}

user_path_endpoint!(devices, GET, "/_synapse/admin/v2/users/{user_id}/devices");

pub mod device {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v2/users/{user_id}/devices/{device_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        #[ruma_api(path)]
        pub device_id: ruma::OwnedDeviceId,
    }

    empty_response!();
}

pub mod delete_device {
    use super::*;

    metadata! {
        method: DELETE,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v2/users/{user_id}/devices/{device_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        #[ruma_api(path)]
        pub device_id: ruma::OwnedDeviceId,
    }

    empty_response!();
}

pub mod delete_devices {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v2/users/{user_id}/delete_devices", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        pub devices: Vec<ruma::OwnedDeviceId>,
    }

    empty_response!();
}

pub mod room_block {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/rooms/{room_id}/block", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub room_id: ruma::OwnedRoomId,
    }

    empty_response!();
}

pub mod set_room_block {
    use super::*;

    metadata! {
        method: PUT,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/rooms/{room_id}/block", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub room_id: ruma::OwnedRoomId,
        pub block: bool,
    }

    empty_response!();
}

pub mod list_rooms {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/rooms", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        #[ruma_api(query)]
        pub from: Option<String>,
        #[ruma_api(query)]
        pub limit: Option<ruma::UInt>,
        #[ruma_api(query)]
        pub order_by: Option<String>,
        #[ruma_api(query)]
        pub dir: Option<String>,
        #[ruma_api(query)]
        pub search_term: Option<String>,
    }

    empty_response!();
}

pub mod room_details {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/rooms/{room_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub room_id: ruma::OwnedRoomId,
    }

    empty_response!();
}

pub mod room_members {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/rooms/{room_id}/members", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub room_id: ruma::OwnedRoomId,
    }

    empty_response!();
}
