//! Password change, deactivation and third-party identifiers.

use std::sync::Arc;

use ruma::api::client::account::{
    ThirdPartyIdRemovalStatus, change_password, deactivate, get_3pids,
};

use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::uiaa::Requirement;

pub async fn change_password(
    services: Arc<Services>,
    request: Ruma<change_password::v3::Request>,
) -> Result<change_password::v3::Response> {
    let user_id = request.user()?;
    let body = &request.body;
    services
        .uiaa
        .authenticate(
            &services.users,
            Requirement::password(user_id),
            body.auth.as_ref(),
        )
        .await?;
    if body.new_password.is_empty() {
        return Err(Error::new(
            ErrorCode::WeakPassword,
            "The new password must not be empty",
        ));
    }
    let hash = services
        .users
        .hash_password(body.new_password.clone())
        .await?;
    services.users.set_password_hash(user_id, &hash)?;
    if body.logout_devices {
        services.remove_all_devices(user_id, Some(request.device()?))?;
    }
    tracing::info!(%user_id, "password changed");
    Ok(change_password::v3::Response::new())
}

pub async fn deactivate(
    services: Arc<Services>,
    request: Ruma<deactivate::v3::Request>,
) -> Result<deactivate::v3::Response> {
    let user_id = request.user()?;
    services
        .uiaa
        .authenticate(
            &services.users,
            Requirement::password(user_id),
            request.body.auth.as_ref(),
        )
        .await?;
    services
        .deactivate_account(user_id, request.body.erase)
        .await?;
    // No identity server was ever bound, so unbinding trivially succeeded (as Synapse says).
    Ok(deactivate::v3::Response::new(
        ThirdPartyIdRemovalStatus::Success,
    ))
}

/// Conclave binds no e-mail addresses or phone numbers, so the list is truly empty.
pub async fn third_party_ids(
    _: Arc<Services>,
    request: Ruma<get_3pids::v3::Request>,
) -> Result<get_3pids::v3::Response> {
    request.user()?;
    Ok(get_3pids::v3::Response::new(Vec::new()))
}

/// `POST /_matrix/client/v3/user/{userId}/openid/request_token`: a token a third party (a
/// widget, an integration) can check with this server to learn who the user is.
pub async fn request_openid_token(
    services: Arc<Services>,
    request: Ruma<ruma::api::client::account::request_openid_token::v3::Request>,
) -> Result<ruma::api::client::account::request_openid_token::v3::Response> {
    let user = request.user()?;
    if request.body.user_id != user {
        return Err(Error::forbidden(
            "You can only request OpenID tokens for yourself",
        ));
    }
    let token = services.openid.issue(user)?;
    Ok(
        ruma::api::client::account::request_openid_token::v3::Response::new(
            token,
            ruma::authentication::TokenType::Bearer,
            services.server_name().to_owned(),
            std::time::Duration::from_millis(crate::service::openid::TOKEN_LIFETIME_MS),
        ),
    )
}
