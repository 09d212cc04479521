//! The server under test, pluggable like the client: `ferrovpn serve` (the default) or the
//! reference `openvpn` server (`FERROVPN_INTEROP_SERVER=openvpn`), both started inside the lab's
//! server namespace from the same server.conf text (OpenVPN syntax). The clients are the Debian
//! `openvpn` 2.6 client, one per namespace ([`OvpnClient`]).
//!
//! Also here: a PKI with any number of client certificates and an optional CRL ([`ServerPki`]),
//! control-channel keys ([`WrapKeys`]), client profiles ([`Profile`]), and the management
//! interface (`status 2`, `kill`) spoken from inside the server namespace.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

use super::client::ferrovpn_bin;
use super::netns::{Lab, Proc, run_ok};
use super::pki;
use super::proxy::in_netns;

/// What the server (either implementation) logs once it listens.
pub const LOG_READY: &str = "Initialization Sequence Completed";
/// What the openvpn client logs once its tunnel is up.
pub const LOG_CONNECTED: &str = "Initialization Sequence Completed";
pub const PORT: u16 = 1194;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerImpl {
    /// `ferrovpn serve server.conf --verb N` (N from `FERROVPN_INTEROP_VERB`, default 4).
    Ferrovpn,
    /// `openvpn --config server.conf` (the reference, to validate the tests themselves).
    OpenVpn,
}

impl ServerImpl {
    /// From `FERROVPN_INTEROP_SERVER` (`ferrovpn`, the default, or `openvpn`).
    pub fn from_env() -> ServerImpl {
        match std::env::var("FERROVPN_INTEROP_SERVER").as_deref() {
            Err(_) | Ok("") | Ok("ferrovpn") => ServerImpl::Ferrovpn,
            Ok("openvpn") => ServerImpl::OpenVpn,
            Ok(other) => panic!("FERROVPN_INTEROP_SERVER={other:?}: expected ferrovpn or openvpn"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ServerImpl::Ferrovpn => "ferrovpn",
            ServerImpl::OpenVpn => "openvpn",
        }
    }
}

fn require_interop() -> bool {
    std::env::var("FERROVPN_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// Gate for every server interop test: `Some(server)` if it can run, `None` (after printing why)
/// if not. With `FERROVPN_REQUIRE_INTEROP=1` a missing prerequisite is a failure instead.
pub fn server_ready(test: &str, extra: &[&str]) -> Option<ServerImpl> {
    let imp = ServerImpl::from_env();
    let mut missing = super::interop_missing();
    if missing.is_none() {
        missing = extra
            .iter()
            .find(|p| !super::in_path(p))
            .map(|p| format!("`{p}` is not installed"));
    }
    if missing.is_none() && imp == ServerImpl::Ferrovpn && ferrovpn_bin().is_none() {
        missing = Some("the ferrovpn binary was not built (needs feature `runtime`)".into());
    }
    match missing {
        None => {
            eprintln!("[{test}] server: {}, clients: openvpn", imp.name());
            Some(imp)
        }
        Some(why) if require_interop() => {
            panic!("[{test}] server interop test cannot run: {why} (FERROVPN_REQUIRE_INTEROP=1)")
        }
        Some(why) => {
            eprintln!(
                "[{test}] skipping server interop test: {why} \
                 (set FERROVPN_REQUIRE_INTEROP=1 to fail instead)"
            );
            None
        }
    }
}

/// For tests only `ferrovpn serve` can pass: prints why and returns false for openvpn.
pub fn only_ferrovpn(test: &str, imp: ServerImpl, why: &str) -> bool {
    if imp == ServerImpl::Ferrovpn {
        return true;
    }
    eprintln!("[{test}] skipped for the openvpn server: {why}");
    false
}

// ---------------------------------------------------------------------------------------------
// PKI

/// A CA, a server certificate and any number of client certificates (by common name), and a CRL
/// revoking some of them. PEM files in `dir`.
#[derive(Clone, Debug)]
pub struct ServerPki {
    pub dir: PathBuf,
    pub ca_crt: PathBuf,
    /// CN=server, EKU serverAuth.
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    /// (CN, certificate, key); EKU clientAuth.
    pub clients: Vec<(String, PathBuf, PathBuf)>,
    /// `crl.pem` revoking the `revoked` clients (only when there are some).
    pub crl: Option<PathBuf>,
}

fn cert_params(cn: &str, serial: u8) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "ferrovpn server interop tests");
    p.distinguished_name = dn;
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    // Small positive serials (one byte below 0x80): easy to read in `openssl crl -text`.
    assert!(serial < 0x80);
    p.serial_number = Some(SerialNumber::from_slice(&[serial]));
    p
}

impl ServerPki {
    /// Generates everything into `dir`. Clients get serials 0x10, 0x11, ... in the order given;
    /// every CN in `revoked` must be one of `clients`.
    pub fn generate(dir: &Path, clients: &[&str], revoked: &[&str]) -> ServerPki {
        fs::create_dir_all(dir).expect("pki dir");
        let new_key = || KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256");
        let ca_key = new_key();
        let mut ca_params = cert_params("ferrovpn server-test CA", 1);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            fs::write(&path, pem).expect("write pem");
            path
        };
        let leaf =
            |cn: &str, serial: u8, eku: ExtendedKeyUsagePurpose, ku: Vec<KeyUsagePurpose>| {
                let key = new_key();
                let mut p = cert_params(cn, serial);
                p.is_ca = IsCa::ExplicitNoCa;
                p.key_usages = ku;
                p.extended_key_usages = vec![eku];
                p.use_authority_key_identifier_extension = true;
                let cert = p.signed_by(&key, &ca, &ca_key).expect("leaf");
                (
                    write(&format!("{cn}.crt"), &cert.pem()),
                    write(&format!("{cn}.key"), &key.serialize_pem()),
                )
            };
        let (server_crt, server_key) = leaf(
            "server",
            2,
            ExtendedKeyUsagePurpose::ServerAuth,
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
        );
        let mut out = Vec::new();
        let mut revoked_serials = Vec::new();
        for (i, cn) in clients.iter().enumerate() {
            let serial = 0x10 + u8::try_from(i).expect("too many clients");
            let (crt, key) = leaf(
                cn,
                serial,
                ExtendedKeyUsagePurpose::ClientAuth,
                vec![KeyUsagePurpose::DigitalSignature],
            );
            if revoked.contains(cn) {
                revoked_serials.push(serial);
            }
            out.push(((*cn).to_owned(), crt, key));
        }
        assert_eq!(
            revoked_serials.len(),
            revoked.len(),
            "revoked CNs must be clients"
        );
        let crl = (!revoked_serials.is_empty()).then(|| {
            let params = CertificateRevocationListParams {
                this_update: rcgen::date_time_ymd(2024, 1, 1),
                next_update: rcgen::date_time_ymd(2099, 1, 1),
                crl_number: SerialNumber::from_slice(&[1]),
                issuing_distribution_point: None,
                revoked_certs: revoked_serials
                    .iter()
                    .map(|&s| RevokedCertParams {
                        serial_number: SerialNumber::from_slice(&[s]),
                        revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                        reason_code: Some(RevocationReason::KeyCompromise),
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            };
            let crl = params.signed_by(&ca, &ca_key).expect("CRL");
            write("crl.pem", &crl.pem().expect("CRL PEM"))
        });
        ServerPki {
            dir: dir.to_owned(),
            ca_crt: write("ca.crt", &ca.pem()),
            server_crt,
            server_key,
            clients: out,
            crl,
        }
    }

    /// Certificate and key of client `cn`.
    pub fn client(&self, cn: &str) -> (&Path, &Path) {
        let (_, crt, key) = self
            .clients
            .iter()
            .find(|(c, ..)| c == cn)
            .unwrap_or_else(|| panic!("no client certificate for {cn}"));
        (crt, key)
    }
}

/// Control-channel wrapping keys: the server's directive and what each client profile gets.
#[derive(Clone, Debug)]
pub struct WrapKeys {
    /// e.g. `tls-crypt /path/tc.key` or `tls-crypt-v2 /path/srv.key`.
    pub server_line: String,
    /// `tls-crypt` or `tls-crypt-v2`: the inline block in the client profile.
    pub client_tag: &'static str,
    pub client_key: PathBuf,
}

impl WrapKeys {
    /// `openvpn --genkey secret tc.key`; both sides `tls-crypt tc.key`.
    pub fn tls_crypt(dir: &Path) -> WrapKeys {
        let key = dir.join("tc.key");
        pki::genkey_secret(&key);
        WrapKeys {
            server_line: format!("tls-crypt {}", key.display()),
            client_tag: "tls-crypt",
            client_key: key,
        }
    }

    /// `openvpn --genkey tls-crypt-v2-server srv.key` and
    /// `openvpn --tls-crypt-v2 srv.key --genkey tls-crypt-v2-client cli.key`.
    pub fn tls_crypt_v2(dir: &Path) -> WrapKeys {
        let srv = dir.join("tc2-srv.key");
        let cli = dir.join("tc2-cli.key");
        pki::genkey_tls_crypt_v2_server(&srv);
        pki::genkey_tls_crypt_v2_client(&srv, &cli);
        WrapKeys {
            server_line: format!("tls-crypt-v2 {}", srv.display()),
            client_tag: "tls-crypt-v2",
            client_key: cli,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// server.conf text, one directive per line.
#[derive(Clone, Debug, Default)]
pub struct ServerConf {
    pub lines: Vec<String>,
}

impl ServerConf {
    pub fn new() -> ServerConf {
        ServerConf {
            lines: vec!["# generated by tests/support/server.rs".into()],
        }
    }

    pub fn line(&mut self, s: impl Into<String>) -> &mut ServerConf {
        self.lines.push(s.into());
        self
    }

    /// Replaces the line(s) whose first word is `directive` with `line` (appends if none).
    pub fn set(&mut self, directive: &str, line: impl Into<String>) -> &mut ServerConf {
        self.lines
            .retain(|l| l.split_whitespace().next() != Some(directive));
        self.line(line)
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }

    /// The part every test shares: `dev tun`, `topology subnet`, `server NET MASK`, the
    /// certificates, `dh none`, `keepalive 2 20`, `persist-key`, `persist-tun`, `verb 4`.
    /// The listener (`local`/`port`/`proto`) and the rest are up to the test.
    pub fn common(pki: &ServerPki, net: &str, mask: &str) -> ServerConf {
        let mut c = ServerConf::new();
        c.line("dev tun")
            .line("topology subnet")
            .line(format!("server {net} {mask}"))
            .line(format!("ca {}", pki.ca_crt.display()))
            .line(format!("cert {}", pki.server_crt.display()))
            .line(format!("key {}", pki.server_key.display()))
            .line("dh none")
            .line("keepalive 2 20")
            .line("persist-key")
            .line("persist-tun")
            .line("verb 4");
        c
    }

    /// `local ADDR`, `port 1194`, `proto udp` / `proto tcp-server`.
    pub fn listen(&mut self, addr: &str, proto: Proto) -> &mut ServerConf {
        self.line(format!("local {addr}"))
            .line(format!("port {PORT}"))
            .line(match proto {
                Proto::Udp => "proto udp",
                Proto::Tcp => "proto tcp-server",
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// How a client profile authenticates.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// `<cert>`/`<key>` of this CN from the [`ServerPki`].
    Cert(String),
    /// `auth-user-pass FILE` with these credentials, no client certificate.
    UserPass(String, String),
}

/// A client profile for the openvpn 2.6 client.
#[derive(Clone, Debug)]
pub struct Profile {
    pub remote: String,
    pub proto: Proto,
    pub auth: ClientAuth,
    pub wrap: Option<WrapKeys>,
    pub extra: Vec<String>,
}

impl Profile {
    pub fn new(lab: &Lab, proto: Proto, auth: ClientAuth, wrap: Option<&WrapKeys>) -> Profile {
        Profile {
            remote: lab.server_underlay_v4(),
            proto,
            auth,
            wrap: wrap.cloned(),
            extra: Vec::new(),
        }
    }

    /// Writes `lab.dir/clients/NAME.ovpn` (inline keys) and returns its path.
    pub fn write(&self, lab: &Lab, pki: &ServerPki, name: &str) -> PathBuf {
        let dir = lab.dir.join("clients");
        fs::create_dir_all(&dir).expect("clients dir");
        let inline = |c: &mut String, tag: &str, path: &Path| {
            let body =
                fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let _ = writeln!(c, "<{tag}>\n{}\n</{tag}>", body.trim_end());
        };
        let mut c = String::new();
        let _ = writeln!(c, "# generated by tests/support/server.rs");
        let _ = writeln!(c, "client\ndev tun\nnobind");
        let _ = writeln!(c, "remote {} {PORT} {}", self.remote, self.proto.name());
        let _ = writeln!(c, "remote-cert-tls server");
        // Reconnect quickly (the default backoff grows to minutes).
        let _ = writeln!(c, "connect-retry 1 2");
        inline(&mut c, "ca", &pki.ca_crt);
        match &self.auth {
            ClientAuth::Cert(cn) => {
                let (crt, key) = pki.client(cn);
                inline(&mut c, "cert", crt);
                inline(&mut c, "key", key);
            }
            ClientAuth::UserPass(user, pass) => {
                let creds = dir.join(format!("{name}.creds"));
                fs::write(&creds, format!("{user}\n{pass}\n")).expect("write creds");
                let _ = writeln!(c, "auth-user-pass {}", creds.display());
            }
        }
        if let Some(w) = &self.wrap {
            inline(&mut c, w.client_tag, &w.client_key);
        }
        if self.proto == Proto::Udp {
            let _ = writeln!(c, "explicit-exit-notify 1");
        }
        let _ = writeln!(c, "verb 3");
        for e in &self.extra {
            let _ = writeln!(c, "{e}");
        }
        let path = dir.join(format!("{name}.ovpn"));
        fs::write(&path, c).expect("write profile");
        path
    }
}

// ---------------------------------------------------------------------------------------------
// The server process

/// One `CLIENT_LIST` line of `status 2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEntry {
    pub cn: String,
    /// Real address as `ip:port`.
    pub real: String,
    /// Virtual IPv4 address (empty until assigned).
    pub virt: String,
}

impl ClientEntry {
    /// The IP part of the real address.
    pub fn real_ip(&self) -> &str {
        self.real
            .rsplit_once(':')
            .map_or(self.real.as_str(), |(ip, _)| ip)
    }
}

/// Parses the `CLIENT_LIST` lines of a `status 2` (or `status 3`, tab-separated) reply.
pub fn parse_client_list(status: &str) -> Vec<ClientEntry> {
    status
        .lines()
        .filter_map(|l| {
            let sep = if l.contains('\t') { '\t' } else { ',' };
            let f: Vec<&str> = l.trim_end().split(sep).collect();
            (f.first() == Some(&"CLIENT_LIST") && f.len() >= 4).then(|| ClientEntry {
                cn: f[1].to_owned(),
                real: f[2].to_owned(),
                virt: f[3].to_owned(),
            })
        })
        .collect()
}

/// The server under test, running in the lab's server namespace. Dropping it stops it.
pub struct Server {
    pub imp: ServerImpl,
    pub conf: PathBuf,
    /// From the `management 127.0.0.1 PORT` line of the configuration, if any.
    pub mgmt: Option<u16>,
    pub ns: String,
    pub proc: Proc,
}

impl Server {
    /// Writes `conf` to `lab.dir/server/server.conf`, starts the server in the server namespace
    /// and waits (20 s) for [`LOG_READY`]. Panics (the lab then dumps the logs) if it does not
    /// come up.
    pub fn start(lab: &Lab, imp: ServerImpl, conf: &ServerConf) -> Server {
        let dir = lab.dir.join("server");
        fs::create_dir_all(&dir).expect("server dir");
        let path = dir.join("server.conf");
        let text = conf.text();
        fs::write(&path, &text).expect("write server.conf");
        lab.watch_log("server.conf", &path);
        let mgmt = text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("management"))
                .then(|| w.nth(1).and_then(|p| p.parse().ok()))
                .flatten()
        });
        let conf_s = path.to_string_lossy().into_owned();
        let mut proc = match imp {
            ServerImpl::OpenVpn => lab.spawn(
                "openvpn server",
                &lab.server_ns,
                &["openvpn", "--config", &conf_s],
                "server.log",
            ),
            ServerImpl::Ferrovpn => {
                let bin = ferrovpn_bin().expect("ferrovpn binary not built");
                let bin = bin.to_string_lossy().into_owned();
                let verb = std::env::var("FERROVPN_INTEROP_VERB").unwrap_or_else(|_| "4".into());
                lab.spawn(
                    "ferrovpn server",
                    &lab.server_ns,
                    &[&bin, "serve", &conf_s, "--verb", &verb],
                    "server.log",
                )
            }
        };
        if let Err(e) = proc.wait_for_log(LOG_READY, 1, Duration::from_secs(20)) {
            panic!(
                "the {} server did not start (no {LOG_READY:?} in its log): {e}",
                imp.name()
            );
        }
        Server {
            imp,
            conf: path,
            mgmt,
            ns: lab.server_ns.clone(),
            proc,
        }
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// Sends one command to the management interface (from inside the server namespace) and
    /// returns the reply: the lines up to `END`, or the single `SUCCESS:`/`ERROR:` line.
    pub fn management(&self, cmd: &str) -> Result<String, String> {
        let port = self
            .mgmt
            .ok_or("no `management 127.0.0.1 PORT` line in server.conf")?;
        let cmd = cmd.to_owned();
        in_netns(&self.ns, move || management_query(port, &cmd))
    }

    /// `status 2`, parsed.
    pub fn client_list(&self) -> Result<Vec<ClientEntry>, String> {
        self.management("status 2").map(|s| parse_client_list(&s))
    }

    /// `status 2`: the parsed list and the raw reply (for failure messages).
    pub fn status2(&self) -> Result<(Vec<ClientEntry>, String), String> {
        self.management("status 2")
            .map(|s| (parse_client_list(&s), s))
    }

    /// Polls `status 2` until `pred` holds for the client list (with virtual addresses
    /// assigned); returns that list, or the last reply in the error.
    pub fn wait_client_list(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[ClientEntry]) -> bool,
    ) -> Result<Vec<ClientEntry>, String> {
        let start = Instant::now();
        loop {
            let last = match self.management("status 2") {
                Ok(s) => {
                    let list = parse_client_list(&s);
                    if pred(&list) {
                        return Ok(list);
                    }
                    s
                }
                Err(e) => format!("<management error: {e}>"),
            };
            if start.elapsed() >= timeout {
                return Err(format!(
                    "management `status 2` did not show {what} within {timeout:?}; last reply:\n{last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One management exchange on 127.0.0.1:PORT in the calling thread's namespace. Retries the
/// connection for a few seconds (the interface serves one client at a time).
fn management_query(port: u16, cmd: &str) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    let stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > Duration::from_secs(5) => {
                return Err(format!("connect to management {addr}: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let mut greeting = String::new();
    r.read_line(&mut greeting)
        .map_err(|e| format!("management greeting: {e}"))?;
    writeln!(w, "{cmd}").map_err(|e| format!("management write: {e}"))?;
    let mut out = String::new();
    loop {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) => return Err(format!("management closed the connection; so far: {out}")),
            Ok(_) => {}
            Err(e) => return Err(format!("management read: {e}; so far: {out}")),
        }
        // Real-time notifications (">...") may interleave with the reply.
        if l.starts_with('>') {
            continue;
        }
        out.push_str(&l);
        if l.starts_with("END") || l.starts_with("SUCCESS:") || l.starts_with("ERROR:") {
            break;
        }
    }
    let _ = writeln!(w, "quit");
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Clients

/// The openvpn 2.6 client in one namespace.
pub struct OvpnClient {
    pub name: String,
    pub ns: String,
    pub proc: Proc,
}

impl OvpnClient {
    /// `openvpn --config PROFILE` in namespace `ns`, log `client-NAME.log` (no up/down scripts:
    /// it leaves the namespace's resolv.conf alone).
    pub fn start(lab: &Lab, ns: &str, name: &str, profile: &Path) -> OvpnClient {
        let profile = profile.to_string_lossy().into_owned();
        let proc = lab.spawn(
            &format!("openvpn client {name}"),
            ns,
            &["openvpn", "--config", &profile],
            &format!("client-{name}.log"),
        );
        OvpnClient {
            name: name.to_owned(),
            ns: ns.to_owned(),
            proc,
        }
    }

    /// Waits for the `count`-th [`LOG_CONNECTED`].
    pub fn wait_connected(&mut self, count: usize, timeout: Duration) -> Result<Duration, String> {
        self.proc.wait_for_log(LOG_CONNECTED, count, timeout)
    }

    pub fn connected_count(&self) -> usize {
        self.proc.count_in_log(LOG_CONNECTED)
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// The IPv4 address of the TUN device in its namespace.
    pub fn tunnel_addr(&self) -> Option<String> {
        tun_addr_v4(&self.ns)
    }

    /// SIGTERM and wait (exit-notify reaches the server).
    pub fn terminate(&mut self) {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_timeout(Duration::from_secs(5));
    }
}

/// The IPv4 address (without prefix) of the first TUN device in `ns`.
pub fn tun_addr_v4(ns: &str) -> Option<String> {
    let out = run_ok(&["ip", "-n", ns, "-o", "-4", "addr", "show"]);
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 3 && f[1].starts_with("tun") && f[2] == "inet")
            .then(|| f[3].split('/').next().unwrap_or("").to_owned())
    })
}

/// Waits up to `timeout` until one of `needles` appears in `proc`'s log; returns it.
pub fn wait_log_any<'a>(proc: &Proc, needles: &[&'a str], timeout: Duration) -> Option<&'a str> {
    let start = Instant::now();
    loop {
        let log = proc.log_text();
        if let Some(n) = needles.iter().find(|n| log.contains(*n)) {
            return Some(n);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
