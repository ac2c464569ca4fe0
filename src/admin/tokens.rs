//! `tokens` commands: registration tokens administrators hand out.

use rand::Rng;

use super::answer::{Answer, Block};
use super::command::TokensCommand;
use super::time::{format_ts, parse_when};
use crate::error::Result;
use crate::service::{Services, now_millis};

pub fn run(services: &Services, command: TokensCommand) -> Result<Answer> {
    let users = &services.users;
    match command {
        TokensCommand::Issue {
            uses,
            expires,
            token,
        } => {
            let expiry = expires
                .as_deref()
                .map(|when| parse_when(when, now_millis()))
                .transpose()?;
            let token = token.unwrap_or_else(|| {
                rand::rng()
                    .sample_iter(rand::distr::Alphanumeric)
                    .take(24)
                    .map(char::from)
                    .collect()
            });
            users.put_registration_token(&token, uses, expiry)?;
            let uses = uses.map_or("any number of".to_owned(), |n| n.to_string());
            let until = expiry.map_or(String::new(), |ms| format!(", until {}", format_ts(ms)));
            Ok(Answer::ok(format!(
                "Registration token `{token}`: creates {uses} account(s){until}. In Element, \
                 choose 'Create account' and enter it when asked."
            )))
        }
        TokensCommand::List => {
            let rows: Vec<Vec<String>> = users
                .registration_tokens()?
                .into_iter()
                .map(|(token, info)| {
                    vec![
                        token,
                        info.uses_allowed
                            .map_or("unlimited".to_owned(), |n| n.to_string()),
                        info.completed.to_string(),
                        info.expiry_time_ms.map_or("never".to_owned(), format_ts),
                        if info.usable() { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .collect();
            Ok(
                Answer::ok(format!("{} registration token(s):", rows.len())).with(Block::Table {
                    head: ["token", "uses allowed", "used", "expires", "valid"]
                        .map(String::from)
                        .to_vec(),
                    rows,
                }),
            )
        }
        TokensCommand::Revoke { token } => {
            if users.revoke_registration_token(&token)? {
                Ok(Answer::ok(format!("Revoked `{token}`.")))
            } else {
                Ok(Answer::error(format!(
                    "There is no registration token `{token}`."
                )))
            }
        }
    }
}
