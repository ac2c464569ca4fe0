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
