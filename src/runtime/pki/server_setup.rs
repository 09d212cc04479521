//! Self-hosting: [`init_server`] writes a complete server directory (PKI, tls-crypt-v2 key,
//! server.conf) and [`add_client`] writes a one-file `.ovpn` profile per client. Both only write
//! files; what the host itself still needs (forwarding, NAT, firewall) is returned as text.
//!
//! The server directory:
//!
//! ```text
//! server.conf                 for `ferrovpn serve` and OpenVPN 2.6 (paths relative to DIR)
//! ferrovpn-server.toml        public address, port, protocol and key algorithm, for add_client
//! tls-crypt-v2-server.key     (0600)
//! pki/                        the CA (see PkiDir), server certificate "server"
//! clients/NAME.ovpn           (0600) one per client, everything inline
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{
    CertKind, DEFAULT_CERT_DAYS, KeyAlgo, PkiDir, PkiError, io_err, make_dir, now_unix, write_new,
    write_replace,
};
use crate::config::{KeyKind, generate_key};

/// The name of the CA `init_server` creates.
pub const SERVER_CA_NAME: &str = "ferrovpn CA";
/// The server certificate's name (and CN).
pub const SERVER_CERT_NAME: &str = "server";
/// The port the server listens on.
pub const SERVER_PORT: u16 = 1194;
/// The tunnel network (`server` directive).
pub const TUNNEL_NET: &str = "10.8.0.0";
/// Its netmask.
pub const TUNNEL_MASK: &str = "255.255.255.0";
/// Its prefix form, for NAT rules.
pub const TUNNEL_CIDR: &str = "10.8.0.0/24";

const SETUP_FILE: &str = "ferrovpn-server.toml";
const SERVER_KEY_FILE: &str = "tls-crypt-v2-server.key";

/// Which transports the server listens on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProtoChoice {
    /// UDP (the default: faster, and what OpenVPN clients expect).
    #[default]
    Udp,
    /// TCP (gets through networks that block UDP).
    Tcp,
    /// Both on the same port: two `local` lines (ferrovpn and OpenVPN 2.7+; OpenVPN 2.6 reads
    /// only one listener).
    Both,
}

impl ProtoChoice {
    /// `udp`, `tcp` or `both`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Both => "both",
        }
    }

    fn transports(self) -> &'static [&'static str] {
        match self {
            Self::Udp => &["udp"],
            Self::Tcp => &["tcp"],
            Self::Both => &["udp", "tcp"],
        }
    }
}

impl FromStr for ProtoChoice {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, PkiError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "udp" => Self::Udp,
            "tcp" => Self::Tcp,
            "both" | "udp+tcp" | "tcp+udp" => Self::Both,
            _ => {
                return Err(PkiError::Unknown {
                    what: "protocol",
                    given: s.to_owned(),
                    expected: "udp, tcp or both",
                });
            }
        })
    }
}

/// What [`init_server`] made.
#[derive(Clone, Debug)]
pub struct InitReport {
    /// `DIR/server.conf`.
    pub server_conf: PathBuf,
    /// What the host still needs, with the exact commands (to print; nothing was run).
    pub next_steps: String,
}

/// Writes a complete server setup into `dir` (created if needed): a CA and the server
/// certificate under `dir/pki`, a tls-crypt-v2 server key and `server.conf`.
/// `public_address` (host name or IP the clients connect to) is recorded for [`add_client`];
/// without it, `add_client` asks for it to be set in `ferrovpn-server.toml` first.
pub fn init_server(
    dir: &Path,
    public_address: Option<&str>,
    proto: ProtoChoice,
    algo: KeyAlgo,
) -> Result<InitReport, PkiError> {
    let public_address = public_address.map(str::trim).filter(|a| !a.is_empty());
    if let Some(a) = public_address {
        check_address(a)?;
    }
    for f in ["server.conf", SETUP_FILE, SERVER_KEY_FILE] {
        let path = dir.join(f);
        if path.exists() {
            return Err(PkiError::ServerExists { path });
        }
    }
    make_dir(dir, 0o700)?;
    let mut pki = PkiDir::init(&dir.join("pki"), SERVER_CA_NAME, algo)?;
    pki.issue(CertKind::Server, SERVER_CERT_NAME, algo, DEFAULT_CERT_DAYS)?;

    let rng = crate::runtime::rng::system_rng();
    let key = zeroize::Zeroizing::new(
        generate_key(KeyKind::TlsCryptV2Server, &*rng, None, None, now_unix()).map_err(|why| {
            PkiError::Generate {
                what: "the tls-crypt-v2 server key".into(),
                why,
            }
        })?,
    );
    write_new(&dir.join(SERVER_KEY_FILE), key.as_bytes(), 0o600)?;

    let setup = Setup {
        public_address: public_address.map(str::to_owned),
        port: SERVER_PORT,
        proto,
        algo,
    };
    write_new(&dir.join(SETUP_FILE), setup.to_text().as_bytes(), 0o644)?;
    let server_conf = dir.join("server.conf");
    write_new(&server_conf, server_conf_text(&setup).as_bytes(), 0o644)?;
    make_dir(&dir.join("clients"), 0o700)?;
    Ok(InitReport {
        next_steps: next_steps(dir, &setup),
        server_conf,
    })
}

/// Issues a client certificate `name` in `dir/pki` and a tls-crypt-v2 client key (metadata:
/// the name), and writes `dir/clients/NAME.ovpn` (0600) with everything inline. A revoked
/// client's name can be used again (its old profile is replaced).
pub fn add_client(dir: &Path, name: &str) -> Result<PathBuf, PkiError> {
    super::check_name(name)?;
    let setup = Setup::read(dir)?;
    let Some(host) = setup.public_address.clone() else {
        return Err(PkiError::NoPublicAddress {
            path: dir.join(SETUP_FILE),
        });
    };
    let mut pki = PkiDir::open(&dir.join("pki"))?;

    let key_path = dir.join(SERVER_KEY_FILE);
    let server_key = zeroize::Zeroizing::new(std::fs::read(&key_path).map_err(io_err(&key_path))?);
    let rng = crate::runtime::rng::system_rng();
    let client_key = zeroize::Zeroizing::new(
        generate_key(
            KeyKind::TlsCryptV2Client,
            &*rng,
            Some(&server_key),
            Some(name.as_bytes()),
            now_unix(),
        )
        .map_err(|why| PkiError::Generate {
            what: format!(
                "the tls-crypt-v2 client key for '{name}' (from {})",
                key_path.display()
            ),
            why,
        })?,
    );

    let issued = pki.issue(CertKind::Client, name, setup.algo, DEFAULT_CERT_DAYS)?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(io_err(p));
    let ca = read(&pki.ca_cert_path())?;
    let cert = read(&issued.cert_path)?;
    let key = zeroize::Zeroizing::new(read(&issued.key_path)?);

    let mut text = zeroize::Zeroizing::new(String::new());
    let _ = writeln!(
        text,
        "# ferrovpn client profile '{name}' (certificate serial {}).\n\
         # For ferrovpn (ferrovpn connect {name}.ovpn) and OpenVPN 2.6 (openvpn --config {name}.ovpn).\n\
         # It holds this client's private key: keep it secret.\n\
         client\ndev tun",
        issued.serial
    );
    for t in setup.proto.transports() {
        let _ = writeln!(text, "remote {host} {} {t}", setup.port);
    }
    let _ = writeln!(
        text,
        "resolv-retry infinite\nnobind\npersist-key\npersist-tun\nremote-cert-tls server\nverb 3"
    );
    for (tag, body) in [
        ("ca", ca.as_str()),
        ("cert", cert.as_str()),
        ("key", key.as_str()),
        ("tls-crypt-v2", client_key.as_str()),
    ] {
        let _ = writeln!(text, "<{tag}>\n{}\n</{tag}>", body.trim_end());
    }
    let clients = dir.join("clients");
    make_dir(&clients, 0o700)?;
    let path = clients.join(format!("{name}.ovpn"));
    write_replace(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}

/// What `init_server` records for `add_client`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Setup {
    public_address: Option<String>,
    port: u16,
    proto: ProtoChoice,
    algo: KeyAlgo,
}

impl Setup {
    fn to_text(&self) -> String {
        let addr = match &self.public_address {
            Some(a) => format!("public_address = \"{a}\""),
            None => "# public_address = \"vpn.example.com\"   # set this before adding clients"
                .to_owned(),
        };
        format!(
            "# Written by ferrovpn init-server; read by add-client.\n\
             # The name or address clients connect to:\n{addr}\n\
             port = {}\n\
             # udp, tcp or both\n\
             proto = \"{}\"\n\
             # key algorithm of new client certificates: ecdsa, rsa2048 or rsa3072\n\
             key_algo = \"{}\"\n",
            self.port,
            self.proto.name(),
            self.algo.name()
        )
    }

    fn read(dir: &Path) -> Result<Self, PkiError> {
        let path = dir.join(SETUP_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PkiError::BadSetup {
                    path: path.clone(),
                    why: "missing: is this a directory made by init-server?".into(),
                }
            } else {
                io_err(&path)(e)
            }
        })?;
        let bad = |why: String| PkiError::BadSetup {
            path: path.clone(),
            why,
        };
        let mut s = Self {
            public_address: None,
            port: SERVER_PORT,
            proto: ProtoChoice::Udp,
            algo: KeyAlgo::EcdsaP256,
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(bad(format!("line {}: expected KEY = VALUE", n + 1)));
            };
            // A trailing comment after a value (only outside quotes: values hold no '#').
            let v = v.split('#').next().unwrap_or_default().trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            match k.trim() {
                "public_address" => {
                    check_address(v).map_err(|e| bad(format!("line {}: {e}", n + 1)))?;
                    s.public_address = Some(v.to_owned());
                }
                "port" => {
                    s.port = v
                        .parse()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad(format!("line {}: '{v}' is not a port", n + 1)))?;
                }
                "proto" => s.proto = v.parse().map_err(|e| bad(format!("line {}: {e}", n + 1)))?,
                "key_algo" => {
                    s.algo = v.parse().map_err(|e| bad(format!("line {}: {e}", n + 1)))?
                }
                other => return Err(bad(format!("line {}: unknown key '{other}'", n + 1))),
            }
        }
        Ok(s)
    }
}

/// A host name or IP address literal that can go on a `remote` line as it is.
fn check_address(a: &str) -> Result<(), PkiError> {
    let ok = !a.is_empty()
        && a.len() <= 253
        && !a.starts_with('-')
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if ok {
        return Ok(());
    }
    Err(PkiError::BadName {
        name: a.to_owned(),
        why: "a public address must be a host name or an IP address",
    })
}

fn server_conf_text(s: &Setup) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# ferrovpn server configuration, written by ferrovpn init-server.\n\
         # Run it from this directory (relative paths): `ferrovpn serve server.conf`,\n\
         # or with OpenVPN: `openvpn --cd THIS_DIR --config server.conf`."
    );
    if let Some(a) = &s.public_address {
        for t in s.proto.transports() {
            let _ = writeln!(c, "# ferrovpn: remote {a} {} {t}", s.port);
        }
    }
    let _ = writeln!(c, "port {}", s.port);
    match s.proto {
        ProtoChoice::Udp => c.push_str("proto udp\n"),
        ProtoChoice::Tcp => c.push_str("proto tcp\n"),
        ProtoChoice::Both => {
            let _ = writeln!(
                c,
                "# One listener per line (ferrovpn, OpenVPN 2.7+; for OpenVPN 2.6 keep one\n\
                 # protocol: remove the two 'local' lines and set 'proto udp' or 'proto tcp').\n\
                 proto udp\nlocal * {p} udp\nlocal * {p} tcp",
                p = s.port
            );
        }
    }
    let _ = writeln!(
        c,
        "dev tun\n\
         topology subnet\n\
         server {TUNNEL_NET} {TUNNEL_MASK}\n\
         ifconfig-pool-persist ipp.txt\n\
         keepalive 10 60\n\
         persist-key\n\
         persist-tun\n\
         ca pki/ca.crt\n\
         cert pki/issued/{SERVER_CERT_NAME}.crt\n\
         key pki/private/{SERVER_CERT_NAME}.key\n\
         dh none\n\
         tls-crypt-v2 {SERVER_KEY_FILE}\n\
         crl-verify pki/crl.pem\n\
         data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\n\
         # To send all client traffic through the VPN, enable forwarding and NAT on this host\n\
         # (see the steps init-server printed), then uncomment:\n\
         # push \"redirect-gateway def1\"\n\
         # push \"dhcp-option DNS 9.9.9.9\"\n\
         status status.log"
    );
    if s.proto != ProtoChoice::Tcp {
        c.push_str("explicit-exit-notify 1\n");
    }
    c.push_str("verb 3\n");
    c
}

fn next_steps(dir: &Path, s: &Setup) -> String {
    let d = dir.display();
    let port = s.port;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Server files are in {d}. Nothing has been changed on this host; what it still needs:\n"
    );
    if s.public_address.is_none() {
        let _ = writeln!(
            t,
            "0. Record the address clients connect to (host name or public IP) in\n   \
             {d}/{SETUP_FILE}:  public_address = \"vpn.example.com\"\n"
        );
    }
    let _ = writeln!(
        t,
        "1. Open port {port} in the firewall (and forward it on the router if this host is behind NAT):"
    );
    for p in s.proto.transports() {
        let _ = writeln!(
            t,
            "     nftables: sudo nft add rule inet filter input {p} dport {port} accept\n     \
             iptables: sudo iptables -A INPUT -p {p} --dport {port} -j ACCEPT\n     \
             ufw:      sudo ufw allow {port}/{p}"
        );
    }
    let _ = writeln!(
        t,
        "\n2. Start the server (root, or CAP_NET_ADMIN, for the TUN device):\n     \
         cd {d} && sudo ferrovpn serve server.conf\n   \
         or with OpenVPN:  sudo openvpn --cd {d} --config server.conf\n\n\
         3. Add clients; each gets one file to import into ferrovpn or any OpenVPN app:\n     \
         ferrovpn add-client NAME --dir {d}   -> {d}/clients/NAME.ovpn\n\n\
         4. Optional: to route the clients' internet traffic through this server, enable\n   \
         forwarding and NAT for {TUNNEL_CIDR} (replace eth0 with the interface of the default\n   \
         route: ip route show default):\n     \
         sudo sysctl -w net.ipv4.ip_forward=1\n     \
         echo net.ipv4.ip_forward=1 | sudo tee /etc/sysctl.d/99-ferrovpn.conf\n   \
         with nftables:\n     \
         sudo nft add table ip ferrovpn\n     \
         sudo nft add chain ip ferrovpn postrouting '{{ type nat hook postrouting priority srcnat; }}'\n     \
         sudo nft add rule ip ferrovpn postrouting ip saddr {TUNNEL_CIDR} oifname \"eth0\" masquerade\n   \
         or with iptables:\n     \
         sudo iptables -t nat -A POSTROUTING -s {TUNNEL_CIDR} -o eth0 -j MASQUERADE\n   \
         (if the FORWARD policy is drop, also allow tun0 <-> eth0 forwarding), then uncomment\n   \
         the push \"redirect-gateway def1\" and push \"dhcp-option DNS ...\" lines in server.conf.\n\n\
         5. Revoked certificates are refused through {d}/pki/crl.pem; it expires after {} days,\n   \
         so regenerate it before then (every revocation regenerates it too).",
        super::CRL_DAYS
    );
    t
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::Arc;

    use super::super::test_util::TempDir;
    use super::*;
    use crate::config::{FsLoader, load_server_profile, parse_profile};
    use crate::proto::tls::{
        ClientTlsOptions, ServerTlsSettings, TlsSession, client_config, server_config,
    };

    /// Runs a TLS handshake between the two configurations in memory.
    fn handshake(
        client: Arc<rustls::ClientConfig>,
        server: Arc<rustls::ServerConfig>,
    ) -> Result<(), String> {
        let mut c = TlsSession::client(client).map_err(|e| e.to_string())?;
        let mut s = TlsSession::server(server).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.drain(&mut buf);
            s.feed(&buf).map_err(|e| format!("server: {e}"))?;
            buf.clear();
            s.drain(&mut buf);
            c.feed(&buf).map_err(|e| format!("client: {e}"))?;
            if !c.is_handshaking() && !s.is_handshaking() {
                // The server learns of a rejected client certificate from the client's last flight.
                let mut buf = Vec::new();
                c.drain(&mut buf);
                s.feed(&buf).map_err(|e| format!("server: {e}"))?;
                return Ok(());
            }
        }
        Err("the handshake did not finish".into())
    }

    fn setup(tag: &str, proto: ProtoChoice, algo: KeyAlgo) -> (TempDir, PathBuf) {
        let tmp = TempDir::new(tag);
        let dir = tmp.0.join("srv");
        let r = init_server(&dir, Some("vpn.example.com"), proto, algo).unwrap();
        assert_eq!(r.server_conf, dir.join("server.conf"));
        assert!(r.next_steps.contains("net.ipv4.ip_forward=1"));
        assert!(r.next_steps.contains("MASQUERADE"));
        (tmp, dir)
    }

    /// The generated server.conf and profile load in ferrovpn, and the certificates pass its
    /// verifier both ways; after revocation the server refuses the client.
    #[test]
    fn server_and_client_work_with_ferrovpns_verifier() {
        for (i, algo) in [KeyAlgo::EcdsaP256, KeyAlgo::Rsa2048]
            .into_iter()
            .enumerate()
        {
            let (_tmp, dir) = setup(&format!("verify{i}"), ProtoChoice::Udp, algo);
            let conf = dir.join("server.conf");
            let sp = load_server_profile(&conf).unwrap();
            assert!(sp.tls_crypt_v2.is_some());
            assert!(sp.tls.crl.is_some());
            let ovpn = add_client(&dir, "alice").unwrap();
            assert_eq!(ovpn, dir.join("clients").join("alice.ovpn"));
            let m = std::fs::metadata(&ovpn).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600);
            let text = std::fs::read_to_string(&ovpn).unwrap();
            assert!(
                text.contains("\nremote vpn.example.com 1194 udp\n"),
                "{text}"
            );
            let cp = parse_profile(&text, &ovpn, &FsLoader::for_profile(&ovpn)).unwrap();
            assert!(matches!(
                cp.tls_wrap,
                Some(crate::config::TlsWrap::CryptV2 { .. })
            ));

            let server = server_config(&ServerTlsSettings {
                tls: sp.tls.clone(),
                client_cert_optional: false,
            })
            .unwrap();
            let client = client_config(&cp.tls, ClientTlsOptions::default()).unwrap();
            handshake(client.clone(), server).unwrap();

            // The wrong EKU each way is refused: a server certificate as a client's, and the
            // client's as a server's.
            let pki_dir = dir.join("pki");
            let mut swapped = cp.tls.clone();
            swapped.cert = Some(std::fs::read(pki_dir.join("issued/server.crt")).unwrap());
            swapped.key = Some(std::fs::read(pki_dir.join("private/server.key")).unwrap());
            let server = server_config(&ServerTlsSettings {
                tls: sp.tls.clone(),
                client_cert_optional: false,
            })
            .unwrap();
            let bad_client = client_config(&swapped, ClientTlsOptions::default()).unwrap();
            assert!(handshake(bad_client, server).is_err());
            let mut as_server = sp.tls.clone();
            as_server.cert = cp.tls.cert.clone();
            as_server.key = cp.tls.key.clone();
            let bad_server = server_config(&ServerTlsSettings {
                tls: as_server,
                client_cert_optional: false,
            })
            .unwrap();
            assert!(handshake(client, bad_server).is_err());

            // Revoked: the reloaded server (its CRL) refuses the same client.
            PkiDir::open(&pki_dir).unwrap().revoke("alice").unwrap();
            let sp = load_server_profile(&conf).unwrap();
            let server = server_config(&ServerTlsSettings {
                tls: sp.tls,
                client_cert_optional: false,
            })
            .unwrap();
            let client = client_config(&cp.tls, ClientTlsOptions::default()).unwrap();
            let e = handshake(client, server).unwrap_err();
            assert!(e.to_lowercase().contains("revoked"), "{e}");

            // The name can be used again; the profile is replaced.
            add_client(&dir, "alice").unwrap();
            assert_ne!(std::fs::read_to_string(&ovpn).unwrap(), text);
        }
    }

    #[test]
    fn both_protocols_and_tcp() {
        let (_tmp, dir) = setup("both", ProtoChoice::Both, KeyAlgo::EcdsaP256);
        let conf = dir.join("server.conf");
        let sp = load_server_profile(&conf).unwrap();
        assert_eq!(sp.listeners.len(), 2, "{:?}", sp.listeners);
        let text = std::fs::read_to_string(add_client(&dir, "bob").unwrap()).unwrap();
        assert!(
            text.contains("remote vpn.example.com 1194 udp\nremote vpn.example.com 1194 tcp\n")
        );
        let (_tmp, dir) = setup("tcp", ProtoChoice::Tcp, KeyAlgo::EcdsaP256);
        let text = std::fs::read_to_string(dir.join("server.conf")).unwrap();
        assert!(text.contains("\nproto tcp\n") && !text.contains("explicit-exit-notify"));
        load_server_profile(&dir.join("server.conf")).unwrap();
    }

    #[test]
    fn refusals() {
        let (_tmp, dir) = setup("refuse", ProtoChoice::Udp, KeyAlgo::EcdsaP256);
        assert!(matches!(
            init_server(&dir, None, ProtoChoice::Udp, KeyAlgo::EcdsaP256),
            Err(PkiError::ServerExists { .. })
        ));
        add_client(&dir, "carol").unwrap();
        assert!(matches!(
            add_client(&dir, "carol"),
            Err(PkiError::Duplicate { .. })
        ));
        assert!(matches!(
            add_client(&dir, "../evil"),
            Err(PkiError::BadName { .. })
        ));
        assert!(matches!(
            add_client(&dir, SERVER_CERT_NAME),
            Err(PkiError::Duplicate { .. })
        ));
        let key = dir.join(SERVER_KEY_FILE);
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let tmp = TempDir::new("noaddr");
        let d2 = tmp.0.join("srv");
        let r = init_server(&d2, None, ProtoChoice::Udp, KeyAlgo::EcdsaP256).unwrap();
        assert!(r.next_steps.contains("public_address"));
        assert!(matches!(
            add_client(&d2, "dave"),
            Err(PkiError::NoPublicAddress { .. })
        ));
        assert!(
            init_server(
                &tmp.0.join("x"),
                Some("bad host"),
                ProtoChoice::Udp,
                KeyAlgo::EcdsaP256
            )
            .is_err()
        );
    }

    #[test]
    fn setup_file_round_trip() {
        let s = Setup {
            public_address: Some("2001:db8::1".into()),
            port: 443,
            proto: ProtoChoice::Both,
            algo: KeyAlgo::Rsa3072,
        };
        let tmp = TempDir::new("setup");
        std::fs::write(tmp.0.join(SETUP_FILE), s.to_text()).unwrap();
        assert_eq!(Setup::read(&tmp.0).unwrap(), s);
    }
}
