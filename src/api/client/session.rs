//! Login, logout, token refresh and `whoami`.

use std::sync::Arc;
use std::time::Duration;

use ruma::api::client::account::whoami;
use ruma::api::client::session::{get_login_types, login, logout, logout_all, refresh_token};
use ruma::api::client::uiaa::UserIdentifier;
use ruma::{OwnedUserId, UserId};

use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

pub async fn login_types(
    _: Arc<Services>,
    _: Ruma<get_login_types::v3::Request>,
) -> Result<get_login_types::v3::Response> {
    use get_login_types::v3::{ApplicationServiceLoginType, LoginType, PasswordLoginType};
    Ok(get_login_types::v3::Response::new(vec![
        LoginType::Password(PasswordLoginType::new()),
        LoginType::ApplicationService(ApplicationServiceLoginType::new()),
    ]))
}

/// Resolves a login identifier (localpart or full user ID, any case) to a local user ID.
fn identifier_to_user(services: &Services, identifier: &str) -> Option<OwnedUserId> {
    let lowered = identifier.trim().to_lowercase();
    let user_id = if lowered.starts_with('@') {
        UserId::parse(lowered).ok()?
    } else {
        UserId::parse(format!("@{lowered}:{}", services.server_name())).ok()?
    };
    (user_id.server_name() == services.server_name()).then_some(user_id)
}

pub async fn login(
    services: Arc<Services>,
    request: Ruma<login::v3::Request>,
) -> Result<login::v3::Response> {
    let body = &request.body;
    let limits = &services.config.login_rate_limit;
    if !request.appservice.as_ref().is_some_and(|s| s.unlimited()) {
        services
            .rate_limit
            .check(format!("login:{}", request.client_ip), limits)?;
    }

    let password = match &body.login_info {
        login::v3::LoginInfo::Password(password) => password,
        login::v3::LoginInfo::ApplicationService(info) => {
            return login_for_appservice(&services, &request, info);
        }
        _ => {
            return Err(Error::new(
                ErrorCode::Unknown,
                "Only m.login.password and m.login.application_service are supported",
            )
            .with_bad_request());
        }
    };
    #[allow(deprecated)]
    let identifier = match (&password.identifier, &password.user) {
        (Some(UserIdentifier::Matrix(id)), _) => id.user.clone(),
        (None, Some(user)) => user.clone(),
        _ => {
            return Err(Error::forbidden(
                "Only user ID identifiers (m.id.user) are supported",
            ));
        }
    };
    let wrong = || Error::forbidden("Invalid username or password");
    let Some(user_id) = identifier_to_user(&services, &identifier) else {
        return Err(wrong());
    };

    if services.users.is_deactivated(&user_id)? {
        return Err(Error::new(
            ErrorCode::UserDeactivated,
            "This account has been deactivated",
        ));
    }
    if !services
        .users
        .check_password(&user_id, &password.password)
        .await?
    {
        // Repeated failures against one account are limited too, wherever they come from.
        services
            .rate_limit
            .check(format!("login-failed:{user_id}"), limits)?;
        return Err(wrong());
    }
    // Only after the password: the lock is not revealed to someone guessing.
    if services.users.is_locked(&user_id) {
        return Err(Error::new(
            ErrorCode::UserLocked,
            "This account has been locked by an administrator",
        ));
    }

    logged_in(&services, &request, user_id)
}

/// An application service logs in as one of its users (`m.login.application_service`),
/// e.g. to get a device for end-to-bridge encryption.
fn login_for_appservice(
    services: &Services,
    request: &Ruma<login::v3::Request>,
    info: &login::v3::ApplicationService,
) -> Result<login::v3::Response> {
    let Some(service) = &request.appservice else {
        return Err(Error::new(
            ErrorCode::MissingToken,
            "m.login.application_service needs the application service's token",
        ));
    };
    #[allow(deprecated)]
    let identifier = match (&info.identifier, &info.user) {
        (Some(UserIdentifier::Matrix(id)), _) => id.user.clone(),
        (None, Some(user)) => user.clone(),
        _ => {
            return Err(Error::forbidden(
                "Only user ID identifiers (m.id.user) are supported",
            ));
        }
    };
    let Some(user_id) = identifier_to_user(services, &identifier) else {
        return Err(Error::forbidden("Not a user of this server"));
    };
    if !service.may_act_as(&user_id) {
        return Err(Error::new(
            ErrorCode::Exclusive,
            "The user is outside the application service's namespace",
        ));
    }
    if !services.users.exists(&user_id)? || services.users.is_deactivated(&user_id)? {
        return Err(Error::forbidden(format!(
            "The application service has not registered {user_id}"
        )));
    }
    logged_in(services, request, user_id)
}

/// A new device and its tokens for a user who proved who they are.
fn logged_in(
    services: &Services,
    request: &Ruma<login::v3::Request>,
    user_id: OwnedUserId,
) -> Result<login::v3::Response> {
    let body = &request.body;
    let tokens = services.users.login_device(
        &user_id,
        body.device_id.clone(),
        body.initial_device_display_name.clone(),
        Some(request.client_ip),
        body.refresh_token,
    )?;
    tracing::info!(%user_id, device_id = %tokens.device_id, "logged in");
    let mut response = login::v3::Response::new(user_id, tokens.access_token, tokens.device_id);
    response.refresh_token = tokens.refresh_token;
    response.expires_in = tokens.expires_in_ms.map(Duration::from_millis);
    #[allow(deprecated)]
    {
        response.home_server = Some(services.server_name().to_owned());
    }
    Ok(response)
}

/// Logging out deletes the device, as the spec requires.
pub async fn logout(
    services: Arc<Services>,
    request: Ruma<logout::v3::Request>,
) -> Result<logout::v3::Response> {
    services.remove_device(request.user()?, request.device()?)?;
    Ok(logout::v3::Response::new())
}

pub async fn logout_all(
    services: Arc<Services>,
    request: Ruma<logout_all::v3::Request>,
) -> Result<logout_all::v3::Response> {
    services.remove_all_devices(request.user()?, None)?;
    Ok(logout_all::v3::Response::new())
}

pub async fn refresh(
    services: Arc<Services>,
    request: Ruma<refresh_token::v3::Request>,
) -> Result<refresh_token::v3::Response> {
    let Some(tokens) = services.users.refresh(&request.body.refresh_token)? else {
        return Err(Error::new(
            ErrorCode::UnknownToken { soft_logout: false },
            "Unknown refresh token",
        ));
    };
    let mut response = refresh_token::v3::Response::new(tokens.access_token);
    response.refresh_token = tokens.refresh_token;
    response.expires_in_ms = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(response)
}

pub async fn whoami(
    _: Arc<Services>,
    request: Ruma<whoami::v3::Request>,
) -> Result<whoami::v3::Response> {
    let mut response = whoami::v3::Response::new(request.user()?.to_owned(), false);
    // An application service acting without a device has none to name.
    response.device_id = request.sender_device.clone();
    Ok(response)
}
