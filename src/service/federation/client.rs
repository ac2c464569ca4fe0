//! The HTTPS client for other servers: certificates checked unless the operator turned that
//! off for a test PKI, extra trust roots for a private PKI, and no connection to an address
//! the federation policy refuses (`ip_range_denylist`, `ip_range_allowlist`) whatever a server
//! name resolves to.

use std::sync::Arc;
use std::time::Duration;

use ruma::ServerName;
use ruma::api::federation::authentication::{XMatrix, XMatrixSigningInput};
use ruma::signatures::Ed25519KeyPair;
use serde_json::Value;

use super::discovery::{self, Destination, Literal, WellKnownCache};
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::service::net::{IpPolicy, PolicyResolver};

/// Largest answer read from another server (keys, well-known).
const MAX_ANSWER_BYTES: usize = 1 << 20;

pub struct FederationClient {
    http: reqwest::Client,
    /// SRV targets the main client resolves server names to (see [`PolicyResolver`]).
    srv_targets: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// DNS for SRV records.
    dns: Option<hickory_resolver::TokioResolver>,
    /// Well-known lookups: short, and without following redirects to other hosts.
    well_known_http: reqwest::Client,
    policy: Arc<IpPolicy>,
    well_known: WellKnownCache,
    /// Which servers may be called at all.
    partners: super::partners::Policy,
}

impl FederationClient {
    pub fn new(config: &Config, engine: &Arc<crate::storage::Engine>) -> Result<Self> {
        let federation = &config.federation;
        let partners = super::partners::Policy::load(
            engine,
            config.server_name.clone(),
            &federation.allowed_servers,
            &federation.denied_servers,
        )?;
        let policy = Arc::new(IpPolicy::from_lists(
            &federation.ip_range_denylist,
            &federation.ip_range_allowlist,
        ));
        let srv_targets: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>> =
            Arc::default();
        let build = |timeout: Duration, srv: bool| -> Result<reqwest::Client> {
            let mut resolver = PolicyResolver::new(Arc::clone(&policy));
            if srv {
                resolver.targets = Arc::clone(&srv_targets);
            }
            let mut builder = reqwest::Client::builder()
                .no_proxy()
                .dns_resolver(Arc::new(resolver))
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .timeout(timeout)
                .user_agent(concat!("Conclave/", env!("CARGO_PKG_VERSION")))
                .danger_accept_invalid_certs(!federation.verify_certificates);
            if let Some(path) = &federation.ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::Internal(format!("federation ca_file {}: {e}", path.display()))
                })?;
                for certificate in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    Error::Internal(format!("federation ca_file {}: {e}", path.display()))
                })? {
                    builder = builder.add_root_certificate(certificate);
                }
            }
            builder
                .build()
                .map_err(|e| Error::Internal(format!("cannot build the federation client: {e}")))
        };
        // Well-known lookups go to the server name itself, never to an SRV target.
        let dns = match hickory_resolver::TokioResolver::builder_tokio() {
            Ok(builder) => Some(builder.build()),
            Err(error) => {
                tracing::warn!(%error, "no DNS configuration: SRV records of partners will not be read");
                None
            }
        };
        Ok(Self {
            http: build(Duration::from_secs(30), true)?,
            well_known_http: build(Duration::from_secs(10), false)?,
            srv_targets,
            dns,
            policy,
            well_known: WellKnownCache::default(),
            partners,
        })
    }

    /// The partner policy: which servers may be called, and may call us.
    pub fn partners(&self) -> &super::partners::Policy {
        &self.partners
    }

    /// Where requests for `server` go.
    pub async fn destination(&self, server: &ServerName) -> Result<Destination> {
        let host = match discovery::literal(server) {
            Literal::Direct(destination) => return Ok(destination),
            Literal::Name(host) => host,
        };
        if let Some(cached) = self.well_known.get(&host) {
            return Ok(cached);
        }
        let delegated = self.fetch_well_known(&host).await;
        let destination = match &delegated {
            // An IP literal or a name with a port is used as it is.
            Some(value) => match discovery::needs_srv(value) {
                Some(name) => self.srv_or_default(&name).await,
                None => discovery::delegated(value).unwrap_or_else(|| fallback(&host)),
            },
            None => self.srv_or_default(&host).await,
        };
        self.well_known
            .put(&host, destination.clone(), delegated.is_some());
        Ok(destination)
    }

    /// The SRV target a server name was found to lead to, if any.
    pub fn srv_target(&self, name: &str) -> Option<String> {
        self.srv_targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// `name`'s SRV record (`_matrix-fed._tcp`, then the deprecated `_matrix._tcp`) if it has
    /// one, else port 8448. The URL keeps `name`, so the certificate must name it; only the
    /// address comes from the SRV target.
    async fn srv_or_default(&self, name: &str) -> Destination {
        let Some(dns) = &self.dns else {
            return fallback(name);
        };
        for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
            let Ok(lookup) = dns.srv_lookup(format!("{service}.{name}.")).await else {
                continue;
            };
            let records: Vec<discovery::SrvRecord> = lookup
                .iter()
                .map(|srv| discovery::SrvRecord {
                    priority: srv.priority(),
                    weight: srv.weight(),
                    target: srv.target().to_utf8().trim_end_matches('.').to_owned(),
                    port: srv.port(),
                })
                .collect();
            if let Some(record) = discovery::pick_srv(&records) {
                self.srv_targets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_owned(), record.target.clone());
                return discovery::via_srv(name, record.port);
            }
        }
        fallback(name)
    }

    async fn fetch_well_known(&self, host: &str) -> Option<String> {
        let url = format!("https://{host}/.well-known/matrix/server");
        let response = self.well_known_http.get(&url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = read_limited(response, MAX_ANSWER_BYTES).await.ok()?;
        let value: Value = serde_json::from_slice(&body).ok()?;
        let server = value.get("m.server")?.as_str()?;
        discovery::delegated(server)?;
        Some(server.to_owned())
    }

    /// `GET path` on `server` without authentication (keys, version); the answer as JSON.
    pub async fn get_public(&self, server: &ServerName, path: &str) -> Result<Value> {
        self.get(server, path, None).await
    }

    /// `POST path` on `server` with a JSON body, without authentication (notary key queries).
    pub async fn post_public(
        &self,
        server: &ServerName,
        path: &str,
        body: &Value,
    ) -> Result<Value> {
        let bytes = serde_json::to_vec(body).map_err(Error::internal)?;
        self.request(
            http::Method::POST,
            server,
            path,
            None,
            Some(bytes),
            MAX_ANSWER_BYTES,
        )
        .await
    }

    /// `GET path` (with its query) on `server`, signed as `origin` with `key_pair`
    /// (`Authorization: X-Matrix`); the answer as JSON.
    pub async fn get_signed(
        &self,
        server: &ServerName,
        path: &str,
        origin: &ServerName,
        key_pair: &Ed25519KeyPair,
    ) -> Result<Value> {
        let (authorization, _) = sign(&http::Method::GET, server, path, None, origin, key_pair)?;
        self.get(server, path, Some(authorization)).await
    }

    /// `method path` on `server` with a JSON `body`, signed as `origin`; the answer as JSON,
    /// read up to `limit` bytes.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_signed(
        &self,
        method: http::Method,
        server: &ServerName,
        path: &str,
        body: Option<&Value>,
        origin: &ServerName,
        key_pair: &Ed25519KeyPair,
        limit: usize,
    ) -> Result<Value> {
        let (authorization, body) = sign(&method, server, path, body, origin, key_pair)?;
        self.request(method, server, path, Some(authorization), body, limit)
            .await
    }

    /// [`Self::send_signed`] with a body already in canonical JSON (an outgoing transaction):
    /// signed as it is, without being parsed again.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_signed_canonical(
        &self,
        method: http::Method,
        server: &ServerName,
        path: &str,
        canonical_body: String,
        origin: &ServerName,
        key_pair: &Ed25519KeyPair,
        limit: usize,
    ) -> Result<Value> {
        let authorization =
            sign_canonical(&method, server, path, &canonical_body, origin, key_pair)?;
        self.request(
            method,
            server,
            path,
            Some(authorization),
            Some(canonical_body.into_bytes()),
            limit,
        )
        .await
    }

    /// [`Self::send_signed`], the answer written to `file` rather than held in memory (a
    /// large room's state when joining): up to `limit` bytes; answers the bytes written.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_signed_to_file(
        &self,
        method: http::Method,
        server: &ServerName,
        path: &str,
        body: Option<&Value>,
        origin: &ServerName,
        key_pair: &Ed25519KeyPair,
        file: &mut tokio::fs::File,
        limit: u64,
    ) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let (authorization, body) = sign(&method, server, path, body, origin, key_pair)?;
        let mut response = self
            .response(method, server, path, Some(authorization), body)
            .await?;
        let mut written: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| remote(server, error_chain(&e)))?
        {
            written += chunk.len() as u64;
            if written > limit {
                return Err(remote(server, format!("answer larger than {limit} bytes")));
            }
            file.write_all(&chunk).await.map_err(Error::internal)?;
        }
        file.flush().await.map_err(Error::internal)?;
        Ok(written)
    }

    /// `GET path` on `server`, signed as `origin`: the successful response, its body unread
    /// (media, streamed by the caller).
    pub async fn get_signed_response(
        &self,
        server: &ServerName,
        path: &str,
        origin: &ServerName,
        key_pair: &Ed25519KeyPair,
    ) -> Result<reqwest::Response> {
        let (authorization, _) = sign(&http::Method::GET, server, path, None, origin, key_pair)?;
        self.response(http::Method::GET, server, path, Some(authorization), None)
            .await
    }

    /// `GET path` on `server` without signing (the legacy media endpoint of older servers).
    pub async fn get_unsigned_response(
        &self,
        server: &ServerName,
        path: &str,
    ) -> Result<reqwest::Response> {
        self.response(http::Method::GET, server, path, None, None)
            .await
    }

    /// `GET url` (where another server redirected us for media), through the same address
    /// policy as every federation request.
    pub async fn get_url(&self, url: &str) -> Result<reqwest::Response> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| Error::Internal(format!("a media redirect to a bad URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || self.policy.refuses_literal(&url) {
            return Err(Error::forbidden(
                "A media redirect to an address federation may not reach",
            ));
        }
        let response = self
            .well_known_http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| {
                Error::Internal(format!("media redirect to {url}: {}", error_chain(&e)))
            })?;
        if !response.status().is_success() {
            return Err(Error::Internal(format!(
                "media redirect to {url} answered {}",
                response.status()
            )));
        }
        Ok(response)
    }

    async fn get(
        &self,
        server: &ServerName,
        path: &str,
        authorization: Option<http::HeaderValue>,
    ) -> Result<Value> {
        self.request(
            http::Method::GET,
            server,
            path,
            authorization,
            None,
            MAX_ANSWER_BYTES,
        )
        .await
    }

    async fn request(
        &self,
        method: http::Method,
        server: &ServerName,
        path: &str,
        authorization: Option<http::HeaderValue>,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Value> {
        let response = self
            .response(method, server, path, authorization, body)
            .await?;
        let body = read_limited(response, limit)
            .await
            .map_err(|e| remote(server, e))?;
        serde_json::from_slice(&body).map_err(|e| remote(server, format!("answered bad JSON: {e}")))
    }

    /// Sends the request; a successful answer's response, whose body is still to be read, or
    /// the other server's error.
    async fn response(
        &self,
        method: http::Method,
        server: &ServerName,
        path: &str,
        authorization: Option<http::HeaderValue>,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response> {
        self.partners.check(server)?;
        let destination = self.destination(server).await?;
        let url = reqwest::Url::parse(&format!("{}{path}", destination.base))
            .map_err(|e| remote(server, format!("bad URL: {e}")))?;
        if self.policy.refuses_literal(&url) {
            return Err(Error::forbidden(format!(
                "{server} is at an address federation may not reach (ip_range_denylist)"
            )));
        }
        let mut request = self
            .http
            .request(method, url)
            .header(http::header::HOST, &destination.host);
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| remote(server, error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // A Matrix error from the other server keeps its code for our client.
        let body = read_limited(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| remote(server, e))?;
        let error: Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = format!("{server}: {}", error["error"].as_str().unwrap_or("refused"));
        let code = match (status, error["errcode"].as_str()) {
            (http::StatusCode::NOT_FOUND, Some("M_NOT_FOUND")) => Some(ErrorCode::NotFound),
            (http::StatusCode::FORBIDDEN, Some("M_FORBIDDEN")) => Some(ErrorCode::Forbidden),
            (_, Some("M_INCOMPATIBLE_ROOM_VERSION")) => Some(ErrorCode::IncompatibleRoomVersion),
            (_, Some("M_UNABLE_TO_AUTHORISE_JOIN")) => Some(ErrorCode::UnableToAuthoriseJoin),
            (http::StatusCode::NOT_FOUND, Some("M_UNRECOGNIZED")) => Some(ErrorCode::Unrecognized),
            _ => None,
        };
        Err(match code {
            Some(code) => Error::new(code, message),
            None => remote(server, format!("answered {status}: {error}")),
        })
    }
}

/// The `Authorization: X-Matrix` header for a request as `origin`, and its body's bytes.
fn sign(
    method: &http::Method,
    server: &ServerName,
    path: &str,
    body: Option<&Value>,
    origin: &ServerName,
    key_pair: &Ed25519KeyPair,
) -> Result<(http::HeaderValue, Option<Vec<u8>>)> {
    let bytes = match body {
        Some(body) => serde_json::to_vec(body).map_err(Error::internal)?,
        None => Vec::new(),
    };
    let unsigned = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .body(bytes.clone())
        .map_err(|e| remote(server, format!("bad request path: {e}")))?;
    let input = XMatrixSigningInput::new(origin.to_owned(), server.to_owned(), key_pair);
    let x_matrix = XMatrix::sign_http_request(&unsigned, input).map_err(Error::internal)?;
    Ok((http::HeaderValue::from(&x_matrix), body.map(|_| bytes)))
}

/// The `X-Matrix` header of a request whose body is already canonical JSON: the signed
/// object (`content`, `destination`, `method`, `origin`, `uri`, in canonical key order) is
/// written around the body as it is.
fn sign_canonical(
    method: &http::Method,
    server: &ServerName,
    path: &str,
    canonical_body: &str,
    origin: &ServerName,
    key_pair: &Ed25519KeyPair,
) -> Result<http::HeaderValue> {
    use ruma::signatures::KeyPair;
    let string = |s: &str| serde_json::to_string(s).map_err(Error::internal);
    let object = format!(
        "{{\"content\":{canonical_body},\"destination\":{},\"method\":{},\"origin\":{},\"uri\":{}}}",
        string(server.as_str())?,
        string(method.as_str())?,
        string(origin.as_str())?,
        string(path)?,
    );
    let (key_id, signature) = key_pair.sign(object.as_bytes()).into_parts();
    let key = ruma::OwnedServerSigningKeyId::try_from(key_id.as_str()).map_err(Error::internal)?;
    let x_matrix = XMatrix::new(
        origin.to_owned(),
        server.to_owned(),
        key,
        ruma::serde::Base64::new(signature),
    );
    Ok(http::HeaderValue::from(&x_matrix))
}

fn fallback(host: &str) -> Destination {
    discovery::delegated(host).unwrap_or(Destination {
        base: format!("https://{host}:8448"),
        host: host.to_owned(),
    })
}

/// The body, refused past `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error with its causes (the refused address, the TLS failure).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn remote(server: &ServerName, message: impl std::fmt::Display) -> Error {
    Error::Internal(format!("request to {server} failed: {message}"))
}
