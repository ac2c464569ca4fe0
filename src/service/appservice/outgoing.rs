//! Calls to application services (the Application Service API): transactions, ping, user and
//! alias queries, third-party lookups. Each carries the service's `hs_token`.
//!
//! An application service's URL is set by an administrator (often on the same machine), so
//! these requests are not under the address policies of federation and push.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::Appservice;
use crate::error::{Error, ErrorCode, Result};

/// Longest a transaction or query may take (Synapse allows a minute too).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Lookups made while a client waits answer sooner.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Outgoing {
    client: reqwest::Client,
}

impl Outgoing {
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("Conclave/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the appservice client: {e}")))?;
        Ok(Self { client })
    }

    /// `{url}/_matrix/app/v1/{path}`; `None` for a service without a URL.
    fn url(service: &Appservice, path: &str) -> Option<String> {
        let base = service.registration.url.as_deref()?;
        Some(format!(
            "{}/_matrix/app/v1/{path}",
            base.trim_end_matches('/')
        ))
    }

    /// Sends one transaction; an error unless the service acknowledged it.
    pub async fn transaction(
        &self,
        service: &Appservice,
        txn_id: &str,
        body: &Value,
    ) -> Result<()> {
        let Some(url) = Self::url(service, &format!("transactions/{}", encode(txn_id))) else {
            return Ok(());
        };
        let response = self
            .client
            .put(url)
            .bearer_auth(&service.registration.hs_token)
            .json(body)
            .send()
            .await
            .map_err(|e| Error::internal(format!("unreachable: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::internal(format!("answered {status}")));
        }
        Ok(())
    }

    /// `POST /_matrix/app/v1/ping`: how long the service took to answer, or the spec's
    /// errors for a service that cannot be reached or answers with an error.
    pub async fn ping(&self, service: &Appservice, txn_id: Option<&str>) -> Result<Duration> {
        let Some(url) = Self::url(service, "ping") else {
            return Err(Error::new(
                ErrorCode::UrlNotSet,
                "The application service has no URL",
            ));
        };
        let mut body = serde_json::json!({});
        if let Some(txn_id) = txn_id {
            body["transaction_id"] = txn_id.into();
        }
        let started = Instant::now();
        let response = self
            .client
            .post(url)
            .bearer_auth(&service.registration.hs_token)
            .timeout(QUERY_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Error::new(
                        ErrorCode::ConnectionTimeout,
                        "The application service did not answer in time",
                    )
                } else {
                    Error::new(
                        ErrorCode::ConnectionFailed,
                        format!("The application service could not be reached: {e}"),
                    )
                }
            })?;
        let elapsed = started.elapsed();
        let status = response.status();
        if !status.is_success() {
            let answer = response.text().await.unwrap_or_default();
            return Err(Error::new(
                ErrorCode::BadStatus {
                    status: status.as_u16(),
                    body: answer.chars().take(1000).collect(),
                },
                format!("The application service answered {status}"),
            ));
        }
        Ok(elapsed)
    }

    /// `GET /_matrix/app/v1/users/{userId}`: whether the service knows (and so created) the user.
    pub async fn query_user(&self, service: &Appservice, user_id: &str) -> bool {
        self.query(service, &format!("users/{}", encode(user_id)))
            .await
            .is_some()
    }

    /// `GET /_matrix/app/v1/rooms/{alias}`: whether the service created the alias's room.
    pub async fn query_alias(&self, service: &Appservice, alias: &str) -> bool {
        self.query(service, &format!("rooms/{}", encode(alias)))
            .await
            .is_some()
    }

    /// A third-party lookup (`thirdparty/...` with its query string): the service's answer,
    /// or `None` when it has none or fails.
    pub async fn thirdparty(&self, service: &Appservice, path: &str) -> Option<Value> {
        self.query(service, &format!("thirdparty/{path}")).await
    }

    /// A GET answered with 200 and JSON, or `None`.
    async fn query(&self, service: &Appservice, path: &str) -> Option<Value> {
        let url = Self::url(service, path)?;
        let response = self
            .client
            .get(url)
            .bearer_auth(&service.registration.hs_token)
            .timeout(QUERY_TIMEOUT)
            .send()
            .await;
        match response {
            Ok(response) if response.status() == StatusCode::OK => response.json().await.ok(),
            Ok(response) => {
                tracing::debug!(appservice = service.id(), path, status = %response.status(), "appservice query answered no");
                None
            }
            Err(error) => {
                tracing::info!(appservice = service.id(), path, %error, "appservice query failed");
                None
            }
        }
    }
}

/// Percent-encodes one path segment.
pub fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
