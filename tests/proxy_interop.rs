//! Interop tests of proxy mode (`ferrovpn proxy`, `ferrovpn exec`) against the real OpenVPN 2.6
//! server (layer 4 in DESIGN.md).
//!
//! Each test builds its own lab (tests/support/netns.rs): the OpenVPN server in namespace S,
//! with a host only the tunnel reaches (198.19.255.1 on S's `lo`) running a web server
//! (tests/support/websrv.py) and a UDP echo (tests/support/echosrv.py), and dnsmasq on the pushed
//! DNS address (198.19.X.53, also on S's `lo`) answering `www.test.internal` with that host. The
//! server pushes `dhcp-option DNS`, `dhcp-option DOMAIN test.internal` and a route to the host.
//! In namespace C, which has no route to any of it (checked first, every time), `ferrovpn proxy`
//! runs as user `nobody` (no TUN device, no privileges) with SOCKS5, HTTP and health listeners on
//! C's loopback, and real clients (curl, or the std-only SOCKS5 client in
//! tests/support/proxy.rs) go through it.
//!
//! They need root, `openvpn`, `curl`, `dnsmasq` and `setpriv`; without them they print why and
//! pass, unless `FERROVPN_REQUIRE_INTEROP=1` (set by `.ci/run`). `FERROVPN_BIN`,
//! `FERROVPN_INTEROP_VERB` (ferrovpn `--verb`, default 4) and `FERROVPN_INTEROP_KEEP` work as in
//! tests/interop.rs.
//!
//! Run: `sudo -E cargo test --test proxy_interop -- --nocapture` (timings go to stderr).

// The clock and sleep bans (clippy.toml) are for the protocol core; this harness waits on real
// processes in real time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::netns::{Lab, Proc, exec_in, run_ok};
use support::openvpn::{Knobs, LOG_CONNECTED, OpenVpnServer, VPN_ONLY_V4};
use support::proxy::{
    Dest, ECHOSRV_PY, UdpAssociation, WEBSRV_PY, blob, http_get, in_netns, sha256_hex,
    socks5_connect, uid_of,
};

const WEB_HOST: &str = "www.test.internal";
const WEB_PORT: u16 = 8000;
const UDP_ECHO_PORT: u16 = 7000;
/// The blast.py sink on the VPN-only host, reached through `-L`.
const BLAST_PORT: u16 = 5900;
/// The proxy's listeners, on the client namespace's loopback.
const SOCKS: &str = "127.0.0.1:1080";
const HTTP: &str = "127.0.0.1:8080";
const HEALTH: &str = "127.0.0.1:9090";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const MB: usize = 1_000_000;

fn socks_addr() -> SocketAddr {
    SOCKS.parse().unwrap()
}

fn web_url(path: &str) -> String {
    format!("http://{WEB_HOST}:{WEB_PORT}{path}")
}

fn blob_path(size: usize, seed: u32) -> String {
    format!("/blob?size={size}&seed={seed}")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(out: &Output) -> String {
    let stdout = if out.stdout.len() > 2000 {
        format!("<{} bytes>", out.stdout.len())
    } else {
        text(&out.stdout)
    };
    format!(
        "{}; stdout: {stdout}; stderr: {}",
        out.status,
        text(&out.stderr)
    )
}

/// The argv prefix that runs a program as `nobody` (no supplementary groups).
const AS_NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--",
];

/// A lab with the OpenVPN server, the services behind it, and `ferrovpn proxy` (as `nobody`)
/// connected in the client namespace. Fields drop in order: proxy, services, server, lab.
struct ProxyLab {
    proxy: Proc,
    services: Vec<Proc>,
    server: OpenVpnServer,
    lab: Lab,
    tag: String,
    /// The ferrovpn binary as `nobody` can run it.
    bin: String,
    /// The client profile (world-readable, in a world-readable directory).
    profile: String,
    started: Instant,
    timings: Vec<(String, Duration)>,
}

impl ProxyLab {
    /// Builds the lab and starts everything; `proxy_args` are added to `ferrovpn proxy`'s.
    /// `None` if the interop tests cannot run here.
    fn start(tag: &str, proxy_args: &[&str]) -> Option<ProxyLab> {
        support::interop_ready_with(&["curl", "dnsmasq", "setpriv"])?;
        let bin = support::client::ferrovpn_bin()
            .expect("the ferrovpn binary was not built (needs feature `runtime`)");
        let started = Instant::now();
        let lab = Lab::new(tag);
        let knobs = Knobs {
            // `ferrovpn exec` connects a second session with the same certificate.
            extra_server: vec!["duplicate-cn".into()],
            ..Knobs::default()
        };
        let mut server = OpenVpnServer::new(&lab, knobs);
        let services = start_services(&lab, &server, tag);
        let mut timings = vec![("setup".to_owned(), started.elapsed())];
        timings.push(("server start".into(), server.start(&lab)));
        check_no_direct_route(&lab, &server, tag);
        let bin = binary_for_nobody(&lab, &bin);
        let profile = world_readable_profile(&lab, &server);
        let proxy = spawn_proxy(&lab, &bin, &profile, proxy_args);
        let mut p = ProxyLab {
            proxy,
            services,
            server,
            lab,
            tag: tag.to_owned(),
            bin,
            profile,
            started,
            timings,
        };
        let t = Instant::now();
        let r = p.proxy.wait_for_log(LOG_CONNECTED, 1, CONNECT_TIMEOUT);
        r.unwrap_or_else(|e| panic!("[{tag}] proxy did not connect: {e}"));
        p.timings.push(("proxy connect".into(), t.elapsed()));
        let nobody = run_ok(&["id", "-u", "nobody"]).trim().parse::<u32>().ok();
        assert!(nobody.is_some_and(|n| n != 0));
        assert_eq!(
            uid_of(p.proxy.pid()),
            nobody,
            "[{tag}] ferrovpn proxy does not run as nobody"
        );
        let log = p.proxy.log_text();
        for l in [
            format!("SOCKS5 proxy listening on {SOCKS}"),
            format!("HTTP proxy listening on {HTTP}"),
        ] {
            assert!(log.contains(&l), "[{tag}] the proxy log lacks {l:?}");
        }
        Some(p)
    }

    /// curl in the client namespace (as root; the proxy is what runs as nobody), ignoring any
    /// NO_PROXY from the environment.
    fn curl(&self, args: &[&str]) -> Output {
        let mut argv = vec!["curl", "-sS", "--noproxy", ""];
        argv.extend_from_slice(args);
        exec_in(&self.lab.client_ns, &argv)
    }

    fn time<T>(&mut self, what: &str, f: impl FnOnce(&Self) -> T) -> T {
        let t = Instant::now();
        let r = f(self);
        self.timings.push((what.to_owned(), t.elapsed()));
        r
    }

    /// The proxy's address inside the tunnel, from its `userspace stack up: ..., ADDR/PREFIX`
    /// log line (the last one: it changes on reconnect).
    fn vpn_address(&self) -> String {
        let log = self.proxy.log_text();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("userspace stack up:"))
            .unwrap_or_else(|| panic!("[{}] no `userspace stack up` line", self.tag));
        let addr = line
            .split([' ', ','])
            .find_map(|w| w.split_once('/').map(|(a, _)| a))
            .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok());
        addr.unwrap_or_else(|| panic!("[{}] no address in {line:?}", self.tag))
            .to_owned()
    }

    /// HTTP status of `GET http://HEALTH/PATH` and the body ("000" if nothing answered).
    fn health(&self, path: &str) -> (String, String) {
        let url = format!("http://{HEALTH}{path}");
        let out = self.curl(&["--max-time", "3", "-w", "\n%{http_code}", &url]);
        let s = text(&out.stdout);
        let (body, code) = s.rsplit_once('\n').unwrap_or(("", &s));
        (code.to_owned(), body.to_owned())
    }

    fn wait_health(&self, code: &str, timeout: Duration) -> Result<Duration, String> {
        let t = Instant::now();
        loop {
            let (got, _) = self.health("/readyz");
            if got == code {
                return Ok(t.elapsed());
            }
            if t.elapsed() > timeout {
                return Err(format!(
                    "/readyz answered {got}, not {code}, for {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Downloads `/blob` of `size` bytes with curl and `proxy_args`, checks every byte.
    fn fetch_with_curl(&mut self, what: &str, proxy_args: &[&str], size: usize, seed: u32) {
        let url = web_url(&blob_path(size, seed));
        let mut args = proxy_args.to_vec();
        args.extend(["--fail", "--max-time", "120", &url]);
        let t = Instant::now();
        let out = self.curl(&args);
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "[{}] {what}: curl {args:?} failed: {}",
            self.tag,
            describe(&out)
        );
        assert_eq!(
            out.stdout.len(),
            size,
            "[{}] {what}: wrong length",
            self.tag
        );
        assert!(
            sha256_hex(&out.stdout) == sha256_hex(&blob(size, seed)),
            "[{}] {what}: the data differs from what the server sent",
            self.tag
        );
        self.timings.push((what.to_owned(), took));
        eprintln!(
            "[{}] {what}: {:.1} MB in {:.2}s = {:.1} MB/s",
            self.tag,
            size as f64 / MB as f64,
            took.as_secs_f64(),
            size as f64 / MB as f64 / took.as_secs_f64()
        );
    }

    fn report(&self) {
        let parts: Vec<String> = self
            .timings
            .iter()
            .map(|(w, d)| format!("{w} {:.3}s", d.as_secs_f64()))
            .collect();
        eprintln!(
            "[{}] total {:.2}s: {}",
            self.tag,
            self.started.elapsed().as_secs_f64(),
            parts.join(", ")
        );
    }

    /// SIGTERM: the proxy must exit 0 on its own.
    fn finish(mut self) {
        self.proxy.signal(libc::SIGTERM);
        let st = self.proxy.wait_timeout(Duration::from_secs(10));
        let st = st.unwrap_or_else(|| panic!("[{}] proxy ignored SIGTERM for 10 s", self.tag));
        assert!(
            st.success(),
            "[{}] proxy exited with {st} after SIGTERM",
            self.tag
        );
        self.report();
    }
}

/// dnsmasq on the pushed DNS address, the web server and the UDP echo on the VPN-only host;
/// all in the server namespace.
fn start_services(lab: &Lab, server: &OpenVpnServer, tag: &str) -> Vec<Proc> {
    let ns = lab.server_ns.clone();
    let dns = server.pushed_dns();
    run_ok(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{dns}/32"),
        "dev",
        "lo",
    ]);
    let py = support::python3();
    let port = WEB_PORT.to_string();
    let mut web = lab.spawn(
        "websrv",
        &ns,
        &[py, WEBSRV_PY, VPN_ONLY_V4, &port],
        "websrv.log",
    );
    let udp_port = UDP_ECHO_PORT.to_string();
    let mut udp = lab.spawn(
        "udp echo",
        &ns,
        &[py, ECHOSRV_PY, "udp", VPN_ONLY_V4, &udp_port],
        "udp-echo.log",
    );
    let mut dnsmasq = lab.spawn(
        "dnsmasq",
        &ns,
        &[
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &format!("--listen-address={dns}"),
            &format!("--address=/{WEB_HOST}/{VPN_ONLY_V4}"),
            "--log-queries",
            "--log-facility=-",
        ],
        "dnsmasq.log",
    );
    let wait = Duration::from_secs(10);
    for (p, needle) in [
        (&mut web, "LISTENING"),
        (&mut udp, "LISTENING"),
        (&mut dnsmasq, "started"),
    ] {
        p.wait_for_log(needle, 1, wait)
            .unwrap_or_else(|e| panic!("[{tag}] {e}"));
    }
    // The services answer inside S (a broken fixture must not look like a proxy bug).
    let out = exec_in(
        &ns,
        &[
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "5",
            &format!("http://{VPN_ONLY_V4}:{WEB_PORT}/"),
        ],
    );
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "[{tag}] the web server does not answer inside S: {}",
        describe(&out)
    );
    vec![web, udp, dnsmasq]
}

/// Case 1: C has no route to the VPN-only host (nor the pushed DNS address): only the proxy
/// can reach them.
fn check_no_direct_route(lab: &Lab, server: &OpenVpnServer, tag: &str) {
    let c = &lab.client_ns;
    let url = format!("http://{VPN_ONLY_V4}:{WEB_PORT}/");
    let out = exec_in(
        c,
        &["curl", "-sS", "--noproxy", "*", "--max-time", "3", &url],
    );
    assert!(
        !out.status.success(),
        "[{tag}] {url} is reachable from the client namespace without the VPN: {}",
        describe(&out)
    );
    for ip in [VPN_ONLY_V4.to_owned(), server.pushed_dns()] {
        let out = exec_in(c, &["ip", "route", "get", &ip]);
        assert!(
            !out.status.success(),
            "[{tag}] the client namespace has a route to {ip}: {}",
            describe(&out)
        );
    }
}

/// `bin` if `nobody` can execute it where it is; otherwise a copy in the lab directory (a
/// checkout under a private home directory is out of nobody's reach).
fn binary_for_nobody(lab: &Lab, bin: &Path) -> String {
    let b = bin.to_string_lossy().into_owned();
    let mut argv = AS_NOBODY.to_vec();
    argv.extend(["test", "-x", &b]);
    if exec_in(&lab.client_ns, &argv).status.success() {
        return b;
    }
    let copy = lab.dir.join("ferrovpn");
    fs::copy(bin, &copy).expect("copy the ferrovpn binary");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
    copy.to_string_lossy().into_owned()
}

/// The client profile (inline keys) in a 0755 directory, mode 0644: readable by `nobody`.
fn world_readable_profile(lab: &Lab, server: &OpenVpnServer) -> String {
    let path = server.client_profile(lab, "client.ovpn");
    for dir in [&lab.dir, &lab.dir.join("client")] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod profile");
    path.to_string_lossy().into_owned()
}

fn verb() -> String {
    std::env::var("FERROVPN_INTEROP_VERB").unwrap_or_else(|_| "4".into())
}

fn spawn_proxy(lab: &Lab, bin: &str, profile: &str, extra: &[&str]) -> Proc {
    let verb = verb();
    let mut argv = AS_NOBODY.to_vec();
    argv.extend([
        bin,
        "proxy",
        profile,
        "--socks5",
        SOCKS,
        "--http",
        HTTP,
        "--health",
        HEALTH,
        "--wait-timeout",
        "2",
        "--verb",
        &verb,
    ]);
    argv.extend_from_slice(extra);
    lab.spawn("ferrovpn proxy", &lab.client_ns, &argv, "proxy.log")
}

/// The generator in tests/support/proxy.rs makes the same bytes as websrv.py (values from
/// `python3 tests/support/websrv.py gen N SEED`). No root needed.
#[test]
fn blob_generator_matches_websrv_py() {
    assert_eq!(
        blob(16, 0),
        [
            0xcd, 0x07, 0x2c, 0xd8, 0xbe, 0x6f, 0x9f, 0x62, 0xac, 0x4c, 0x09, 0xc2, 0x82, 0x06,
            0xe7, 0xe3
        ]
    );
    assert_eq!(
        sha256_hex(&blob(100_003, 7)),
        "ab264682d6713851e0ca4d8169fa6ede44d72d18989d32ca7be7fd4ca4ec27c5"
    );
}

/// Cases 1-4: no direct route; the proxy runs as nobody; 50 MB by name through SOCKS5
/// (`--socks5-hostname`: the name is resolved through the tunnel's pushed DNS), through the
/// HTTP proxy (absolute-form GET), 10 MB through an HTTP CONNECT tunnel; 10 MB POSTed through
/// the HTTP proxy; dnsmasq saw the queries come from the VPN address.
#[test]
fn socks5_and_http_bulk_by_name() {
    let Some(mut p) = ProxyLab::start("proxy-bulk", &[]) else {
        return;
    };
    p.fetch_with_curl(
        "50 MB via SOCKS5",
        &["--socks5-hostname", SOCKS],
        50 * MB,
        1,
    );
    let via_http = format!("http://{HTTP}");
    p.fetch_with_curl("50 MB via HTTP proxy", &["-x", &via_http], 50 * MB, 2);
    // `-p`: through an HTTP CONNECT tunnel, as every HTTPS client does.
    p.fetch_with_curl(
        "10 MB via HTTP CONNECT",
        &["-p", "-x", &via_http],
        10 * MB,
        4,
    );

    let data = blob(10 * MB, 3);
    let file = p.lab.dir.join("upload.bin");
    fs::write(&file, &data).expect("write upload file");
    let at_file = format!("@{}", file.display());
    let url = web_url("/upload");
    let out = p.time("10 MB POST via HTTP proxy", |p| {
        p.curl(&[
            "-x",
            &via_http,
            "--fail",
            "--max-time",
            "60",
            "-H",
            "Expect:",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &at_file,
            &url,
        ])
    });
    assert!(
        out.status.success(),
        "[proxy-bulk] upload failed: {}",
        describe(&out)
    );
    let want = format!("{} {}\n", sha256_hex(&data), data.len());
    assert_eq!(
        text(&out.stdout),
        want,
        "[proxy-bulk] the server received other bytes"
    );

    // The names went to the pushed DNS server through the tunnel, from the VPN address.
    let dns_log = fs::read_to_string(p.lab.dir.join("dnsmasq.log")).unwrap_or_default();
    let vpn = p.vpn_address();
    assert!(
        dns_log
            .lines()
            .any(|l| l.contains(&format!("{WEB_HOST} from {vpn}"))),
        "[proxy-bulk] dnsmasq saw no query for {WEB_HOST} from {vpn}:\n{dns_log}"
    );
    p.finish();
}

/// Case 5: `-R 9000:127.0.0.1:7777`: connections from the server side to the proxy's VPN
/// address, port 9000, reach a service on the client namespace's loopback, 16 at once. And
/// `-L 127.0.0.1:5900:198.19.255.1:5900`: 20 MB each way (tests/support/blast.py, checksummed,
/// with half-closes) through a local forward.
#[test]
fn reverse_and_local_forwards() {
    let local_fwd = format!("127.0.0.1:{BLAST_PORT}:{VPN_ONLY_V4}:{BLAST_PORT}");
    let args = ["-R", "9000:127.0.0.1:7777", "-L", &local_fwd];
    let Some(mut p) = ProxyLab::start("proxy-forwards", &args) else {
        return;
    };
    let py = support::python3();
    let c = p.lab.client_ns.clone();
    let mut local = p.lab.spawn(
        "client-side echo",
        &c,
        &[
            py,
            ECHOSRV_PY,
            "tcp",
            "127.0.0.1",
            "7777",
            "--tag",
            "client-local",
        ],
        "client-echo.log",
    );
    local
        .wait_for_log("LISTENING", 1, Duration::from_secs(10))
        .unwrap();
    p.services.push(local);
    let vpn = p.vpn_address();
    let script = r#"
import socket, sys, threading
addr, n = sys.argv[1], int(sys.argv[2])
res = [None] * n
def one(i):
    try:
        s = socket.create_connection((addr, 9000), timeout=10)
        s.sendall(b"hello %d from the server side\n" % i)
        buf = b""
        while not buf.endswith(b"\n"):
            b = s.recv(4096)
            if not b:
                break
            buf += b
        res[i] = buf.decode(errors="replace").strip()
    except Exception as e:
        res[i] = "ERROR %s" % e
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
print("\n".join(res))
"#;
    let out = p.time("16 reverse connections", |p| {
        exec_in(&p.lab.server_ns, &[py, "-c", script, &vpn, "16"])
    });
    assert!(
        out.status.success(),
        "[proxy-forwards] client script failed: {}",
        describe(&out)
    );
    let got = text(&out.stdout);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 16, "[proxy-forwards] answers: {got}");
    for (i, l) in lines.iter().enumerate() {
        let want = format!("echo client-local 127.0.0.1: hello {i} from the server side");
        assert_eq!(*l, want, "[proxy-forwards] connection {i}");
    }

    let (py, port) = (support::python3(), BLAST_PORT.to_string());
    let blast = support::traffic::BLAST_PY;
    let s_ns = p.lab.server_ns.clone();
    let mut sink = p.lab.spawn(
        "blast serve",
        &s_ns,
        &[py, blast, "serve", VPN_ONLY_V4, &port],
        "blast-serve.log",
    );
    sink.wait_for_log("LISTENING", 1, Duration::from_secs(10))
        .unwrap();
    let n = (20 * MB).to_string();
    let out = p.time("20+20 MB via -L", |p| {
        let argv = [
            py,
            blast,
            "send",
            "127.0.0.1",
            &port,
            "--up",
            &n,
            "--down",
            &n,
        ];
        exec_in(&p.lab.client_ns, &argv)
    });
    let sink_status = sink.wait_timeout(Duration::from_secs(10));
    let (sent, served) = (text(&out.stdout), sink.log_text());
    assert!(
        out.status.success() && sink_status.is_some_and(|s| s.success()),
        "[proxy-forwards] transfer through -L failed: {}\nsink: {served}",
        describe(&out)
    );
    // blast.py prints "SENT|RECV sha256 bytes seconds"; each side's SENT is the other's RECV.
    let field = |log: &str, word: &str| -> (String, String) {
        let l = log
            .lines()
            .find(|l| l.starts_with(word))
            .unwrap_or_default();
        let w: Vec<&str> = l.split_whitespace().collect();
        let get = |i: usize| w.get(i).copied().unwrap_or_default().to_owned();
        (format!("{} {}", get(1), get(2)), get(3))
    };
    let (up, up_secs) = field(&served, "RECV");
    let (down, down_secs) = field(&sent, "RECV");
    assert_eq!(
        field(&sent, "SENT").0,
        up,
        "[proxy-forwards] upstream bytes"
    );
    assert_eq!(
        field(&served, "SENT").0,
        down,
        "[proxy-forwards] downstream bytes"
    );
    assert!(up.ends_with(&format!(" {n}")) && down.ends_with(&format!(" {n}")));
    eprintln!("[proxy-forwards] -L: 20 MB up in {up_secs}s, 20 MB down in {down_secs}s");
    p.finish();
}

/// Case 6: SOCKS5 UDP ASSOCIATE: datagrams of several sizes to the UDP echo on the VPN-only
/// host (by address, and one by name) come back unchanged, from that host.
#[test]
fn socks5_udp_associate_echo() {
    let Some(mut p) = ProxyLab::start("proxy-udp", &[]) else {
        return;
    };
    let ns = p.lab.client_ns.clone();
    let echo = Dest::addr(VPN_ONLY_V4, UDP_ECHO_PORT);
    let failures = p.time("UDP associate echoes", |_| {
        in_netns(&ns, || {
            let a = UdpAssociation::open(socks_addr(), Duration::from_secs(2))
                .expect("UDP ASSOCIATE refused");
            let mut failures = Vec::new();
            let mut cases: Vec<(Dest, usize)> = [1usize, 64, 512, 1000, 1200, 1300, 8, 700]
                .iter()
                .map(|&n| (echo.clone(), n))
                .collect();
            cases.push((Dest::name(WEB_HOST, UDP_ECHO_PORT), 100));
            for (i, (dest, size)) in cases.into_iter().enumerate() {
                let payload = blob(size, 1000 + i as u32);
                let mut result = Err("no answer in 3 tries".to_owned());
                // UDP: a datagram may be lost; resend up to 3 times.
                'tries: for _ in 0..3 {
                    a.send(&dest, &payload).expect("send to relay");
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < deadline {
                        match a.recv() {
                            Ok((from, data)) if data == payload => {
                                result = if from == echo {
                                    Ok(())
                                } else {
                                    Err(format!("echo came from {from:?}"))
                                };
                                break 'tries;
                            }
                            // An echo of an earlier try of an earlier datagram.
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                }
                if let Err(e) = result {
                    failures.push(format!("datagram {i} ({size} bytes to {dest:?}): {e}"));
                }
            }
            failures
        })
    });
    assert!(failures.is_empty(), "[proxy-udp] {failures:#?}");
    let vpn = p.vpn_address();
    let echo_log = fs::read_to_string(p.lab.dir.join("udp-echo.log")).unwrap_or_default();
    assert!(
        echo_log.contains(&format!("DATAGRAM {vpn} ")),
        "[proxy-udp] the echo server saw no datagram from the VPN address {vpn}:\n{echo_log}"
    );
    p.finish();
}

/// Case 7: 200 SOCKS5 CONNECTs at once (half by name, half by address), each fetching its own
/// blob of 10-30 KB; every one must succeed with the right bytes. Then 8 downloads of 10 MB at
/// once (concurrent bulk flows in the one stack).
#[test]
fn socks5_200_parallel_connections() {
    let Some(mut p) = ProxyLab::start("proxy-parallel", &[]) else {
        return;
    };
    const N: usize = 200;
    let ns = p.lab.client_ns.clone();
    let failures = p.time("200 parallel fetches", |_| {
        in_netns(&ns, || {
            let barrier = Arc::new(Barrier::new(N));
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || -> Result<(), String> {
                        let size = 10_000 + i * 101;
                        let seed = 500 + i as u32;
                        let dest = if i % 2 == 0 {
                            Dest::name(WEB_HOST, WEB_PORT)
                        } else {
                            Dest::addr(VPN_ONLY_V4, WEB_PORT)
                        };
                        barrier.wait();
                        let s = socks5_connect(socks_addr(), &dest, Duration::from_secs(30))
                            .map_err(|e| format!("#{i} CONNECT {dest:?}: {e}"))?;
                        let (status, body) = http_get(s, WEB_HOST, &blob_path(size, seed))
                            .map_err(|e| format!("#{i} GET: {e}"))?;
                        if status != 200 {
                            return Err(format!("#{i}: HTTP {status}"));
                        }
                        if body != blob(size, seed) {
                            return Err(format!("#{i}: wrong body ({} bytes)", body.len()));
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("client thread").err())
                .collect::<Vec<_>>()
        })
    });
    assert!(
        failures.is_empty(),
        "[proxy-parallel] {} of {N} failed: {failures:#?}",
        failures.len()
    );
    let failures = p.time("8 parallel 10 MB fetches", |_| {
        in_netns(&ns, || {
            let handles: Vec<_> = (0..8u32)
                .map(|i| {
                    std::thread::spawn(move || -> Result<(), String> {
                        let dest = Dest::name(WEB_HOST, WEB_PORT);
                        let s = socks5_connect(socks_addr(), &dest, Duration::from_secs(30))
                            .map_err(|e| format!("bulk #{i} CONNECT: {e}"))?;
                        let (status, body) = http_get(s, WEB_HOST, &blob_path(10 * MB, 40 + i))
                            .map_err(|e| format!("bulk #{i} GET: {e}"))?;
                        if status != 200 || body != blob(10 * MB, 40 + i) {
                            return Err(format!("bulk #{i}: HTTP {status}, wrong body"));
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("client thread").err())
                .collect::<Vec<_>>()
        })
    });
    assert!(failures.is_empty(), "[proxy-parallel] {failures:#?}");
    // Every socket of the stack is released again (TIME-WAIT included) once all have closed.
    let t = Instant::now();
    let open = loop {
        let (code, metrics) = p.health("/metrics");
        assert_eq!(code, "200", "[proxy-parallel] /metrics");
        let open = metrics
            .lines()
            .find_map(|l| l.strip_prefix("ferrovpn_tcp_connections "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("ferrovpn_tcp_connections in /metrics");
        if open == 0 || t.elapsed() > Duration::from_secs(20) {
            break open;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        open, 0,
        "[proxy-parallel] {open} TCP sockets still open in the stack 20 s after the last fetch"
    );
    p.timings.push(("sockets released".into(), t.elapsed()));
    p.finish();
}

/// Case 8: /readyz answers 200 and /metrics reports the tunnel up; `ferrovpn exec` (as nobody)
/// runs curl through its private proxy and returns curl's exit status; a failing command's
/// status comes back too.
#[test]
fn health_and_exec() {
    let Some(mut p) = ProxyLab::start("proxy-exec", &[]) else {
        return;
    };
    let (code, body) = p.health("/readyz");
    assert_eq!(code, "200", "[proxy-exec] /readyz: {body}");
    let (code, metrics) = p.health("/metrics");
    assert_eq!(code, "200", "[proxy-exec] /metrics");
    assert!(
        metrics.lines().any(|l| l == "ferrovpn_up 1"),
        "[proxy-exec] /metrics:\n{metrics}"
    );

    let verb = verb();
    let exec = |p: &ProxyLab, cmd: &[&str]| -> Output {
        // No NO_PROXY from the environment may send curl around the proxy.
        let mut argv = vec!["env", "-u", "NO_PROXY", "-u", "no_proxy"];
        argv.extend(AS_NOBODY);
        argv.extend([p.bin.as_str(), "exec", &p.profile, "--verb", &verb, "--"]);
        argv.extend_from_slice(cmd);
        exec_in(&p.lab.client_ns, &argv)
    };
    let url = web_url(&blob_path(1000, 9));
    let out = p.time("exec curl", |p| {
        exec(p, &["curl", "-sS", "--fail", "--max-time", "20", &url])
    });
    assert!(
        out.status.success(),
        "[proxy-exec] ferrovpn exec -- curl: {}",
        describe(&out)
    );
    assert!(
        out.stdout == blob(1000, 9),
        "[proxy-exec] exec curl printed other bytes ({} bytes): {}",
        out.stdout.len(),
        describe(&out)
    );
    let out = p.time("exec exit 7", |p| exec(p, &["sh", "-c", "exit 7"]));
    assert_eq!(
        out.status.code(),
        Some(7),
        "[proxy-exec] ferrovpn exec -- sh -c 'exit 7': {}",
        describe(&out)
    );
    p.finish();
}

/// Case 9: fail closed. The server stops; /readyz turns 503; a SOCKS5 CONNECT to the VPN-only
/// host is refused within a few seconds (`--wait-timeout 2`) while the listeners stay up; the
/// HTTP proxy answers with an error too. The server comes back; the proxy reconnects (second
/// `Initialization Sequence Completed`) and fetches work again.
#[test]
fn fail_closed_then_reconnect() {
    let Some(mut p) = ProxyLab::start("proxy-failclosed", &[]) else {
        return;
    };
    let tag = p.tag.clone();
    let socks = ["--socks5-hostname", SOCKS];
    p.fetch_with_curl("1 MB before", &socks, MB, 20);
    let t = Instant::now();
    p.server.stop();
    p.timings.push(("server stop".into(), t.elapsed()));
    let r = p.wait_health("503", Duration::from_secs(15));
    let took = r.unwrap_or_else(|e| panic!("[{tag}] after the server stopped: {e}"));
    p.timings.push(("readyz 503".into(), took));

    let ns = p.lab.client_ns.clone();
    for dest in [
        Dest::addr(VPN_ONLY_V4, WEB_PORT),
        Dest::name(WEB_HOST, WEB_PORT),
    ] {
        let t = Instant::now();
        let r = in_netns(&ns, || {
            socks5_connect(socks_addr(), &dest, Duration::from_secs(15))
        });
        let took = t.elapsed();
        match r {
            Ok(_) => panic!("[{tag}] CONNECT {dest:?} succeeded while the tunnel was down"),
            Err(e) => {
                eprintln!("[{tag}] tunnel down: CONNECT {dest:?} refused in {took:.2?}: {e}");
                assert!(
                    e.to_string().contains("reply code"),
                    "[{tag}] CONNECT {dest:?} while down: the SOCKS5 listener did not answer \
                     with a refusal: {e}"
                );
                assert!(
                    took < Duration::from_secs(6),
                    "[{tag}] CONNECT {dest:?} took {took:?} to fail with --wait-timeout 2"
                );
            }
        }
    }
    let via_http = format!("http://{HTTP}");
    let url = web_url(&blob_path(1000, 21));
    let out = p.curl(&[
        "-x",
        &via_http,
        "--max-time",
        "10",
        "-w",
        "%{http_code}",
        &url,
    ]);
    let code = text(&out.stdout);
    assert!(
        out.status.code() != Some(7) && !code.ends_with("200"),
        "[{tag}] HTTP proxy while the tunnel is down: {}",
        describe(&out)
    );
    eprintln!("[{tag}] tunnel down: HTTP proxy answered {code}");

    let t = Instant::now();
    let took = p.server.start(&p.lab);
    p.timings.push(("server restart".into(), took));
    let r = p
        .proxy
        .wait_for_log(LOG_CONNECTED, 2, Duration::from_secs(60));
    r.unwrap_or_else(|e| panic!("[{tag}] no reconnect: {e}"));
    p.timings.push(("reconnect".into(), t.elapsed()));
    p.wait_health("200", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("[{tag}] after the reconnect: {e}"));
    p.fetch_with_curl("1 MB after reconnect (SOCKS5)", &socks, MB, 22);
    p.fetch_with_curl("1 MB after reconnect (HTTP)", &["-x", &via_http], MB, 23);
    p.finish();
}
