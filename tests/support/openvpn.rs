//! The real OpenVPN 2.6 server as a test peer: a server.conf built from [`Knobs`], the process
//! inside the lab's server namespace, and the matching client profile (`.ovpn`) that both the
//! reference `openvpn` client and `ferrovpn connect` must accept.
//!
//! Addresses (X = `Lab::x`): the server listens on 198.18.X.1 (or 2001:db8:X::1 for udp6) port
//! 1194; tunnel network 198.19.X.0/24 (server 198.19.X.1) and 2001:db8:1X::/64 (server ::1); a
//! host only the tunnel reaches, 198.19.255.1 and 2001:db8:ffff::1 on the server's `lo`, reached
//! through pushed routes; pushed DNS 198.19.X.53 and domain `test.internal`.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::netns::{Lab, Proc, exec_in_ok, run_ok};
use super::pki::{self, KeyAlg, Pki};

pub const LOG_CONNECTED: &str = "Initialization Sequence Completed";
pub const PORT: u16 = 1194;
/// A host on the server's `lo` that only pushed routes reach.
pub const VPN_ONLY_V4: &str = "198.19.255.1";
pub const VPN_ONLY_V6: &str = "2001:db8:ffff::1";
pub const PUSHED_DOMAIN: &str = "test.internal";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
    /// UDP over IPv6 on the underlay.
    Udp6,
}

impl Proto {
    pub fn is_udp(self) -> bool {
        matches!(self, Proto::Udp | Proto::Udp6)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    Sha1,
    Sha256,
    Sha512,
}

impl Digest {
    fn name(self) -> &'static str {
        match self {
            Digest::Sha1 => "SHA1",
            Digest::Sha256 => "SHA256",
            Digest::Sha512 => "SHA512",
        }
    }
}

/// Control-channel wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    None,
    /// `tls-auth` with `auth DIGEST` on both sides (server direction 0, client `key-direction 1`).
    TlsAuth(Digest),
    TlsCrypt,
    TlsCryptV2 {
        force_cookie: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    Subnet,
    Net30,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCert {
    /// CN=server with EKU serverAuth.
    Good,
    /// CN=rogue-server with EKU clientAuth only.
    NoServerEku,
}

/// Everything a test can vary. `Knobs::default()` is UDP, tls-crypt, AES-256-GCM, topology
/// subnet, IPv4 only, pushed DNS and routes, certificate authentication, inline client profile.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub proto: Proto,
    pub wrap: Wrap,
    /// `data-ciphers` on both sides.
    pub data_ciphers: String,
    pub topology: Topology,
    /// `server-ipv6` (IPv6 inside the tunnel) and a pushed `route-ipv6`.
    pub ipv6: bool,
    /// push `dhcp-option DNS 198.19.X.53` and `dhcp-option DOMAIN test.internal`.
    pub push_dns: bool,
    /// push a route to [`VPN_ONLY_V4`] (and [`VPN_ONLY_V6`] with `ipv6`).
    pub push_routes: bool,
    pub reneg_sec: Option<u32>,
    /// `keepalive PING RESTART` on the server (pushed to the client).
    pub keepalive: (u32, u32),
    /// Username/password authentication: the server accepts exactly this pair
    /// (`auth-user-pass-verify` script via-file, `verify-client-cert none`,
    /// `username-as-common-name`) and the client profile has no certificate.
    pub user_pass: Option<(String, String)>,
    pub server_cert: ServerCert,
    pub key_alg: KeyAlg,
    /// Inline `<ca>`, `<cert>`, `<key>`, `<tls-*>`, `<auth-user-pass>` blocks in the profile;
    /// otherwise absolute file paths.
    pub inline: bool,
    /// `remote-cert-tls server` in the client profile.
    pub remote_cert_tls: bool,
    /// `management 127.0.0.1 PORT` on the server (inside its namespace).
    pub management: Option<u16>,
    pub extra_server: Vec<String>,
    pub extra_client: Vec<String>,
    /// Extra command-line arguments for `ferrovpn connect` (ignored for the reference client).
    pub ferrovpn_args: Vec<String>,
    /// `local` address of the server instead of the underlay one (e.g. 127.0.0.1, so that only
    /// a proxy in the server namespace reaches it).
    pub listen: Option<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            proto: Proto::Udp,
            wrap: Wrap::TlsCrypt,
            data_ciphers: "AES-256-GCM".into(),
            topology: Topology::Subnet,
            ipv6: false,
            push_dns: true,
            push_routes: true,
            reneg_sec: None,
            keepalive: (2, 20),
            user_pass: None,
            server_cert: ServerCert::Good,
            key_alg: KeyAlg::EcdsaP256,
            inline: true,
            remote_cert_tls: true,
            management: None,
            extra_server: Vec::new(),
            extra_client: Vec::new(),
            ferrovpn_args: Vec::new(),
            listen: None,
        }
    }
}

/// The server side of one lab: keys, configuration and the `openvpn` process.
pub struct OpenVpnServer {
    pub knobs: Knobs,
    pub pki: Pki,
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub log: PathBuf,
    ns: String,
    x: u8,
    /// The client's half of the control-channel key (ta.key or the tls-crypt-v2 client key).
    wrap_client_key: Option<PathBuf>,
    proc: Option<Proc>,
    starts: usize,
}

impl OpenVpnServer {
    /// Generates keys and writes server.conf under `lab.dir/server`; does not start anything.
    pub fn new(lab: &Lab, knobs: Knobs) -> OpenVpnServer {
        let dir = lab.dir.join("server");
        fs::create_dir_all(&dir).expect("server dir");
        let pki = Pki::generate(&lab.dir.join("pki"), knobs.key_alg);
        let x = lab.x;
        let mut c = String::new();
        let mut line = |s: &str| {
            c.push_str(s);
            c.push('\n');
        };
        line("# generated by tests/support/openvpn.rs");
        line("dev tun");
        match knobs.proto {
            Proto::Udp => line(&format!("proto udp4\nlocal {}", lab.server_underlay_v4())),
            Proto::Tcp => line(&format!(
                "proto tcp4-server\nlocal {}",
                lab.server_underlay_v4()
            )),
            Proto::Udp6 => line(&format!("proto udp6\nlocal {}", lab.server_underlay_v6())),
        }
        if let Some(l) = &knobs.listen {
            line(&format!("local {l}"));
        }
        line(&format!("port {PORT}"));
        line(&format!("server 198.19.{x}.0 255.255.255.0"));
        line(match knobs.topology {
            Topology::Subnet => "topology subnet",
            Topology::Net30 => "topology net30",
        });
        if knobs.ipv6 {
            line(&format!("server-ipv6 2001:db8:1{x}::/64"));
        }
        line(&format!("ca {}", pki.ca_crt.display()));
        let (crt, key) = match knobs.server_cert {
            ServerCert::Good => (&pki.server_crt, &pki.server_key),
            ServerCert::NoServerEku => (&pki.rogue_server_crt, &pki.rogue_server_key),
        };
        line(&format!("cert {}\nkey {}", crt.display(), key.display()));
        line("dh none");
        let wrap_client_key = match knobs.wrap {
            Wrap::None => None,
            Wrap::TlsAuth(d) => {
                let ta = dir.join("ta.key");
                pki::genkey_secret(&ta);
                line(&format!("tls-auth {} 0\nauth {}", ta.display(), d.name()));
                Some(ta)
            }
            Wrap::TlsCrypt => {
                let ta = dir.join("tc.key");
                pki::genkey_secret(&ta);
                line(&format!("tls-crypt {}", ta.display()));
                Some(ta)
            }
            Wrap::TlsCryptV2 { force_cookie } => {
                let srv = dir.join("tc2-server.key");
                let cli = dir.join("tc2-client.key");
                pki::genkey_tls_crypt_v2_server(&srv);
                pki::genkey_tls_crypt_v2_client(&srv, &cli);
                let fc = if force_cookie { " force-cookie" } else { "" };
                line(&format!("tls-crypt-v2 {}{fc}", srv.display()));
                Some(cli)
            }
        };
        line(&format!("data-ciphers {}", knobs.data_ciphers));
        line(&format!(
            "keepalive {} {}",
            knobs.keepalive.0, knobs.keepalive.1
        ));
        if let Some(s) = knobs.reneg_sec {
            line(&format!("reneg-sec {s}"));
        }
        if knobs.push_dns {
            line(&format!("push \"dhcp-option DNS 198.19.{x}.53\""));
            line(&format!("push \"dhcp-option DOMAIN {PUSHED_DOMAIN}\""));
        }
        if knobs.push_routes {
            line(&format!("push \"route {VPN_ONLY_V4} 255.255.255.255\""));
            if knobs.ipv6 {
                line(&format!("push \"route-ipv6 {VPN_ONLY_V6}/128\""));
            }
        }
        if let Some((user, pass)) = &knobs.user_pass {
            let script = dir.join("check-user-pass.sh");
            fs::write(&script, user_pass_script(user, pass)).expect("write auth script");
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
            line("script-security 2");
            line(&format!(
                "auth-user-pass-verify {} via-file",
                script.display()
            ));
            line("verify-client-cert none");
            line("username-as-common-name");
        }
        if knobs.proto.is_udp() {
            line("explicit-exit-notify 1");
        }
        if let Some(port) = knobs.management {
            line(&format!("management 127.0.0.1 {port}"));
        }
        line("verb 4");
        for e in &knobs.extra_server {
            line(e);
        }
        let conf = dir.join("server.conf");
        fs::write(&conf, c).expect("write server.conf");

        // The host that only the tunnel reaches.
        let ns = lab.server_ns.clone();
        run_ok(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{VPN_ONLY_V4}/32"),
            "dev",
            "lo",
        ]);
        run_ok(&[
            "ip",
            "-n",
            &ns,
            "-6",
            "addr",
            "add",
            &format!("{VPN_ONLY_V6}/128"),
            "dev",
            "lo",
        ]);

        let log = lab.dir.join("server.log");
        lab.watch_log("openvpn server config", &conf);
        OpenVpnServer {
            knobs,
            pki,
            dir,
            conf,
            log,
            ns,
            x,
            wrap_client_key,
            proc: None,
            starts: 0,
        }
    }

    /// Starts `openvpn` (again) in the server namespace and waits (20 s) until it listens.
    /// Returns how long that took.
    pub fn start(&mut self, lab: &Lab) -> Duration {
        assert!(self.proc.is_none(), "server already running");
        let conf = self.conf.to_string_lossy().into_owned();
        let mut p = lab.spawn(
            "openvpn server",
            &self.ns,
            &["openvpn", "--config", &conf],
            "server.log",
        );
        self.starts += 1;
        if self.starts > 1 {
            lab.watch_log("(same server log, appended by restarts)", &self.log);
        }
        let took = p.wait_for_log(LOG_CONNECTED, self.starts, Duration::from_secs(20));
        self.proc = Some(p);
        took.unwrap_or_else(|e| panic!("openvpn server did not start: {e}"))
    }

    /// Stops the server with SIGTERM (up to 10 s, then SIGKILL); returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut p = self.proc.take().expect("server not running");
        p.stop_with(Duration::from_secs(10))
    }

    /// Kills the server with SIGKILL: no RESTART/exit message reaches the clients.
    pub fn kill(&mut self) -> std::process::ExitStatus {
        let mut p = self.proc.take().expect("server not running");
        p.kill()
    }

    /// Sends `sig` to the running server (SIGUSR1: a soft restart inside the same process, which
    /// logs [`LOG_CONNECTED`] once more when it is back).
    pub fn signal(&mut self, sig: i32) {
        self.proc.as_mut().expect("server not running").signal(sig);
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.try_status().is_none())
    }

    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn count_in_log(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until the server log has `needle` on at least `count` lines.
    pub fn wait_for_log(
        &self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_for_any(&[needle], count, timeout).map(|_| ())
    }

    /// Waits until one of `needles` occurs on at least `count` lines; returns which one.
    pub fn wait_for_any<'a>(
        &self,
        needles: &[&'a str],
        count: usize,
        timeout: Duration,
    ) -> Result<&'a str, String> {
        let start = std::time::Instant::now();
        loop {
            if let Some(n) = needles.iter().find(|n| self.count_in_log(n) >= count) {
                return Ok(n);
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "server did not log any of {needles:?} (x{count}) within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends one command to the management interface (needs `Knobs::management`) and returns
    /// the reply up to `END` (or the single SUCCESS/ERROR line).
    pub fn management(&self, cmd: &str) -> String {
        let port = self
            .knobs
            .management
            .expect("management port not configured");
        let py = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
f = s.makefile("rwb")
f.readline()
f.write(sys.argv[2].encode() + b"\n"); f.flush()
out = []
while True:
    l = f.readline().decode()
    if not l: break
    out.append(l)
    if l.startswith(("END", "SUCCESS:", "ERROR:")): break
sys.stdout.write("".join(out))
"#;
        exec_in_ok(
            &self.ns,
            &[super::python3(), "-c", py, &port.to_string(), cmd],
        )
    }

    /// Server address inside the tunnel.
    pub fn tunnel_v4(&self) -> String {
        format!("198.19.{}.1", self.x)
    }

    pub fn tunnel_v6(&self) -> String {
        format!("2001:db8:1{}::1", self.x)
    }

    pub fn pushed_dns(&self) -> String {
        format!("198.19.{}.53", self.x)
    }

    /// Writes the client profile to `lab.dir/client/NAME` and returns its path.
    pub fn client_profile(&self, lab: &Lab, name: &str) -> PathBuf {
        self.client_profile_with(lab, name, self.knobs.user_pass.clone())
    }

    /// Like [`Self::client_profile`] but with the given credentials (e.g. a wrong password).
    pub fn client_profile_with(
        &self,
        lab: &Lab,
        name: &str,
        user_pass: Option<(String, String)>,
    ) -> PathBuf {
        let k = &self.knobs;
        let dir = lab.dir.join("client");
        fs::create_dir_all(&dir).expect("client dir");
        let mut c = String::new();
        let _ = writeln!(c, "# generated by tests/support/openvpn.rs");
        let _ = writeln!(c, "client\ndev tun\nnobind");
        let _ = match k.proto {
            Proto::Udp => writeln!(c, "remote {} {PORT} udp", lab.server_underlay_v4()),
            Proto::Tcp => writeln!(c, "remote {} {PORT} tcp", lab.server_underlay_v4()),
            Proto::Udp6 => writeln!(c, "remote {} {PORT} udp6", lab.server_underlay_v6()),
        };
        if k.remote_cert_tls {
            let _ = writeln!(c, "remote-cert-tls server");
        }
        let _ = writeln!(c, "data-ciphers {}", k.data_ciphers);
        let file = |c: &mut String, tag: &str, path: &Path| {
            if k.inline {
                let body = fs::read_to_string(path).expect("read key file");
                let _ = writeln!(c, "<{tag}>\n{}\n</{tag}>", body.trim_end());
            } else {
                let _ = writeln!(c, "{tag} {}", path.display());
            }
        };
        file(&mut c, "ca", &self.pki.ca_crt);
        match &user_pass {
            None => {
                file(&mut c, "cert", &self.pki.client_crt);
                file(&mut c, "key", &self.pki.client_key);
            }
            Some((user, pass)) => {
                let creds = dir.join(format!("{name}.creds"));
                fs::write(&creds, format!("{user}\n{pass}\n")).expect("write creds");
                fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).expect("chmod");
                file(&mut c, "auth-user-pass", &creds);
            }
        }
        match (k.wrap, &self.wrap_client_key) {
            (Wrap::TlsAuth(d), Some(key)) => {
                let _ = writeln!(c, "key-direction 1\nauth {}", d.name());
                file(&mut c, "tls-auth", key);
            }
            (Wrap::TlsCrypt, Some(key)) => file(&mut c, "tls-crypt", key),
            (Wrap::TlsCryptV2 { .. }, Some(key)) => file(&mut c, "tls-crypt-v2", key),
            _ => {}
        }
        if k.proto.is_udp() {
            let _ = writeln!(c, "explicit-exit-notify 1");
        }
        let _ = writeln!(c, "verb 3");
        for e in &k.extra_client {
            let _ = writeln!(c, "{e}");
        }
        let path = dir.join(name);
        fs::write(&path, c).expect("write profile");
        lab.watch_log("client profile", &path);
        path
    }
}

fn user_pass_script(user: &str, pass: &str) -> String {
    format!(
        r#"#!/bin/sh
# auth-user-pass-verify via-file: $1 holds the user name and the password on two lines.
u=$(sed -n 1p "$1")
p=$(sed -n 2p "$1")
if [ "$u" = '{user}' ] && [ "$p" = '{pass}' ]; then
  echo "check-user-pass: accepted $u" >&2
  exit 0
fi
echo "check-user-pass: refused $u" >&2
exit 1
"#
    )
}
