//! `/_synapse/admin/`: Synapse's admin API, so that the tools IT already uses (the
//! synapse-admin web UI, moderation bots, provisioning scripts) work unchanged. Every endpoint
//! but `server_version` needs a server administrator's token (403 `M_FORBIDDEN` otherwise);
//! every change is recorded in the audit log.

mod devices;
pub mod endpoints;
mod media;
mod register;
mod reports;
mod room_moderation;
mod rooms;
mod tokens;
mod users;

use super::router::Routes;

pub fn routes(router: Routes) -> Routes {
    router
        .ruma(users::server_version)
        .ruma(users::list)
        .ruma(users::get)
        .ruma(users::put)
        .ruma(users::deactivate)
        .ruma(users::reset_password)
        .ruma(users::get_admin)
        .ruma(users::set_admin)
        .ruma(users::whois)
        .ruma(users::spec_whois)
        .ruma(users::joined_rooms)
        .ruma(users::pushers)
        .ruma(users::send_server_notice)
        .ruma(reports::list)
        .ruma(reports::get)
        .ruma(reports::delete)
        .ruma(devices::list)
        .ruma(devices::get)
        .ruma(devices::delete)
        .ruma(devices::delete_many)
        .ruma(devices::get_block)
        .ruma(devices::set_block)
        .ruma(rooms::list)
        .ruma(rooms::details)
        .ruma(rooms::members)
        .ruma(room_moderation::state)
        .ruma(room_moderation::messages)
        .ruma(room_moderation::forward_extremities)
        .ruma(room_moderation::delete_forward_extremities)
        .ruma(room_moderation::delete_room)
        .ruma(room_moderation::delete_room_v2)
        .ruma(room_moderation::room_delete_status)
        .ruma(room_moderation::delete_status)
        .ruma(room_moderation::join_room)
        .ruma(room_moderation::make_room_admin)
        .ruma(tokens::list)
        .ruma(tokens::new)
        .ruma(tokens::get)
        .ruma(tokens::update)
        .ruma(tokens::delete)
        .ruma(media::quarantine)
        .ruma(media::unquarantine)
        .ruma(media::protect)
        .ruma(media::unprotect)
        .ruma(media::quarantine_room)
        .ruma(media::quarantine_user)
        .ruma(media::delete)
        .ruma(media::delete_old)
        .ruma(media::delete_old_of_server)
        .ruma(media::purge_cache)
        .ruma(media::statistics)
        .ruma(media::user_media)
        .ruma(media::delete_user_media)
        .ruma(register::nonce)
        .ruma(register::register)
        .ruma(register::login_as)
}

/// Synapse's paging parameters: an offset (`from`, a `next_token` handed out before) and a
/// page size (100 by default).
fn paging(from: Option<&str>, limit: Option<ruma::UInt>) -> crate::error::Result<(usize, usize)> {
    let from = match from {
        Some(from) => from.parse().map_err(|_| {
            crate::error::Error::invalid_param(
                "Query parameter from must be a non-negative integer",
            )
        })?,
        None => 0,
    };
    let limit = limit.map_or(100, |l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX));
    Ok((from, limit))
}
