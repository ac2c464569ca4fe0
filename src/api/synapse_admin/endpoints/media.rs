//! The media endpoints of Synapse's admin API.

use super::*;

/// An endpoint whose parameters are a server and a media ID in its path.
macro_rules! media_path_endpoint {
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
                pub server: ruma::OwnedServerName,
                #[ruma_api(path)]
                pub media_id: String,
            }

            empty_response!();
        }
    };
}

/// An endpoint whose only parameter is a media ID of this server in its path.
macro_rules! local_media_endpoint {
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
                pub media_id: String,
            }

            empty_response!();
        }
    };
}

media_path_endpoint!(
    quarantine_media,
    POST,
    "/_synapse/admin/v1/media/quarantine/{server}/{media_id}"
);
media_path_endpoint!(
    unquarantine_media,
    POST,
    "/_synapse/admin/v1/media/unquarantine/{server}/{media_id}"
);
media_path_endpoint!(
    delete_media,
    DELETE,
    "/_synapse/admin/v1/media/{server}/{media_id}"
);
local_media_endpoint!(protect_media, "/_synapse/admin/v1/media/protect/{media_id}");
local_media_endpoint!(
    unprotect_media,
    "/_synapse/admin/v1/media/unprotect/{media_id}"
);

pub mod quarantine_room_media {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/room/{room_id}/media/quarantine", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub room_id: ruma::OwnedRoomId,
    }

    empty_response!();
}

user_path_endpoint!(
    quarantine_user_media,
    POST,
    "/_synapse/admin/v1/user/{user_id}/media/quarantine"
);

pub mod delete_old_media {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/media/delete", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        /// Milliseconds: media created before then is deleted. Required.
        #[ruma_api(query)]
        pub before_ts: Option<u64>,
        /// Only media larger than this many bytes.
        #[ruma_api(query)]
        pub size_gt: Option<u64>,
        /// Keep media used as an avatar (a user's, a room's); true by default.
        #[ruma_api(query)]
        pub keep_profiles: Option<bool>,
    }

    empty_response!();
}

/// The same as [`delete_old_media`] under the path with the server's name, as the
/// synapse-admin UI calls it.
pub mod delete_old_server_media {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/media/{server_name}/delete", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub server_name: ruma::OwnedServerName,
        #[ruma_api(query)]
        pub before_ts: Option<u64>,
        #[ruma_api(query)]
        pub size_gt: Option<u64>,
        #[ruma_api(query)]
        pub keep_profiles: Option<bool>,
    }

    empty_response!();
}

pub mod purge_media_cache {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/purge_media_cache", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        /// Milliseconds: cached remote media from before then is deleted. Required.
        #[ruma_api(query)]
        pub before_ts: Option<u64>,
    }

    empty_response!();
}

pub mod media_statistics {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/statistics/users/media", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        #[ruma_api(query)]
        pub from: Option<String>,
        #[ruma_api(query)]
        pub limit: Option<ruma::UInt>,
        /// `user_id` (the default), `displayname`, `media_length` or `media_count`.
        #[ruma_api(query)]
        pub order_by: Option<String>,
        #[ruma_api(query)]
        pub dir: Option<String>,
        /// Only media created at or after this (milliseconds).
        #[ruma_api(query)]
        pub from_ts: Option<u64>,
        /// Only media created at or before this (milliseconds).
        #[ruma_api(query)]
        pub until_ts: Option<u64>,
        /// Only users whose localpart or display name contains this.
        #[ruma_api(query)]
        pub search_term: Option<String>,
    }

    empty_response!();
}

/// A user's media, listed or deleted a page at a time.
macro_rules! user_media_endpoint {
    ($name:ident, $method:ident) => {
        pub mod $name {
            use super::*;

            metadata! {
                method: $method,
                rate_limited: false,
                authentication: AccessToken,
                history: { unstable => "/_synapse/admin/v1/users/{user_id}/media", }
            }

            #[request]
            pub struct Request {
                #[ruma_api(path)]
                pub user_id: ruma::OwnedUserId,
                #[ruma_api(query)]
                pub from: Option<String>,
                #[ruma_api(query)]
                pub limit: Option<ruma::UInt>,
                /// A field of the media items; `created_ts` by default.
                #[ruma_api(query)]
                pub order_by: Option<String>,
                /// Newest first when neither this nor `order_by` is given.
                #[ruma_api(query)]
                pub dir: Option<String>,
            }

            empty_response!();
        }
    };
}

user_media_endpoint!(user_media, GET);
user_media_endpoint!(delete_user_media, DELETE);
