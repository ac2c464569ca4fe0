//! `GET /pushers` and `POST /pushers/set`: where a user's devices want notifications sent.

use std::sync::Arc;

use ruma::api::client::push::{get_pushers, set_pusher};

use crate::api::Ruma;
use crate::error::Result;
use crate::service::Services;

pub async fn get(
    services: Arc<Services>,
    request: Ruma<get_pushers::v3::Request>,
) -> Result<get_pushers::v3::Response> {
    let pushers = services
        .pushers
        .pushers(request.user()?)?
        .into_iter()
        .map(|stored| stored.pusher)
        .collect();
    Ok(get_pushers::v3::Response::new(pushers))
}

pub async fn set(
    services: Arc<Services>,
    request: Ruma<set_pusher::v3::Request>,
) -> Result<set_pusher::v3::Response> {
    let user = request.user()?;
    match request.body.action.clone() {
        set_pusher::v3::PusherAction::Post(post) => {
            services
                .pushers
                .set(user, request.device().ok(), post.pusher, post.append)?;
        }
        set_pusher::v3::PusherAction::Delete(ids) => services.pushers.remove(user, &ids)?,
        _ => {
            return Err(crate::error::Error::invalid_param("Unknown pusher action"));
        }
    }
    Ok(set_pusher::v3::Response::new())
}
