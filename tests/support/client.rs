//! The client under test, pluggable: `ferrovpn connect` (the default) or the reference `openvpn`
//! client (`FERROVPN_INTEROP_CLIENT=openvpn`), both started in the lab's client namespace from
//! the same `.ovpn` profile.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use super::netns::{Lab, Proc};
use super::openvpn::LOG_CONNECTED;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientImpl {
    /// `ferrovpn connect PROFILE --verb N --state-dir LAB/ferrovpn-state` (N from
    /// `FERROVPN_INTEROP_VERB`, default 4).
    Ferrovpn,
    /// `openvpn --config PROFILE`, plus an up/down script that applies pushed DNS to
    /// /etc/resolv.conf in place and restores it, so the same DNS checks hold for both.
    OpenVpn,
}

impl ClientImpl {
    /// From `FERROVPN_INTEROP_CLIENT` (`ferrovpn`, the default, or `openvpn`).
    pub fn from_env() -> ClientImpl {
        match std::env::var("FERROVPN_INTEROP_CLIENT").as_deref() {
            Err(_) | Ok("") | Ok("ferrovpn") => ClientImpl::Ferrovpn,
            Ok("openvpn") => ClientImpl::OpenVpn,
            Ok(other) => panic!("FERROVPN_INTEROP_CLIENT={other:?}: expected ferrovpn or openvpn"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientImpl::Ferrovpn => "ferrovpn",
            ClientImpl::OpenVpn => "openvpn",
        }
    }
}

/// Path of the ferrovpn binary: `FERROVPN_BIN`, else the one Cargo built for this test.
pub fn ferrovpn_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERROVPN_BIN") {
        return Some(p.into());
    }
    option_env!("CARGO_BIN_EXE_ferrovpn").map(PathBuf::from)
}

/// A running client.
pub struct Client {
    pub imp: ClientImpl,
    pub proc: Proc,
}

impl Client {
    /// Starts the client on `profile` in the lab's client namespace (cwd: the lab directory).
    pub fn start(lab: &Lab, imp: ClientImpl, profile: &Path, ferrovpn_args: &[String]) -> Client {
        Client::start_with_stdin(lab, imp, profile, ferrovpn_args, None)
    }

    /// [`Client::start`] with standard input read from `stdin` (answers to prompts).
    pub fn start_with_stdin(
        lab: &Lab,
        imp: ClientImpl,
        profile: &Path,
        ferrovpn_args: &[String],
        stdin: Option<&Path>,
    ) -> Client {
        let spawn = |name: &str, argv: &[&str], log: &str| match stdin {
            Some(f) => lab.spawn_with_stdin(name, &lab.client_ns, argv, log, f),
            None => lab.spawn(name, &lab.client_ns, argv, log),
        };
        let profile = profile.to_string_lossy().into_owned();
        let log = format!("client-{}.log", imp.name());
        let proc = match imp {
            ClientImpl::Ferrovpn => {
                let bin = ferrovpn_bin().expect("ferrovpn binary not built (feature `runtime`?)");
                let verb = std::env::var("FERROVPN_INTEROP_VERB").unwrap_or_else(|_| "4".into());
                let bin = bin.to_string_lossy().into_owned();
                // Its DNS backup (crash recovery) stays in the lab, not in /run/ferrovpn.
                let state = lab
                    .dir
                    .join("ferrovpn-state")
                    .to_string_lossy()
                    .into_owned();
                let mut argv: Vec<&str> = vec![
                    &bin,
                    "connect",
                    &profile,
                    "--verb",
                    &verb,
                    "--state-dir",
                    &state,
                ];
                argv.extend(ferrovpn_args.iter().map(String::as_str));
                spawn("ferrovpn client", &argv, &log)
            }
            ClientImpl::OpenVpn => {
                let script = write_dns_script(&lab.dir);
                let saved = lab.dir.join("resolv.conf.saved");
                let updown = format!("{} {}", script.display(), saved.display());
                spawn(
                    "openvpn client",
                    &[
                        "openvpn",
                        "--config",
                        &profile,
                        "--script-security",
                        "2",
                        "--up",
                        &updown,
                        "--down",
                        &updown,
                    ],
                    &log,
                )
            }
        };
        Client { imp, proc }
    }

    /// Waits for the `count`-th `Initialization Sequence Completed`.
    pub fn wait_connected(&mut self, count: usize, timeout: Duration) -> Result<Duration, String> {
        self.proc.wait_for_log(LOG_CONNECTED, count, timeout)
    }

    /// SIGTERM (the graceful stop: exit-notify, routes and DNS restored) and wait up to
    /// `timeout`. Returns the exit status, or `None` if it did not exit in time (it is then
    /// still running; dropping the client kills it).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_timeout(timeout)
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }
}

/// An up/down script for the reference client, standing in for what ferrovpn does natively:
/// `up` saves /etc/resolv.conf and rewrites it in place from the pushed `dhcp-option`s, `down`
/// writes the saved copy back (in place: the file is a bind mount inside the namespace).
fn write_dns_script(dir: &Path) -> PathBuf {
    let path = dir.join("dns-updown.sh");
    let body = r#"#!/bin/sh
# usage (from openvpn --up/--down): dns-updown.sh SAVED-COPY [openvpn's arguments...]
saved="$1"
case "$script_type" in
up)
  cat /etc/resolv.conf > "$saved"
  out=""
  for i in $(seq 1 64); do
    eval "opt=\${foreign_option_$i:-}"
    [ -n "$opt" ] || break
    case "$opt" in
      "dhcp-option DNS "*) out="${out}nameserver ${opt#dhcp-option DNS }
" ;;
      "dhcp-option DOMAIN "*) out="${out}search ${opt#dhcp-option DOMAIN }
" ;;
    esac
  done
  [ -n "$out" ] && printf '# written by dns-updown.sh\n%s' "$out" > /etc/resolv.conf
  ;;
down)
  [ -f "$saved" ] && cat "$saved" > /etc/resolv.conf
  ;;
esac
exit 0
"#;
    fs::write(&path, body).expect("write dns script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}
