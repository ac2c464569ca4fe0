//! The deployment kit's images, built and run with podman: `docker/Dockerfile` (the runtime
//! image operators run), `complement/Dockerfile` (Conclave as Complement's homeserver), and a
//! Debian machine booting systemd to run `conduit-config/conclave.service`.
//!
//! No image registry is reachable here, so the Debian base the Dockerfile starts FROM is made
//! with debootstrap by `tests/container/base-image.sh` (kept in podman's store, its tarball
//! under /var/cache/conclave-container), and the Dockerfile's `build` stage is replaced by
//! this build's binary through `--build-context build=<dir>` rather than compiled again.
//! Containers use the host's network, each on free loopback ports. Image builds are
//! serialized by a lock file: nextest runs each test in its own process.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_conclave");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// docker/Dockerfile's runtime stage around the test binary.
const RUNTIME_IMAGE: &str = "localhost/conclave-test:latest";
/// complement/Dockerfile on top of [`RUNTIME_IMAGE`].
const COMPLEMENT_IMAGE: &str = "localhost/complement-conclave-test:latest";
/// The runtime image's fixed, non-root user (docker/Dockerfile).
const CONCLAVE_UID: u32 = 10001;

/// podman as these tests run it: runc with cgroupfs.
fn podman() -> Command {
    let mut command = Command::new("podman");
    command
        .args(["--runtime", "runc", "--cgroup-manager=cgroupfs"])
        .stdin(Stdio::null());
    command
}

/// Runs `command`; panics with its output unless it succeeds. Answers its stdout.
fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let tail = |text: &str| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        panic!(
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            tail(&stdout),
            tail(&String::from_utf8_lossy(&output.stderr))
        );
    }
    stdout
}

fn cache_dir() -> PathBuf {
    std::env::var_os("CONCLAVE_CONTAINER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/conclave-container"))
}

/// Builds the test images, one process at a time: the Debian base if missing, docker/Dockerfile
/// with the test binary, then (with `complement`) complement/Dockerfile. podman's layer cache
/// makes a second build from the same binary a quick no-op.
fn build_images(complement: bool) {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    let lock = File::create(cache.join("images.lock")).unwrap();
    lock.lock().expect("lock the image builds");

    ensure_base_image();

    // The `build` stage's stand-in: the binary at out/conclave, as the stage leaves it.
    let prebuilt = tempfile::tempdir().unwrap();
    std::fs::create_dir(prebuilt.path().join("out")).unwrap();
    std::fs::copy(BIN, prebuilt.path().join("out/conclave")).unwrap();
    let build_context = format!("build={}", prebuilt.path().display());
    build(
        "docker/Dockerfile",
        &["--build-context", &build_context],
        RUNTIME_IMAGE,
        REPO,
    );
    if complement {
        build(
            "complement/Dockerfile",
            &["--build-arg", &format!("BASE_IMAGE={RUNTIME_IMAGE}")],
            COMPLEMENT_IMAGE,
            &format!("{REPO}/complement"),
        );
    }
    // Earlier builds' images (another binary) are left untagged: removed, with the layers
    // only they used. The label is the Dockerfile's, so nothing else is touched. Best effort:
    // an image still in use elsewhere stays.
    let pruned = podman()
        .args(["image", "prune", "--force"])
        .args(["--filter", "label=org.opencontainers.image.title=Conclave"])
        .output();
    if let Ok(output) = pruned
        && !output.status.success()
    {
        eprintln!(
            "podman image prune: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The Debian base image the Dockerfiles start FROM (made with debootstrap when missing).
fn ensure_base_image() {
    run(
        Command::new("bash")
            .arg(Path::new(REPO).join("tests/container/base-image.sh"))
            .stdin(Stdio::null()),
        "the Debian base image (tests/container/base-image.sh)",
    );
}

fn build(dockerfile: &str, extra: &[&str], tag: &str, context: &str) {
    let dockerfile = Path::new(REPO).join(dockerfile);
    run(
        podman()
            .args([
                "build",
                "--network",
                "host",
                "--format",
                "docker",
                "--layers",
            ])
            .args(extra)
            .arg("-f")
            .arg(&dockerfile)
            .args(["-t", tag, context]),
        &format!("podman build -f {}", dockerfile.display()),
    );
}

/// A port nobody listens on now, on the loopback interface.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A container started with `podman run -d --rm`, stopped and removed when dropped (also
/// when the test fails, whose output then gets the container's log).
struct Container {
    name: String,
}

impl Container {
    fn run(image: &str, options: &[String]) -> Container {
        let name = format!(
            "conclave-test-{}-{}",
            std::process::id(),
            image.rsplit('/').next().unwrap_or(image).replace(':', "-")
        );
        remove_stale_containers();
        run(
            podman()
                .args(["run", "-d", "--rm", "--name", &name])
                .args([
                    "--ulimit",
                    "nofile=20000:20000",
                    "--ulimit",
                    "nproc=1000:1000",
                ])
                .args(["--network", "host"])
                .args(options)
                .arg(image),
            &format!("podman run {image}"),
        );
        Container { name }
    }

    fn exec(&self, command: &[&str]) -> String {
        run(
            podman().args(["exec", &self.name]).args(command),
            &format!("podman exec {command:?}"),
        )
    }

    fn logs(&self) -> String {
        podman()
            .args(["logs", "--tail", "80", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default()
    }

    fn running(&self) -> bool {
        podman()
            .args([
                "container",
                "inspect",
                "--format",
                "{{.State.Running}}",
                &self.name,
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    }

    /// Waits until `url` answers 200, failing early (with the log) if the container stops.
    async fn wait_ready(&self, client: &reqwest::Client, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(url).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                self.running(),
                "the container stopped before {url} answered:\n{}",
                self.logs()
            );
            assert!(
                Instant::now() < deadline,
                "{url} did not answer within 60 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Removes the containers of test processes that are gone (killed before their `Drop` ran,
/// e.g. by a timeout): their names carry the process ID.
fn remove_stale_containers() {
    let Ok(listed) = podman()
        .args([
            "ps",
            "--all",
            "--filter",
            "name=^conclave-test-",
            "--format",
            "{{.Names}}",
        ])
        .output()
    else {
        return;
    };
    for name in String::from_utf8_lossy(&listed.stdout).lines() {
        let pid = name
            .strip_prefix("conclave-test-")
            .and_then(|rest| rest.split('-').next());
        if let Some(pid) = pid
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = podman()
                .args(["rm", "--force", "--volumes", "--time", "0", name])
                .output();
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of container {}:\n{}", self.name, self.logs());
        }
        // --volumes: the anonymous volume of the image's VOLUME, when nothing was mounted there.
        let _ = podman()
            .args(["rm", "--force", "--volumes", "--time", "2", &self.name])
            .output();
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends a request and answers its status and JSON body (`Null` when not JSON).
async fn call(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
    let response = request.send().await.expect("HTTP request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn ok(request: reqwest::RequestBuilder) -> Value {
    let (status, body) = call(request).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    body
}

/// docker/Dockerfile's image: configured by CONCLAVE_* variables over its baked-in file, it
/// serves a client (token registration, a room, a message read back) from its volume, as the
/// non-root `conclave` user, and its HEALTHCHECK passes.
#[tokio::test]
async fn runtime_image_serves_a_client_as_non_root() {
    build_images(false);

    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data.path(), Some(CONCLAVE_UID), Some(CONCLAVE_UID)).unwrap();
    let port = free_port();
    let token = "container-test-token";
    let container = Container::run(
        RUNTIME_IMAGE,
        &[
            "-e".into(),
            "CONCLAVE_SERVER_NAME=container.test".into(),
            "-e".into(),
            "CONCLAVE_ADDRESS=127.0.0.1".into(),
            "-e".into(),
            format!("CONCLAVE_PORT={port}"),
            "-e".into(),
            "CONCLAVE_ALLOW_REGISTRATION=true".into(),
            "-e".into(),
            format!("CONCLAVE_REGISTRATION_TOKEN={token}"),
            "-v".into(),
            format!("{}:/var/lib/conclave", data.path().display()),
        ],
    );
    let client = http_client();
    let base = format!("http://127.0.0.1:{port}");
    container
        .wait_ready(&client, &format!("{base}/_matrix/client/versions"))
        .await;

    // Registration: the token flow, the only one offered.
    let register = format!("{base}/_matrix/client/v3/register");
    let account = json!({ "username": "alice", "password": "a long container password" });
    let (status, challenge) = call(client.post(&register).json(&account)).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{challenge}");
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.registration_token"] }]),
        "{challenge}"
    );
    let mut account = account;
    account["auth"] = json!({
        "type": "m.login.registration_token",
        "token": token,
        "session": challenge["session"],
    });
    let registered = ok(client.post(&register).json(&account)).await;
    assert_eq!(registered["user_id"], "@alice:container.test");
    let access_token = registered["access_token"].as_str().unwrap().to_owned();

    let room = ok(client
        .post(format!("{base}/_matrix/client/v3/createRoom"))
        .bearer_auth(&access_token)
        .json(&json!({ "name": "In a container" })))
    .await;
    let room_id = room["room_id"].as_str().unwrap();
    let room_path = format!(
        "{base}/_matrix/client/v3/rooms/{}",
        room_id.replace('!', "%21").replace(':', "%3A")
    );
    ok(client
        .put(format!("{room_path}/send/m.room.message/txn1"))
        .bearer_auth(&access_token)
        .json(&json!({ "msgtype": "m.text", "body": "hello from podman" })))
    .await;
    let messages = ok(client
        .get(format!("{room_path}/messages?dir=b&limit=20"))
        .bearer_auth(&access_token))
    .await;
    assert!(
        messages["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["content"]["body"] == "hello from podman"),
        "{messages}"
    );

    // Not root: the exec'd shell and the server (PID 1) both run as the image's user.
    assert_eq!(
        container.exec(&["id", "-u"]).trim(),
        CONCLAVE_UID.to_string()
    );
    let status = container.exec(&["cat", "/proc/1/status"]);
    let uids = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .expect("Uid line");
    assert!(
        uids.split_whitespace()
            .all(|uid| uid == CONCLAVE_UID.to_string()),
        "PID 1 runs as {uids}"
    );
    assert!(
        container
            .exec(&["cat", "/proc/1/cmdline"])
            .starts_with("conclave"),
        "PID 1 is not the server"
    );
    // The database is in the mounted volume, owned by that user.
    let database = data.path().join("database");
    assert!(
        database.join("CURRENT").exists(),
        "no RocksDB in the volume"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&database).unwrap().uid(), CONCLAVE_UID);

    run(
        podman().args(["healthcheck", "run", &container.name]),
        "the image's HEALTHCHECK",
    );
}

/// A CA as Complement makes one, written as ca.crt and ca.key into `dir`; answers the PEM
/// certificate.
fn complement_ca(dir: &Path) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Complement test CA");
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("ca.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("ca.key"), key.serialize_pem()).unwrap();
    cert.pem()
}

/// complement/Dockerfile's image started as Complement starts it (SERVER_NAME, its CA mounted
/// at /complement/ca): the client API answers over HTTP with open registration and the
/// shared-secret admin registration on, and the federation listener over TLS with a
/// certificate for the server name signed by that CA.
#[tokio::test]
async fn complement_image_serves_federation_tls_from_the_mounted_ca() {
    build_images(true);

    let ca_dir = tempfile::tempdir().unwrap();
    let ca_pem = complement_ca(ca_dir.path());
    let (client_port, federation_port) = {
        // Both bound at once, so that they differ.
        let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        )
    };
    let container = Container::run(
        COMPLEMENT_IMAGE,
        &[
            "-e".into(),
            "SERVER_NAME=hs1".into(),
            "-e".into(),
            "CONCLAVE_ADDRESS=127.0.0.1".into(),
            "-e".into(),
            format!("CONCLAVE_PORT={client_port}"),
            "-e".into(),
            format!("CONCLAVE_FEDERATION__PORT={federation_port}"),
            "-v".into(),
            format!("{}:/complement/ca:ro", ca_dir.path().display()),
        ],
    );
    let client = http_client();
    let base = format!("http://127.0.0.1:{client_port}");
    container
        .wait_ready(&client, &format!("{base}/_matrix/client/versions"))
        .await;

    // Open registration (m.login.dummy) and Synapse's shared-secret registration.
    let (status, flows) = call(
        client
            .post(format!("{base}/_matrix/client/v3/register"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{flows}");
    assert!(
        flows["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|flow| flow["stages"] == json!(["m.login.dummy"])),
        "{flows}"
    );
    let nonce = ok(client.get(format!("{base}/_synapse/admin/v1/register"))).await;
    assert!(nonce["nonce"].is_string(), "{nonce}");

    // Federation: TLS that only the test CA vouches for, to the name hs1.
    let federation = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve(
            "hs1",
            SocketAddr::from((Ipv4Addr::LOCALHOST, federation_port)),
        )
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let keys = ok(federation.get(format!(
        "https://hs1:{federation_port}/_matrix/key/v2/server"
    )))
    .await;
    assert_eq!(keys["server_name"], "hs1", "{keys}");
    assert!(
        keys["verify_keys"]
            .as_object()
            .is_some_and(|k| !k.is_empty()),
        "{keys}"
    );
}

/// A Debian 12 machine booting systemd with Conclave installed from
/// `conduit-config/conclave.service`.
const SYSTEMD_IMAGE: &str = "localhost/conclave-systemd-test:latest";

/// The unit under real systemd, with all its hardening (dynamic user, read-only system,
/// syscall filter, no capabilities): the server starts and answers, the console and
/// `conclave backup` reach it from a root shell, `systemctl reload` (SIGHUP) keeps it running,
/// and the guide's restore (stop, move the damaged directory aside, `conclave restore`, start)
/// brings back what was backed up and nothing after.
#[tokio::test]
async fn the_systemd_unit_runs_backs_up_reloads_and_restores() {
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(BIN, context.path().join("conclave")).unwrap();
    std::fs::copy(
        Path::new(REPO).join("conduit-config/conclave.service"),
        context.path().join("conclave.service"),
    )
    .unwrap();
    std::fs::write(
        context.path().join("conclave.toml"),
        "[global]\nserver_name = \"systemd.test\"\ndatabase_path = \"/var/lib/conclave\"\n",
    )
    .unwrap();
    {
        let cache = cache_dir();
        std::fs::create_dir_all(&cache).unwrap();
        let lock = File::create(cache.join("images.lock")).unwrap();
        lock.lock().expect("lock the image builds");
        ensure_base_image();
        build(
            "tests/container/systemd.Containerfile",
            &[],
            SYSTEMD_IMAGE,
            context.path().to_str().unwrap(),
        );
    }

    // The port comes from the unit's root-only environment file, as secrets would.
    let port = free_port();
    let secrets = context.path().join("secrets.env");
    std::fs::write(&secrets, format!("CONCLAVE_PORT={port}\n")).unwrap();
    let machine = Container::run(
        SYSTEMD_IMAGE,
        &[
            "--systemd=always".into(),
            "-v".into(),
            format!("{}:/etc/conclave/secrets.env:ro", secrets.display()),
        ],
    );
    let client = http_client();
    let base = format!("http://127.0.0.1:{port}");
    let versions = format!("{base}/_matrix/client/versions");
    machine.wait_ready(&client, &versions).await;
    let uid = machine.exec(&["ps", "-o", "uid=", "-C", "conclave"]);
    assert_ne!(
        uid.trim(),
        "0",
        "the server runs as the unit's dynamic user"
    );
    assert_eq!(
        machine.exec(&[
            "systemctl",
            "show",
            "-p",
            "NoNewPrivileges",
            "--value",
            "conclave"
        ]),
        "yes\n"
    );

    let admin = |words: &[&str]| {
        let mut command = vec!["conclave", "--config", "/etc/conclave/conclave.toml"];
        command.extend_from_slice(words);
        machine.exec(&command)
    };
    let created = admin(&["admin", "users", "create", "alice", "--password", "pw"]);
    assert!(created.contains("Created @alice:systemd.test"), "{created}");

    machine.exec(&["systemctl", "reload", "conclave"]);
    assert_eq!(
        machine.exec(&["systemctl", "is-active", "conclave"]),
        "active\n"
    );
    assert_eq!(client.get(&versions).send().await.unwrap().status(), 200);

    let backed_up = admin(&["backup", "/var/lib/conclave-backups/before-the-crash"]);
    assert!(backed_up.contains("Backup written"), "{backed_up}");
    admin(&["admin", "users", "create", "bob", "--password", "pw"]);

    // The disk "dies": the guide's restore.
    machine.exec(&["systemctl", "stop", "conclave"]);
    machine.exec(&[
        "mv",
        "/var/lib/private/conclave",
        "/var/lib/private/conclave.damaged",
    ]);
    let restored = admin(&["restore", "/var/lib/conclave-backups/before-the-crash"]);
    assert!(restored.contains("Restored the backup"), "{restored}");
    machine.exec(&["systemctl", "start", "conclave"]);
    machine.wait_ready(&client, &versions).await;

    let login = |user: &'static str| {
        client
            .post(format!("{base}/_matrix/client/v3/login"))
            .json(&json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": user },
                "password": "pw",
            }))
            .send()
    };
    assert_eq!(login("alice").await.unwrap().status(), 200, "backed up");
    assert_eq!(
        login("bob").await.unwrap().status(),
        403,
        "created after the backup"
    );
    // The restored files were handed to the service's user: it writes again.
    let created = admin(&["admin", "users", "create", "carol", "--password", "pw"]);
    assert!(created.contains("Created @carol:systemd.test"), "{created}");
}
