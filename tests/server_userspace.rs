//! `ferrovpn serve --userspace`: the server without a TUN device, its clients' traffic handed to
//! real sockets on this host (only to the `--allow`ed destinations). No root and no network
//! namespaces needed: everything listens on 127.0.0.1 ports picked at run time, and nothing
//! touches the kernel's network configuration. When the test does run as root, the two ferrovpn
//! processes run as `nobody` (setpriv), so that they could not create a TUN device or change
//! this machine's network even by mistake.
//!
//! `userspace_http_50mb`: a python web server (tests/support/websrv.py) on 127.0.0.1,
//! `ferrovpn serve --userspace --allow 127.0.0.1/32 server.conf` (UDP on 127.0.0.1),
//! `ferrovpn proxy client.ovpn --socks5 ... --all-through-tunnel --health ...`; 50 MB downloaded
//! through the SOCKS5 proxy and checksummed, and the proxy's /metrics must show them going through
//! the tunnel.
//!
//! Needs `python3` and the ferrovpn binary (`setpriv` when run as root). Skipped with
//! `FERROVPN_INTEROP_SERVER=openvpn` (OpenVPN has no userspace mode).
//! Run: `cargo test --test server_userspace -- --nocapture`.

// The clock and sleep bans (clippy.toml) are for the protocol core; this harness waits on real
// processes in real time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use support::client::ferrovpn_bin;
use support::netns::Proc;
use support::nobody::{binary, ferrovpn_argv, is_root};
use support::pki::{KeyAlg, Pki};
use support::proxy::{Dest, WEBSRV_PY, blob, http_get, sha256_hex, socks5_connect};

const LOG_READY: &str = "Initialization Sequence Completed";
const SIZE: usize = 50_000_000;
const SEED: u32 = 4242;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn in_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).exists()))
}

/// Why this test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if std::env::var("FERROVPN_INTEROP_SERVER").is_ok_and(|v| v == "openvpn") {
        return Some("FERROVPN_INTEROP_SERVER=openvpn: OpenVPN has no userspace server".into());
    }
    if !Path::new(support::python3()).exists() && !in_path("python3") {
        return Some("`python3` is not installed".into());
    }
    if ferrovpn_bin().is_none() {
        return Some("the ferrovpn binary was not built (needs feature `runtime`)".into());
    }
    if is_root() && !in_path("setpriv") {
        return Some("running as root without `setpriv` to drop to nobody".into());
    }
    None
}

fn ready(tag: &str) -> bool {
    let Some(why) = missing() else {
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

/// A scratch directory whose registered logs are printed if the test fails; removed on drop
/// (kept, like the labs, with `FERROVPN_INTEROP_KEEP`).
struct Scratch {
    dir: PathBuf,
    logs: Vec<(String, PathBuf)>,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "ferrovpn-userspace-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        // Readable by `nobody` (the ferrovpn processes when run as root).
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

    fn watch(&mut self, name: &str, path: &Path) {
        self.logs.push((name.to_owned(), path.to_owned()));
    }

    fn dump(&self) {
        let mut err = std::io::stderr().lock();
        for (name, path) in &self.logs {
            let text = fs::read(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("<unreadable: {e}>"));
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(200);
            let _ = writeln!(
                err,
                "===== {name}: {} ({} lines) =====",
                path.display(),
                lines.len()
            );
            for l in &lines[skip..] {
                let _ = writeln!(err, "{l}");
            }
        }
        let _ = writeln!(err, "===== end of logs =====");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            self.dump();
        }
        let keep = match std::env::var("FERROVPN_INTEROP_KEEP").as_deref() {
            Ok("all") => true,
            Ok(_) => failed,
            Err(_) => false,
        };
        if keep {
            eprintln!("kept {} (FERROVPN_INTEROP_KEEP)", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free TCP port");
    l.local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a free UDP port");
    s.local_addr().unwrap().port()
}

/// `GET /metrics` on the health listener; the value of `ferrovpn_tunnel_bytes_total{direction=DIR}`.
fn tunnel_bytes(health: SocketAddr) -> Result<(u64, u64), String> {
    let mut s = TcpStream::connect_timeout(&health, Duration::from_secs(3))
        .map_err(|e| format!("connect to the health listener {health}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {health}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .map_err(|e| format!("read /metrics: {e}"))?;
    let get = |dir: &str| {
        let key = format!("ferrovpn_tunnel_bytes_total{{direction=\"{dir}\"}}");
        body.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .ok_or_else(|| format!("no `{key}` in /metrics:\n{body}"))
    };
    Ok((get("in")?, get("out")?))
}

#[test]
fn userspace_http_50mb() {
    let tag = "userspace_http_50mb";
    if !ready(tag) {
        return;
    }
    let started = Instant::now();
    let mut scratch = Scratch::new(tag);
    let bin = binary(&scratch.dir);
    let verb = std::env::var("FERROVPN_INTEROP_VERB").unwrap_or_else(|_| "4".into());

    // Keys and certificates, world-readable (test material only).
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
    let (web_port, vpn_port, socks_port, health_port) = (
        free_tcp_port(),
        free_udp_port(),
        free_tcp_port(),
        free_tcp_port(),
    );
    let conf = scratch.dir.join("server.conf");
    fs::write(
        &conf,
        format!(
            "# generated by tests/server_userspace.rs\n\
             local 127.0.0.1\nport {vpn_port}\nproto udp\ndev tun\ntopology subnet\n\
             server 198.18.77.0 255.255.255.0\n\
             ca {}\ncert {}\nkey {}\ndh none\nkeepalive 2 20\nverb 4\n",
            pki.ca_crt.display(),
            pki.server_crt.display(),
            pki.server_key.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    scratch.watch("server.conf", &conf);
    let read = |p: &Path| fs::read_to_string(p).unwrap().trim_end().to_owned();
    let profile = scratch.dir.join("client.ovpn");
    fs::write(
        &profile,
        format!(
            "# generated by tests/server_userspace.rs\nclient\ndev tun\nnobind\n\
             remote 127.0.0.1 {vpn_port} udp\nremote-cert-tls server\nverb 3\n\
             <ca>\n{}\n</ca>\n<cert>\n{}\n</cert>\n<key>\n{}\n</key>\n",
            read(&pki.ca_crt),
            read(&pki.client_crt),
            read(&pki.client_key)
        ),
    )
    .unwrap();
    fs::set_permissions(&profile, fs::Permissions::from_mode(0o644)).unwrap();

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
    if let Err(e) = server.wait_for_log(LOG_READY, 1, Duration::from_secs(20)) {
        panic!(
            "[{tag}] `ferrovpn serve --userspace` did not come up (no {LOG_READY:?} in its log): {e}"
        );
    }

    let profile_s = profile.to_string_lossy().into_owned();
    let socks = format!("127.0.0.1:{socks_port}");
    let health = format!("127.0.0.1:{health_port}");
    let argv = ferrovpn_argv(
        &bin,
        &[
            "proxy",
            &profile_s,
            "--socks5",
            &socks,
            "--all-through-tunnel",
            "--health",
            &health,
            "--verb",
            &verb,
        ],
    );
    let mut proxy = scratch.spawn("ferrovpn proxy", &argv, "proxy.log");
    if let Err(e) = proxy.wait_for_log(LOG_READY, 1, Duration::from_secs(30)) {
        panic!("[{tag}] `ferrovpn proxy` did not connect to the userspace server: {e}");
    }
    if let Err(e) = proxy.wait_for_log(
        &format!("SOCKS5 proxy listening on {socks}"),
        1,
        Duration::from_secs(10),
    ) {
        panic!("[{tag}] the proxy's SOCKS5 listener did not come up: {e}");
    }
    let health: SocketAddr = health.parse().unwrap();
    let (in0, out0) = tunnel_bytes(health)
        .unwrap_or_else(|e| panic!("[{tag}] proxy metrics before the download: {e}"));

    let expected = sha256_hex(&blob(SIZE, SEED));
    let t = Instant::now();
    let dest = Dest::addr("127.0.0.1", web_port);
    let stream = socks5_connect(socks.parse().unwrap(), &dest, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("[{tag}] SOCKS5 CONNECT to 127.0.0.1:{web_port}: {e}"));
    let path = format!("/blob?size={SIZE}&seed={SEED}");
    let (status, body) = http_get(stream, &format!("127.0.0.1:{web_port}"), &path)
        .unwrap_or_else(|e| panic!("[{tag}] HTTP GET {path} through the tunnel: {e}"));
    let took = t.elapsed();
    assert_eq!(status, 200, "[{tag}] HTTP status of GET {path}");
    assert_eq!(
        body.len(),
        SIZE,
        "[{tag}] downloaded {} bytes, expected {SIZE}",
        body.len()
    );
    assert_eq!(
        sha256_hex(&body),
        expected,
        "[{tag}] downloaded data differs from what websrv.py serves"
    );
    eprintln!(
        "[{tag}] 50 MB through the userspace server in {took:.2?} ({:.1} MB/s)",
        SIZE as f64 / 1e6 / took.as_secs_f64()
    );

    let (in1, out1) = tunnel_bytes(health)
        .unwrap_or_else(|e| panic!("[{tag}] proxy metrics after the download: {e}"));
    assert!(
        in1.saturating_sub(in0) >= SIZE as u64,
        "[{tag}] the proxy's /metrics counted only {} bytes into the tunnel during the download \
         (in {in0} -> {in1}, out {out0} -> {out1}): the data did not go through the tunnel",
        in1.saturating_sub(in0)
    );
    eprintln!(
        "[{tag}] tunnel bytes in +{}, out +{}; total {:.2?}",
        in1.saturating_sub(in0),
        out1.saturating_sub(out0),
        started.elapsed()
    );
    for p in [&mut proxy, &mut server, &mut web] {
        assert!(
            p.try_status().is_none(),
            "[{tag}] {} exited during the test",
            p.name
        );
    }
}
