//! Client-Server API handlers, one module per endpoint group.

mod account;
mod account_data;
mod devices;
mod discovery;
mod profile;
mod push_rules;
mod register;
mod session;

use super::router::{AppRouter, RumaRouter};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = discovery::routes(router);
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
        .ruma(push_rules::get_all)
        .ruma(push_rules::get_global)
        .ruma(push_rules::get_rule)
        .ruma(push_rules::set_rule)
        .ruma(push_rules::delete_rule)
        .ruma(push_rules::get_enabled)
        .ruma(push_rules::set_enabled)
        .ruma(push_rules::get_actions)
        .ruma(push_rules::set_actions)
}
