//! Static-key point-to-point mode (`secret`): no TLS, no control channel, no server. Every
//! datagram is one data packet without header (`HMAC || IV || CBC(id || time || payload)`); pings
//! keep NAT state and tell the peer we are alive; OCC requests are answered with our options
//! string, as OpenVPN checks the two ends agree.
//!
//! Sans-IO like the client: the caller passes `now`, feeds datagrams and device packets in, and
//! sends what comes out.

use std::time::{Duration, Instant};

use crate::config::StaticKeyMode;
use crate::proto::data::{
    DataError, DataKey, Inband, OCC_MAGIC, PING_MAGIC, RandomSource, classify,
};
use crate::proto::keys::{Digest, KeyDirection};

/// OCC opcodes (PROTOCOL.md A.4.6).
const OCC_REQUEST: u8 = 0;
const OCC_REPLY: u8 = 1;

/// Counters of one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct P2pStats {
    /// IP packets (or frames) delivered to the device.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Packets sent to the peer.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Datagrams dropped: bad HMAC, replay, malformed.
    pub dropped: u64,
}

/// What a received datagram was.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// An IP packet for the device, in `packet_out`.
    Packet,
    /// The peer asked for our options: send `reply` (already encrypted) back.
    Reply,
    /// A ping or an OCC message that needs nothing.
    Nothing,
    /// Not authentic or a replay: dropped and counted.
    Dropped(DataError),
}

/// What a timer asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Timer {
    /// Nothing due.
    Nothing,
    /// Send the ping in `out` (the link was idle for `ping` seconds).
    SendPing,
    /// Nothing heard for `ping-restart` seconds: the caller re-resolves the remote.
    Restart,
}

/// Settings of [`StaticKeyPeer::new`].
pub struct P2pConfig<'a> {
    /// The static-key profile part.
    pub mode: &'a StaticKeyMode,
    /// `auth` digest.
    pub auth: Digest,
    /// `ping` interval.
    pub ping: Option<Duration>,
    /// `ping-restart` timeout.
    pub ping_restart: Option<Duration>,
    /// Our OCC options string (answered to OCC requests).
    pub occ_options: String,
    /// Seconds since the epoch: the time field of our packet ids.
    pub unix_time: u32,
    /// CBC IVs.
    pub rng: RandomSource,
}

/// One end of a static-key tunnel.
pub struct StaticKeyPeer {
    key: DataKey,
    ping: Option<Duration>,
    ping_restart: Option<Duration>,
    last_rx: Instant,
    last_tx: Instant,
    occ_options: String,
    stats: P2pStats,
    scratch: Vec<u8>,
}

impl StaticKeyPeer {
    /// A peer whose timers start at `now`.
    pub fn new(cfg: P2pConfig<'_>, now: Instant) -> Result<Self, DataError> {
        let mut key = DataKey::new_static_key(
            cfg.mode.cipher,
            cfg.auth,
            &cfg.mode.key,
            cfg.mode.direction,
            cfg.unix_time,
        )?;
        key.set_rng(cfg.rng);
        Ok(Self {
            key,
            ping: cfg.ping.filter(|d| !d.is_zero()),
            ping_restart: cfg.ping_restart.filter(|d| !d.is_zero()),
            last_rx: now,
            last_tx: now,
            occ_options: cfg.occ_options,
            stats: P2pStats::default(),
            scratch: Vec::with_capacity(2048),
        })
    }

    /// Encrypts one packet from the device into `out`.
    pub fn encapsulate(&mut self, now: Instant, packet: &[u8], out: &mut Vec<u8>) -> bool {
        if self.key.seal(&[], packet, out).is_err() {
            return false;
        }
        self.last_tx = now;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += packet.len() as u64;
        true
    }

    /// Authenticates and decrypts one datagram from the peer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        packet_out: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Received {
        let plain = match self.key.open(datagram, 0, &mut self.scratch) {
            Ok(p) => p,
            Err(e) => {
                self.stats.dropped += 1;
                return Received::Dropped(e);
            }
        };
        self.last_rx = now;
        match classify(plain) {
            Inband::Ip(p) => {
                packet_out.clear();
                packet_out.extend_from_slice(p);
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += p.len() as u64;
                Received::Packet
            }
            Inband::Ping => Received::Nothing,
            Inband::Occ { opcode, .. } if opcode == OCC_REQUEST => {
                let mut body = OCC_MAGIC.to_vec();
                body.push(OCC_REPLY);
                body.extend_from_slice(self.occ_options.as_bytes());
                body.push(0);
                if self.key.seal(&[], &body, reply).is_err() {
                    return Received::Nothing;
                }
                self.last_tx = now;
                Received::Reply
            }
            Inband::Occ { .. } => Received::Nothing,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ping = self.ping.map(|p| self.last_tx + p);
        let restart = self.ping_restart.map(|r| self.last_rx + r);
        match (ping, restart) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers: a ping to send (in `out`) or a restart.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<u8>) -> Timer {
        if self.ping_restart.is_some_and(|r| now >= self.last_rx + r) {
            self.last_rx = now;
            return Timer::Restart;
        }
        if self.ping.is_some_and(|p| now >= self.last_tx + p) && self.encapsulate_ping(now, out) {
            return Timer::SendPing;
        }
        Timer::Nothing
    }

    fn encapsulate_ping(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.key.seal(&[], &PING_MAGIC, out).is_err() {
            return false;
        }
        self.last_tx = now;
        true
    }

    /// The counters.
    pub fn stats(&self) -> P2pStats {
        self.stats
    }
}

/// The OCC options string of a static-key peer (the vectors' README, correction 5).
pub fn occ_options(mode: &StaticKeyMode, auth: Digest, tun_mtu: u16, layer2: bool) -> String {
    let mut s = format!(
        "V4,dev-type {},link-mtu {},tun-mtu {tun_mtu},proto UDPv4",
        if layer2 { "tap" } else { "tun" },
        u32::from(tun_mtu) + 72
    );
    if let Some((local, remote)) = mode.ifconfig {
        // OpenVPN writes the pair the other way round (remote first).
        s.push_str(&format!(",ifconfig {remote} {local}"));
    }
    match mode.direction {
        KeyDirection::Normal => s.push_str(",keydir 0"),
        KeyDirection::Inverse => s.push_str(",keydir 1"),
        KeyDirection::Bidirectional => {}
    }
    s.push_str(&format!(
        ",cipher {},auth {},keysize {},secret",
        mode.cipher.name(),
        auth.name(),
        mode.cipher.key_len() * 8
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::keys::{Cipher, KEY2_LEN, Key2};

    fn mode(direction: KeyDirection) -> StaticKeyMode {
        let mut k = [0u8; KEY2_LEN];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        StaticKeyMode {
            key: Key2::from_bytes(&k),
            direction,
            cipher: Cipher::Aes256Cbc,
            ifconfig: Some(("198.19.5.2".parse().unwrap(), "198.19.5.1".parse().unwrap())),
            local_port: None,
            float: false,
        }
    }

    fn peer(direction: KeyDirection, now: Instant) -> StaticKeyPeer {
        let m = mode(direction);
        StaticKeyPeer::new(
            P2pConfig {
                mode: &m,
                auth: Digest::Sha256,
                ping: Some(Duration::from_secs(2)),
                ping_restart: Some(Duration::from_secs(20)),
                occ_options: occ_options(&m, Digest::Sha256, 1500, false),
                unix_time: 1_700_000_000,
                rng: Box::new(|b: &mut [u8]| b.fill(7)),
            },
            now,
        )
        .unwrap()
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the virtual clock starts from one real Instant
    fn packets_pings_occ_and_restart() {
        let t0 = Instant::now();
        let mut a = peer(KeyDirection::Normal, t0);
        let mut b = peer(KeyDirection::Inverse, t0);
        let (mut wire, mut pkt, mut reply) = (Vec::new(), Vec::new(), Vec::new());
        assert!(a.encapsulate(t0, b"\x45 an ip packet", &mut wire));
        assert_eq!(
            b.handle_datagram(t0, &wire, &mut pkt, &mut reply),
            Received::Packet
        );
        assert_eq!(pkt, b"\x45 an ip packet");
        // A replay, a tampered packet and a packet of the wrong direction are dropped.
        assert!(matches!(
            b.handle_datagram(t0, &wire, &mut pkt, &mut reply),
            Received::Dropped(_)
        ));
        let mut bad = wire.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(
            b.handle_datagram(t0, &bad, &mut pkt, &mut reply),
            Received::Dropped(_)
        ));
        assert!(b.encapsulate(t0, b"\x45 back", &mut wire));
        assert!(matches!(
            b.handle_datagram(t0, &wire, &mut pkt, &mut reply),
            Received::Dropped(_)
        ));
        assert_eq!(b.stats().dropped, 3);
        // OCC request → reply with the options string.
        let mut req = OCC_MAGIC.to_vec();
        req.push(OCC_REQUEST);
        assert!(a.encapsulate(t0, &req, &mut wire));
        assert_eq!(
            b.handle_datagram(t0, &wire, &mut pkt, &mut reply),
            Received::Reply
        );
        let mut scratch = Vec::new();
        assert_eq!(
            a.handle_datagram(t0, &reply, &mut scratch, &mut Vec::new()),
            Received::Nothing
        );
        // Timers: a ping after 2 s idle, a restart after 20 s without anything received.
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(a.handle_timeout(t2, &mut wire), Timer::SendPing);
        assert_eq!(
            b.handle_datagram(t2, &wire, &mut pkt, &mut reply),
            Received::Nothing
        );
        let t21 = t0 + Duration::from_secs(21);
        assert_eq!(b.handle_timeout(t21, &mut wire), Timer::SendPing);
        assert_eq!(a.handle_timeout(t21, &mut wire), Timer::Restart);
    }

    #[test]
    fn options_string_matches_openvpn() {
        // The client of capture e logged exactly this "Local Options String".
        let m = mode(KeyDirection::Inverse);
        assert_eq!(
            occ_options(&m, Digest::Sha256, 1500, false),
            "V4,dev-type tun,link-mtu 1572,tun-mtu 1500,proto UDPv4,ifconfig 198.19.5.1 198.19.5.2,keydir 1,cipher AES-256-CBC,auth SHA256,keysize 256,secret"
        );
    }
}
