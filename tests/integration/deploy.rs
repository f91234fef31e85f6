//! The shipped systemd unit: systemd's own checker accepts it, and its sandbox leaves little
//! exposed (`systemd-analyze security`).

use std::process::Command;

/// The unit with its binary path pointed at the binary under test (`verify` checks that the
/// commands exist).
fn unit_under_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(crate::support::keyway::repository_file(
        "deploy/keyway.service",
    ))
    .unwrap();
    let path = dir.join("keyway.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/keyway", env!("CARGO_BIN_EXE_keyway")),
    )
    .unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (make deps installs systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|line| line.split("exposure level for keyway.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{report}");
    let text = std::fs::read_to_string(&unit).unwrap();
    for directive in [
        "ExecStartPre=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=",
    ] {
        assert!(text.contains(directive), "{directive} missing");
    }
    assert!(
        !text.contains("\nAmbientCapabilities=CAP"),
        "no capability for ports >= 1024"
    );
}
