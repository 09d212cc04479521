//! OpenVPN 2.6 status output (`--status`, management `status`) in versions 1, 2 and 3.
//!
//! The formats follow `multi_print_status` of OpenVPN 2.6 as observed from a running 2.6.14
//! server: version 1 is a human-oriented table, version 2 is comma-separated records with
//! `HEADER` lines, version 3 is version 2 with tabs. Times are local time as
//! `%Y-%m-%d %H:%M:%S`, plus a `time_t` column in versions 2 and 3.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::control::{ClientSnapshot, RouteSnapshot, ServerControl};

/// Product string used for `TITLE` (status v2/v3) and the management `version` command.
pub const TITLE: &str = concat!(
    "ferrovpn ",
    env!("CARGO_PKG_VERSION"),
    " (OpenVPN 2.6 compatible)"
);

/// Status output format (`--status-version`, management `status n`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusVersion {
    /// Human-readable table (the default).
    #[default]
    V1,
    /// Comma-separated records.
    V2,
    /// Tab-separated records.
    V3,
}

impl StatusVersion {
    /// Parses the numeric version (1, 2 or 3).
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }
}

/// Renders the status report; lines end with `\n`.
pub fn render_status(
    version: StatusVersion,
    clients: &[ClientSnapshot],
    routes: &[RouteSnapshot],
    now: SystemTime,
) -> String {
    render_with_zone(version, clients, routes, now, local_zone())
}

/// Formats `t` the way OpenVPN 2.6 prints times: local time, `%Y-%m-%d %H:%M:%S`.
pub fn format_local_time(t: SystemTime) -> String {
    local_zone().format(t)
}

/// Seconds since the epoch, as OpenVPN's `time_t` columns (0 for times before the epoch).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The periodic status file (`status path [n]` with `status-version`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusFile {
    /// File to (re)write.
    pub path: PathBuf,
    /// Rewrite period (OpenVPN's default is 60 s).
    pub interval: Duration,
    /// Output format.
    pub version: StatusVersion,
}

/// Rewrites the status file every `cfg.interval` until `stop` turns true (or its sender is
/// dropped), then writes it once more. Each write goes to a temporary file in the same directory
/// which is then renamed over the target, so readers never see a partial file. Write errors are
/// logged and retried at the next tick.
pub async fn run_status_file(
    cfg: StatusFile,
    control: Arc<dyn ServerControl>,
    mut stop: watch::Receiver<bool>,
) {
    let period = cfg.interval.max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => write_status_file(&cfg, control.as_ref()).await,
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    write_status_file(&cfg, control.as_ref()).await;
}

/// Current wall time, through the crate's one clock reader (second resolution is all OpenVPN's
/// formats carry).
pub(crate) fn wall_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(crate::runtime::clock::unix_seconds().into())
}

async fn write_status_file(cfg: &StatusFile, control: &dyn ServerControl) {
    let text = render_status(
        cfg.version,
        &control.clients(),
        &control.routes(),
        wall_now(),
    );
    if let Err(e) = write_atomically(&cfg.path, text.as_bytes()).await {
        tracing::warn!("status file {}: {e}", cfg.path.display());
    }
}

async fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "status".to_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = async {
        tokio::fs::write(&tmp, data).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

fn render_with_zone(
    version: StatusVersion,
    clients: &[ClientSnapshot],
    routes: &[RouteSnapshot],
    now: SystemTime,
    zone: &Zone,
) -> String {
    let mut out = String::with_capacity(256 + 160 * (clients.len() + routes.len()));
    // `write!` into a String cannot fail.
    match version {
        StatusVersion::V1 => {
            out.push_str("OpenVPN CLIENT LIST\n");
            let _ = writeln!(out, "Updated,{}", zone.format(now));
            out.push_str("Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n");
            for c in clients {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{}",
                    c.common_name,
                    real_addr(c.real_addr),
                    c.bytes_received,
                    c.bytes_sent,
                    zone.format(c.connected_since)
                );
            }
            out.push_str("ROUTING TABLE\n");
            out.push_str("Virtual Address,Common Name,Real Address,Last Ref\n");
            for r in routes {
                let _ = writeln!(
                    out,
                    "{},{},{},{}",
                    r.virtual_addr,
                    r.common_name,
                    real_addr(r.real_addr),
                    zone.format(r.last_ref)
                );
            }
            out.push_str("GLOBAL STATS\n");
            out.push_str("Max bcast/mcast queue length,0\n");
            out.push_str("END\n");
        }
        StatusVersion::V2 | StatusVersion::V3 => {
            let s = if version == StatusVersion::V3 {
                '\t'
            } else {
                ','
            };
            let _ = writeln!(out, "TITLE{s}{TITLE}");
            let _ = writeln!(out, "TIME{s}{}{s}{}", zone.format(now), unix_secs(now));
            let header = [
                "HEADER",
                "CLIENT_LIST",
                "Common Name",
                "Real Address",
                "Virtual Address",
                "Virtual IPv6 Address",
                "Bytes Received",
                "Bytes Sent",
                "Connected Since",
                "Connected Since (time_t)",
                "Username",
                "Client ID",
                "Peer ID",
                "Data Channel Cipher",
            ];
            push_joined(&mut out, &header, s);
            for c in clients {
                let fields = [
                    "CLIENT_LIST".to_owned(),
                    c.common_name.clone(),
                    real_addr(c.real_addr),
                    c.virtual_v4.map(|a| a.to_string()).unwrap_or_default(),
                    c.virtual_v6.map(|a| a.to_string()).unwrap_or_default(),
                    c.bytes_received.to_string(),
                    c.bytes_sent.to_string(),
                    zone.format(c.connected_since),
                    unix_secs(c.connected_since).to_string(),
                    c.username.clone().unwrap_or_else(|| "UNDEF".to_owned()),
                    c.client_id.to_string(),
                    c.peer_id.to_string(),
                    c.cipher.clone(),
                ];
                push_joined(&mut out, &fields, s);
            }
            let header = [
                "HEADER",
                "ROUTING_TABLE",
                "Virtual Address",
                "Common Name",
                "Real Address",
                "Last Ref",
                "Last Ref (time_t)",
            ];
            push_joined(&mut out, &header, s);
            for r in routes {
                let fields = [
                    "ROUTING_TABLE".to_owned(),
                    r.virtual_addr.clone(),
                    r.common_name.clone(),
                    real_addr(r.real_addr),
                    zone.format(r.last_ref),
                    unix_secs(r.last_ref).to_string(),
                ];
                push_joined(&mut out, &fields, s);
            }
            let _ = writeln!(out, "GLOBAL_STATS{s}Max bcast/mcast queue length{s}0");
            let _ = writeln!(out, "GLOBAL_STATS{s}dco_enabled{s}0");
            out.push_str("END\n");
        }
    }
    out
}

fn push_joined<S: AsRef<str>>(out: &mut String, fields: &[S], sep: char) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.push_str(f.as_ref());
    }
    out.push('\n');
}

/// OpenVPN's `mroute_addr_print` for a transport address: `a.b.c.d:port`, `[v6]:port`, and
/// v4-mapped IPv6 printed as plain IPv4.
fn real_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", a.port()),
            None => format!("[{}]:{}", a.ip(), a.port()),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Local time without libc: the TZif zone file named by `TZ`, else `/etc/localtime`.

/// A time zone: UTC offsets by transition time, read from a TZif file.
///
/// Times after the last listed transition use the last offset (the POSIX footer rule of TZif v2+
/// is not evaluated; distribution "fat" zone files list transitions up to 2037).
#[derive(Debug, Default)]
struct Zone {
    /// `(transition time, UTC offset in seconds)`, sorted by time.
    transitions: Vec<(i64, i32)>,
    /// Offset before the first transition (and for zones without transitions).
    initial: i32,
}

impl Zone {
    fn utc() -> Self {
        Self::default()
    }

    fn offset_at(&self, t: i64) -> i32 {
        match self.transitions.partition_point(|&(at, _)| at <= t) {
            0 => self.initial,
            i => self.transitions[i - 1].1,
        }
    }

    fn format(&self, t: SystemTime) -> String {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX / 2),
        };
        let local = secs + i64::from(self.offset_at(secs));
        let (days, rem) = (local.div_euclid(86_400), local.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }

    /// Parses a TZif file (RFC 8536), preferring the 64-bit data block of version 2+ files.
    fn parse_tzif(data: &[u8]) -> Option<Self> {
        let header = TzifHeader::parse(data)?;
        let (header, body, time_size) = if header.version >= b'2' {
            let rest = data.get(44 + header.block_len(4)?..)?;
            let h2 = TzifHeader::parse(rest)?;
            (h2, rest.get(44..)?, 8)
        } else {
            (header, data.get(44..)?, 4)
        };
        let times_len = header.timecnt.checked_mul(time_size)?;
        let times = body.get(..times_len)?;
        let idx = body.get(times_len..times_len + header.timecnt)?;
        let types_at = times_len + header.timecnt;
        let types = body.get(types_at..types_at + header.typecnt.checked_mul(6)?)?;
        let utoff = |i: usize| -> Option<i32> {
            let b = types.get(i * 6..i * 6 + 4)?;
            Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut transitions = Vec::with_capacity(header.timecnt);
        for (i, &ty) in idx.iter().enumerate() {
            let raw = &times[i * time_size..(i + 1) * time_size];
            let at = if time_size == 8 {
                i64::from_be_bytes(raw.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(raw.try_into().ok()?))
            };
            transitions.push((at, utoff(usize::from(ty))?));
        }
        Some(Self {
            transitions,
            initial: if header.typecnt > 0 { utoff(0)? } else { 0 },
        })
    }
}

struct TzifHeader {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl TzifHeader {
    fn parse(data: &[u8]) -> Option<Self> {
        if data.get(..4)? != b"TZif" {
            return None;
        }
        let count = |i: usize| -> Option<usize> {
            let b = data.get(20 + 4 * i..24 + 4 * i)?;
            usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
        };
        Some(Self {
            version: *data.get(4)?,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        })
    }

    /// Length of the data block that follows this header, for `time_size`-byte times.
    fn block_len(&self, time_size: usize) -> Option<usize> {
        let mut n = self.timecnt.checked_mul(time_size + 1)?;
        n = n.checked_add(self.typecnt.checked_mul(6)?)?;
        n = n.checked_add(self.charcnt)?;
        n = n.checked_add(self.leapcnt.checked_mul(time_size + 4)?)?;
        n.checked_add(self.isstdcnt)?.checked_add(self.isutcnt)
    }
}

/// The process's local zone, loaded once.
fn local_zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let path = match std::env::var("TZ") {
            Ok(tz) => {
                let tz = tz.strip_prefix(':').unwrap_or(&tz);
                if tz.is_empty() || tz.eq_ignore_ascii_case("UTC") || tz == "UTC0" {
                    return Zone::utc();
                }
                if tz.starts_with('/') {
                    PathBuf::from(tz)
                } else if tz.split('/').any(|part| part == "..") {
                    return Zone::utc();
                } else {
                    Path::new("/usr/share/zoneinfo").join(tz)
                }
            }
            Err(_) => PathBuf::from("/etc/localtime"),
        };
        std::fs::read(path)
            .ok()
            .and_then(|d| Zone::parse_tzif(&d))
            .unwrap_or_default()
    })
}

/// Days since 1970-01-01 to proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::runtime::server::control::Transport;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn fixtures() -> (Vec<ClientSnapshot>, Vec<RouteSnapshot>) {
        let a1: SocketAddr = "198.18.0.1:49672".parse().unwrap();
        let a2: SocketAddr = "[2001:db8::5]:1194".parse().unwrap();
        let clients = vec![
            ClientSnapshot {
                client_id: 0,
                peer_id: 0,
                common_name: "client1".into(),
                username: None,
                real_addr: a1,
                proto: Transport::Udp,
                virtual_v4: Some(Ipv4Addr::new(198, 18, 50, 2)),
                virtual_v6: Some("fd00:198:18::1000".parse::<Ipv6Addr>().unwrap()),
                bytes_received: 2149,
                bytes_sent: 2193,
                connected_since: at(1_795_321_701),
                cipher: "AES-256-GCM".into(),
            },
            ClientSnapshot {
                client_id: 7,
                peer_id: 3,
                common_name: "client2".into(),
                username: Some("alice".into()),
                real_addr: a2,
                proto: Transport::Tcp,
                virtual_v4: None,
                virtual_v6: None,
                bytes_received: 10,
                bytes_sent: 20,
                connected_since: at(1_795_321_702),
                cipher: "CHACHA20-POLY1305".into(),
            },
        ];
        let routes = vec![
            RouteSnapshot {
                virtual_addr: "198.18.50.2".into(),
                common_name: "client1".into(),
                real_addr: a1,
                last_ref: at(1_795_321_701),
            },
            RouteSnapshot {
                virtual_addr: "198.18.60.0/24".into(),
                common_name: "client2".into(),
                real_addr: a2,
                last_ref: at(1_795_321_703),
            },
        ];
        (clients, routes)
    }

    #[test]
    fn version1_matches_openvpn_layout() {
        let (c, r) = fixtures();
        let got = render_with_zone(StatusVersion::V1, &c, &r, at(1_795_321_717), &Zone::utc());
        let want = "OpenVPN CLIENT LIST\n\
Updated,2026-11-22 04:28:37\n\
Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n\
client1,198.18.0.1:49672,2149,2193,2026-11-22 04:28:21\n\
client2,[2001:db8::5]:1194,10,20,2026-11-22 04:28:22\n\
ROUTING TABLE\n\
Virtual Address,Common Name,Real Address,Last Ref\n\
198.18.50.2,client1,198.18.0.1:49672,2026-11-22 04:28:21\n\
198.18.60.0/24,client2,[2001:db8::5]:1194,2026-11-22 04:28:23\n\
GLOBAL STATS\n\
Max bcast/mcast queue length,0\n\
END\n";
        assert_eq!(got, want);
    }

    #[test]
    fn version2_matches_openvpn_layout() {
        let (c, r) = fixtures();
        let got = render_with_zone(StatusVersion::V2, &c, &r, at(1_795_321_718), &Zone::utc());
        let want = format!(
            "TITLE,{TITLE}\n\
TIME,2026-11-22 04:28:38,1795321718\n\
HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher\n\
CLIENT_LIST,client1,198.18.0.1:49672,198.18.50.2,fd00:198:18::1000,2149,2193,2026-11-22 04:28:21,1795321701,UNDEF,0,0,AES-256-GCM\n\
CLIENT_LIST,client2,[2001:db8::5]:1194,,,10,20,2026-11-22 04:28:22,1795321702,alice,7,3,CHACHA20-POLY1305\n\
HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)\n\
ROUTING_TABLE,198.18.50.2,client1,198.18.0.1:49672,2026-11-22 04:28:21,1795321701\n\
ROUTING_TABLE,198.18.60.0/24,client2,[2001:db8::5]:1194,2026-11-22 04:28:23,1795321703\n\
GLOBAL_STATS,Max bcast/mcast queue length,0\n\
GLOBAL_STATS,dco_enabled,0\n\
END\n"
        );
        assert_eq!(got, want);
        let v3 = render_with_zone(StatusVersion::V3, &c, &r, at(1_795_321_718), &Zone::utc());
        assert_eq!(v3, want.replace(',', "\t"));
    }

    #[test]
    fn empty_server_and_v4_mapped_addresses() {
        let got = render_with_zone(StatusVersion::V1, &[], &[], at(0), &Zone::utc());
        assert!(got.starts_with("OpenVPN CLIENT LIST\nUpdated,1970-01-01 00:00:00\n"));
        assert_eq!(
            real_addr("[::ffff:198.18.0.9]:5".parse().unwrap()),
            "198.18.0.9:5"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_774), (2026, 11, 17));
    }

    #[test]
    fn tzif_zone_offsets() {
        let Ok(data) = std::fs::read("/usr/share/zoneinfo/Europe/Berlin") else {
            return; // no tzdata on this machine
        };
        let zone = Zone::parse_tzif(&data).expect("valid TZif");
        // 2024-07-01 12:00:00 UTC is CEST (+2), 2024-01-15 12:00:00 UTC is CET (+1).
        assert_eq!(zone.format(at(1_719_835_200)), "2024-07-01 14:00:00");
        assert_eq!(zone.format(at(1_705_320_000)), "2024-01-15 13:00:00");
        assert!(Zone::parse_tzif(b"TZif2 short").is_none());
    }

    #[tokio::test]
    async fn status_file_is_written_and_rewritten_at_stop() {
        struct One;
        impl ServerControl for One {
            fn clients(&self) -> Vec<ClientSnapshot> {
                fixtures().0
            }
            fn routes(&self) -> Vec<RouteSnapshot> {
                Vec::new()
            }
            fn kill(&self, _: super::super::control::KillTarget, _: Option<String>) -> usize {
                0
            }
            fn signal(&self, _: &str) -> bool {
                false
            }
            fn started(&self) -> SystemTime {
                UNIX_EPOCH
            }
        }
        let dir = std::env::temp_dir().join(format!("fv-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("status.txt");
        let cfg = StatusFile {
            path: path.clone(),
            interval: Duration::from_secs(3600),
            version: StatusVersion::V2,
        };
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run_status_file(cfg, Arc::new(One), rx));
        // The first tick fires immediately.
        for _ in 0..100 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::remove_file(&path).unwrap();
        tx.send(true).unwrap();
        task.await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\nCLIENT_LIST,client1,198.18.0.1:49672,"),
            "{text}"
        );
        assert!(text.ends_with("END\n"));
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(leftovers, 1, "temporary file left behind");
    }
}
