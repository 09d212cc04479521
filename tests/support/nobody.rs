//! Running ferrovpn processes as `nobody` when the tests run as root (the no-root tests:
//! `server_userspace.rs`, `server_flood.rs`), and unchanged otherwise.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::client::ferrovpn_bin;

/// The prefix that drops a command to `nobody:nogroup`.
pub const AS_NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--",
];

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The ferrovpn binary as the processes' user can run it (copied into `dir` if `nobody` cannot
/// reach the build's copy).
pub fn binary(dir: &Path) -> String {
    let bin = ferrovpn_bin().expect("ferrovpn binary");
    let b = bin.to_string_lossy().into_owned();
    if !is_root() {
        return b;
    }
    let ok = Command::new("setpriv")
        .args(&AS_NOBODY[1..])
        .args(["test", "-x", &b])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return b;
    }
    let copy = dir.join("ferrovpn");
    fs::copy(&bin, &copy).expect("copy the ferrovpn binary");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
    copy.to_string_lossy().into_owned()
}

/// argv for a ferrovpn process: as `nobody` when we are root.
pub fn ferrovpn_argv<'a>(bin: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = if is_root() {
        AS_NOBODY.to_vec()
    } else {
        Vec::new()
    };
    v.push(bin);
    v.extend_from_slice(args);
    v
}
