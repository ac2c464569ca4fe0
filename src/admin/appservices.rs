//! `appservices` commands: registering bridges and bots, and seeing how their queues fare.

use super::answer::{Answer, Block};
use super::command::AppservicesCommand;
use crate::error::Result;
use crate::service::Services;
use crate::service::appservice::{Appservice, Source};

pub async fn run(services: &Services, command: AppservicesCommand) -> Result<Answer> {
    let appservices = &services.appservices;
    match command {
        AppservicesCommand::Register { yaml } => {
            let service = appservices.register(services, &yaml)?;
            Ok(Answer::ok(format!(
                "Registered `{}`: it acts as `{}` and its users. {}",
                service.id(),
                service.sender,
                match &service.registration.url {
                    Some(url) => format!("Events go to {url}."),
                    None => "It has no URL, so it is sent no events.".to_owned(),
                }
            )))
        }
        AppservicesCommand::Unregister { id } => {
            appservices.unregister(&id)?;
            Ok(Answer::ok(format!(
                "Unregistered `{id}`: its token no longer works and nothing more is sent to it. \
                 The accounts it created remain."
            )))
        }
        AppservicesCommand::List => {
            let all = appservices.all();
            if all.is_empty() {
                return Ok(Answer::ok("No application service is registered."));
            }
            let statuses = appservices.statuses()?;
            let rows = all
                .iter()
                .map(|service| {
                    let status = statuses.get(service.id());
                    vec![
                        service.id().to_owned(),
                        source(service),
                        service.registration.url.clone().unwrap_or_default(),
                        service.sender.to_string(),
                        status.map_or(0, |s| s.queued).to_string(),
                        status.map_or(0, |s| s.failures).to_string(),
                    ]
                })
                .collect();
            Ok(
                Answer::ok(format!("{} application service(s):", all.len())).with(Block::Table {
                    head: ["id", "registered by", "url", "user", "queued", "failures"]
                        .map(String::from)
                        .to_vec(),
                    rows,
                }),
            )
        }
        AppservicesCommand::Show { id } => {
            let Some(service) = appservices.get(&id) else {
                return Ok(Answer::error(format!(
                    "There is no application service `{id}`."
                )));
            };
            let mut registration = service.registration.clone();
            registration.as_token = "<masked>".to_owned();
            registration.hs_token = "<masked>".to_owned();
            let yaml = serde_yaml::to_string(&registration)
                .map_err(|e| crate::error::Error::internal(e.to_string()))?;
            let status = appservices.queue.status(&id)?;
            let mut summary = format!(
                "`{id}` ({}): {} event(s) queued, {} failure(s) in a row",
                source(&service),
                status.queued,
                status.failures
            );
            if let Some(error) = &status.last_error
                && status.failures > 0
            {
                summary.push_str(&format!("; last error: {error}"));
            }
            summary.push('.');
            Ok(Answer::ok(summary).with(Block::Code(yaml)))
        }
        AppservicesCommand::Ping { id } => {
            let Some(service) = appservices.get(&id) else {
                return Ok(Answer::error(format!(
                    "There is no application service `{id}`."
                )));
            };
            let took = appservices.queue.http().ping(&service, None).await?;
            Ok(Answer::ok(format!(
                "`{id}` answered in {} ms.",
                took.as_millis()
            )))
        }
    }
}

fn source(service: &Appservice) -> String {
    match &service.source {
        Source::File(path) => path.display().to_string(),
        Source::AdminRoom => "admin room".to_owned(),
    }
}
