//! Reaching the real OpenVPN 2.6 server only through a proxy: `http-proxy` through Debian's
//! `tinyproxy` (Basic auth), `socks-proxy` through `microsocks` (TCP, username/password) and
//! through `danted` (UDP ASSOCIATE).
//!
//! Topology: the `openvpn` server listens on 127.0.0.1 inside the server namespace, so the
//! client namespace cannot reach it; the proxy runs in the server namespace on the underlay
//! address. The profile names the server `vpn-server.test`, a name only the server namespace
//! resolves (its own /etc/netns/NS/hosts): the proxy must resolve it. Needs root, `openvpn` and
//! the proxy programs; skips (or fails under `FERROVPN_REQUIRE_INTEROP=1`) without them.

#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::client::{Client, ClientImpl};
use support::netns::{Lab, Proc};
use support::openvpn::{Knobs, OpenVpnServer, PORT, Proto};
use support::traffic::{self, MB, Transfer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(40);
const SERVER_NAME: &str = "vpn-server.test";
const USER: &str = "proxyuser";
const PASS: &str = "proxy-s3cret";

/// One lab whose server only a proxy reaches.
struct ProxyLab {
    server: OpenVpnServer,
    lab: Lab,
}

impl ProxyLab {
    fn new(tag: &str, proto: Proto) -> ProxyLab {
        let lab = Lab::new(tag);
        fs::write(
            PathBuf::from("/etc/netns")
                .join(&lab.server_ns)
                .join("hosts"),
            format!("127.0.0.1 localhost\n127.0.0.1 {SERVER_NAME}\n"),
        )
        .expect("write the server namespace's hosts file");
        let mut server = OpenVpnServer::new(
            &lab,
            Knobs {
                proto,
                listen: Some("127.0.0.1".into()),
                ..Knobs::default()
            },
        );
        server.start(&lab);
        ProxyLab { server, lab }
    }

    /// The client profile with `remote vpn-server.test` and `proxy_lines`.
    fn profile(&self, name: &str, proxy_lines: &str) -> PathBuf {
        let path = self.server.client_profile(&self.lab, name);
        let text = fs::read_to_string(&path).expect("read profile");
        let proto = if self.server.knobs.proto == Proto::Tcp {
            "tcp"
        } else {
            "udp"
        };
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("remote ") {
                    format!("remote {SERVER_NAME} {PORT} {proto}\n{proxy_lines}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(&path, text).expect("write profile");
        path
    }

    fn auth_file(&self, user: &str, pass: &str) -> String {
        let p = self
            .lab
            .dir
            .join(format!("proxy-{user}-{}.auth", pass.len()));
        fs::write(&p, format!("{user}\n{pass}\n")).expect("write auth file");
        p.to_string_lossy().into_owned()
    }

    fn spawn_proxy(&self, name: &str, argv: &[&str], log: &str) -> Proc {
        let p = self.lab.spawn(name, &self.lab.server_ns, argv, log);
        // Until it listens.
        std::thread::sleep(Duration::from_millis(700));
        p
    }

    /// The client connects, pings the server's tunnel address and moves 2+2 MB checksummed.
    fn connect_and_move_data(&self, imp: ClientImpl, profile: &Path) -> Client {
        let mut client = Client::start(&self.lab, imp, profile, &[]);
        if let Err(e) = client.wait_connected(1, CONNECT_TIMEOUT) {
            self.lab.dump_logs();
            panic!("client did not connect through the proxy: {e}");
        }
        let tun = self.server.tunnel_v4();
        traffic::ping(&self.lab.client_ns, &tun, 3).unwrap_or_else(|e| {
            self.lab.dump_logs();
            panic!("{e}")
        });
        let t = Transfer::new(&tun, 2 * MB, 2 * MB);
        let r = traffic::transfer(&self.lab, &t).unwrap_or_else(|e| {
            self.lab.dump_logs();
            panic!("{e}")
        });
        eprintln!("{}", r.summary(&t));
        client
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.lab.dir.join(name)).unwrap_or_default()
    }
}

/// A refused proxy login is final: the client stops with exit status 1 instead of retrying.
fn assert_exits_with_failure(client: &mut Client) {
    let status = client.proc.wait_timeout(Duration::from_secs(20));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "the client should stop with exit status 1 after the proxy refused the login:\n{}",
        client.log_text()
    );
}

fn tinyproxy_conf(pl: &ProxyLab) -> String {
    let conf = pl.lab.dir.join("tinyproxy.conf");
    fs::write(
        &conf,
        format!(
            "Port 3128\nListen {}\nTimeout 60\nLogLevel Info\nMaxClients 20\nAllow 198.18.0.0/15\n\
             BasicAuth {USER} {PASS}\nConnectPort {PORT}\nDisableViaHeader Yes\n",
            pl.lab.server_underlay_v4()
        ),
    )
    .expect("write tinyproxy.conf");
    conf.to_string_lossy().into_owned()
}

/// `http-proxy` with Basic auth from a file, through tinyproxy, `proto tcp`.
#[test]
fn http_proxy_basic_through_tinyproxy() {
    let Some(imp) = support::interop_ready_with(&["tinyproxy"]) else {
        return;
    };
    let pl = ProxyLab::new("uproxy-http", Proto::Tcp);
    let conf = tinyproxy_conf(&pl);
    let mut proxy = pl.spawn_proxy(
        "tinyproxy",
        &["tinyproxy", "-d", "-c", &conf],
        "tinyproxy.log",
    );
    let auth = pl.auth_file(USER, PASS);
    let profile = pl.profile(
        "client.ovpn",
        &format!(
            "http-proxy {} 3128 {auth} basic\nhttp-proxy-option VERSION 1.1\n\
             http-proxy-option AGENT ferrovpn-interop",
            pl.lab.server_underlay_v4()
        ),
    );
    let mut client = pl.connect_and_move_data(imp, &profile);
    let log = pl.log("tinyproxy.log");
    assert!(
        log.contains(&format!("{SERVER_NAME}:{PORT}")) || log.contains(SERVER_NAME),
        "tinyproxy did not log the CONNECT to {SERVER_NAME}:\n{log}"
    );
    if imp == ClientImpl::Ferrovpn {
        assert!(
            !client.log_text().contains(PASS),
            "the proxy password was logged"
        );
    }
    client.terminate(Duration::from_secs(15));
    proxy.stop();
}

/// A wrong proxy password: a clear error naming the proxy's answer.
#[test]
fn http_proxy_wrong_password_is_reported() {
    let Some(imp) = support::interop_ready_with(&["tinyproxy"]) else {
        return;
    };
    if imp != ClientImpl::Ferrovpn {
        return;
    }
    let pl = ProxyLab::new("uproxy-http-badpw", Proto::Tcp);
    let conf = tinyproxy_conf(&pl);
    let mut proxy = pl.spawn_proxy(
        "tinyproxy",
        &["tinyproxy", "-d", "-c", &conf],
        "tinyproxy.log",
    );
    let auth = pl.auth_file(USER, "wrong-password");
    let profile = pl.profile(
        "client.ovpn",
        &format!("http-proxy {} 3128 {auth}", pl.lab.server_underlay_v4()),
    );
    let mut client = Client::start(&pl.lab, imp, &profile, &[]);
    // tinyproxy answers wrong Basic credentials with 401 (other proxies: 407).
    let r = client
        .proc
        .wait_for_log("refused the credentials", 1, Duration::from_secs(20));
    let log = client.log_text();
    if r.is_err() {
        pl.lab.dump_logs();
    }
    assert!(
        log.contains("refused the credentials") && log.contains("HTTP proxy"),
        "no clear error for a wrong proxy password:\n{log}"
    );
    assert!(!log.contains("wrong-password"), "the password was logged");
    assert_exits_with_failure(&mut client);
    client.terminate(Duration::from_secs(15));
    proxy.stop();
}

/// `socks-proxy` with username/password through microsocks, `proto tcp`, inside a
/// `<connection>` list whose first entry's proxy is down.
#[test]
fn socks_proxy_tcp_through_microsocks() {
    let Some(imp) = support::interop_ready_with(&["microsocks"]) else {
        return;
    };
    let pl = ProxyLab::new("uproxy-socks-tcp", Proto::Tcp);
    let ip = pl.lab.server_underlay_v4();
    let mut proxy = pl.spawn_proxy(
        "microsocks",
        &[
            "microsocks",
            "-i",
            &ip,
            "-p",
            "1080",
            "-u",
            USER,
            "-P",
            PASS,
        ],
        "microsocks.log",
    );
    let auth = pl.auth_file(USER, PASS);
    // `profile` puts the lines after the global remote; with <connection> blocks that remote
    // is ignored (a warning) and the blocks are tried in order.
    let profile = pl.profile(
        "client.ovpn",
        &format!(
            "<connection>\nremote {SERVER_NAME} {PORT} tcp\nsocks-proxy {ip} 1090 {auth}\n\
             connect-timeout 5\n</connection>\n\
             <connection>\nremote {SERVER_NAME} {PORT} tcp\nsocks-proxy {ip} 1080 {auth}\n\
             </connection>"
        ),
    );
    let mut client = pl.connect_and_move_data(imp, &profile);
    let log = pl.log("microsocks.log");
    assert!(
        log.contains(SERVER_NAME),
        "microsocks did not log the connection to {SERVER_NAME}:\n{log}"
    );
    client.terminate(Duration::from_secs(15));
    proxy.stop();
}

/// A wrong SOCKS password: a clear error.
#[test]
fn socks_proxy_wrong_password_is_reported() {
    let Some(imp) = support::interop_ready_with(&["microsocks"]) else {
        return;
    };
    if imp != ClientImpl::Ferrovpn {
        return;
    }
    let pl = ProxyLab::new("uproxy-socks-badpw", Proto::Tcp);
    let ip = pl.lab.server_underlay_v4();
    let mut proxy = pl.spawn_proxy(
        "microsocks",
        &[
            "microsocks",
            "-i",
            &ip,
            "-p",
            "1080",
            "-u",
            USER,
            "-P",
            PASS,
        ],
        "microsocks.log",
    );
    let auth = pl.auth_file(USER, "nope");
    let profile = pl.profile("client.ovpn", &format!("socks-proxy {ip} 1080 {auth}"));
    let mut client = Client::start(&pl.lab, imp, &profile, &[]);
    let _ = client.proc.wait_for_log(
        "refused the user name and password",
        1,
        Duration::from_secs(20),
    );
    let log = client.log_text();
    assert!(
        log.contains("SOCKS proxy") && log.contains("refused the user name and password"),
        "no clear error for a wrong SOCKS password:\n{log}"
    );
    assert_exits_with_failure(&mut client);
    client.terminate(Duration::from_secs(15));
    proxy.stop();
}

/// `socks-proxy` with `proto udp` through dante's UDP relay.
#[test]
fn socks_proxy_udp_through_danted() {
    let Some(imp) = support::interop_ready_with(&["danted"]) else {
        return;
    };
    let pl = ProxyLab::new("uproxy-socks-udp", Proto::Udp);
    let ip = pl.lab.server_underlay_v4();
    let conf = pl.lab.dir.join("danted.conf");
    let log_path = pl.lab.dir.join("danted-own.log");
    fs::write(
        &conf,
        format!(
            "logoutput: {}\ninternal: {ip} port = 1080\nexternal: lo\n\
             socksmethod: none\nclientmethod: none\nuser.privileged: root\n\
             user.unprivileged: nobody\n\
             client pass {{\n  from: 198.18.0.0/15 to: 0.0.0.0/0\n  log: connect disconnect error\n}}\n\
             socks pass {{\n  from: 0.0.0.0/0 to: 0.0.0.0/0\n  command: connect udpassociate udpreply\n  log: connect disconnect error\n}}\n",
            log_path.display()
        ),
    )
    .expect("write danted.conf");
    pl.lab.watch_log("danted log", &log_path);
    let pid = pl.lab.dir.join("danted.pid");
    let mut proxy = pl.spawn_proxy(
        "danted",
        &[
            "danted",
            "-f",
            &conf.to_string_lossy(),
            "-p",
            &pid.to_string_lossy(),
        ],
        "danted.log",
    );
    let profile = pl.profile("client.ovpn", &format!("socks-proxy {ip} 1080"));
    let mut client = pl.connect_and_move_data(imp, &profile);
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("udpassociate") || log.contains("udpreply"),
        "dante did not log a UDP association:\n{log}"
    );
    client.terminate(Duration::from_secs(15));
    proxy.stop();
}
