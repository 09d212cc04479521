//! The client's management interface, black-box and without root: `ferrovpn serve --userspace`
//! on 127.0.0.1 and `ferrovpn proxy PROFILE --management 127.0.0.1 PORT`, driven by a test
//! speaking the management protocol over TCP (the same script was checked by hand against the
//! OpenVPN 2.6.14 client: greeting, `>HOLD:`, the state sequence WAIT, AUTH, ASSIGN_IP,
//! CONNECTED, `>BYTECOUNT:`, RECONNECTING,SIGUSR1, `>PASSWORD:` and EXITING lines).
//!
//! - `hold_states_bytecount_restart_status`: `management-hold`; `state on`, `hold release`, the
//!   states up to CONNECTED, `bytecount 1` growing with a download through the SOCKS5 proxy,
//!   `ferrovpn status` (text and `--json`), `signal SIGUSR1` (RECONNECTING then CONNECTED
//!   again), `signal SIGTERM` (EXITING, exit status 0).
//! - `query_passwords`: `management-query-passwords` against a server with
//!   `auth-user-pass-verify`: the right password connects, a wrong one gives
//!   `>PASSWORD:Verification Failed: 'Auth'`, EXITING,auth-failure and exit status 1.
//!
//! Needs `python3` (web server, verify script) and the ferrovpn binary.

#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::client::ferrovpn_bin;
use support::netns::Proc;
use support::pki::{KeyAlg, Pki};
use support::proxy::{Dest, WEBSRV_PY, http_get, socks5_connect};

const READY: &str = "Initialization Sequence Completed";

fn ready(tag: &str) -> bool {
    let why = if ferrovpn_bin().is_none() {
        Some("the ferrovpn binary was not built")
    } else if !Path::new(support::python3()).exists() {
        Some("python3 is not installed")
    } else {
        None
    };
    match why {
        None => true,
        Some(w) if std::env::var("FERROVPN_REQUIRE_INTEROP").is_ok_and(|v| v == "1") => {
            panic!("[{tag}] cannot run: {w}")
        }
        Some(w) => {
            eprintln!("[{tag}] skipping: {w}");
            false
        }
    }
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    dir: PathBuf,
    procs: Vec<Proc>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if std::thread::panicking() {
                eprintln!("===== {} =====\n{}", p.name, p.log_text());
            }
            p.stop();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// PKI, a userspace server on a free UDP port (with `extra` server lines), and a client profile
/// with `client_extra`; returns the set-up and the profile path.
fn setup(tag: &str, extra: &str, client_extra: &str) -> (Setup, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ferrovpn-mgmt-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let pki = Pki::generate(&dir.join("pki"), KeyAlg::EcdsaP256);
    let port = free_udp();
    let conf = dir.join("server.conf");
    fs::write(
        &conf,
        format!(
            "local 127.0.0.1\nport {port}\nproto udp\ndev tun\ntopology subnet\n\
             server 198.18.77.0 255.255.255.0\nca {}\ncert {}\nkey {}\ndh none\n\
             keepalive 2 20\nverb 4\n{extra}",
            pki.ca_crt.display(),
            pki.server_crt.display(),
            pki.server_key.display()
        ),
    )
    .unwrap();
    let read = |p: &Path| fs::read_to_string(p).unwrap().trim_end().to_owned();
    let profile = dir.join("client.ovpn");
    fs::write(
        &profile,
        format!(
            "client\ndev tun\nnobind\nremote 127.0.0.1 {port} udp\nremote-cert-tls server\n\
             verb 3\n{client_extra}<ca>\n{}\n</ca>\n<cert>\n{}\n</cert>\n<key>\n{}\n</key>\n",
            read(&pki.ca_crt),
            read(&pki.client_crt),
            read(&pki.client_key)
        ),
    )
    .unwrap();
    let bin = ferrovpn_bin().unwrap();
    let mut server = Proc::spawn_here(
        "ferrovpn serve --userspace",
        &[
            bin.to_str().unwrap(),
            "serve",
            "--userspace",
            "--allow",
            "127.0.0.1/32",
            conf.to_str().unwrap(),
        ],
        &dir,
        &dir.join("server.log"),
    );
    if let Err(e) = server.wait_for_log(READY, 1, Duration::from_secs(20)) {
        panic!(
            "[{tag}] the server did not start: {e}\n{}",
            server.log_text()
        );
    }
    (
        Setup {
            dir,
            procs: vec![server],
        },
        profile,
    )
}

fn spawn_proxy(s: &mut Setup, profile: &Path, mgmt: u16, socks: u16) -> usize {
    let bin = ferrovpn_bin().unwrap();
    let (mgmt, socks) = (mgmt.to_string(), format!("127.0.0.1:{socks}"));
    let p = Proc::spawn_here(
        "ferrovpn proxy",
        &[
            bin.to_str().unwrap(),
            "proxy",
            profile.to_str().unwrap(),
            "--socks5",
            &socks,
            "--all-through-tunnel",
            "--management",
            "127.0.0.1",
            &mgmt,
        ],
        &s.dir,
        &s.dir.join(format!("proxy-{}.log", s.procs.len())),
    );
    s.procs.push(p);
    s.procs.len() - 1
}

/// A management connection.
struct Mgmt {
    io: BufReader<TcpStream>,
}

impl Mgmt {
    fn connect(port: u16) -> Mgmt {
        let t = Instant::now();
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    return Mgmt {
                        io: BufReader::new(s),
                    };
                }
                Err(e) if t.elapsed() > Duration::from_secs(20) => {
                    panic!("management port {port} never opened: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self
            .io
            .read_line(&mut l)
            .expect("a management line within 30 s");
        assert!(n > 0, "the management connection closed");
        assert!(l.ends_with("\r\n"), "not CRLF-terminated: {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    fn send(&mut self, cmd: &str) {
        self.io
            .get_mut()
            .write_all(format!("{cmd}\n").as_bytes())
            .unwrap();
    }

    /// Reads until a line satisfies `pred` (returning it), keeping the lines seen on the way.
    fn until(&mut self, seen: &mut Vec<String>, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let l = self.line();
            if pred(&l) {
                return l;
            }
            seen.push(l);
        }
    }

    /// Sends `cmd` and returns its reply (skipping real-time lines).
    fn ask(&mut self, cmd: &str) -> String {
        self.send(cmd);
        let mut skipped = Vec::new();
        self.until(&mut skipped, |l| !l.starts_with('>'))
    }
}

fn state_name(line: &str) -> &str {
    line.split(',').nth(1).unwrap_or("")
}

/// Reads `>STATE:` lines up to CONNECTED; returns the state names and the CONNECTED line.
fn states_until_connected(m: &mut Mgmt) -> (Vec<String>, String) {
    let mut names = Vec::new();
    loop {
        let l = m.line();
        let Some(s) = l.strip_prefix(">STATE:") else {
            continue;
        };
        names.push(state_name(s).to_owned());
        if state_name(s) == "CONNECTED" {
            return (names, s.to_owned());
        }
    }
}

fn bytecount(l: &str) -> Option<(u64, u64)> {
    let (a, b) = l.strip_prefix(">BYTECOUNT:")?.split_once(',')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn hold_states_bytecount_restart_status() {
    let tag = "hold_states_bytecount_restart_status";
    if !ready(tag) {
        return;
    }
    let (mut s, profile) = setup(tag, "", "management-hold\n");
    let web_port = free_tcp();
    let mut web = Proc::spawn_here(
        "web server",
        &[
            support::python3(),
            WEBSRV_PY,
            "127.0.0.1",
            &web_port.to_string(),
        ],
        &s.dir,
        &s.dir.join("web.log"),
    );
    web.wait_for_log("LISTENING", 1, Duration::from_secs(10))
        .expect("web server");
    s.procs.push(web);
    let (mgmt_port, socks) = (free_tcp(), free_tcp());
    let proxy = spawn_proxy(&mut s, &profile, mgmt_port, socks);
    let mut m = Mgmt::connect(mgmt_port);
    assert_eq!(
        m.line(),
        ">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info"
    );
    assert_eq!(m.line(), ">HOLD:Waiting for hold release:0");
    // Held: nothing connects before the release.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.procs[proxy].count_in_log(READY),
        0,
        "connected while held"
    );
    assert_eq!(m.ask("hold"), "SUCCESS: hold=1");
    assert_eq!(
        m.ask("state on"),
        "SUCCESS: real-time state notification set to ON"
    );
    assert_eq!(m.ask("hold release"), "SUCCESS: hold release succeeded");
    let (names, connected) = states_until_connected(&mut m);
    assert_eq!(
        names,
        ["WAIT", "AUTH", "ASSIGN_IP", "CONNECTED"],
        "{connected}"
    );
    let f: Vec<&str> = connected.split(',').collect();
    assert_eq!(f.len(), 8, "{connected}");
    assert_eq!(f[2], "SUCCESS");
    assert!(f[3].starts_with("198.18.77."), "{connected}");
    assert_eq!(f[4], "127.0.0.1");
    let tun_ip = f[3].to_owned();

    // bytecount grows with traffic through the proxy.
    assert_eq!(m.ask("bytecount 1"), "SUCCESS: bytecount interval changed");
    let mut seen = Vec::new();
    let first = m.until(&mut seen, |l| l.starts_with(">BYTECOUNT:"));
    let (in0, out0) = bytecount(&first).unwrap();
    const SIZE: u64 = 300_000;
    let stream = socks5_connect(
        format!("127.0.0.1:{socks}").parse().unwrap(),
        &Dest::addr("127.0.0.1", web_port),
        Duration::from_secs(30),
    )
    .expect("SOCKS5 CONNECT through the tunnel");
    let (status, body) = http_get(
        stream,
        &format!("127.0.0.1:{web_port}"),
        &format!("/blob?size={SIZE}&seed=1"),
    )
    .expect("download through the tunnel");
    assert_eq!((status, body.len() as u64), (200, SIZE));
    let grown = m.until(&mut seen, |l| {
        bytecount(l).is_some_and(|(i, o)| i >= in0 + SIZE && o > out0)
    });
    eprintln!("[{tag}] {first} -> {grown}");
    assert_eq!(m.ask("bytecount 0"), "SUCCESS: bytecount interval changed");

    // ferrovpn status, text and JSON.
    let bin = ferrovpn_bin().unwrap();
    let port_s = mgmt_port.to_string();
    let out = Command::new(&bin)
        .args(["status", "--management", "127.0.0.1", &port_s])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("state:       CONNECTED (SUCCESS)"), "{text}");
    assert!(text.contains(&format!("tunnel IPv4: {tun_ip}")), "{text}");
    let out = Command::new(&bin)
        .args(["status", "--management", "127.0.0.1", &port_s, "--json"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"state\":\"CONNECTED\""), "{json}");
    assert!(
        json.contains(&format!("\"tunnel_ipv4\":\"{tun_ip}\"")),
        "{json}"
    );

    // SIGUSR1: a new session (held again, as OpenVPN does).
    assert_eq!(m.ask("signal SIGUSR1"), "SUCCESS: signal SIGUSR1 thrown");
    let mut seen = Vec::new();
    let l = m.until(&mut seen, |l| l.starts_with(">STATE:"));
    assert!(l.ends_with(",RECONNECTING,SIGUSR1,,,,,"), "{l}");
    m.until(&mut seen, |l| l == ">HOLD:Waiting for hold release:1");
    assert_eq!(m.ask("hold release"), "SUCCESS: hold release succeeded");
    let (names, _) = states_until_connected(&mut m);
    assert_eq!(names.last().map(String::as_str), Some("CONNECTED"));
    s.procs[proxy]
        .wait_for_log(READY, 2, Duration::from_secs(20))
        .expect("a second Initialization Sequence Completed");

    // SIGTERM: EXITING, then a clean exit.
    assert_eq!(m.ask("signal SIGTERM"), "SUCCESS: signal SIGTERM thrown");
    let mut seen = Vec::new();
    let l = m.until(&mut seen, |l| l.starts_with(">STATE:"));
    assert!(l.ends_with(",EXITING,SIGTERM,,,,,"), "{l}");
    let st = s.procs[proxy]
        .wait_timeout(Duration::from_secs(15))
        .expect("the proxy exits after signal SIGTERM");
    assert_eq!(st.code(), Some(0), "exit status after SIGTERM");
    let out = Command::new(&bin)
        .args(["status", "--management", "127.0.0.1", &port_s])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn query_passwords() {
    let tag = "query_passwords";
    if !ready(tag) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrovpn-mgmt-{}-verify", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let script = dir.join("check.sh");
    fs::write(
        &script,
        "#!/bin/sh\nu=$(sed -n 1p \"$1\")\np=$(sed -n 2p \"$1\")\n\
         [ \"$u\" = alice ] && [ \"$p\" = secret ] && exit 0\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let (mut s, profile) = setup(
        tag,
        &format!(
            "script-security 2\nauth-user-pass-verify {} via-file\n",
            script.display()
        ),
        "auth-user-pass\nmanagement-query-passwords\n",
    );
    for (password, connects) in [("secret", true), ("wrong", false)] {
        let mgmt_port = free_tcp();
        let proxy = spawn_proxy(&mut s, &profile, mgmt_port, free_tcp());
        let mut m = Mgmt::connect(mgmt_port);
        assert!(m.line().starts_with(">INFO:"));
        assert_eq!(m.line(), ">PASSWORD:Need 'Auth' username/password");
        assert_eq!(
            m.ask("state on"),
            "SUCCESS: real-time state notification set to ON"
        );
        assert_eq!(
            m.ask("username \"Auth\" alice"),
            "SUCCESS: 'Auth' username entered, but not yet verified"
        );
        assert_eq!(
            m.ask(&format!("password \"Auth\" {password}")),
            "SUCCESS: 'Auth' password entered, but not yet verified"
        );
        if connects {
            let (names, _) = states_until_connected(&mut m);
            assert_eq!(names.last().map(String::as_str), Some("CONNECTED"));
            assert_eq!(m.ask("signal SIGTERM"), "SUCCESS: signal SIGTERM thrown");
            let st = s.procs[proxy].wait_timeout(Duration::from_secs(15));
            assert_eq!(st.and_then(|s| s.code()), Some(0));
        } else {
            let mut seen = Vec::new();
            m.until(&mut seen, |l| l == ">PASSWORD:Verification Failed: 'Auth'");
            let l = m.until(&mut seen, |l| l.contains(",EXITING,"));
            assert!(l.ends_with(",EXITING,auth-failure,,,,,"), "{l}");
            assert!(!seen.iter().any(|l| l.contains(",CONNECTED,")), "{seen:?}");
            let st = s.procs[proxy].wait_timeout(Duration::from_secs(15));
            assert_eq!(
                st.and_then(|s| s.code()),
                Some(1),
                "exit status after AUTH_FAILED"
            );
        }
    }
    let _ = fs::remove_dir_all(&dir);
}
