//! The profile corpus (`tests/profiles/*.ovpn`): layouts providers and self-hosters ship, each
//! checked with `ferrovpn check` against its recorded result (`NAME.expect`: the exit status on
//! the first line, then what `check` prints). A change in how a profile is read shows up here as
//! a diff to review; `FERROVPN_BLESS=1 cargo test --test profiles` rewrites the records.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles")
}

fn profiles() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("tests/profiles")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".ovpn").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// What `ferrovpn check NAME.ovpn` reports, run from the corpus directory so that paths in the
/// output are relative and stable.
fn check(name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovpn"))
        .arg("check")
        .arg(format!("{name}.ovpn"))
        .current_dir(corpus_dir())
        .env_remove("FERROVPN_LOG")
        .output()
        .expect("run ferrovpn check");
    assert!(
        out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{name}: check panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "exit {}\n{}",
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout)
    )
}

#[test]
fn corpus_has_the_layouts_people_ship() {
    let names = profiles();
    assert!(
        names.len() >= 40,
        "the corpus must hold at least 40 profiles, has {}",
        names.len()
    );
    // Every profile has a recorded result, and every record a profile.
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".expect") {
            assert!(
                names.iter().any(|n| n == stem),
                "{name} has no profile beside it"
            );
        }
    }
}

#[test]
fn every_profile_reads_as_recorded() {
    let bless = std::env::var_os("FERROVPN_BLESS").is_some();
    let mut mismatches = Vec::new();
    for name in profiles() {
        let got = check(&name);
        let path = corpus_dir().join(format!("{name}.expect"));
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!("{name}.expect is missing: run FERROVPN_BLESS=1 cargo test --test profiles")
        });
        if got != want {
            mismatches.push(format!(
                "--- {name}.expect (recorded)\n{want}\n+++ {name} (now)\n{got}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} profile(s) read differently than recorded (review, then FERROVPN_BLESS=1 to accept):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// The records themselves hold what matters: no profile crashes `check` (exit 0 or 1 only), the
/// broken ones fail with their line, and profiles with Windows-only directives still pass.
#[test]
fn records_say_what_users_need() {
    for name in profiles() {
        let got = check(&name);
        let first = got.lines().next().unwrap_or_default();
        assert!(
            first == "exit 0" || first == "exit 1",
            "{name}: unexpected status: {first}"
        );
        if name.starts_with("broken-") {
            assert_eq!(first, "exit 1", "{name} must be refused:\n{got}");
            assert!(got.contains("error: "), "{name}: no error line:\n{got}");
        }
        if name.starts_with("windows-only") || name.starts_with("unknown-directives") {
            assert_eq!(first, "exit 0", "{name} must only warn:\n{got}");
            assert!(got.contains("warning: "), "{name}: no warning:\n{got}");
        }
    }
}
