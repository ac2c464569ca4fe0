//! The deployment files an operator installs, checked with the tools that read them: the
//! systemd unit with `systemd-analyze`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_conclave");
const UNIT: &str = include_str!("../conduit-config/conclave.service");

/// The unit as installed, but starting this build's binary (verify checks that it exists).
fn installed_unit(dir: &std::path::Path) -> std::path::PathBuf {
    assert!(
        UNIT.contains("ExecStart=/usr/local/bin/conclave --config /etc/conclave/conclave.toml"),
        "the unit starts the installed binary with the system configuration"
    );
    let path = dir.join("conclave.service");
    std::fs::write(&path, UNIT.replace("/usr/local/bin/conclave", BIN)).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path());
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{stderr}");
    // verify reports unknown or misspelt directives as warnings without failing.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

/// The hardening holds: systemd's own rating of the unit's exposure is "OK" (below 2 on its
/// 0–10 scale; a plain unit rates 9.6 "UNSAFE").
#[test]
fn the_systemd_unit_is_hardened() {
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=conclave",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(UNIT.contains(directive), "the unit sets {directive:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path());
    let rated = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&rated.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for conclave.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{report}{}",
                String::from_utf8_lossy(&rated.stderr)
            )
        });
    assert!(exposure < 2.0, "exposure {exposure}:\n{report}");
}

/// docker/docker-compose.yml with docker/.env.example, as podman-compose (1.6, PyPI; the
/// test environment's Python) expands it: the four services, one TURN secret shared by
/// Conclave and coturn, and a Conclave environment the server loads without a warning.
#[test]
fn the_compose_stack_expands_from_its_env_file() {
    let python = std::env::var("CONCLAVE_TEST_PYTHON")
        .expect("CONCLAVE_TEST_PYTHON names the test environment's Python (./test.sh sets it)");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    for file in [
        "docker-compose.yml",
        "Caddyfile",
        "element-config.json",
        "Dockerfile",
    ] {
        std::fs::copy(repo.join("docker").join(file), docker.join(file)).unwrap();
    }
    let example = std::fs::read_to_string(repo.join("docker/.env.example")).unwrap();
    let compose = |env: &str| {
        std::fs::write(docker.join(".env"), env).unwrap();
        Command::new(&python)
            .args(["-m", "podman_compose", "-f"])
            .arg(docker.join("docker-compose.yml"))
            .arg("config")
            .current_dir(&docker)
            .output()
            .unwrap()
    };

    // The example leaves the TURN secret to the operator: the stack refuses to start without.
    let refused = compose(&example);
    assert!(
        !refused.status.success(),
        "expanded without a TURN secret: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("TURN_SECRET"));

    let secret = "0123456789abcdef0123456789abcdef";
    let expanded = compose(&example.replace("TURN_SECRET=\n", &format!("TURN_SECRET={secret}\n")));
    let stderr = String::from_utf8_lossy(&expanded.stderr);
    assert!(expanded.status.success(), "{stderr}");
    let config: serde_yaml::Value = serde_yaml::from_slice(&expanded.stdout).unwrap();
    let services = &config["services"];
    for service in ["conclave", "element-web", "coturn", "caddy"] {
        assert!(
            services.get(service).is_some(),
            "no {service} in {config:?}"
        );
    }
    let environment = services["conclave"]["environment"].as_mapping().unwrap();
    assert_eq!(
        environment
            .get("CONCLAVE_TURN_SECRET")
            .and_then(serde_yaml::Value::as_str),
        Some(secret)
    );
    let coturn = format!("{:?}", services["coturn"]["command"]);
    assert!(
        coturn.contains(&format!("--static-auth-secret={secret}")),
        "{coturn}"
    );

    // The server takes that environment as it is.
    let mut show = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("CONCLAVE_") {
            show.env_remove(name);
        }
    }
    for (name, value) in environment {
        show.env(name.as_str().unwrap(), value.as_str().unwrap_or_default());
    }
    let shown = show.arg("--show-config").output().unwrap();
    let stderr = String::from_utf8_lossy(&shown.stderr);
    assert!(shown.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let shown: toml::Table = toml::from_str(&String::from_utf8_lossy(&shown.stdout)).unwrap();
    assert_eq!(shown["global"]["server_name"].as_str(), Some("example.com"));
    assert_eq!(
        shown["global"]["well_known"]["client"].as_str(),
        Some("https://matrix.example.com")
    );
    assert_eq!(
        shown["global"]["turn_uris"].as_array().map(Vec::len),
        Some(2),
        "{shown:?}"
    );
}
