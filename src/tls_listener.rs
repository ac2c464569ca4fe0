//! A listener speaking TLS itself (rustls), for the client API (`[global.tls]`) and the
//! federation API (`[global.federation] tls_certificate`): the certificate is read again on
//! SIGHUP, so a renewal needs no restart. Without a certificate the listeners speak plain HTTP
//! for a reverse proxy in front.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

/// A TLS handshake that takes longer is dropped: a slow client must not hold a task.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish when the listener stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The certificate and key files, and the key pair read from them last.
#[derive(Debug)]
pub struct CertificateFiles {
    certificate: PathBuf,
    private_key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificateFiles {
    /// Reads both files; an error names the file and what is wrong with it.
    pub fn load(certificate: &Path, private_key: &Path) -> Result<Arc<Self>, String> {
        let key = read_key_pair(certificate, private_key)?;
        Ok(Arc::new(Self {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = read_key_pair(&self.certificate, &self.private_key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn read_key_pair(certificate: &Path, private_key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("certificate {}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "certificate {}: no PEM certificate in it",
            certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(private_key)
        .map_err(|e| format!("private key {}: {e}", private_key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key {}: {e}", private_key.display()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        format!(
            "private key {} does not belong to certificate {}: {e}",
            private_key.display(),
            certificate.display()
        )
    })?;
    Ok(certified)
}

/// Serves `app` over TLS on `listener` until `stopped` resolves; `name` (client, federation)
/// tells the listeners apart in the logs.
pub async fn serve_tls(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    certificates: Arc<CertificateFiles>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    // Connections are tracked so that stopping ends them: another server's client keeps its
    // connection open between requests, and each connection holds the application (and so
    // the database) until it ends.
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, listener = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = &mut stopped => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, listener = name, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, listener = name, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    async move {
                        use tower::Service;
                        app.call(request.map(axum::body::Body::new)).await
                    }
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, %peer, listener = name, "connection ended with an error");
            }
        });
    }
    // Requests in flight finish (idle connections close at once); past a few seconds the
    // rest are cut.
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(listener = name, "cutting connections still busy");
    }
    connections.shutdown().await;
}

/// Re-reads the listeners' certificate files whenever the process gets SIGHUP, until
/// `stopping` turns true. Installed even when no listener has a certificate: SIGHUP's default
/// action would end the process, and `systemctl reload` sends it.
pub fn reload_on_sighup(
    certificates: Vec<(&'static str, Arc<CertificateFiles>)>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot watch for SIGHUP: certificates are read only at start");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                hangup = hangups.recv() => if hangup.is_none() { break },
                _ = stopping.wait_for(|stopping| *stopping) => break,
            }
            if certificates.is_empty() {
                tracing::info!("SIGHUP: no TLS certificate to read again");
            }
            for (name, files) in &certificates {
                match files.reload() {
                    Ok(()) => tracing::info!(listener = name, "SIGHUP: TLS certificate read again"),
                    Err(error) => tracing::error!(
                        %error,
                        listener = name,
                        "SIGHUP: keeping the certificate in use"
                    ),
                }
            }
        }
    });
}
