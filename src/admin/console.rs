//! The console: `conclave admin <group> <command> …` runs the admin commands against the
//! running server through a unix socket, for scripts, for the first administrator, and for
//! when nobody can log in. The socket is created with mode 0600, so only the server's OS user
//! (and root) can use it; the caller's uid goes into the audit log.
//!
//! One request per connection: a JSON line `{"words": [...]}`; the answer is a JSON line
//! `{"ok": bool, "text": "..."}` (plain text, tables in columns).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::Actor;
use crate::service::Services;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub words: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub text: String,
}

/// Opens the socket and serves it until the server stops. Failing to open it is logged, not
/// fatal: the server still serves its users.
pub fn listen(services: &Arc<Services>) {
    let path = services.config.admin_socket_path();
    let listener = match bind(&path) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "the admin console is not available");
            return;
        }
    };
    let weak = Arc::downgrade(services);
    let mut stopping = services.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.changed() => break,
            };
            let Ok((stream, _)) = accepted else {
                continue;
            };
            let Some(services) = weak.upgrade() else {
                break;
            };
            tokio::spawn(async move {
                if let Err(error) = serve(&services, stream).await {
                    tracing::warn!(%error, "admin console connection failed");
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    });
}

/// Binds the socket, replacing one left by a server that stopped without cleaning up (a
/// running server holds the database lock, so none can be listening on it now).
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn serve(services: &Services, stream: UnixStream) -> std::io::Result<()> {
    let uid = stream.peer_cred().map(|cred| cred.uid()).ok();
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let actor = Actor::Console { uid };
            let answer = super::run_words(services, &actor, request.words, None).await;
            Reply {
                ok: answer.ok,
                text: answer.plain(),
            }
        }
        Err(error) => Reply {
            ok: false,
            text: format!("unreadable request: {error}"),
        },
    };
    let mut bytes = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await?;
    services.admin.stop_if_asked();
    Ok(())
}

/// The client side, for the `conclave admin` command: sends `words`, returns the reply.
pub fn call(path: &Path, words: Vec<String>) -> std::io::Result<Reply> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    let mut request = serde_json::to_vec(&Request { words }).map_err(std::io::Error::other)?;
    request.push(b'\n');
    stream.write_all(&request)?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}
