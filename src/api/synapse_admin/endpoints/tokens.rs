//! The registration token endpoints of Synapse's admin API.

use super::*;

/// An endpoint whose only parameter is the registration token in its path.
macro_rules! token_path_endpoint {
    ($name:ident, $method:ident) => {
        pub mod $name {
            use super::*;

            metadata! {
                method: $method,
                rate_limited: false,
                authentication: AccessToken,
                history: { unstable => "/_synapse/admin/v1/registration_tokens/{token}", }
            }

            #[request]
            pub struct Request {
                #[ruma_api(path)]
                pub token: String,
            }

            empty_response!();
        }
    };
}

token_path_endpoint!(get_token, GET);
token_path_endpoint!(delete_token, DELETE);

pub mod new_token {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/registration_tokens/new", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {
        pub token: Option<String>,
        pub uses_allowed: Option<u32>,
        pub expiry_time: Option<u64>,
        pub length: Option<u32>,
    }

    empty_response!();
}

pub mod update_token {
    use super::*;

    metadata! {
        method: PUT,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/registration_tokens/{token}", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub token: String,
        /// `null` makes uses unlimited; absent leaves them.
        #[serde(default, deserialize_with = "super::double_option")]
        pub uses_allowed: Option<Option<u32>>,
        /// `null` makes the token never expire; absent leaves it.
        #[serde(default, deserialize_with = "super::double_option")]
        pub expiry_time: Option<Option<u64>>,
    }

    empty_response!();
}

pub mod register_nonce {
    use super::*;

    metadata! {
        method: GET,
        rate_limited: false,
        authentication: NoAuthentication,
        history: { unstable => "/_synapse/admin/v1/register", }
    }

    #[request]
    #[derive(Default)]
    pub struct Request {}

    empty_response!();
}

pub mod shared_secret_register {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: true,
        authentication: NoAuthentication,
        history: { unstable => "/_synapse/admin/v1/register", }
    }

    /// Every field is optional here so that the handler answers in Synapse's order (the
    /// feature switched off first, then each missing field).
    #[request]
    #[derive(Default)]
    pub struct Request {
        pub nonce: Option<String>,
        pub username: Option<String>,
        pub password: Option<String>,
        pub displayname: Option<String>,
        pub admin: Option<bool>,
        /// Part of the MAC when given; Conclave knows no user types, so any is refused.
        pub user_type: Option<String>,
        pub mac: Option<String>,
    }

    empty_response!();
}

pub mod login_as {
    use super::*;

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: { unstable => "/_synapse/admin/v1/users/{user_id}/login", }
    }

    #[request]
    pub struct Request {
        #[ruma_api(path)]
        pub user_id: ruma::OwnedUserId,
        /// When the token stops working (milliseconds since the epoch); never without.
        pub valid_until_ms: Option<u64>,
    }

    empty_response!();
}
