//! A flood of bogus `P_CONTROL_HARD_RESET_CLIENT_V2` packets against `ferrovpn serve` (issue 7,
//! hostile input): from hundreds of source ports, thousands a second for ~12 s, three kinds
//! interleaved: plain (no wrap: the server uses tls-crypt), tls-crypt with a wrong tag, and
//! VALID tls-crypt (wrapped with the library's own code and the server's key, so each one passes
//! the tag check and asks for a cookie reply). Checks:
//! - the server's memory stays flat (VmRSS growth under 20 MiB; the figures are printed): the
//!   handshake keeps no state until a client echoes its cookie;
//! - the server keeps answering (cookie replies reach the flooders, within connect-freq-initial);
//! - a legitimate `ferrovpn proxy` client, started in the middle of the flood, connects (during
//!   or after it) and downloads checksummed data through the tunnel;
//! - the server says what it dropped in a few summary lines, not one line per packet.
//!
//! No root and no namespaces: `ferrovpn serve --userspace` on 127.0.0.1 as in
//! tests/server_userspace.rs (as `nobody` via setpriv when run as root).
//! Run: `cargo test --test server_flood -- --nocapture`.

// The clock and sleep bans (clippy.toml) are for the protocol core; this harness waits on real
// processes in real time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrovpn::proto::keys::Key2;
use ferrovpn::proto::wire::{ControlPacket, ControlWrap, Opcode, Role};
use rand::Rng as _;
use support::client::ferrovpn_bin;
use support::netns::Proc;
use support::nobody::{binary, ferrovpn_argv, is_root};
use support::pki::{KeyAlg, Pki};
use support::proxy::{Dest, WEBSRV_PY, blob, http_get, sha256_hex, socks5_connect};

const LOG_READY: &str = "Initialization Sequence Completed";
const FLOOD: Duration = Duration::from_secs(12);
/// Datagrams a second the flooder aims at (the three kinds together).
const FLOOD_RATE: u64 = 3000;
const SOURCES: usize = 256;
const MAX_RSS_GROWTH_KIB: u64 = 20 * 1024;

fn in_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).exists()))
}

fn ready(tag: &str) -> bool {
    let why = if std::env::var("FERROVPN_INTEROP_SERVER").is_ok_and(|v| v == "openvpn") {
        Some("FERROVPN_INTEROP_SERVER=openvpn: OpenVPN has no userspace server".to_owned())
    } else if !Path::new(support::python3()).exists() && !in_path("python3") {
        Some("`python3` is not installed".into())
    } else if ferrovpn_bin().is_none() {
        Some("the ferrovpn binary was not built (needs feature `runtime`)".into())
    } else if is_root() && !in_path("setpriv") {
        Some("running as root without `setpriv` to drop to nobody".into())
    } else {
        None
    };
    let Some(why) = why else {
        return true;
    };
    if std::env::var("FERROVPN_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        && !why.starts_with("FERROVPN_INTEROP_SERVER")
    {
        panic!("[{tag}] cannot run: {why} (FERROVPN_REQUIRE_INTEROP=1)");
    }
    eprintln!("[{tag}] skipping: {why}");
    false
}

/// Scratch directory (world-readable for `nobody`), its logs printed if the test fails.
struct Scratch {
    dir: PathBuf,
    logs: Vec<(String, PathBuf)>,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ferrovpn-flood-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        Scratch {
            dir,
            logs: Vec::new(),
        }
    }

    fn spawn(&mut self, name: &str, argv: &[&str], log: &str) -> Proc {
        let log = self.dir.join(log);
        self.logs.push((name.to_owned(), log.clone()));
        Proc::spawn_here(name, argv, &self.dir, &log)
    }

    /// Writes `text` to `name` in the directory, readable by everyone (test material only).
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, text).expect("write scratch file");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, path) in &self.logs {
                let text = fs::read(path)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "===== {name}: {} ({} lines) =====",
                    path.display(),
                    lines.len()
                );
                for l in &lines[lines.len().saturating_sub(150)..] {
                    eprintln!("{l}");
                }
            }
        }
        if std::env::var_os("FERROVPN_INTEROP_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port(tcp: bool) -> u16 {
    if tcp {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// An OpenVPN static key file (`-----BEGIN OpenVPN Static key V1-----`) of random bytes.
fn static_key_file(bytes: &[u8; 256]) -> String {
    let mut s = String::from("-----BEGIN OpenVPN Static key V1-----\n");
    for line in bytes.chunks(16) {
        for b in line {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
    }
    s.push_str("-----END OpenVPN Static key V1-----\n");
    s
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What the flooder sent and got back.
#[derive(Default)]
struct FloodCounts {
    plain: AtomicU64,
    bad_tag: AtomicU64,
    valid: AtomicU64,
    replies: AtomicU64,
}

/// One bogus hard reset of each kind per round, round-robin over `SOURCES` sockets, paced at
/// `FLOOD_RATE`, until `stop`.
fn flood(server: SocketAddr, key: &Key2, counts: &FloodCounts, stop: &AtomicBool) {
    let socks: Vec<UdpSocket> = (0..SOURCES)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("flood socket");
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let mut valid_wrap = ControlWrap::tls_crypt(key, Role::Client);
    let mut wrong = [0u8; 256];
    rand::rng().fill(&mut wrong[..]);
    let mut wrong_wrap = ControlWrap::tls_crypt(&Key2::from_bytes(&wrong), Role::Client);
    let mut rng = rand::rng();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut plain = Vec::with_capacity(64);
    let mut wire = Vec::with_capacity(128);
    let mut buf = [0u8; 2048];
    let now_unix = 1_700_000_000;
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_micros(sent * 1_000_000 / FLOOD_RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(Duration::from_millis(5)));
            continue;
        }
        let sock = &socks[(sent as usize) % SOURCES];
        let pkt = ControlPacket {
            opcode: Opcode::HardResetClientV2,
            key_id: 0,
            session_id: rng.random(),
            acks: vec![],
            ack_peer_session_id: None,
            message_id: Some(0),
            payload: &[],
        };
        plain.clear();
        pkt.emit(&mut plain);
        wire.clear();
        let kind = sent % 3;
        match kind {
            0 => wire.extend_from_slice(&plain),
            1 => wrong_wrap.wrap(&plain, now_unix, &mut wire).expect("wrap"),
            _ => valid_wrap.wrap(&plain, now_unix, &mut wire).expect("wrap"),
        }
        if sock.send_to(&wire, server).is_ok() {
            let c = match kind {
                0 => &counts.plain,
                1 => &counts.bad_tag,
                _ => &counts.valid,
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
        sent += 1;
        if sent.is_multiple_of(64) {
            for s in &socks {
                while s.recv_from(&mut buf).is_ok() {
                    counts.replies.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[test]
fn bogus_hard_reset_flood() {
    let tag = "flood";
    if !ready(tag) {
        return;
    }
    let mut scratch = Scratch::new(tag);
    let bin = binary(&scratch.dir);
    let verb = std::env::var("FERROVPN_INTEROP_VERB").unwrap_or_else(|_| "4".into());
    let pki = Pki::generate(&scratch.dir.join("pki"), KeyAlg::EcdsaP256);
    fs::set_permissions(&pki.dir, fs::Permissions::from_mode(0o755)).unwrap();
    for f in [
        &pki.ca_crt,
        &pki.server_crt,
        &pki.server_key,
        &pki.client_crt,
        &pki.client_key,
    ] {
        fs::set_permissions(f, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut key_bytes = [0u8; 256];
    rand::rng().fill(&mut key_bytes[..]);
    let key_text = static_key_file(&key_bytes);
    let tc = scratch.file("tc.key", &key_text);
    let key = Key2::parse_static_key_file(&key_text).expect("our own key file parses");
    let (web_port, vpn_port, socks_port) = (free_port(true), free_port(false), free_port(true));
    let conf = scratch.file(
        "server.conf",
        &format!(
            "# generated by tests/server_flood.rs\n\
             local 127.0.0.1\nport {vpn_port}\nproto udp\ndev tun\ntopology subnet\n\
             server 198.18.78.0 255.255.255.0\n\
             ca {}\ncert {}\nkey {}\ndh none\nkeepalive 2 20\ntls-crypt {}\nverb 4\n",
            pki.ca_crt.display(),
            pki.server_crt.display(),
            pki.server_key.display(),
            tc.display()
        ),
    );
    let read = |p: &Path| fs::read_to_string(p).unwrap().trim_end().to_owned();
    let profile = scratch.file(
        "client.ovpn",
        &format!(
            "# generated by tests/server_flood.rs\nclient\ndev tun\nnobind\n\
             remote 127.0.0.1 {vpn_port} udp\nremote-cert-tls server\nconnect-retry 1 2\nverb 3\n\
             <ca>\n{}\n</ca>\n<cert>\n{}\n</cert>\n<key>\n{}\n</key>\n<tls-crypt>\n{}\n</tls-crypt>\n",
            read(&pki.ca_crt),
            read(&pki.client_crt),
            read(&pki.client_key),
            key_text.trim_end()
        ),
    );

    let web_port_s = web_port.to_string();
    let mut web = scratch.spawn(
        "web server",
        &[support::python3(), WEBSRV_PY, "127.0.0.1", &web_port_s],
        "websrv.log",
    );
    if let Err(e) = web.wait_for_log("LISTENING", 1, Duration::from_secs(10)) {
        panic!("[{tag}] the python web server did not start: {e}");
    }
    let conf_s = conf.to_string_lossy().into_owned();
    let argv = ferrovpn_argv(
        &bin,
        &[
            "serve",
            "--userspace",
            "--allow",
            "127.0.0.1/32",
            &conf_s,
            "--verb",
            &verb,
        ],
    );
    let mut server = scratch.spawn("ferrovpn serve --userspace", &argv, "server.log");
    if let Err(e) = server.wait_for_log(LOG_READY, 1, Duration::from_secs(30)) {
        panic!("[{tag}] `ferrovpn serve --userspace` did not come up: {e}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let pid = server.pid();
    let rss_before = rss_kib(pid).expect("server VmRSS");
    let server_addr: SocketAddr = format!("127.0.0.1:{vpn_port}").parse().unwrap();

    let counts = FloodCounts::default();
    let stop = AtomicBool::new(false);
    let mut rss_peak = rss_before;
    let flood_start = Instant::now();
    let profile_s = profile.to_string_lossy().into_owned();
    let socks = format!("127.0.0.1:{socks_port}");
    let mut proxy = None;
    std::thread::scope(|sc| {
        let h = sc.spawn(|| flood(server_addr, &key, &counts, &stop));
        while flood_start.elapsed() < FLOOD {
            std::thread::sleep(Duration::from_millis(500));
            if let Some(r) = rss_kib(pid) {
                rss_peak = rss_peak.max(r);
            }
            if proxy.is_none() && flood_start.elapsed() >= FLOOD / 3 {
                // The legitimate client arrives in the middle of the flood.
                let argv = ferrovpn_argv(
                    &bin,
                    &[
                        "proxy",
                        &profile_s,
                        "--socks5",
                        &socks,
                        "--all-through-tunnel",
                        "--verb",
                        &verb,
                    ],
                );
                proxy = Some(scratch.spawn("ferrovpn proxy", &argv, "proxy.log"));
            }
        }
        stop.store(true, Ordering::Relaxed);
        h.join().expect("flood thread");
    });
    let flood_secs = flood_start.elapsed().as_secs_f64();
    let mut proxy = proxy.expect("proxy started");
    let (plain, bad, valid, replies) = (
        counts.plain.load(Ordering::Relaxed),
        counts.bad_tag.load(Ordering::Relaxed),
        counts.valid.load(Ordering::Relaxed),
        counts.replies.load(Ordering::Relaxed),
    );
    let total = plain + bad + valid;
    eprintln!(
        "[{tag}] flood: {total} bogus resets in {flood_secs:.1} s ({:.0}/s) from {SOURCES} ports: \
         {plain} plain, {bad} wrong tls-crypt tag, {valid} valid tls-crypt; {replies} cookie \
         replies came back",
        total as f64 / flood_secs
    );
    let connected_during = proxy.count_in_log(LOG_READY) > 0;
    let took = proxy.wait_for_log(LOG_READY, 1, Duration::from_secs(90));
    let took = took.unwrap_or_else(|e| {
        panic!("[{tag}] the legitimate client did not connect during or after the flood: {e}")
    });
    eprintln!(
        "[{tag}] legitimate client connected {} the flood (waited {took:.2?} more)",
        if connected_during { "during" } else { "after" }
    );
    if let Err(e) = proxy.wait_for_log(
        &format!("SOCKS5 proxy listening on {socks}"),
        1,
        Duration::from_secs(10),
    ) {
        panic!("[{tag}] the proxy's SOCKS5 listener did not come up: {e}");
    }
    let size = 2_000_000;
    let stream = socks5_connect(
        socks.parse().unwrap(),
        &Dest::addr("127.0.0.1", web_port),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("[{tag}] SOCKS5 CONNECT through the tunnel: {e}"));
    let path = format!("/blob?size={size}&seed=7");
    let (status, body) = http_get(stream, &format!("127.0.0.1:{web_port}"), &path)
        .unwrap_or_else(|e| panic!("[{tag}] HTTP GET through the tunnel: {e}"));
    assert_eq!(status, 200, "[{tag}] HTTP status");
    assert_eq!(
        sha256_hex(&body),
        sha256_hex(&blob(size, 7)),
        "[{tag}] the download through the tunnel is corrupted"
    );

    // Memory: flat while flooded.
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = rss_kib(pid).unwrap_or(0);
    eprintln!(
        "[{tag}] server VmRSS: {rss_before} KiB before, peak {rss_peak} KiB during, \
         {rss_after} KiB after (bound: +{MAX_RSS_GROWTH_KIB} KiB)"
    );
    assert!(
        rss_peak.saturating_sub(rss_before) < MAX_RSS_GROWTH_KIB,
        "[{tag}] the server grew by {} KiB under the flood",
        rss_peak - rss_before
    );
    assert!(
        total as f64 >= FLOOD_RATE as f64 * flood_secs / 4.0,
        "[{tag}] the flooder fell far behind ({total} datagrams in {flood_secs:.1} s)"
    );
    assert!(
        replies > 0,
        "[{tag}] the server never answered a valid tls-crypt reset during the flood"
    );
    assert!(
        server.try_status().is_none(),
        "[{tag}] the server exited under the flood"
    );

    // The log: a few summary lines with the counts, not one line per packet.
    std::thread::sleep(Duration::from_secs(2));
    let log = server.log_text();
    let drop_lines: Vec<&str> = log.lines().filter(|l| l.contains("dropped ")).collect();
    for l in &drop_lines {
        eprintln!("[{tag}] server: {l}");
    }
    assert!(
        drop_lines
            .iter()
            .any(|l| l.contains("control packets from unknown addresses")),
        "[{tag}] the server did not log the bogus packets it dropped"
    );
    let most = (flood_secs as usize + 20) / 10 + 2;
    assert!(
        drop_lines.len() <= most,
        "[{tag}] {} drop lines: not rate-limited (at most {most})",
        drop_lines.len()
    );
    let lines = log.lines().count() as u64;
    assert!(
        lines < total / 20,
        "[{tag}] the server wrote {lines} log lines for {total} bogus packets"
    );
    proxy.stop();
    server.stop();
    web.stop();
}
