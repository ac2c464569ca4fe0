//! Client-Server API handlers, one module per endpoint group.

mod account;
mod account_data;
mod appservice;
mod create_room;
mod devices;
pub(crate) mod directory;
mod discovery;
mod key_backup;
mod keys;
mod media;
mod media_serve;
mod membership;
pub mod message;
mod profile;
mod push_rules;
mod pushers;
mod redact;
mod register;
mod relations;
mod report;
mod search;
mod session;
mod sliding_sync;
pub(crate) mod spaces;
mod state;
mod sync;
mod to_device;
mod upgrade;
mod user_directory;
mod voip;

use super::router::Routes;

pub fn routes(router: Routes) -> Routes {
    let router = discovery::routes(router);
    let router = media::routes(router);
    let router = voip::routes(router);
    router
        .ruma(register::register)
        .ruma(register::username_available)
        .ruma(register::registration_token_validity)
        .ruma(session::login_types)
        .ruma(session::login)
        .ruma(session::logout)
        .ruma(session::logout_all)
        .ruma(session::refresh)
        .ruma(session::whoami)
        .ruma(account::request_openid_token)
        .ruma(account::change_password)
        .ruma(account::deactivate)
        .ruma(account::third_party_ids)
        .ruma(devices::list)
        .ruma(devices::get)
        .ruma(devices::update)
        .ruma(devices::delete)
        .ruma(devices::delete_many)
        .ruma(profile::get_profile)
        .ruma(profile::get_field)
        .ruma(profile::set_field_handler)
        .ruma(profile::delete_field)
        .ruma(account_data::get_global)
        .ruma(account_data::set_global)
        .ruma(account_data::get_room)
        .ruma(account_data::set_room)
        .ruma(account_data::get_tags)
        .ruma(account_data::set_tag)
        .ruma(account_data::delete_tag)
        .ruma(account_data::create_filter)
        .ruma(account_data::get_filter)
        .ruma(appservice::ping)
        .ruma(directory::set_appservice_room_visibility)
        .ruma(appservice::protocols)
        .ruma(appservice::get_protocol)
        .ruma(appservice::location_for_protocol)
        .ruma(appservice::user_for_protocol)
        .ruma(appservice::location_for_alias)
        .ruma(appservice::user_for_user_id)
        .ruma(pushers::get)
        .ruma(pushers::set)
        .ruma(push_rules::get_all)
        .ruma(push_rules::get_global)
        .ruma(push_rules::get_rule)
        .ruma(push_rules::set_rule)
        .ruma(push_rules::delete_rule)
        .ruma(push_rules::get_enabled)
        .ruma(push_rules::set_enabled)
        .ruma(push_rules::get_actions)
        .ruma(push_rules::set_actions)
        .ruma(create_room::create_room)
        .ruma(membership::join_by_id)
        .ruma(membership::join_by_id_or_alias)
        .ruma(membership::invite)
        .ruma(membership::leave)
        .ruma(membership::forget)
        .ruma(membership::kick)
        .ruma(membership::ban)
        .ruma(membership::unban)
        .ruma(membership::list_joined)
        .ruma(membership::members)
        .ruma(membership::joined)
        .ruma(membership::knock)
        .ruma(message::send)
        .ruma(message::get_event)
        .ruma(message::messages)
        .ruma(state::get_all)
        .ruma(state::get_one)
        .ruma(state::set)
        .ruma(redact::redact)
        .ruma(directory::create)
        .ruma(directory::delete)
        .ruma(directory::get)
        .ruma(directory::room_aliases)
        .ruma(directory::get_visibility)
        .ruma(directory::set_visibility)
        .ruma(directory::public_rooms)
        .ruma(directory::public_rooms_filtered)
        .ruma(message::context)
        .ruma(message::timestamp_to_event)
        .ruma(relations::all)
        .ruma(relations::by_rel_type)
        .ruma(relations::by_rel_and_event_type)
        .ruma(relations::threads)
        .ruma(spaces::hierarchy)
        .ruma(spaces::summary)
        .ruma(upgrade::upgrade)
        .ruma(sync::sync)
        .ruma(sliding_sync::sync)
        .ruma(sync::typing)
        .ruma(sync::receipt)
        .ruma(sync::read_markers)
        .ruma(sync::notifications)
        .ruma(sync::get_presence)
        .ruma(sync::set_presence)
        .ruma(user_directory::search)
        .ruma(search::search)
        .ruma(report::report_event)
        .ruma(report::report_a_room)
        .ruma(report::report_a_user)
        .ruma(keys::upload)
        .ruma(keys::query)
        .ruma(keys::claim)
        .ruma(keys::changes)
        .ruma(keys::upload_signing_keys)
        .ruma(keys::upload_signatures)
        .ruma(to_device::send)
        .ruma(key_backup::create_version)
        .ruma(key_backup::latest_version)
        .ruma(key_backup::get_version)
        .ruma(key_backup::update_version)
        .ruma(key_backup::delete_version)
        .ruma(key_backup::put_all)
        .ruma(key_backup::put_room)
        .ruma(key_backup::put_session)
        .ruma(key_backup::get_all)
        .ruma(key_backup::get_room)
        .ruma(key_backup::get_session)
        .ruma(key_backup::delete_all)
        .ruma(key_backup::delete_room)
        .ruma(key_backup::delete_session)
}
