//! The room endpoints of Synapse's admin API.

use super::*;

/// An endpoint whose only parameter is the room in its path.
macro_rules! room_path_endpoint {
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
                pub room_id: ruma::OwnedRoomId,
            }

            empty_response!();
        }
    };
}

room_path_endpoint!(room_state, GET, "/_synapse/admin/v1/rooms/{room_id}/state");
room_path_endpoint!(
    forward_extremities,
    GET,
    "/_synapse/admin/v1/rooms/{room_id}/forward_extremities"
);
room_path_endpoint!(
    delete_forward_extremities,
    DELETE,
    "/_synapse/admin/v1/rooms/{room_id}/forward_extremities"
);
room_path_endpoint!(
    room_delete_status,
    GET,
    "/_synapse/admin/v2/rooms/{room_id}/delete_status"
);

pub mod room_messages {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/rooms/{room_id}/messages", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub room_id: ruma::OwnedRoomId,
        #[ruma_api(query)]
        pub from: Option<String>,
        #[ruma_api(query)]
        pub to: Option<String>,
        #[ruma_api(query)]
        pub limit: Option<ruma::UInt>,
        /// `f` (the default) or `b`.
        #[ruma_api(query)]
        pub dir: Option<String>,
        /// A room event filter as JSON.
        #[ruma_api(query)]
        pub filter: Option<String>,
    }

    empty_response!();
}

/// The body of both room deletion endpoints (Synapse's names and defaults).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct DeleteRoomBody {
    pub new_room_user_id: Option<ruma::OwnedUserId>,
    pub room_name: Option<String>,
    pub message: Option<String>,
    pub block: Option<bool>,
    pub purge: Option<bool>,
    pub force_purge: Option<bool>,
}

/// Declares a room deletion endpoint: the room in the path, [`DeleteRoomBody`] in the body.
macro_rules! delete_room_endpoint {
    ($name:ident, $path:literal) => {
        pub mod $name {
            use super::*;

            metadata! {
                method: DELETE,
                rate_limited: false,
                authentication: AccessToken,
                history: { unstable => $path, }
            }

            #[request]
            pub struct Request {
                #[ruma_api(path)]
                pub room_id: ruma::OwnedRoomId,
                #[ruma_api(body)]
                pub body: DeleteRoomBody,
            }

            empty_response!();
        }
    };
}

delete_room_endpoint!(delete_room, "/_synapse/admin/v1/rooms/{room_id}");
delete_room_endpoint!(delete_room_v2, "/_synapse/admin/v2/rooms/{room_id}");

pub mod delete_status {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v2/rooms/delete_status/{delete_id}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub delete_id: String,
    }

    empty_response!();
}

/// Declares an endpoint on a room given by ID or alias, acting for the user in the body.
macro_rules! room_user_endpoint {
    ($name:ident, $path:literal) => {
        pub mod $name {
            use super::*;

            metadata! {
                method: POST,
                rate_limited: false,
                authentication: AccessToken,
                history: { unstable => $path, }
            }

            #[request]
            pub struct Request {
                #[ruma_api(path)]
                pub room_id_or_alias: String,
                pub user_id: Option<ruma::OwnedUserId>,
            }

            empty_response!();
        }
    };
}

room_user_endpoint!(join_room, "/_synapse/admin/v1/join/{room_id_or_alias}");
room_user_endpoint!(
    make_room_admin,
    "/_synapse/admin/v1/rooms/{room_id_or_alias}/make_room_admin"
);

pub mod list_tokens {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/registration_tokens", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        /// Only valid (`true`) or only invalid (`false`) tokens.
        #[ruma_api(query)]
        pub valid: Option<bool>,
    }

    empty_response!();
}
