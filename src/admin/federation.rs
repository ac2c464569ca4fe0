//! `federation` commands: what IT checks when a partner's server does not answer.

use ruma::OwnedServerName;

use super::answer::{Answer, Block};
use super::command::FederationCommand;
use super::time::format_ts;
use crate::error::Result;
use crate::service::Services;
use crate::service::federation::partners::List;

pub async fn run(services: &Services, command: FederationCommand) -> Result<Answer> {
    if !services.config.allow_federation {
        return Ok(Answer::error(
            "Federation is off: set `allow_federation = true` in the configuration.",
        ));
    }
    match command {
        FederationCommand::Resolve { server } => resolve(services, &server).await,
        FederationCommand::Destinations => destinations(services),
        FederationCommand::Retry { server } => retry(services, &server),
        FederationCommand::Incoming { limit } => Ok(incoming(services, limit)),
        FederationCommand::FetchEvent {
            server,
            event_id,
            room,
        } => fetch_event(services, &server, &event_id, &room).await,
        FederationCommand::SigningKeys => Ok(signing_keys(services)),
        FederationCommand::Policy => Ok(super::partners::policy(services)),
        FederationCommand::Allow { pattern } => {
            super::partners::add(services, List::Allowed, &pattern)
        }
        FederationCommand::Deny { pattern } => {
            super::partners::add(services, List::Denied, &pattern)
        }
        FederationCommand::Unallow { pattern } => {
            super::partners::remove(services, List::Allowed, &pattern)
        }
        FederationCommand::Undeny { pattern } => {
            super::partners::remove(services, List::Denied, &pattern)
        }
        FederationCommand::RotateSigningKey => {
            let (new_id, old) = services.server_keys.rotate_signing_key()?;
            Ok(Answer::ok(format!(
                "Events and requests are now signed with `{new_id}`; `{}` is published as \
                 expired at {}.",
                old.key_id,
                format_ts(old.expired_ts)
            ))
            .with(signing_key_table(services)))
        }
    }
}

fn signing_keys(services: &Services) -> Answer {
    Answer::ok("This server's signing keys:").with(signing_key_table(services))
}

fn signing_key_table(services: &Services) -> Block {
    let mut rows = vec![vec![services.server_keys.key_id(), "current".to_owned()]];
    for old in services.server_keys.old_keys().into_iter().rev() {
        rows.push(vec![
            old.key_id,
            format!("expired {}", format_ts(old.expired_ts)),
        ]);
    }
    Block::Table {
        head: ["key", "state"].map(String::from).to_vec(),
        rows,
    }
}

fn server_name(server: &str) -> std::result::Result<OwnedServerName, Answer> {
    OwnedServerName::try_from(server).map_err(|_| {
        Answer::error(format!(
            "`{server}` is not a server name: write it as in user IDs, e.g. \
             `partner.example.com` or `127.0.0.11:8448`."
        ))
    })
}

/// How long ago (or from now) a moment is, in words.
fn since(moment: std::time::SystemTime) -> String {
    let millis = moment
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    format_ts(millis)
}

fn destinations(services: &Services) -> Result<Answer> {
    let list = services.sending.status()?;
    if list.is_empty() {
        return Ok(Answer::ok(
            "No server has been sent anything since this server started, and nothing is queued.",
        ));
    }
    let rows = list
        .into_iter()
        .map(|d| {
            vec![
                d.server.to_string(),
                d.queued.to_string(),
                d.last_success.map_or_else(|| "never".to_owned(), since),
                d.failures.to_string(),
                match d.retry_in {
                    Some(wait) if !wait.is_zero() => format!("in {} s", wait.as_secs().max(1)),
                    _ => "now".to_owned(),
                },
                d.last_error.unwrap_or_default(),
            ]
        })
        .collect();
    Ok(Answer::ok("Destinations:").with(Block::Table {
        head: [
            "server",
            "queued",
            "last success",
            "failures",
            "next try",
            "last error",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }))
}

fn retry(services: &Services, server: &str) -> Result<Answer> {
    let server = match server_name(server) {
        Ok(server) => server,
        Err(answer) => return Ok(answer),
    };
    let queued = services.sending.queued(&server)?;
    services.sending.retry(&server);
    Ok(Answer::ok(format!(
        "Sending to `{server}` now ({queued} events queued)."
    )))
}

fn incoming(services: &Services, limit: usize) -> Answer {
    let recent = services.inbound.recent(limit.clamp(1, 256));
    if recent.is_empty() {
        return Answer::ok("No transaction has arrived since this server started.");
    }
    let rows = recent
        .into_iter()
        .map(|txn| {
            let failed: Vec<String> = txn
                .results
                .iter()
                .filter_map(|(id, result)| result.as_ref().err().map(|e| format!("{id}: {e}")))
                .collect();
            vec![
                since(txn.received),
                txn.origin.to_string(),
                txn.txn_id,
                format!("{} ({} refused)", txn.results.len(), failed.len()),
                txn.edus.to_string(),
                failed.join("; "),
            ]
        })
        .collect();
    Answer::ok("Recent incoming transactions, newest first:").with(Block::Table {
        head: [
            "received",
            "from",
            "transaction",
            "events",
            "EDUs",
            "refused events",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    })
}

async fn fetch_event(
    services: &Services,
    server: &str,
    event_id: &str,
    room: &str,
) -> Result<Answer> {
    let server = match server_name(server) {
        Ok(server) => server,
        Err(answer) => return Ok(answer),
    };
    let Ok(event_id) = ruma::EventId::parse(event_id) else {
        return Ok(Answer::error(format!("`{event_id}` is not an event ID.")));
    };
    let room_id = super::room_arg(services, room)?;
    let Ok(rules) = services.rooms.rules(&room_id) else {
        return Ok(Answer::error(format!(
            "This server is not in `{room_id}`: its version, and so the checks, are unknown."
        )));
    };
    match crate::service::federation::incoming::fetch_event(services, &server, &rules, &event_id)
        .await
    {
        Ok(checked) => {
            let json = serde_json::to_string_pretty(&checked.object)
                .unwrap_or_else(|e| format!("(cannot show: {e})"));
            Ok(Answer::ok(format!(
                "`{server}` answered `{event_id}`; its signatures and content hash check out:"
            ))
            .with(Block::Code(json)))
        }
        Err(crate::service::rooms::error::PduError::Missing(_)) => Ok(Answer::error(format!(
            "`{server}` did not give `{event_id}` (the server log says why)."
        ))),
        Err(error) => Ok(Answer::error(format!(
            "`{event_id}` from `{server}`: {error}"
        ))),
    }
}

async fn resolve(services: &Services, server: &str) -> Result<Answer> {
    let Ok(server) = OwnedServerName::try_from(server) else {
        return Ok(Answer::error(format!(
            "`{server}` is not a server name: write it as in user IDs, e.g. \
             `partner.example.com` or `127.0.0.11:8448`."
        )));
    };
    let destination = services.federation.destination(&server).await?;
    let mut rows = vec![
        vec!["address".to_owned(), destination.base.clone()],
        vec!["Host header".to_owned(), destination.host.clone()],
    ];
    if let Some(target) = services.federation.srv_target(&destination.host) {
        rows.push(vec!["SRV target".to_owned(), target]);
    }
    let version = services
        .federation
        .get_public(&server, "/_matrix/federation/v1/version")
        .await;
    let mut failed = false;
    match version {
        Ok(answer) => rows.push(vec![
            "software".to_owned(),
            format!(
                "{} {}",
                answer["server"]["name"].as_str().unwrap_or("?"),
                answer["server"]["version"].as_str().unwrap_or("?")
            ),
        ]),
        Err(error) => {
            failed = true;
            rows.push(vec!["software".to_owned(), format!("no answer: {error}")]);
        }
    }
    match services
        .server_keys
        .fetch_remote_keys(&services.federation, &server)
        .await
    {
        Ok(keys) => {
            for (key_id, key) in keys {
                rows.push(vec![
                    format!("key {key_id}"),
                    format!("valid until {}", format_ts(key.valid_until_ts)),
                ]);
            }
        }
        Err(error) => {
            failed = true;
            rows.push(vec!["keys".to_owned(), format!("not available: {error}")]);
        }
    }
    let summary = if failed {
        Answer::error(format!(
            "`{server}` does not answer as a Matrix server should:"
        ))
    } else {
        Answer::ok(format!("`{server}` answers, and its keys check out:"))
    };
    Ok(summary.with(Block::Table {
        head: ["", ""].map(String::from).to_vec(),
        rows,
    }))
}
