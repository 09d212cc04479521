//! The client's states and `status` text as OpenVPN 2.6 prints them.
//!
//! A state line is `time,STATE,description,tun_ipv4,remote_ip,remote_port,local_ip,local_port`
//! with `,tun_ipv6` appended only when the tunnel has an IPv6 address (as OpenVPN 2.6 does: its
//! `CONNECTED` line over UDP without `bind` is `...,CONNECTED,SUCCESS,10.8.0.2,1.2.3.4,1194,,`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

/// OpenVPN's client states (`management-notes.txt`, "COMMAND -- state").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The initial state.
    Connecting,
    /// Waiting for the server's first response.
    Wait,
    /// The TLS handshake and authentication.
    Auth,
    /// Asking for the pushed configuration.
    GetConfig,
    /// Assigning the tunnel addresses.
    AssignIp,
    /// Adding the routes.
    AddRoutes,
    /// Initialization Sequence Completed.
    Connected,
    /// A restart (the description says why).
    Reconnecting,
    /// Stopping (the description says why).
    Exiting,
}

impl State {
    /// The name in state lines.
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "CONNECTING",
            State::Wait => "WAIT",
            State::Auth => "AUTH",
            State::GetConfig => "GET_CONFIG",
            State::AssignIp => "ASSIGN_IP",
            State::AddRoutes => "ADD_ROUTES",
            State::Connected => "CONNECTED",
            State::Reconnecting => "RECONNECTING",
            State::Exiting => "EXITING",
        }
    }
}

/// One state transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateLine {
    /// Unix time.
    pub time: u64,
    /// The state.
    pub state: State,
    /// `SUCCESS` for CONNECTED, the reason for RECONNECTING and EXITING, else empty.
    pub description: String,
    /// The tunnel IPv4 address (ASSIGN_IP, CONNECTED).
    pub tun_v4: Option<Ipv4Addr>,
    /// The server's address (CONNECTED).
    pub remote: Option<SocketAddr>,
    /// The local transport address when bound to one (CONNECTED; empty for unbound UDP).
    pub local: Option<SocketAddr>,
    /// The tunnel IPv6 address (ASSIGN_IP, CONNECTED).
    pub tun_v6: Option<Ipv6Addr>,
}

impl StateLine {
    /// A line with only time, state and description.
    pub fn new(time: u64, state: State, description: impl Into<String>) -> Self {
        Self {
            time,
            state,
            description: description.into(),
            tun_v4: None,
            remote: None,
            local: None,
            tun_v6: None,
        }
    }

    /// The CSV line (without `>STATE:`).
    pub fn render(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let mut s = format!(
            "{},{},{},{},{},{},{},{}",
            self.time,
            self.state.name(),
            self.description,
            opt(self.tun_v4.map(|a| a.to_string())),
            opt(self.remote.map(|a| a.ip().to_string())),
            opt(self.remote.map(|a| a.port().to_string())),
            opt(self.local.map(|a| a.ip().to_string())),
            opt(self.local.map(|a| a.port().to_string())),
        );
        if let Some(v6) = self.tun_v6 {
            s.push(',');
            s.push_str(&v6.to_string());
        }
        s
    }
}

/// Byte counters over the whole process lifetime (they survive reconnects, as OpenVPN's do).
///
/// - `link_*`: OpenVPN packets (control and data, with their opcode/peer-id headers, without the
///   TCP length prefix) received from / sent to the server. `>BYTECOUNT:in,out` reports these,
///   as OpenVPN's client does ("TCP/UDP read/write bytes").
/// - `tun_*`: IP packets read from (`tun_read`) / written to (`tun_write`) the packet device.
/// - `auth_read`: the datagrams that decrypted into a packet for the device.
#[derive(Debug, Default)]
pub struct Counters {
    /// TUN/TAP read bytes.
    pub tun_read: AtomicU64,
    /// TUN/TAP write bytes.
    pub tun_write: AtomicU64,
    /// TCP/UDP read bytes.
    pub link_read: AtomicU64,
    /// TCP/UDP write bytes.
    pub link_write: AtomicU64,
    /// Auth read bytes.
    pub auth_read: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `>BYTECOUNT:in,out`.
    pub fn bytecount_line(&self) -> String {
        format!(
            ">BYTECOUNT:{},{}",
            self.link_read.load(Ordering::Relaxed),
            self.link_write.load(Ordering::Relaxed)
        )
    }

    /// The client's `status` output (OpenVPN prints the same for every status version), without
    /// CRLF; `updated` is the local time as `%Y-%m-%d %H:%M:%S`.
    pub fn status_lines(&self, updated: &str) -> Vec<String> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            "OpenVPN STATISTICS".into(),
            format!("Updated,{updated}"),
            format!("TUN/TAP read bytes,{}", get(&self.tun_read)),
            format!("TUN/TAP write bytes,{}", get(&self.tun_write)),
            format!("TCP/UDP read bytes,{}", get(&self.link_read)),
            format!("TCP/UDP write bytes,{}", get(&self.link_write)),
            format!("Auth read bytes,{}", get(&self.auth_read)),
            "END".into(),
        ]
    }
}

/// The description OpenVPN gives a restart, from ferrovpn's reason text.
pub fn restart_reason(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("sighup") {
        "SIGHUP"
    } else if r.contains("ping-restart") || r.contains("ping restart") {
        "ping-restart"
    } else if r.contains("lost")
        || r.contains("closed")
        || r.contains("sending")
        || r.contains("reach")
    {
        "connection-reset"
    } else if r.contains("tls") || r.contains("handshake") || r.contains("no response") {
        "tls-error"
    } else if r.contains("server asked") {
        "server-pushed-connection-reset"
    } else {
        "SIGUSR1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lines_as_openvpn_2_6() {
        // Lines captured from the OpenVPN 2.6.14 client (UDP, nobind).
        assert_eq!(
            StateLine::new(1795333728, State::Connecting, "").render(),
            "1795333728,CONNECTING,,,,,,"
        );
        assert_eq!(
            StateLine::new(1795333757, State::Reconnecting, "SIGUSR1").render(),
            "1795333757,RECONNECTING,SIGUSR1,,,,,"
        );
        let mut l = StateLine::new(1795333745, State::AssignIp, "");
        l.tun_v4 = Some(Ipv4Addr::new(198, 18, 99, 2));
        assert_eq!(l.render(), "1795333745,ASSIGN_IP,,198.18.99.2,,,,");
        let mut l = StateLine::new(1795333745, State::Connected, "SUCCESS");
        l.tun_v4 = Some(Ipv4Addr::new(198, 18, 99, 2));
        l.remote = Some("127.0.0.1:11940".parse().unwrap());
        assert_eq!(
            l.render(),
            "1795333745,CONNECTED,SUCCESS,198.18.99.2,127.0.0.1,11940,,"
        );
        l.local = Some("198.18.0.2:40000".parse().unwrap());
        l.tun_v6 = Some("2001:db8::1000".parse().unwrap());
        assert_eq!(
            l.render(),
            "1795333745,CONNECTED,SUCCESS,198.18.99.2,127.0.0.1,11940,198.18.0.2,40000,2001:db8::1000"
        );
        assert_eq!(
            StateLine::new(1, State::Exiting, "auth-failure").render(),
            "1,EXITING,auth-failure,,,,,"
        );
    }

    #[test]
    fn status_text() {
        let c = Counters::default();
        Counters::add(&c.link_read, 2102);
        Counters::add(&c.link_write, 2152);
        Counters::add(&c.tun_read, 96);
        Counters::add(&c.auth_read, 48);
        assert_eq!(
            c.status_lines("2026-11-22 07:49:11"),
            [
                "OpenVPN STATISTICS",
                "Updated,2026-11-22 07:49:11",
                "TUN/TAP read bytes,96",
                "TUN/TAP write bytes,0",
                "TCP/UDP read bytes,2102",
                "TCP/UDP write bytes,2152",
                "Auth read bytes,48",
                "END"
            ]
        );
        assert_eq!(c.bytecount_line(), ">BYTECOUNT:2102,2152");
    }

    #[test]
    fn restart_reasons() {
        assert_eq!(
            restart_reason("ping-restart: no packet from the server"),
            "ping-restart"
        );
        assert_eq!(
            restart_reason("connection to 1.2.3.4:1194 lost: reset"),
            "connection-reset"
        );
        assert_eq!(restart_reason("SIGHUP"), "SIGHUP");
        assert_eq!(restart_reason("something else"), "SIGUSR1");
    }
}
