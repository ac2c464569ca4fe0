//! The Server-Server API, served on the federation listener (see [`crate::server`]).

mod discovery;
mod events;
mod keys;
mod media;
mod membership;
mod query;
mod spaces;
mod transactions;

use super::router::Routes;

/// Registers the federation endpoints.
pub fn routes(router: Routes) -> Routes {
    media::routes(router)
        .ruma(discovery::server_keys)
        .ruma(discovery::server_version)
        .ruma(discovery::notary_query)
        .ruma(discovery::notary_query_batch)
        .ruma(query::profile)
        .ruma(query::directory)
        .ruma(query::public_rooms)
        .ruma(query::public_rooms_filtered)
        .ruma(query::openid_userinfo)
        .ruma(spaces::hierarchy)
        .ruma(transactions::send)
        .ruma(membership::make_join)
        .ruma(membership::send_join)
        .ruma(membership::make_leave)
        .ruma(membership::send_leave)
        .ruma(membership::invite)
        .ruma(membership::make_knock)
        .ruma(membership::send_knock)
        .ruma(events::event)
        .ruma(events::state_ids)
        .ruma(events::state)
        .ruma(events::event_auth)
        .ruma(events::missing_events)
        .ruma(events::backfill)
        .ruma(events::timestamp_to_event)
        .ruma(keys::query)
        .ruma(keys::claim)
        .ruma(keys::devices)
}
