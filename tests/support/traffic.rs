//! Traffic through the tunnel: ping/ping6 from the client namespace, and bulk TCP transfers in
//! both directions with SHA-256 checksums compared end to end (tests/support/blast.py).

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::netns::{Lab, exec_in};

pub const BLAST_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/blast.py");
pub const MB: u64 = 1_000_000;

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// `ping -c COUNT -W 2` (ping6 for IPv6 addresses) from namespace `ns`. Ok if at least one
/// reply came back.
pub fn ping(ns: &str, addr: &str, count: u32) -> Result<Duration, String> {
    let start = Instant::now();
    let count = count.to_string();
    let mut argv = vec!["ping", "-n", "-q", "-c", &count, "-i", "0.2", "-W", "2"];
    if addr.contains(':') {
        argv.push("-6");
    }
    argv.push(addr);
    let out = exec_in(ns, &argv);
    if out.status.success() {
        Ok(start.elapsed())
    } else {
        Err(format!(
            "ping {addr} from {ns} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Retries [`ping`] until it succeeds or `timeout` passes (for right after a (re)connect).
pub fn ping_until(ns: &str, addr: &str, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        match ping(ns, addr, 1) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) if start.elapsed() >= timeout => return Err(e),
            Err(_) => {}
        }
    }
}

/// One bulk transfer: the client (in the client namespace) sends `up` bytes to a sink listening
/// on `addr` in the server namespace, which then sends `down` bytes back.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub addr: String,
    pub up: u64,
    pub down: u64,
    /// Bytes per second in each direction; 0 = as fast as possible.
    pub rate: u64,
    pub seed: u64,
    /// The whole transfer must finish within this time.
    pub timeout: Duration,
    /// Either side gives up if the other stalls this long.
    pub stall: Duration,
}

impl Transfer {
    pub fn new(addr: &str, up: u64, down: u64) -> Transfer {
        Transfer {
            addr: addr.to_owned(),
            up,
            down,
            rate: 0,
            seed: 0x5eed,
            timeout: Duration::from_secs(120),
            stall: Duration::from_secs(30),
        }
    }

    pub fn rate(mut self, bytes_per_sec: u64) -> Transfer {
        self.rate = bytes_per_sec;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Transfer {
        self.timeout = t;
        self
    }
}

#[derive(Clone, Debug)]
pub struct TransferReport {
    pub elapsed: Duration,
    pub up_secs: f64,
    pub down_secs: f64,
}

impl TransferReport {
    /// "up X MB/s, down Y MB/s" as seen by the receivers.
    pub fn summary(&self, t: &Transfer) -> String {
        let rate = |b: u64, s: f64| {
            if s > 0.0 {
                b as f64 / MB as f64 / s
            } else {
                f64::NAN
            }
        };
        format!(
            "{:.1} MB up in {:.2} s ({:.1} MB/s), {:.1} MB down in {:.2} s ({:.1} MB/s), total {:.2?}",
            t.up as f64 / MB as f64,
            self.up_secs,
            rate(t.up, self.up_secs),
            t.down as f64 / MB as f64,
            self.down_secs,
            rate(t.down, self.down_secs),
            self.elapsed
        )
    }
}

fn python3() -> &'static str {
    super::python3()
}

/// Finds `WORD sha n secs` in a blast.py log.
fn parse(log: &str, word: &str) -> Option<(String, u64, f64)> {
    log.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        if it.next()? != word {
            return None;
        }
        let sha = it.next()?.to_owned();
        let n = it.next()?.parse().ok()?;
        let secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
        Some((sha, n, secs))
    })
}

/// Runs one transfer and compares the checksums of both directions.
pub fn transfer(lab: &Lab, t: &Transfer) -> Result<TransferReport, String> {
    transfer_between(lab, &lab.server_ns, &lab.client_ns, t)
}

/// Like [`transfer`] between any two namespaces: the sink listens on `t.addr` in `sink_ns`, the
/// source connects to it from `source_ns`.
pub fn transfer_between(
    lab: &Lab,
    sink_ns: &str,
    source_ns: &str,
    t: &Transfer,
) -> Result<TransferReport, String> {
    let k = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
    let port = (5001 + k).to_string();
    let stall = format!("{}", t.stall.as_secs_f64());
    let start = Instant::now();
    let mut sink = lab.spawn(
        "blast serve",
        sink_ns,
        &[
            python3(),
            BLAST_PY,
            "serve",
            &t.addr,
            &port,
            "--timeout",
            &stall,
        ],
        &format!("blast-{k}-serve.log"),
    );
    sink.wait_for_log("LISTENING", 1, Duration::from_secs(10))?;
    let (up, down, seed, rate) = (
        t.up.to_string(),
        t.down.to_string(),
        t.seed.to_string(),
        t.rate.to_string(),
    );
    let mut src = lab.spawn(
        "blast send",
        source_ns,
        &[
            python3(),
            BLAST_PY,
            "send",
            &t.addr,
            &port,
            "--up",
            &up,
            "--down",
            &down,
            "--seed",
            &seed,
            "--rate",
            &rate,
            "--timeout",
            &stall,
        ],
        &format!("blast-{k}-send.log"),
    );
    let left = t.timeout.saturating_sub(start.elapsed());
    let status = src.wait_timeout(left);
    let elapsed = start.elapsed();
    let sink_status = sink.wait_timeout(Duration::from_secs(5));
    let (slog, clog) = (sink.log_text(), src.log_text());
    let context = || {
        format!(
            "\n  sink log: {}\n  source log: {}",
            slog.trim(),
            clog.trim()
        )
    };
    match status {
        None => {
            return Err(format!(
                "transfer did not finish within {:?}{}",
                t.timeout,
                context()
            ));
        }
        Some(s) if !s.success() => {
            return Err(format!("transfer source failed ({s}){}", context()));
        }
        Some(_) => {}
    }
    if !sink_status.is_some_and(|s| s.success()) {
        return Err(format!(
            "transfer sink failed ({sink_status:?}){}",
            context()
        ));
    }
    let get = |log: &str, w: &str| parse(log, w).ok_or_else(|| format!("no {w} line{}", context()));
    let (c_sent, c_recv) = (get(&clog, "SENT")?, get(&clog, "RECV")?);
    let (s_sent, s_recv) = (get(&slog, "SENT")?, get(&slog, "RECV")?);
    if (c_sent.0.as_str(), c_sent.1) != (s_recv.0.as_str(), s_recv.1) || s_recv.1 != t.up {
        return Err(format!(
            "upstream data corrupted: sent {c_sent:?}, received {s_recv:?}"
        ));
    }
    if (s_sent.0.as_str(), s_sent.1) != (c_recv.0.as_str(), c_recv.1) || c_recv.1 != t.down {
        return Err(format!(
            "downstream data corrupted: sent {s_sent:?}, received {c_recv:?}"
        ));
    }
    Ok(TransferReport {
        elapsed,
        up_secs: s_recv.2,
        down_secs: c_recv.2,
    })
}
