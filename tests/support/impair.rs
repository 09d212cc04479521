//! The impairment relay (tests/support/impair.py) between a client and its server: this kernel
//! has no netem, so the fault tests forward the tunnel's underlay through a relay they own, with
//! seeded loss, delay, reordering, duplication, tampering, truncation, replay, a rebind of the
//! upstream port (the server sees the client float) and, over TCP, a cut connection.
//!
//! The relay runs inside a lab namespace (normally the server's, listening on the server's
//! underlay address at [`RELAY_PORT`]); [`via_relay`] rewrites a client profile's `remote` to it.
//! Its counters ([`RelayStats`]) prove that the impairment really happened.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::netns::{Lab, Proc};

pub const IMPAIR_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/impair.py");
pub const UDPSEQ_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/udpseq.py");
/// Where the relay listens (the server keeps its own port).
pub const RELAY_PORT: u16 = 1195;

/// A running relay. Dropping it stops it (SIGTERM: it writes its counters first).
pub struct Relay {
    pub proc: Proc,
    pub stats_path: PathBuf,
}

impl Relay {
    /// Starts `impair.py MODE LISTEN RELAY_PORT UPSTREAM UPSTREAM_PORT ARGS...` in `ns` and waits
    /// until it listens. `mode` is `udp` or `tcp`; `args` are impair.py options
    /// (`--loss 30`, `--down-tamper 5`, `--seed 7`, ...).
    pub fn start(
        lab: &Lab,
        ns: &str,
        mode: &str,
        listen: &str,
        upstream: (&str, u16),
        args: &[&str],
    ) -> Relay {
        let stats_path = lab.dir.join(format!("relay-{mode}-stats.json"));
        let (port, up_port) = (RELAY_PORT.to_string(), upstream.1.to_string());
        let stats = stats_path.to_string_lossy().into_owned();
        let mut argv = vec![
            super::python3(),
            IMPAIR_PY,
            mode,
            listen,
            &port,
            upstream.0,
            &up_port,
            "--stats",
            &stats,
        ];
        argv.extend_from_slice(args);
        let mut proc = lab.spawn("impairment relay", ns, &argv, &format!("relay-{mode}.log"));
        if let Err(e) = proc.wait_for_log("LISTENING", 1, Duration::from_secs(15)) {
            panic!("the impairment relay did not start: {e}");
        }
        Relay { proc, stats_path }
    }

    /// The counters as last written (every second, and at exit).
    pub fn stats(&self) -> RelayStats {
        RelayStats(fs::read_to_string(&self.stats_path).unwrap_or_default())
    }

    /// SIGUSR1: new upstream sockets now (the server sees the client at a new port).
    pub fn rebind(&mut self) {
        self.proc.signal(libc::SIGUSR1);
    }

    /// SIGUSR2 (TCP): closes every relayed connection now, both sides.
    pub fn cut(&mut self) {
        self.proc.signal(libc::SIGUSR2);
    }

    /// Stops the relay (SIGTERM) and returns its final counters.
    pub fn stop(&mut self) -> RelayStats {
        self.proc.stop();
        self.stats()
    }
}

/// The relay's JSON counters (flat object of numbers and one list), read by key.
#[derive(Clone, Debug)]
pub struct RelayStats(pub String);

impl RelayStats {
    /// The number under `key` (0 if absent).
    pub fn get(&self, key: &str) -> u64 {
        let pat = format!("\"{key}\": ");
        self.0
            .find(&pat)
            .map(|i| &self.0[i + pat.len()..])
            .and_then(|rest| {
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                rest[..end].parse().ok()
            })
            .unwrap_or(0)
    }

    /// How many upstream source ports the relay has used (1 + rebinds per client).
    pub fn upstream_ports(&self) -> usize {
        let Some(i) = self.0.find("\"upstream_ports\": [") else {
            return 0;
        };
        let rest = &self.0[i..];
        let list = &rest[rest.find('[').unwrap() + 1..rest.find(']').unwrap_or(rest.len())];
        list.split(',').filter(|s| !s.trim().is_empty()).count()
    }
}

impl std::fmt::Display for RelayStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.trim())
    }
}

/// Rewrites `remote HOST PORT ...` lines of the profile at `path` to `remote HOST RELAY_PORT ...`.
pub fn via_relay(path: &Path, server_port: u16) {
    let text = fs::read_to_string(path).expect("read profile");
    let from = format!(" {server_port}");
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("remote ") {
                l.replacen(&from, &format!(" {RELAY_PORT}"), 1)
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(
        out.iter().any(|l| l.contains(&format!(" {RELAY_PORT}"))),
        "no `remote` line with port {server_port} in {}",
        path.display()
    );
    fs::write(path, out.join("\n") + "\n").expect("write profile");
}

/// Result of one [`udp_stream`] run.
#[derive(Clone, Copy, Debug)]
pub struct StreamLoss {
    pub sent: u64,
    pub received: u64,
    pub longest_gap: u64,
}

impl StreamLoss {
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    pub fn percent(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        self.lost() as f64 * 100.0 / self.sent as f64
    }
}

impl std::fmt::Display for StreamLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} datagrams lost ({:.2} %), longest gap {}",
            self.lost(),
            self.sent,
            self.percent(),
            self.longest_gap
        )
    }
}

/// A steady stream of numbered UDP datagrams of `size` bytes from the client namespace to an
/// echo service on `addr` in the server namespace (through the tunnel) for `secs` at `rate` per
/// second; counts what came back.
pub fn udp_stream(lab: &Lab, addr: &str, port: u16, rate: u32, size: u32, secs: u32) -> StreamLoss {
    let p = port.to_string();
    let mut echo = lab.spawn(
        "udpseq echo",
        &lab.server_ns,
        &[super::python3(), UDPSEQ_PY, "echo", addr, &p],
        &format!("udpseq-echo-{port}.log"),
    );
    if let Err(e) = echo.wait_for_log("LISTENING", 1, Duration::from_secs(10)) {
        panic!("udpseq echo did not start: {e}");
    }
    let (rate_s, secs_s, size_s) = (rate.to_string(), secs.to_string(), size.to_string());
    let mut send = lab.spawn(
        "udpseq send",
        &lab.client_ns,
        &[
            super::python3(),
            UDPSEQ_PY,
            "send",
            addr,
            &p,
            "--rate",
            &rate_s,
            "--duration",
            &secs_s,
            "--size",
            &size_s,
        ],
        &format!("udpseq-send-{port}.log"),
    );
    let status = send.wait_timeout(Duration::from_secs(u64::from(secs) * 3 + 60));
    assert!(
        status.is_some_and(|s| s.success()),
        "udpseq send did not finish ({status:?}): {}",
        send.log_text()
    );
    echo.stop();
    let log = send.log_text();
    let field = |line: &str, word: &str| -> u64 {
        log.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let i = w.iter().position(|x| *x == word)?;
                w.get(i + 1)?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no `{line} ... {word} N` in the udpseq output: {log}"))
    };
    StreamLoss {
        sent: field("RESULT", "sent"),
        received: field("RESULT", "received"),
        longest_gap: field("GAP", "longest"),
    }
}
