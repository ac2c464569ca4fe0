//! The client listener's own TLS (`[global.tls]`): a small site without a reverse proxy.
//! Clients check the certificate against the site's CA (made by the test), HTTP/2 is offered,
//! a renewed certificate is served after SIGHUP, and a half-configured TLS stops the start.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestServer;
use common::federation::{peer_certificate, sighup_until_served};
use conclave::config::Config;
use conclave::server::Server;
use serde_json::{Value, json};

/// The site's CA, and a server certificate for 127.0.0.1 and `localhost` signed by it.
struct Pki {
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Example Corp internal CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca,
            ca_key,
        }
    }

    /// Writes a new server certificate (chain: leaf, CA) and key; answers the leaf's DER.
    fn issue(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let leaf = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let certs = dir.join("fullchain.pem");
        let private_key = dir.join("privkey.pem");
        std::fs::write(&certs, format!("{}{}", leaf.pem(), self.ca_pem)).unwrap();
        std::fs::write(&private_key, key.serialize_pem()).unwrap();
        (certs, private_key, leaf.der().to_vec())
    }

    /// A client that trusts only the site's CA, as staff machines with it installed do.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .tls_info(true)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_listener_speaks_https_itself_and_renews_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (certs, key, first) = pki.issue(dir.path(), "first");
    let ts = TestServer::start_with(move |config: &mut Config| {
        config.allow_registration = true;
        config.registration_token = None;
        config.tls.certs = Some(certs.clone());
        config.tls.key = Some(key.clone());
    })
    .await;
    let port = ts.server().local_addr().port();
    let client = pki.client();

    // A whole client exchange over HTTPS, the certificate checked against the CA by name.
    for host in ["127.0.0.1", "localhost"] {
        let versions = client
            .get(format!("https://{host}:{port}/_matrix/client/versions"))
            .send()
            .await
            .unwrap();
        assert_eq!(versions.status(), 200);
        assert_eq!(peer_certificate(&versions), first);
    }
    let base = format!("https://localhost:{port}");
    let registered: Value = client
        .post(format!("{base}/_matrix/client/v3/register"))
        .json(&json!({
            "username": "alice",
            "password": "pw",
            "auth": { "type": "m.login.dummy" },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["access_token"].as_str().expect("registered");
    let whoami: Value = client
        .get(format!("{base}/_matrix/client/v3/account/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["user_id"], "@alice:localhost");

    // Plain HTTP gets no Matrix answer on the TLS port.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/_matrix/client/versions"))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status() != 200,
        "plain HTTP answered on the TLS listener"
    );

    // curl, as another client, negotiates HTTP/2 through ALPN.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version}"])
        .arg("--cacert")
        .arg(&ca_file)
        .arg(format!("{base}/_matrix/client/versions"))
        .output()
        .expect("curl is installed");
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "2",
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    // A renewal (certbot writes new files) is served after SIGHUP, without a restart.
    let (_, _, second) = pki.issue(dir.path(), "second");
    sighup_until_served(
        || pki.client(),
        &format!("{base}/_matrix/client/versions"),
        &second,
    )
    .await;
    ts.shutdown().await;
}

#[tokio::test]
async fn half_configured_or_unreadable_client_tls_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = Config {
        database_path: dir.path().join("db"),
        port: 0,
        ..Config::default()
    };

    let mut config = base.clone();
    config.tls.certs = Some(dir.path().join("fullchain.pem"));
    let error = Server::start(config).await.err().expect("refused");
    assert!(error.to_string().contains("[global.tls]"), "{error}");

    let pki = Pki::new();
    let (certs, _, _) = pki.issue(dir.path(), "cert");
    let mut config = base;
    config.tls.certs = Some(certs);
    config.tls.key = Some(dir.path().join("missing.pem"));
    let error = Server::start(config).await.err().expect("refused");
    assert!(error.to_string().contains("missing.pem"), "{error}");
}
