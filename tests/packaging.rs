//! Packaging pieces: the systemd units pass `systemd-analyze verify` (offline, with the
//! binary path pointed at the one Cargo built), and the man page and shell completions are
//! generated from the command line definition.

#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrovpn")
}

#[test]
fn systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("FERROVPN_REQUIRE_INTEROP").is_none(),
            "systemd-analyze is missing (package systemd)"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrovpn-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("installer/systemd");
    for (unit, instance) in [
        ("ferrovpn-client@.service", "ferrovpn-client@office.service"),
        ("ferrovpn-server@.service", "ferrovpn-server@main.service"),
    ] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/ferrovpn "), "{unit}");
        let path = dir.join(instance);
        std::fs::write(&path, text.replace("/usr/bin/ferrovpn", bin())).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{unit}: systemd-analyze verify: {:?}\n{stderr}",
            out.status
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn man_page_and_completions_cover_every_command() {
    let man = Command::new(bin()).arg("manpage").output().unwrap();
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.starts_with(".ie") && man.contains(".TH ferrovpn 1"),
        "{man}"
    );
    for sh in ["bash", "zsh", "fish"] {
        let out = Command::new(bin())
            .args(["completions", sh])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sh}");
        let text = String::from_utf8_lossy(&out.stdout);
        for cmd in [
            "connect",
            "proxy",
            "serve",
            "demo",
            "init-server",
            "add-client",
            "genkey",
        ] {
            assert!(text.contains(cmd), "{sh} completions lack {cmd}");
            let roff = cmd.replace('-', "\\-");
            assert!(man.contains(&roff), "the man page lacks {cmd}");
        }
    }
}
