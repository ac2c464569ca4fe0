//! `federation` commands: what IT checks when a partner's server does not answer.

use ruma::OwnedServerName;

use super::answer::{Answer, Block};
use super::command::FederationCommand;
use super::time::format_ts;
use crate::error::Result;
use crate::service::Services;

pub async fn run(services: &Services, command: FederationCommand) -> Result<Answer> {
    if !services.config.allow_federation {
        return Ok(Answer::error(
            "Federation is off: set `allow_federation = true` in the configuration.",
        ));
    }
    match command {
        FederationCommand::Resolve { server } => resolve(services, &server).await,
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
