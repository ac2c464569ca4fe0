//! Account registration.
//!
//! Registration is closed unless the operator opens it. On a server without accounts the
//! one-time bootstrap token opens it for exactly one account, the first administrator.

use std::sync::Arc;
use std::time::Duration;

use ruma::api::client::account::{
    check_registration_token_validity, get_username_availability, register,
};
use ruma::api::client::uiaa::{AuthFlow, AuthType};

use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::uiaa::Requirement;
use crate::service::users::Availability;

/// Registration flows currently on offer, or `None` when registration is closed. While no
/// account exists, the one-time bootstrap token is accepted whatever the configuration says.
fn registration_flows(services: &Services) -> Result<Option<Vec<AuthFlow>>> {
    let config = &services.config;
    let mut flows = Vec::new();
    if config.allow_registration {
        let stage = if config.registration_token.is_some() {
            AuthType::RegistrationToken
        } else {
            AuthType::Dummy
        };
        flows.push(AuthFlow::new(vec![stage]));
    }
    let offers_token = |flows: &[AuthFlow]| {
        flows
            .iter()
            .any(|flow| flow.stages == [AuthType::RegistrationToken])
    };
    if !offers_token(&flows) && services.users.stored_token_usable()? {
        flows.push(AuthFlow::new(vec![AuthType::RegistrationToken]));
    }
    Ok((!flows.is_empty()).then_some(flows))
}

pub async fn register(
    services: Arc<Services>,
    request: Ruma<register::v3::Request>,
) -> Result<register::v3::Response> {
    let body = &request.body;
    if body.login_type == Some(register::LoginType::ApplicationService) {
        return register_for_appservice(&services, &request).await;
    }
    if request.appservice.is_some() {
        return Err(Error::new(
            ErrorCode::BadJson,
            "An application service registers its users with type m.login.application_service",
        ));
    }
    // Only attempts count (a request carrying an auth stage): the first request of a
    // registration just asks for the flows, so one sign-up costs one token, as in Synapse,
    // while each registration-token guess still costs one.
    if body.auth.is_some() {
        services.rate_limit.check(
            format!("register:{}", request.client_ip),
            &services.config.registration_rate_limit,
        )?;
    }
    if body.kind == register::RegistrationKind::Guest {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "Guest access is not enabled on this server",
        ));
    }
    let Some(flows) = registration_flows(&services)? else {
        return Err(Error::forbidden("Registration is disabled on this server"));
    };

    // Check the username before UIA so the client learns of a taken name at once.
    let user_id = match &body.username {
        Some(username) => match services
            .users
            .availability(username, services.server_name())?
        {
            Availability::Available(user_id) => {
                services.appservices.check_user_free(&user_id, None)?;
                user_id
            }
            Availability::Taken => {
                return Err(Error::new(
                    ErrorCode::UserInUse,
                    "The user ID is already taken",
                ));
            }
            Availability::Invalid(reason) => {
                return Err(Error::new(ErrorCode::InvalidUsername, reason));
            }
        },
        None => generated_user_id(&services)?,
    };
    let Some(password) = body.password.clone().filter(|p| !p.is_empty()) else {
        if body.auth.is_none() {
            // The spec lets clients discover flows without a password.
            let requirement = Requirement {
                user_id: None,
                flows,
            };
            services
                .uiaa
                .authenticate(&services.users, requirement, None)
                .await?;
        }
        return Err(Error::new(
            ErrorCode::MissingParam,
            "A password is required",
        ));
    };

    let requirement = Requirement {
        user_id: None,
        flows,
    };
    let completed = services
        .uiaa
        .authenticate(&services.users, requirement, body.auth.as_ref())
        .await?;

    let hash = services.users.hash_password(password).await?;
    let first =
        services
            .users
            .create_account(&user_id, &hash, completed.registration_token.as_deref())?;
    tracing::info!(%user_id, "account registered");
    if first {
        crate::admin::welcome_first_admin(&services, &user_id).await?;
    }

    registered(&services, &request, user_id)
}

/// An application service registers a user in its namespace (`m.login.application_service`):
/// no password, no interactive authentication, open even when registration is closed.
async fn register_for_appservice(
    services: &Services,
    request: &Ruma<register::v3::Request>,
) -> Result<register::v3::Response> {
    let Some(service) = &request.appservice else {
        return Err(Error::new(
            ErrorCode::MissingToken,
            "m.login.application_service needs the application service's token",
        ));
    };
    let body = &request.body;
    let Some(username) = &body.username else {
        return Err(Error::new(
            ErrorCode::MissingParam,
            "The username is required",
        ));
    };
    let localpart = username.to_lowercase();
    let user_id = ruma::UserId::parse(format!("@{localpart}:{}", services.server_name()))
        .map_err(|_| Error::new(ErrorCode::InvalidUsername, "The user ID is not valid"))?;
    if !service.users.matches(user_id.as_str()) {
        return Err(Error::new(
            ErrorCode::Exclusive,
            "The user ID is outside the application service's namespace",
        ));
    }
    // Another service's exclusive namespace stays its own.
    services
        .appservices
        .check_user_free(&user_id, Some(service))?;
    if user_id.as_str().len() > 255 || !is_user_localpart(&localpart) {
        return Err(Error::new(
            ErrorCode::InvalidUsername,
            "The username may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
        ));
    }
    services
        .users
        .create_appservice_account(&user_id, service.id())?;
    tracing::info!(%user_id, appservice = service.id(), "account registered by an application service");
    registered(services, request, user_id)
}

/// The answer to a registration: the new account's first device and tokens, unless the
/// client asked for none (`inhibit_login`).
fn registered(
    services: &Services,
    request: &Ruma<register::v3::Request>,
    user_id: ruma::OwnedUserId,
) -> Result<register::v3::Response> {
    let body = &request.body;
    let mut response = register::v3::Response::new(user_id.clone());
    if body.inhibit_login {
        return Ok(response);
    }
    let tokens = services.users.login_device(
        &user_id,
        body.device_id.clone(),
        body.initial_device_display_name.clone(),
        Some(request.client_ip),
        body.refresh_token,
    )?;
    response.access_token = Some(tokens.access_token);
    response.device_id = Some(tokens.device_id);
    response.refresh_token = tokens.refresh_token;
    response.expires_in = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(response)
}

/// The spec's characters of a user ID's localpart (bridges' leading `_` included).
fn is_user_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart.bytes().all(
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'),
        )
}

/// A numeric localpart for clients that register without choosing a name.
fn generated_user_id(services: &Services) -> Result<ruma::OwnedUserId> {
    loop {
        let localpart = (rand::random::<u64>() % 10_000_000_000).to_string();
        if let Availability::Available(user_id) = services
            .users
            .availability(&localpart, services.server_name())?
        {
            return Ok(user_id);
        }
    }
}

pub async fn username_available(
    services: Arc<Services>,
    request: Ruma<get_username_availability::v3::Request>,
) -> Result<get_username_availability::v3::Response> {
    services.rate_limit.check(
        format!("available:{}", request.client_ip),
        &services.config.login_rate_limit,
    )?;
    match services
        .users
        .availability(&request.body.username, services.server_name())?
    {
        Availability::Available(user_id) => {
            services.appservices.check_user_free(&user_id, None)?;
            Ok(get_username_availability::v3::Response::new(true))
        }
        Availability::Taken => Err(Error::new(
            ErrorCode::UserInUse,
            "The user ID is already taken",
        )),
        Availability::Invalid(reason) => Err(Error::new(ErrorCode::InvalidUsername, reason)),
    }
}

pub async fn registration_token_validity(
    services: Arc<Services>,
    request: Ruma<check_registration_token_validity::v1::Request>,
) -> Result<check_registration_token_validity::v1::Response> {
    services.rate_limit.check(
        format!("available:{}", request.client_ip),
        &services.config.login_rate_limit,
    )?;
    if registration_flows(&services)?.is_none() {
        return Err(Error::forbidden("Registration is disabled on this server"));
    }
    let valid = services
        .users
        .registration_token_valid(&request.body.token)?;
    Ok(check_registration_token_validity::v1::Response::new(valid))
}
