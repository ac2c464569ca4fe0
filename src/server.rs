//! Starting and stopping the homeserver: open the database, build the services, serve HTTP.
//! Used by `main` and by the integration tests, so tests run the real thing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api;
use crate::config::Config;
use crate::error::Error;
use crate::service::Services;
use crate::storage::{Engine, EngineOptions};
use crate::tls_listener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Database(#[from] Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
}

/// A listener besides the client one (federation, metrics) of a running server.
struct ExtraListener {
    addr: SocketAddr,
    /// Its certificate, when it speaks TLS.
    certificates: Option<Arc<tls_listener::CertificateFiles>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running homeserver.
pub struct Server {
    addr: SocketAddr,
    services: Arc<Services>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    federation: Option<ExtraListener>,
    /// The Prometheus listener, when metrics are on.
    metrics: Option<ExtraListener>,
    engine: Arc<Engine>,
}

impl Server {
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let engine = Engine::open(EngineOptions {
            path: &config.database_path,
            cache_capacity_bytes: (config.db_cache_capacity_mb * 1024.0 * 1024.0) as usize,
            compression: config.db_compression,
            statistics: config.metrics.enabled,
        })?;
        let listen = config.listen_addr();
        let services = Services::build(config, Arc::clone(&engine))?;
        crate::admin::start(&services).await?;
        // Events queued for application services before a stop are sent now.
        if let Err(error) = services.appservices.queue.resume(&services) {
            tracing::error!(%error, "cannot resume the application service queues");
        }
        // Likewise notifications not yet delivered to push gateways.
        if let Err(error) = services.pushers.resume() {
            tracing::error!(%error, "cannot resume push delivery");
        }
        let bootstrap_token = services.users.bootstrap_registration_token()?;

        // Certificates are read before anything listens: a bad file leaves nothing running.
        let tls = &services.config.tls;
        let client_tls = certificates(CLIENT_TLS, &tls.certs, &tls.key)?;
        let listener = bind(listen).await?;
        let addr = local_addr(&listener, listen)?;
        announce(
            &services,
            addr,
            client_tls.is_some(),
            bootstrap_token.as_deref(),
        );

        let federation = if services.config.allow_federation {
            let listener = start_federation(&services).await?;
            if let Err(error) =
                crate::service::federation::state_answer::clear_stale_stages(&services)
            {
                tracing::error!(%error, "cannot clear what an interrupted join left staged");
            }
            // What was queued for other servers before a stop is sent now.
            if let Err(error) = services.sending.resume() {
                tracing::error!(%error, "cannot resume the federation queues");
            }
            Some(listener)
        } else {
            None
        };
        let metrics = if services.config.metrics.enabled {
            let listen = services.config.metrics.listen_addr();
            let listener = bind(listen).await?;
            let addr = local_addr(&listener, listen)?;
            tracing::info!(%addr, "metrics listener (Prometheus: /metrics)");
            let (stop, stopped) = oneshot::channel::<()>();
            let app = api::metrics::router(Arc::clone(&services));
            let task = spawn_listener("metrics", listener, app, None, stopped);
            Some(ExtraListener {
                addr,
                certificates: None,
                stop,
                task,
            })
        } else {
            None
        };
        let reloadable = [
            client_tls.clone().map(|files| ("client", files)),
            federation
                .as_ref()
                .and_then(|listener| listener.certificates.clone())
                .map(|files| ("federation", files)),
        ];
        tls_listener::reload_on_sighup(
            reloadable.into_iter().flatten().collect(),
            services.shutdown.subscribe(),
        );
        let app = api::router::build(Arc::clone(&services));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = spawn_listener("client", listener, app, client_tls, stopped);
        Ok(Self {
            addr,
            services,
            stop: Some(stop),
            task,
            federation,
            metrics,
            engine,
        })
    }

    /// Where the metrics listener is bound, when metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|listener| listener.addr)
    }

    /// Where the federation listener is bound, when federation is on.
    pub fn federation_addr(&self) -> Option<SocketAddr> {
        self.federation.as_ref().map(|listener| listener.addr)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's services: for in-process tests and operator tooling that act on the
    /// server directly (e.g. quarantining media before the admin room exists).
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The one-time token for the first account, while no account exists.
    pub fn bootstrap_token(&self) -> Option<String> {
        self.services.users.pending_bootstrap_token().ok().flatten()
    }

    /// Stops accepting connections, lets in-flight requests finish, then flushes the database.
    pub async fn shutdown(mut self) {
        self.services.shutdown.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut self.task).await {
            tracing::error!(%error, "server task ended abnormally");
        }
        for listener in [self.federation.take(), self.metrics.take()]
            .into_iter()
            .flatten()
        {
            let _ = listener.stop.send(());
            if let Err(error) = listener.task.await {
                tracing::error!(%error, "listener ended abnormally");
            }
        }
        // Unsent events stay queued for the next start.
        self.services.sending.stop().await;
        if let Err(error) = self.engine.flush() {
            tracing::error!(%error, "flushing the database failed");
        }
        // The console's socket (its listener also removes it, but may not run again).
        let _ = std::fs::remove_file(self.services.config.admin_socket_path());
        tracing::info!("server stopped");
    }

    /// Waits until the server stops by itself (it only does on a fatal error).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Binds the federation listener and serves the Server-Server API on it: over TLS when a
/// certificate is configured, else plain HTTP for a reverse proxy.
async fn start_federation(services: &Arc<Services>) -> Result<ExtraListener, StartError> {
    let config = &services.config.federation;
    let certificates = certificates(
        FEDERATION_TLS,
        &config.tls_certificate,
        &config.tls_private_key,
    )?;
    let listen = services.config.federation_listen_addr();
    let listener = bind(listen).await?;
    let addr = local_addr(&listener, listen)?;
    if certificates.is_some() {
        tracing::info!(%addr, "federation listener (TLS)");
    } else {
        tracing::info!(%addr, "federation listener (plain HTTP: TLS is the reverse proxy's)");
    }
    let app = api::router::build_federation(Arc::clone(services));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = spawn_listener("federation", listener, app, certificates.clone(), stopped);
    Ok(ExtraListener {
        addr,
        certificates,
        stop,
        task,
    })
}

const CLIENT_TLS: &str = "client TLS ([global.tls] certs, key)";
const FEDERATION_TLS: &str =
    "federation TLS ([global.federation] tls_certificate, tls_private_key)";

/// The TLS files the configuration names, read as a start would (`--check-config`).
pub fn check_tls_files(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(error) = certificates(CLIENT_TLS, &config.tls.certs, &config.tls.key) {
        errors.push(error.to_string());
    }
    let federation = &config.federation;
    if config.allow_federation
        && let Err(error) = certificates(
            FEDERATION_TLS,
            &federation.tls_certificate,
            &federation.tls_private_key,
        )
    {
        errors.push(error.to_string());
    }
    errors
}

/// A listener's certificate and key, when both are configured (re-read on SIGHUP).
fn certificates(
    what: &str,
    certificate: &Option<std::path::PathBuf>,
    private_key: &Option<std::path::PathBuf>,
) -> Result<Option<Arc<tls_listener::CertificateFiles>>, StartError> {
    match (certificate, private_key) {
        (Some(certificate), Some(private_key)) => {
            tls_listener::CertificateFiles::load(certificate, private_key)
                .map(Some)
                .map_err(|error| StartError::Tls(format!("{what}: {error}")))
        }
        (None, None) => Ok(None),
        _ => Err(StartError::Tls(format!(
            "{what}: set both files, or neither"
        ))),
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, listen: SocketAddr) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })
}

/// Serves `app` on `listener` until `stopped`: over TLS with a certificate, else plain HTTP.
fn spawn_listener(
    name: &'static str,
    listener: TcpListener,
    app: axum::Router,
    certificates: Option<Arc<tls_listener::CertificateFiles>>,
    stopped: oneshot::Receiver<()>,
) -> JoinHandle<()> {
    if let Some(certificates) = certificates {
        return tokio::spawn(tls_listener::serve_tls(
            name,
            listener,
            app,
            certificates,
            stopped,
        ));
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(error) = serve.await {
            tracing::error!(%error, listener = name, "HTTP listener failed");
        }
    })
}

/// Start-up messages an operator needs: where we listen, and how to get in.
fn announce(services: &Services, addr: SocketAddr, tls: bool, bootstrap_token: Option<&str>) {
    let config = &services.config;
    let scheme = if tls { "https" } else { "http" };
    tracing::info!(server_name = %config.server_name, %addr, scheme, database = %config.database_path.display(), "Conclave is listening");
    if let Some(token) = bootstrap_token {
        // With registration open the token is not needed, but still works; say which applies.
        let access = if config.allow_registration {
            "The first account to register becomes a server administrator; this one-time \
             registration token also creates it"
        } else {
            "Registration is closed, but this one-time registration token creates the first \
             account, which becomes a server administrator"
        };
        tracing::warn!(
            "No accounts exist yet. {access}:\n\n    {token}\n\n\
             In Element: choose 'Create account', set the homeserver to {scheme}://{addr} (or your \
             public URL), pick a username and password, and enter the token when asked."
        );
    }
    if config.allow_registration && config.registration_token.is_none() {
        tracing::warn!(
            "OPEN REGISTRATION IS ENABLED: anyone who can reach this server can create an \
             account. Set registration_token, or allow_registration = false, unless you really \
             want this."
        );
    }
}
