//! `users` commands.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;

use super::answer::{Answer, Block};
use super::command::{ListUsers, UsersCommand};
use super::local_user;
use super::room::set_admin;
use super::time::format_ts;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::rooms::member_change::set_membership;
use crate::service::users::Availability;

pub async fn run(
    services: &Services,
    command: UsersCommand,
    progress: Option<&super::Progress>,
) -> Result<Answer> {
    match command {
        UsersCommand::Create {
            localpart,
            password,
            admin,
            displayname,
        } => create(services, &localpart, password, admin, displayname).await,
        UsersCommand::ResetPassword {
            user,
            password,
            keep_sessions,
        } => {
            let user_id = local_user(services, &user)?;
            refuse_bot(services, &user_id)?;
            if services.users.is_deactivated(&user_id)? {
                return Ok(Answer::error(format!(
                    "`{user_id}` is deactivated; its password cannot be set"
                )));
            }
            let (password, generated) = password_or_generated(password);
            let hash = services.users.hash_password(password.clone()).await?;
            services.users.set_password_hash(&user_id, &hash)?;
            if !keep_sessions {
                services.remove_all_devices(&user_id, None)?;
            }
            let sessions = if keep_sessions {
                "Their devices stay logged in."
            } else {
                "They were logged out everywhere."
            };
            Ok(with_password(
                Answer::ok(format!("New password set for `{user_id}`. {sessions}")),
                &password,
                generated,
            ))
        }
        UsersCommand::Deactivate { user, erase } => {
            let user_id = local_user(services, &user)?;
            refuse_bot(services, &user_id)?;
            if services.users.is_deactivated(&user_id)? {
                return Ok(Answer::error(format!("`{user_id}` is already deactivated")));
            }
            let rooms = services.rooms.memberships_of(&user_id)?.len();
            if erase && let Some(progress) = progress {
                let _ = progress.send(Answer::ok(format!(
                    "Erasing `{user_id}`'s messages; I will answer again when it is done."
                )));
            }
            let erased = services.deactivate_account(&user_id, erase).await?;
            let mut text = format!(
                "Deactivated `{user_id}`: left {rooms} room(s), logged out everywhere, profile \
                 removed; the ID stays reserved."
            );
            if let Some(erased) = erased {
                text.push_str(&format!(" Redacted {} message(s).", erased.redacted));
                if erased.out_of_reach > 0 {
                    text.push_str(&format!(
                        " {} message(s) in rooms the user had already left stay: only a \
                         member can redact there.",
                        erased.out_of_reach
                    ));
                }
            }
            Ok(Answer::ok(text))
        }
        UsersCommand::List(filters) => list(services, &filters),
        UsersCommand::Info { user } => info(services, &local_user(services, &user)?),
        UsersCommand::MakeAdmin { user } => {
            let user_id = local_user(services, &user)?;
            refuse_bot(services, &user_id)?;
            if services.users.is_deactivated(&user_id)? {
                return Ok(Answer::error(format!("`{user_id}` is deactivated")));
            }
            set_admin(services, &user_id, true).await?;
            Ok(Answer::ok(format!(
                "`{user_id}` is now a server administrator and was invited to this room."
            )))
        }
        UsersCommand::RevokeAdmin { user } => {
            let user_id = local_user(services, &user)?;
            if !services.users.is_admin(&user_id)? {
                return Ok(Answer::error(format!(
                    "`{user_id}` is not a server administrator"
                )));
            }
            if services.users.admins()?.len() == 1 {
                return Ok(Answer::error(
                    "That is the last server administrator; make another one first.",
                ));
            }
            set_admin(services, &user_id, false).await?;
            Ok(Answer::ok(format!(
                "`{user_id}` is no longer a server administrator and was removed from this room."
            )))
        }
        UsersCommand::Reactivate { user, password } => {
            let user_id = local_user(services, &user)?;
            refuse_bot(services, &user_id)?;
            if !services.users.is_deactivated(&user_id)? {
                return Ok(Answer::error(format!("`{user_id}` is not deactivated")));
            }
            let hash = services.users.hash_password(password).await?;
            services.users.reactivate(&user_id, &hash)?;
            Ok(Answer::ok(format!(
                "Reactivated `{user_id}`: they can log in with the new password. Their rooms \
                 were left at deactivation; invite them again."
            )))
        }
        UsersCommand::Lock { user } => {
            let user_id = local_user(services, &user)?;
            refuse_bot(services, &user_id)?;
            services.users.set_locked(&user_id, true)?;
            Ok(Answer::ok(format!(
                "Locked `{user_id}`: every request but logging out is refused until `users \
                 unlock`."
            )))
        }
        UsersCommand::Unlock { user } => {
            let user_id = local_user(services, &user)?;
            if !services.users.is_locked(&user_id) {
                return Ok(Answer::error(format!("`{user_id}` is not locked")));
            }
            services.users.set_locked(&user_id, false)?;
            Ok(Answer::ok(format!("Unlocked `{user_id}`.")))
        }
        UsersCommand::Suspend { user } => {
            let user_id = local_user(services, &user)?;
            refuse_bot(services, &user_id)?;
            services.users.set_suspended(&user_id, true)?;
            Ok(Answer::ok(format!(
                "Suspended `{user_id}`: they can read, leave rooms and remove their own \
                 messages until `users unsuspend`."
            )))
        }
        UsersCommand::Unsuspend { user } => {
            let user_id = local_user(services, &user)?;
            if !services.users.is_suspended(&user_id) {
                return Ok(Answer::error(format!("`{user_id}` is not suspended")));
            }
            services.users.set_suspended(&user_id, false)?;
            Ok(Answer::ok(format!("`{user_id}` may send again.")))
        }
        UsersCommand::ForceJoin { user, room } => {
            let user_id = local_user(services, &user)?;
            refuse_bot(services, &user_id)?;
            let room_id = super::room_arg(services, &room)?;
            services.force_join(&user_id, &room_id).await?;
            Ok(Answer::ok(format!("`{user_id}` joined `{room_id}`.")))
        }
        UsersCommand::ForceLeave { user, room } => {
            let user_id = local_user(services, &user)?;
            let room_id = super::room_arg(services, &room)?;
            let membership = services.rooms.membership(&user_id, &room_id)?;
            if !matches!(membership.as_deref(), Some("join" | "invite" | "knock")) {
                return Ok(Answer::error(format!("`{user_id}` is not in `{room_id}`")));
            }
            set_membership(services, &user_id, &room_id, &user_id, "leave", None).await?;
            Ok(Answer::ok(format!("`{user_id}` left `{room_id}`.")))
        }
        UsersCommand::Devices { user } => {
            let user_id = local_user(services, &user)?;
            Ok(Answer::ok(format!("Devices of `{user_id}`:")).with(devices(services, &user_id)?))
        }
        UsersCommand::Logout { user, device } => {
            let user_id = local_user(services, &user)?;
            match device {
                Some(device) => {
                    let device_id: ruma::OwnedDeviceId = device.as_str().into();
                    if !services
                        .users
                        .devices(&user_id)?
                        .iter()
                        .any(|(id, _)| *id == device_id)
                    {
                        return Ok(Answer::error(format!(
                            "`{user_id}` has no device `{device_id}`"
                        )));
                    }
                    services.remove_device(&user_id, &device_id)?;
                    Ok(Answer::ok(format!(
                        "Logged `{user_id}` out of `{device_id}`."
                    )))
                }
                None => {
                    let count = services.users.devices(&user_id)?.len();
                    services.remove_all_devices(&user_id, None)?;
                    Ok(Answer::ok(format!(
                        "Logged `{user_id}` out of {count} device(s)."
                    )))
                }
            }
        }
    }
}

async fn create(
    services: &Services,
    localpart: &str,
    password: Option<String>,
    admin: bool,
    displayname: Option<String>,
) -> Result<Answer> {
    let user_id = match services
        .users
        .availability(localpart, services.server_name())?
    {
        Availability::Available(user_id) => user_id,
        Availability::Taken => {
            return Ok(Answer::error(format!(
                "`@{localpart}:{}` is taken",
                services.server_name()
            )));
        }
        Availability::Invalid(reason) => {
            return Ok(Answer::error(format!("`{localpart}`: {reason}")));
        }
    };
    let (password, generated) = password_or_generated(password);
    let hash = services.users.hash_password(password.clone()).await?;
    let first = services.users.create_account(&user_id, &hash, None)?;
    if let Some(name) = &displayname {
        services.users.set_profile_field(
            &user_id,
            "displayname",
            Some(&Value::String(name.clone())),
        )?;
    }
    if admin || first {
        set_admin(services, &user_id, true).await?;
    }
    let role = if admin || first {
        " as a server administrator (invited to this room)"
    } else {
        ""
    };
    Ok(with_password(
        Answer::ok(format!("Created `{user_id}`{role}.")),
        &password,
        generated,
    ))
}

/// Joins `user` to the room; where the room needs an invite, a local member who may invite
/// sends it first (as Synapse's admin join does).
/// The given password, or a new random one (and whether it was generated).
fn password_or_generated(password: Option<String>) -> (String, bool) {
    match password {
        Some(password) => (password, false),
        None => (
            rand::rng()
                .sample_iter(Alphanumeric)
                .take(20)
                .map(char::from)
                .collect(),
            true,
        ),
    }
}

/// Shows a generated password once; a given one is never repeated back.
fn with_password(answer: Answer, password: &str, generated: bool) -> Answer {
    if generated {
        answer.with(Block::Text(format!(
            "Generated password (shown once): `{password}`"
        )))
    } else {
        answer
    }
}

fn refuse_bot(services: &Services, user_id: &ruma::UserId) -> Result<()> {
    if *user_id == *services.admin.bot {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "That is the server's own bot account",
        ));
    }
    Ok(())
}

fn displayname(services: &Services, user_id: &ruma::UserId) -> Result<String> {
    Ok(services
        .users
        .profile_field(user_id, "displayname")?
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default())
}

fn yes(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

fn list(services: &Services, filters: &ListUsers) -> Result<Answer> {
    let needle = filters.filter.as_deref().map(str::to_lowercase);
    let mut rows = Vec::new();
    for (user_id, deactivated) in services.users.all_accounts()? {
        if user_id == services.admin.bot || (deactivated && !filters.deactivated) {
            continue;
        }
        let admin = services.users.is_admin(&user_id)?;
        if filters.admins && !admin {
            continue;
        }
        let name = displayname(services, &user_id)?;
        if let Some(needle) = &needle
            && !user_id.as_str().to_lowercase().contains(needle)
            && !name.to_lowercase().contains(needle)
        {
            continue;
        }
        rows.push(vec![
            user_id.to_string(),
            name,
            yes(admin),
            yes(deactivated),
        ]);
    }
    let count = rows.len();
    Ok(
        Answer::ok(format!("{count} account(s):")).with(Block::Table {
            head: ["user", "display name", "admin", "deactivated"]
                .map(String::from)
                .to_vec(),
            rows,
        }),
    )
}

fn info(services: &Services, user_id: &ruma::UserId) -> Result<Answer> {
    let rooms = services.rooms.memberships_of(user_id)?;
    let joined: Vec<String> = rooms
        .iter()
        .filter(|(_, membership)| membership == "join")
        .map(|(room, _)| room.to_string())
        .collect();
    let facts = vec![
        vec!["display name".to_owned(), displayname(services, user_id)?],
        vec![
            "administrator".to_owned(),
            yes(services.users.is_admin(user_id)?),
        ],
        vec![
            "deactivated".to_owned(),
            yes(services.users.is_deactivated(user_id)?),
        ],
        vec![
            "created".to_owned(),
            services
                .users
                .created_at(user_id)?
                .map_or("before this was recorded".to_owned(), format_ts),
        ],
        vec!["locked".to_owned(), yes(services.users.is_locked(user_id))],
        vec![
            "suspended".to_owned(),
            yes(services.users.is_suspended(user_id)),
        ],
        vec!["rooms joined".to_owned(), joined.len().to_string()],
    ];
    let mut answer = Answer::ok(format!("`{user_id}`")).with(Block::Table {
        head: vec!["".to_owned(), "".to_owned()],
        rows: facts,
    });
    answer = answer
        .with(Block::Text("Devices:".to_owned()))
        .with(devices(services, user_id)?);
    if !joined.is_empty() {
        answer = answer
            .with(Block::Text("Rooms:".to_owned()))
            .with(Block::Code(joined.join("\n")));
    }
    Ok(answer)
}

fn devices(services: &Services, user_id: &ruma::UserId) -> Result<Block> {
    let rows = services
        .users
        .devices(user_id)?
        .into_iter()
        .map(|(device_id, device)| {
            vec![
                device_id.to_string(),
                device.display_name.unwrap_or_default(),
                device.last_seen_ip.unwrap_or_default(),
                device.last_seen_ts.map(format_ts).unwrap_or_default(),
            ]
        })
        .collect();
    Ok(Block::Table {
        head: ["device", "name", "last seen from", "last seen"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}
