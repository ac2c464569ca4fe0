//! `federation policy|allow|deny|unallow|undeny`: which partner servers may talk to this
//! one. Changes are in force at once (the next request or transaction is checked against
//! them), kept across restarts, and recorded in the audit log like every command.

use super::answer::{Answer, Block};
use crate::error::Result;
use crate::service::Services;
use crate::service::federation::partners::List;

pub fn policy(services: &Services) -> Answer {
    let (config, runtime) = services.federation.partners().lists();
    let mut rows = Vec::new();
    for (list, patterns, from) in [
        ("allowed", &config.allowed, "configuration file"),
        ("allowed", &runtime.allowed, "admin room"),
        ("denied", &config.denied, "configuration file"),
        ("denied", &runtime.denied, "admin room"),
    ] {
        for pattern in patterns {
            rows.push(vec![list.to_owned(), pattern.clone(), from.to_owned()]);
        }
    }
    let summary = if config.allowed.is_empty() && runtime.allowed.is_empty() {
        "Any server may federate with this one, except the denied ones."
    } else {
        "Only the allowed servers may federate with this one, and none of the denied ones."
    };
    if rows.is_empty() {
        return Answer::ok(format!("{summary} No pattern is set."));
    }
    Answer::ok(summary).with(Block::Table {
        head: ["list", "pattern", "from"].map(String::from).to_vec(),
        rows,
    })
}

fn name(list: List) -> &'static str {
    match list {
        List::Allowed => "allowed",
        List::Denied => "denied",
    }
}

pub fn add(services: &Services, list: List, pattern: &str) -> Result<Answer> {
    if let Some(answer) = bad_pattern(pattern) {
        return Ok(answer);
    }
    let partners = services.federation.partners();
    if !partners.add(list, pattern)? {
        return Ok(Answer::ok(format!(
            "`{pattern}` is already {}.",
            name(list)
        )));
    }
    let effect = match list {
        List::Allowed => "servers matching it may federate with this one",
        List::Denied => {
            "servers matching it are cut off: nothing is sent to them and their requests are refused"
        }
    };
    Ok(Answer::ok(format!(
        "`{pattern}` is {} now: {effect}.",
        name(list)
    )))
}

pub fn remove(services: &Services, list: List, pattern: &str) -> Result<Answer> {
    let partners = services.federation.partners();
    if partners.remove(list, pattern)? {
        return Ok(Answer::ok(format!(
            "`{pattern}` is no longer {}.",
            name(list)
        )));
    }
    if partners.in_config(list, pattern) {
        return Ok(Answer::error(format!(
            "`{pattern}` comes from the configuration file (`{}_servers`): remove it there and \
             restart.",
            name(list)
        )));
    }
    Ok(Answer::error(format!(
        "`{pattern}` is not {}; see `federation policy`.",
        name(list)
    )))
}

/// Why a pattern cannot be a server name glob, if it cannot.
fn bad_pattern(pattern: &str) -> Option<Answer> {
    let fine = !pattern.is_empty()
        && pattern.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '*' | '?' | '_')
        });
    (!fine).then(|| {
        Answer::error(format!(
            "`{pattern}` is not a server name or glob: write it as in user IDs, with `*` and `?` \
             as wildcards, e.g. `partner.example` or `*.subsidiary.example`."
        ))
    })
}
