//! The fault suite: the tunnel under loss, delay, reordering, server restarts, a dropped TCP
//! connection, a client whose underlay address changes (float), fast renegotiation, and hostile
//! (tampered, truncated, replayed) packets from the server's side.
//!
//! This kernel has no netem, so the underlay goes through an impairment relay the tests own
//! (tests/support/impair.py, wrapped by tests/support/impair.rs): it runs in the server
//! namespace, listens on the server's underlay address at port 1195 and forwards to the server at
//! 1194; the client profile's `remote` points at the relay. Its JSON counters prove that the
//! impairment really happened. Servers: the real OpenVPN 2.6 (tests/support/openvpn.rs) and,
//! where the case is about the server, `ferrovpn serve` (tests/support/server.rs). The client is
//! `ferrovpn connect` by default (`FERROVPN_INTEROP_CLIENT=openvpn` runs the reference client).
//!
//! Needs root and `openvpn` like the other interop tests (skipped with the reason otherwise,
//! unless `FERROVPN_REQUIRE_INTEROP=1`). Timings go to stderr; only generous bounds are asserted.
//! Run: `sudo -E cargo test --test faults -- --nocapture` (the tests take turns).

// The clock and sleep bans (clippy.toml) are for the protocol core; this harness waits on real
// processes in real time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::client::{Client, ClientImpl};
use support::impair::{self, Relay, udp_stream, via_relay};
use support::netns::Lab;
use support::openvpn::{Knobs, LOG_CONNECTED, OpenVpnServer, PORT, Proto};
use support::server::{
    self as fvserver, ClientAuth, Profile, Server, ServerConf, ServerImpl, ServerPki, WrapKeys,
};
use support::traffic::{self, MB, Transfer};

/// What the OpenVPN server logs each time a data-channel key is installed.
const NEW_KEY_LINE: &str = "Incoming Data Channel: Cipher";
/// The bound on a reconnect after the server said RESTART or the transport failed: far below
/// the `ping-restart 60` these tests configure, so a client that waited for it fails.
const RECONNECT_BOUND: Duration = Duration::from_secs(20);

/// One fault test at a time (they measure loss and reconnect times on a shared machine).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Client, relay, OpenVPN server and lab; fields drop in this order.
struct Rig {
    client: Client,
    relay: Relay,
    server: OpenVpnServer,
    lab: Lab,
    tag: String,
}

impl Rig {
    /// Lab, OpenVPN server, a relay (`mode`, `relay_args`) in front of it, and the client started
    /// on a profile pointing at the relay. Does not wait for the connection.
    fn start(tag: &str, imp: ClientImpl, knobs: Knobs, relay_args: &[&str]) -> Rig {
        let lab = Lab::new(tag);
        let mut server = OpenVpnServer::new(&lab, knobs);
        server.start(&lab);
        let mode = if server.knobs.proto == Proto::Tcp {
            "tcp"
        } else {
            "udp"
        };
        let addr = lab.server_underlay_v4();
        let relay = Relay::start(&lab, &lab.server_ns, mode, &addr, (&addr, PORT), relay_args);
        let profile = server.client_profile(&lab, "client.ovpn");
        via_relay(&profile, PORT);
        let client = Client::start(&lab, imp, &profile, &server.knobs.ferrovpn_args);
        Rig {
            client,
            relay,
            server,
            lab,
            tag: tag.to_owned(),
        }
    }

    fn connect(&mut self, timeout: Duration) -> Duration {
        let r = self.client.wait_connected(1, timeout);
        let took = r.unwrap_or_else(|e| panic!("[{}] client did not connect: {e}", self.tag));
        eprintln!("[{}] connected in {took:.2?}", self.tag);
        took
    }

    fn ping(&self, count: u32) {
        let r = traffic::ping(&self.lab.client_ns, &self.server.tunnel_v4(), count);
        r.unwrap_or_else(|e| panic!("[{}] {e}", self.tag));
    }

    fn bulk(&self, t: &Transfer) {
        let r = traffic::transfer(&self.lab, t);
        let r = r.unwrap_or_else(|e| panic!("[{}] {e}", self.tag));
        eprintln!("[{}] {}", self.tag, r.summary(t));
    }
}

/// Knobs with a long ping-restart, so only RESTART or a transport error explains a fast
/// reconnect.
fn slow_ping_knobs() -> Knobs {
    Knobs {
        keepalive: (10, 60),
        ..Knobs::default()
    }
}

/// (a) The handshake completes with 30 % of the datagrams lost in each direction, then pings
/// get through.
#[test]
fn handshake_under_30pct_loss() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "loss30";
    let knobs = Knobs {
        extra_server: vec!["hand-window 150".into()],
        extra_client: vec!["hand-window 150".into()],
        ..Knobs::default()
    };
    let mut r = Rig::start(tag, imp, knobs, &["--loss", "30", "--seed", "30"]);
    r.connect(Duration::from_secs(240));
    // Each ping crosses the relay twice (0.7 * 0.7 get through): some of 20 come back.
    r.ping(20);
    let s = r.relay.stop();
    eprintln!("[{tag}] relay: {s}");
    assert!(
        s.get("up_lost") > 0 && s.get("down_lost") > 0,
        "[{tag}] the relay lost nothing: {s}"
    );
}

/// (b) 5 MB each way, checksummed, with 5 % loss, 10 % reordering and 50 ms delay in each
/// direction (100 ms more round trip): TCP inside the tunnel recovers.
#[test]
fn bulk_under_loss_reordering_and_delay() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "lossy-bulk";
    let mut r = Rig::start(
        tag,
        imp,
        Knobs::default(),
        &[
            "--loss",
            "5",
            "--reorder",
            "10",
            "--reorder-ms",
            "20",
            "--delay",
            "50",
            "--jitter",
            "5",
            "--seed",
            "5",
        ],
    );
    r.connect(Duration::from_secs(120));
    let t = Transfer::new(&r.server.tunnel_v4(), 5 * MB, 5 * MB).timeout(Duration::from_secs(900));
    r.bulk(&t);
    let s = r.relay.stop();
    eprintln!("[{tag}] relay: {s}");
    for k in ["up_lost", "down_lost", "up_reordered", "down_reordered"] {
        assert!(s.get(k) > 0, "[{tag}] relay counter {k} is 0: {s}");
    }
}

/// Waits for the `n`-th connection and returns how long it took from `since`.
fn reconnect_time(r: &mut Rig, n: usize, since: Instant, what: &str) -> Duration {
    let res = r.client.wait_connected(n, Duration::from_secs(90));
    res.unwrap_or_else(|e| panic!("[{}] no reconnect after {what}: {e}", r.tag));
    let took = since.elapsed();
    eprintln!(
        "[{}] reconnected {took:.2?} after {what} (ping-restart is 60 s)",
        r.tag
    );
    took
}

/// (c) The OpenVPN server restarts in place (SIGUSR1; with `explicit-exit-notify` it tells its
/// clients RESTART first), three times: each time the client reconnects at once, not after
/// ping-restart (60 s) and not after a backoff that grew with the earlier reconnects, and
/// traffic flows again. Through a relay with 10 ms delay each way.
#[test]
fn server_soft_restart_reconnects_quickly() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "soft-restart";
    let mut r = Rig::start(tag, imp, slow_ping_knobs(), &["--delay", "10"]);
    r.connect(Duration::from_secs(60));
    r.ping(3);
    for n in 2..=4 {
        let t = Instant::now();
        r.server.signal(libc::SIGUSR1);
        let took = reconnect_time(&mut r, n, t, "the server's SIGUSR1 restart");
        assert!(
            took < RECONNECT_BOUND,
            "[{tag}] reconnect {} took {took:?}: the client did not act on the server's RESTART",
            n - 1
        );
        let p = traffic::ping_until(&r.lab.client_ns, &r.server.tunnel_v4(), RECONNECT_BOUND);
        let p = p.unwrap_or_else(|e| panic!("[{tag}] no traffic after the reconnect: {e}"));
        eprintln!("[{tag}] first ping answered {p:.2?} after the reconnect");
    }
    assert!(
        r.server.count_in_log(LOG_CONNECTED) >= 4,
        "[{tag}] the server did not restart three times"
    );
}

/// (c) Over TCP, the relay cuts the connection (both sides see it closed): the client notices
/// the transport failure and reconnects at once, not after ping-restart (60 s).
#[test]
fn tcp_connection_cut_reconnects_quickly() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "tcp-cut";
    let knobs = Knobs {
        proto: Proto::Tcp,
        ..slow_ping_knobs()
    };
    let mut r = Rig::start(tag, imp, knobs, &["--delay", "10"]);
    r.connect(Duration::from_secs(60));
    r.ping(2);
    r.relay.cut();
    let cut = r.relay.proc.wait_for_log("CUT", 1, Duration::from_secs(10));
    cut.unwrap_or_else(|e| panic!("[{tag}] the relay did not cut the connection: {e}"));
    let t = Instant::now();
    let took = reconnect_time(&mut r, 2, t, "the TCP connection was cut");
    assert!(
        took < RECONNECT_BOUND,
        "[{tag}] reconnect took {took:?} after the TCP connection closed"
    );
    let p = traffic::ping_until(&r.lab.client_ns, &r.server.tunnel_v4(), RECONNECT_BOUND);
    p.unwrap_or_else(|e| panic!("[{tag}] no traffic after the reconnect: {e}"));
    let s = r.relay.stop();
    eprintln!("[{tag}] relay: {s}");
    assert_eq!(s.get("cuts"), 1, "[{tag}] {s}");
    assert!(s.get("connections") >= 2, "[{tag}] no new connection: {s}");
}

/// The parts of a `ferrovpn serve` lab: server config, PKI, tls-crypt key, client profile.
fn ferrovpn_serve_setup(lab: &Lab, keepalive: &str) -> (ServerConf, std::path::PathBuf) {
    let pki = ServerPki::generate(&lab.dir.join("pki"), &["client1"], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let mut conf = ServerConf::common(&pki, &format!("198.19.{}.0", lab.x), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), fvserver::Proto::Udp)
        .line(wrap.server_line.clone())
        .set("keepalive", format!("keepalive {keepalive}"));
    let profile = Profile::new(
        lab,
        fvserver::Proto::Udp,
        ClientAuth::Cert("client1".into()),
        Some(&wrap),
    )
    .write(lab, &pki, "client1");
    via_relay(&profile, fvserver::PORT);
    (conf, profile)
}

/// (c) `ferrovpn serve` stops (SIGTERM: it sends RESTART to its clients) and starts again: the
/// client reconnects at once, not after ping-restart (60 s).
#[test]
fn ferrovpn_serve_restart_reconnects_quickly() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "serve-restart";
    let lab = Lab::new(tag);
    let (conf, profile) = ferrovpn_serve_setup(&lab, "10 60");
    let mut server = Server::start(&lab, ServerImpl::Ferrovpn, &conf);
    let addr = lab.server_underlay_v4();
    let relay = Relay::start(
        &lab,
        &lab.server_ns,
        "udp",
        &addr,
        (&addr, fvserver::PORT),
        &["--delay", "10"],
    );
    let mut client = Client::start(&lab, imp, &profile, &[]);
    let tunnel = format!("198.19.{}.1", lab.x);
    client
        .wait_connected(1, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("[{tag}] client did not connect: {e}"));
    traffic::ping(&lab.client_ns, &tunnel, 3).unwrap_or_else(|e| panic!("[{tag}] {e}"));
    let t = Instant::now();
    let status = server.proc.stop_with(Duration::from_secs(10));
    eprintln!(
        "[{tag}] ferrovpn serve stopped ({status}) in {:.2?}",
        t.elapsed()
    );
    drop(server);
    let server = Server::start(&lab, ServerImpl::Ferrovpn, &conf);
    let r = client.wait_connected(2, Duration::from_secs(90));
    r.unwrap_or_else(|e| panic!("[{tag}] no reconnect after the server restart: {e}"));
    let took = t.elapsed();
    eprintln!("[{tag}] reconnected {took:.2?} after the server was stopped (ping-restart 60 s)");
    assert!(
        took < RECONNECT_BOUND,
        "[{tag}] reconnect took {took:?}: the client did not act on ferrovpn serve's RESTART"
    );
    let p = traffic::ping_until(&lab.client_ns, &tunnel, RECONNECT_BOUND);
    p.unwrap_or_else(|e| panic!("[{tag}] no traffic after the reconnect: {e}"));
    drop((client, relay, server));
}

/// Runs a paced transfer while the relay moves the client to a new source port (twice); the
/// transfer must finish intact without a new session.
fn float_during_transfer(
    tag: &str,
    lab: &Lab,
    relay: &mut Relay,
    client: &Client,
    tunnel: &str,
) -> impair::RelayStats {
    // 6 MB each way at 400 kB/s: ~15 s per direction, rebinds at 4 s and 20 s.
    let t = Transfer::new(tunnel, 6 * MB, 6 * MB)
        .rate(400_000)
        .timeout(Duration::from_secs(300));
    std::thread::scope(|sc| {
        let h = sc.spawn(|| traffic::transfer(lab, &t));
        for wait in [4, 16] {
            std::thread::sleep(Duration::from_secs(wait));
            if h.is_finished() {
                break;
            }
            relay.rebind();
            eprintln!("[{tag}] relay rebound (the server now sees a new client port)");
        }
        let r = h.join().expect("transfer thread");
        let r = r.unwrap_or_else(|e| panic!("[{tag}] transfer across the float failed: {e}"));
        eprintln!("[{tag}] {}", r.summary(&t));
    });
    traffic::ping(&lab.client_ns, tunnel, 3).unwrap_or_else(|e| panic!("[{tag}] {e}"));
    let s = relay.stop();
    eprintln!("[{tag}] relay: {s}");
    assert!(
        s.upstream_ports() >= 3,
        "[{tag}] the relay did not rebind twice: {s}"
    );
    let sessions = client.proc.count_in_log(LOG_CONNECTED);
    assert_eq!(
        sessions, 1,
        "[{tag}] the client started a new session ({sessions} x {LOG_CONNECTED:?}) instead of \
         floating"
    );
    s
}

/// (d) Float against the OpenVPN server: the client's underlay port changes mid-transfer
/// (peer-id lets the server follow it); no reconnect, no corrupted byte.
#[test]
fn float_openvpn_server() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "float-openvpn";
    let mut r = Rig::start(tag, imp, Knobs::default(), &[]);
    r.connect(Duration::from_secs(60));
    let tunnel = r.server.tunnel_v4();
    float_during_transfer(tag, &r.lab, &mut r.relay, &r.client, &tunnel);
    // OpenVPN 2.6 logs "peer N (CN) floated from A to B" (verb 4 and up).
    let floats = r.server.count_in_log("floated from");
    assert!(
        floats >= 2,
        "[{tag}] the OpenVPN server logged {floats} floats (\"floated from\"), one per rebind expected"
    );
}

/// (d) Float against `ferrovpn serve`: the same, and the server logs the move.
#[test]
fn float_ferrovpn_serve() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "float-serve";
    let lab = Lab::new(tag);
    let (conf, profile) = ferrovpn_serve_setup(&lab, "2 20");
    let server = Server::start(&lab, ServerImpl::Ferrovpn, &conf);
    let addr = lab.server_underlay_v4();
    let mut relay = Relay::start(
        &lab,
        &lab.server_ns,
        "udp",
        &addr,
        (&addr, fvserver::PORT),
        &[],
    );
    let mut client = Client::start(&lab, imp, &profile, &[]);
    client
        .wait_connected(1, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("[{tag}] client did not connect: {e}"));
    let tunnel = format!("198.19.{}.1", lab.x);
    float_during_transfer(tag, &lab, &mut relay, &client, &tunnel);
    let moved = server.proc.count_in_log("moved from");
    assert!(
        moved >= 2,
        "[{tag}] ferrovpn serve logged {moved} moves (\"moved from\"), expected one per rebind"
    );
    drop((client, relay, server));
}

/// The steady stream of (e): datagrams a second, bytes each, seconds.
#[derive(Clone, Copy)]
struct Stream {
    rate: u32,
    size: u32,
    secs: u32,
}

/// One steady-stream run for (e): lab, OpenVPN server (renegotiating every `reneg` seconds, its
/// old key dying `tran-window 3` seconds later), the client without a relay, and the stream
/// through the tunnel. Returns the loss and the number of data keys the server installed during
/// the stream.
fn stream_run(
    tag: &str,
    imp: ClientImpl,
    reneg: Option<u32>,
    st: Stream,
) -> (impair::StreamLoss, usize) {
    let lab = Lab::new(tag);
    let knobs = Knobs {
        reneg_sec: reneg,
        // The old key dies 3 s after a renegotiation began: a client that keeps sending with it
        // (or cannot receive with the new one) loses packets.
        extra_server: if reneg.is_some() {
            vec!["tran-window 3".into()]
        } else {
            vec![]
        },
        ..Knobs::default()
    };
    let mut server = OpenVpnServer::new(&lab, knobs);
    server.start(&lab);
    let profile = server.client_profile(&lab, "client.ovpn");
    let mut client = Client::start(&lab, imp, &profile, &[]);
    client
        .wait_connected(1, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("[{tag}] client did not connect: {e}"));
    traffic::ping_until(&lab.client_ns, &server.tunnel_v4(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("[{tag}] {e}"));
    let keys_before = server.count_in_log(NEW_KEY_LINE);
    let loss = udp_stream(&lab, &server.tunnel_v4(), 7000, st.rate, st.size, st.secs);
    let keys = server.count_in_log(NEW_KEY_LINE) - keys_before;
    assert_eq!(
        client.proc.count_in_log(LOG_CONNECTED),
        1,
        "[{tag}] the client reconnected during the stream"
    );
    drop(client);
    drop(server);
    (loss, keys)
}

/// Runs the stream without and with renegotiation every `reneg` seconds, prints both, and
/// asserts the renegotiations happened and the loss stays within `slack` of the baseline.
fn reneg_compare(tag: &str, imp: ClientImpl, reneg: u32, st: Stream, slack_pct: f64) {
    let (base, base_keys) = stream_run(&format!("{tag}-base"), imp, None, st);
    eprintln!("[{tag}] without renegotiation: {base} ({base_keys} new keys)");
    let (with, keys) = stream_run(&format!("{tag}-reneg"), imp, Some(reneg), st);
    eprintln!("[{tag}] renegotiation every {reneg} s: {with} ({keys} new keys)");
    let want = (st.secs / reneg).saturating_sub(3).max(1) as usize;
    assert!(
        keys >= want,
        "[{tag}] only {keys} renegotiations in {} s with reneg-sec {reneg}",
        st.secs
    );
    let expected = u64::from(st.rate * st.secs);
    assert!(
        base.sent >= expected * 9 / 10 && with.sent >= expected * 9 / 10,
        "[{tag}] the sender fell behind ({} and {} of {expected})",
        base.sent,
        with.sent
    );
    let bound = base.lost() + (with.sent as f64 * slack_pct / 100.0) as u64;
    assert!(
        with.lost() <= bound,
        "[{tag}] {} datagrams lost with renegotiation every {reneg} s, {} without (bound {bound})",
        with.lost(),
        base.lost()
    );
}

/// (e) `reneg-sec 5` on the server (OpenVPN 2.6 takes any value; a server picks each session's
/// period between 90 % and 100 % of it) and `tran-window 3` for 40 s under a steady stream of 50
/// numbered datagrams a second, compared with the same run without renegotiation: the loss must
/// stay within 2 % of the stream above the baseline (a one-second hole would be 2.5 %).
/// `tests/benches/reneg_soak.sh` runs the long version (`reneg_soak` below).
#[test]
fn renegotiation_every_5s_keeps_the_stream() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let st = Stream {
        rate: 50,
        size: 200,
        secs: 40,
    };
    reneg_compare("reneg5", imp, 5, st, 2.0);
}

/// The soak behind `tests/benches/reneg_soak.sh` (not in CI): renegotiation every 10 s for
/// `FERROVPN_SOAK_MINUTES` (default 10) under a stream of 200 datagrams of 1200 bytes a second
/// each way, against the same run without renegotiation. Bound: 0.5 % of the stream above the
/// baseline.
#[test]
#[ignore = "long soak: run tests/benches/reneg_soak.sh"]
fn reneg_soak() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let minutes: u32 = std::env::var("FERROVPN_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let st = Stream {
        rate: 200,
        size: 1200,
        secs: minutes * 60,
    };
    reneg_compare("reneg-soak", imp, 10, st, 0.5);
}

/// The `dropped N packets` count of the ferrovpn client's `session summary` line(s), summed.
fn summary_drops(log: &str) -> Option<u64> {
    let mut total = None;
    for l in log.lines().filter(|l| l.contains("session summary:")) {
        let n = l
            .split("dropped ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())?;
        total = Some(total.unwrap_or(0) + n);
    }
    total
}

/// (f) 5 % of the server's datagrams tampered (one bit flipped), 5 % truncated and 5 % replayed
/// by the relay: the tunnel still carries a checksummed transfer, and the ferrovpn client counts
/// the packets it dropped (rate-limited warnings while it runs, a summary line at the end).
#[test]
fn hostile_server_packets_are_dropped_and_counted() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let _serial = serial();
    let tag = "hostile";
    let mut r = Rig::start(
        tag,
        imp,
        Knobs::default(),
        &[
            "--down-tamper",
            "5",
            "--down-truncate",
            "5",
            "--down-replay",
            "5",
            "--seed",
            "66",
        ],
    );
    let started = Instant::now();
    r.connect(Duration::from_secs(120));
    let t = Transfer::new(&r.server.tunnel_v4(), 3 * MB, 3 * MB).timeout(Duration::from_secs(600));
    r.bulk(&t);
    r.ping(3);
    let status = r.client.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "[{tag}] client did not exit cleanly: {status:?}"
    );
    let s = r.relay.stop();
    eprintln!("[{tag}] relay: {s}");
    let (tampered, truncated, replayed) = (
        s.get("down_tampered"),
        s.get("down_truncated"),
        s.get("down_replayed"),
    );
    assert!(
        tampered > 0 && truncated > 0 && replayed > 0,
        "[{tag}] the relay did not do its job: {s}"
    );
    if imp != ClientImpl::Ferrovpn {
        eprintln!(
            "[{tag}] drop counters are ferrovpn's: not checked for {}",
            imp.name()
        );
        return;
    }
    let log = r.client.log_text();
    let dropped = summary_drops(&log)
        .unwrap_or_else(|| panic!("[{tag}] no `session summary: ... dropped N packets` line"));
    let warnings = log
        .lines()
        .filter(|l| l.contains("dropped ") && l.contains("failed authentication"))
        .count();
    eprintln!(
        "[{tag}] client dropped {dropped} packets (relay: {tampered} tampered, {truncated} \
         truncated, {replayed} replayed); {warnings} drop warnings"
    );
    // Every tampered or truncated datagram fails its tag or format check (a flipped bit in an
    // unauthenticated spot is rare); replays are dropped by the replay window when they are
    // data. Generous: at least half of the tampered and truncated ones.
    assert!(
        dropped >= (tampered + truncated) / 2 && dropped > 0,
        "[{tag}] the client counted {dropped} drops for {tampered} tampered and {truncated} \
         truncated datagrams"
    );
    assert!(warnings >= 1, "[{tag}] no drop warning in the client log");
    // Rate-limited: at most one warning per 10 s of the session (plus one).
    let most = started.elapsed().as_secs() / 10 + 1;
    assert!(
        warnings as u64 <= most,
        "[{tag}] {warnings} drop warnings in {:.0?}: not rate-limited (at most {most})",
        started.elapsed()
    );
}
