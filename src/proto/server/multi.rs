//! The multi-client server state machine: many [`Peer`]s behind one set of sockets.
//!
//! Sans-IO like the client: the shell feeds `handle_datagram` (from any link),
//! `handle_packet` (IP packets from the device), `handle_timeout`, and answers
//! [`ServerEvent::Authenticate`] with [`Server::accept`] or [`Server::refuse`]; it drains
//! `poll_transmit`, `poll_event` and reads `poll_timeout`. After every input the shell polls
//! transmits, then events, then the timeout.
//!
//! Sessions are found by link before authentication (control packets) and by peer-id after
//! (`P_DATA_V2`, which lets UDP clients float to a new address). The UDP handshake keeps no
//! state until the client echoes the cookie session id (PROTOCOL.md A.2.5), and replies to
//! unknown clients are rate-limited (`connect-freq-initial`).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use super::config::{AuthRequest, PeerSetup, ServerConfig, ServerWrap};
use super::cookie::{CookieKey, ReplyLimiter};
use super::link::Link;
use super::peer::{DataOutcome, Peer, PeerEvent, State};
use super::routes::RouteTable;
use crate::proto::keys::Cipher;
use crate::proto::wire::{
    self, ControlPacket, ControlWrap, EARLY_NEG_START, Opcode, Role, SessionId, split_wkc,
};

/// Early-negotiation TLV in the reset reply: type 1 (flags), length 2, flag 1 (resend WKc).
const TLV_RESEND_WKC: [u8; 6] = [0, 1, 0, 2, 0, 1];
/// Largest peer-id (24 bits; 0xFFFFFF means "none").
const MAX_PEER_ID: u32 = 0xFF_FFFE;

/// What the server tells its shell.
#[derive(Debug)]
pub enum ServerEvent {
    /// A client finished its key exchange; decide with [`Server::accept`] / [`Server::refuse`].
    Authenticate(Box<AuthRequest>),
    /// A client got its configuration and keys.
    Connected {
        /// The session.
        peer_id: u32,
    },
    /// New data keys.
    Renegotiated {
        /// The session.
        peer_id: u32,
        /// The new key id.
        key_id: u8,
    },
    /// A UDP client's authenticated data came from a new address.
    Floated {
        /// The session.
        peer_id: u32,
        /// Old link.
        from: Link,
        /// New link.
        to: Link,
    },
    /// Something to log about a session.
    Info {
        /// The session.
        peer_id: u32,
        /// What.
        text: String,
    },
    /// A session ended; its addresses and routes are gone from the table.
    Closed {
        /// The session.
        peer_id: u32,
        /// Where it was.
        link: Link,
        /// Its name.
        common_name: Option<String>,
        /// Why, in words for the log.
        reason: String,
        /// Whether it had been connected (the shell ran client-connect for it).
        was_connected: bool,
    },
}

/// Where a received datagram's payload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Nowhere (control traffic, keepalive, dropped).
    Nothing,
    /// The caller's buffer holds an IP packet for the device.
    ToDevice,
    /// The caller's buffer holds an encrypted packet for another client (client-to-client).
    ToPeer(Link),
}

/// Counters of what the server dropped and why.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerStats {
    /// Control packets from unknown links that failed to unwrap or parse.
    pub bad_control: u64,
    /// Data packets for no session or that failed to decrypt.
    pub bad_data: u64,
    /// Packets from a client with a source address not its own.
    pub bad_source: u64,
    /// Stateless reset replies sent.
    pub cookie_replies: u64,
    /// Resets not answered because of `connect-freq-initial`.
    pub rate_limited: u64,
    /// Echoed cookies that did not verify.
    pub bad_cookie: u64,
    /// New sessions refused by `max-clients`.
    pub over_max_clients: u64,
    /// Sessions created.
    pub sessions: u64,
    /// Packets from the device for no client.
    pub no_route: u64,
}

/// A session's state for status output.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    /// peer-id.
    pub peer_id: u32,
    /// Where it is.
    pub link: Link,
    /// Certificate common name (or user name with `username-as-common-name`).
    pub common_name: Option<String>,
    /// `auth-user-pass` user name.
    pub username: Option<String>,
    /// Tunnel addresses.
    pub v4: Option<Ipv4Addr>,
    /// Tunnel addresses.
    pub v6: Option<Ipv6Addr>,
    /// IP bytes from the client.
    pub bytes_in: u64,
    /// IP bytes to the client.
    pub bytes_out: u64,
    /// When it connected (None while handshaking).
    pub connected_at: Option<Instant>,
    /// Data cipher.
    pub cipher: Option<Cipher>,
}

/// The multi-client server.
pub struct Server {
    cfg: Arc<ServerConfig>,
    base: Instant,
    cookie: CookieKey,
    limiter: ReplyLimiter,
    peers: HashMap<u32, Peer>,
    addrs: HashMap<u32, (Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    by_link: HashMap<Link, u32>,
    routes: RouteTable,
    next_peer_id: u32,
    timers: BTreeSet<(Instant, u32)>,
    deadline: HashMap<u32, Instant>,
    dirty: VecDeque<u32>,
    dirty_set: HashSet<u32>,
    transmits: VecDeque<(Link, Vec<u8>)>,
    events: VecDeque<ServerEvent>,
    stats: ServerStats,
    plain: Vec<u8>,
}

impl Server {
    /// A server with no sessions.
    pub fn new(cfg: ServerConfig, now: Instant) -> Self {
        let cookie = CookieKey::new(&*cfg.rng, now, cfg.hand_window);
        let limiter = ReplyLimiter::new(cfg.connect_freq_initial.0, cfg.connect_freq_initial.1);
        Self {
            cfg: Arc::new(cfg),
            base: now,
            cookie,
            limiter,
            peers: HashMap::new(),
            addrs: HashMap::new(),
            by_link: HashMap::new(),
            routes: RouteTable::default(),
            next_peer_id: 0,
            timers: BTreeSet::new(),
            deadline: HashMap::new(),
            dirty: VecDeque::new(),
            dirty_set: HashSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
            plain: Vec::with_capacity(2048),
        }
    }

    /// Replaces the TLS configuration (a changed CRL): used by every new TLS handshake.
    pub fn set_tls(&mut self, tls: Arc<rustls::ServerConfig>) {
        let mut cfg = (*self.cfg).clone();
        cfg.tls = tls;
        self.cfg = Arc::new(cfg);
        for p in self.peers.values_mut() {
            p.cfg = self.cfg.clone();
        }
    }

    /// Drop counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Sessions (handshaking, connected and closing).
    pub fn peer_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.peers.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Connected sessions.
    pub fn connected_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.state == State::Connected)
            .count()
    }

    /// One session's status.
    pub fn peer_status(&self, peer_id: u32) -> Option<PeerStatus> {
        let p = self.peers.get(&peer_id)?;
        let (v4, v6) = self.addrs.get(&peer_id).copied().unwrap_or_default();
        Some(PeerStatus {
            peer_id,
            link: p.link,
            common_name: p.common_name.clone(),
            username: p.username.clone(),
            v4,
            v6,
            bytes_in: p.bytes_in,
            bytes_out: p.bytes_out,
            connected_at: p.connected_at.filter(|_| p.state == State::Connected),
            cipher: p.cipher,
        })
    }

    /// The routing table: `(address or subnet, peer-id)`.
    pub fn routes(&self) -> Vec<(String, u32)> {
        self.routes.entries()
    }

    fn unix_now(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.base).as_secs() as u32;
        self.cfg.unix_time_at_start.wrapping_add(elapsed)
    }

    /// A fresh control wrap for an unknown client (for tls-crypt-v2, from its WKc).
    fn fresh_wrap(&self, wkc: Option<&[u8]>) -> Option<(ControlWrap, Option<Vec<u8>>)> {
        match &self.cfg.wrap {
            ServerWrap::None => Some((ControlWrap::none(), None)),
            ServerWrap::Auth { key, direction } => {
                Some((ControlWrap::tls_auth(key, *direction, self.cfg.auth), None))
            }
            ServerWrap::Crypt { key } => Some((ControlWrap::tls_crypt(key, Role::Server), None)),
            ServerWrap::CryptV2 { server_key } => {
                let ck = server_key.unwrap(wkc?).ok()?;
                Some((
                    ControlWrap::tls_crypt(&ck.key, Role::Server),
                    Some(ck.metadata),
                ))
            }
        }
    }

    /// Handles one datagram (UDP) or one deframed packet (TCP) from `link`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        link: Link,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Received {
        let Some(Ok((opcode, _))) = datagram.first().map(|b| wire::split_first_byte(*b)) else {
            self.stats.bad_data += 1;
            return Received::Nothing;
        };
        if opcode.is_data() {
            return self.handle_data(now, link, opcode, datagram, out);
        }
        let existing = self.by_link.get(&link).copied();
        if let Some(id) = existing {
            let is_reset = matches!(
                opcode,
                Opcode::HardResetClientV2 | Opcode::HardResetClientV3
            );
            let sid = datagram
                .get(1..9)
                .and_then(|s| <SessionId>::try_from(s).ok());
            let same_session = self.peers.get(&id).and_then(|p| p.peer_sid()) == sid;
            if same_session && !(is_reset && opcode == Opcode::HardResetClientV3) {
                if let Some(p) = self.peers.get_mut(&id)
                    && let Some(inc) = p.receive(datagram)
                {
                    p.handle_control(now, inc);
                }
                self.after_peer(now, id);
                return Received::Nothing;
            }
        }
        self.handle_stateless(now, link, opcode, datagram);
        Received::Nothing
    }

    fn handle_stateless(&mut self, now: Instant, link: Link, opcode: Opcode, datagram: &[u8]) {
        let v2 = matches!(self.cfg.wrap, ServerWrap::CryptV2 { .. });
        let (packet, wkc) = if v2 {
            if !opcode.carries_wkc() {
                // Only packets with the client's wrapped key can be checked without state.
                self.stats.bad_control += 1;
                return;
            }
            match split_wkc(datagram) {
                Ok((p, w)) => (p, Some(w)),
                Err(_) => {
                    self.stats.bad_control += 1;
                    return;
                }
            }
        } else {
            (datagram, None)
        };
        let Some((mut wrap, metadata)) = self.fresh_wrap(wkc) else {
            self.stats.bad_control += 1;
            return;
        };
        self.plain.clear();
        if wrap.unwrap(packet, &mut self.plain).is_err() {
            self.stats.bad_control += 1;
            return;
        }
        let plain = std::mem::take(&mut self.plain);
        let Ok(pkt) = ControlPacket::parse(&plain) else {
            self.stats.bad_control += 1;
            self.plain = plain;
            return;
        };
        match pkt.opcode {
            Opcode::HardResetClientV2 | Opcode::HardResetClientV3
                if pkt.key_id == 0 && pkt.message_id == Some(0) =>
            {
                if !self.limiter.allow(now) {
                    self.stats.rate_limited += 1;
                } else {
                    let early_neg = v2
                        && packet
                            .get(9..13)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                            .is_some_and(|pid| pid & 0xff00_0000 == EARLY_NEG_START);
                    let sid = self.cookie.sid(now, &link, &pkt.session_id);
                    let reply = ControlPacket {
                        opcode: Opcode::HardResetServerV2,
                        key_id: 0,
                        session_id: sid,
                        acks: vec![0],
                        ack_peer_session_id: Some(pkt.session_id),
                        message_id: Some(0),
                        payload: if early_neg { &TLV_RESEND_WKC } else { &[] },
                    };
                    let mut emitted = Vec::with_capacity(64);
                    reply.emit(&mut emitted);
                    let mut out = Vec::with_capacity(128);
                    if wrap.wrap(&emitted, self.unix_now(now), &mut out).is_ok() {
                        self.stats.cookie_replies += 1;
                        self.transmits.push_back((link, out));
                    }
                }
            }
            Opcode::ControlV1 | Opcode::ControlWkcV1 | Opcode::AckV1 if pkt.key_id == 0 => {
                let Some(sid) = pkt.ack_peer_session_id else {
                    self.stats.bad_cookie += 1;
                    self.plain = plain;
                    return;
                };
                if !pkt.acks.contains(&0) || !self.cookie.verify(now, &link, &pkt.session_id, &sid)
                {
                    self.stats.bad_cookie += 1;
                    self.plain = plain;
                    return;
                }
                let inc = crate::proto::channel::Incoming {
                    opcode: pkt.opcode,
                    key_id: pkt.key_id,
                    session_id: pkt.session_id,
                    acks: pkt.acks.clone(),
                    ack_peer_session_id: pkt.ack_peer_session_id,
                    message_id: pkt.message_id,
                    payload: pkt.payload.to_vec(),
                };
                let client_sid = pkt.session_id;
                self.create_peer(now, link, sid, client_sid, wrap, metadata, inc);
            }
            _ => self.stats.bad_control += 1,
        }
        self.plain = plain;
    }

    #[allow(clippy::too_many_arguments)]
    fn create_peer(
        &mut self,
        now: Instant,
        link: Link,
        sid: SessionId,
        client_sid: SessionId,
        mut wrap: ControlWrap,
        metadata: Option<Vec<u8>>,
        inc: crate::proto::channel::Incoming,
    ) {
        if let Some(old) = self.by_link.get(&link).copied() {
            // The same address starts over (client restarted): the old session goes.
            if let Some(p) = self.peers.get_mut(&old) {
                p.close_now(
                    now,
                    "the client started a new session from the same address",
                );
            }
            self.after_peer(now, old);
        }
        let live = self
            .peers
            .values()
            .filter(|p| p.state != State::Closed)
            .count();
        if live >= self.cfg.max_clients {
            self.stats.over_max_clients += 1;
            return;
        }
        let Some(peer_id) = self.alloc_peer_id() else {
            self.stats.over_max_clients += 1;
            return;
        };
        wrap.set_next_send_pid(2, self.unix_now(now));
        let mut peer =
            match Peer::after_cookie(self.cfg.clone(), peer_id, link, sid, client_sid, wrap, now) {
                Ok(p) => p,
                Err(e) => {
                    self.events.push_back(ServerEvent::Info {
                        peer_id,
                        text: format!("cannot start a session: {e}"),
                    });
                    return;
                }
            };
        peer.tls_crypt_v2_metadata = metadata;
        peer.handle_control(now, inc);
        self.stats.sessions += 1;
        self.peers.insert(peer_id, peer);
        self.by_link.insert(link, peer_id);
        self.after_peer(now, peer_id);
    }

    fn alloc_peer_id(&mut self) -> Option<u32> {
        for _ in 0..=MAX_PEER_ID {
            let id = self.next_peer_id;
            self.next_peer_id = if id >= MAX_PEER_ID { 0 } else { id + 1 };
            if !self.peers.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    fn handle_data(
        &mut self,
        now: Instant,
        link: Link,
        opcode: Opcode,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Received {
        let id = if opcode == Opcode::DataV2 {
            match wire::data_header(datagram) {
                Ok((_, _, Some(pid), _)) => pid,
                _ => {
                    self.stats.bad_data += 1;
                    return Received::Nothing;
                }
            }
        } else if let Some(&id) = self.by_link.get(&link) {
            id
        } else {
            self.stats.bad_data += 1;
            return Received::Nothing;
        };
        let Some(p) = self.peers.get_mut(&id) else {
            self.stats.bad_data += 1;
            return Received::Nothing;
        };
        if p.link != link && (link.is_tcp() || p.link.is_tcp()) {
            self.stats.bad_data += 1;
            return Received::Nothing;
        }
        let was_closed = p.state == State::Closed;
        let outcome = p.handle_data(now, datagram, out);
        let floated = p.link != link;
        let mut result = Received::Nothing;
        if let DataOutcome::Packet = outcome {
            if floated {
                let from = p.link;
                p.link = link;
                self.by_link.remove(&from);
                self.by_link.insert(link, id);
                self.events.push_back(ServerEvent::Floated {
                    peer_id: id,
                    from,
                    to: link,
                });
            }
            result = self.route_from_client(now, id, out);
        }
        if !was_closed
            && self
                .peers
                .get(&id)
                .is_some_and(|p| p.state == State::Closed)
        {
            self.after_peer(now, id);
        }
        result
    }

    /// Checks the source of a client's packet and decides where it goes.
    fn route_from_client(&mut self, now: Instant, from: u32, buf: &mut Vec<u8>) -> Received {
        let Some((src, dst)) = ip_addrs(buf) else {
            self.stats.bad_source += 1;
            return Received::Nothing;
        };
        if !self.routes.owns(from, src) {
            self.stats.bad_source += 1;
            return Received::Nothing;
        }
        if self.cfg.client_to_client
            && let Some(to) = self.routes.lookup(dst)
            && to != from
            && let Some(p) = self.peers.get_mut(&to)
        {
            let packet = std::mem::take(buf);
            let ok = p.encapsulate(now, &packet, buf);
            return if ok {
                Received::ToPeer(p.link)
            } else {
                Received::Nothing
            };
        }
        Received::ToDevice
    }

    /// Encrypts an IP packet from the device for the client that owns its destination;
    /// returns where to send `out`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ip_packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Link> {
        let Some((_, dst)) = ip_addrs(ip_packet) else {
            self.stats.no_route += 1;
            return None;
        };
        let Some(id) = self.routes.lookup(dst) else {
            self.stats.no_route += 1;
            return None;
        };
        let p = self.peers.get_mut(&id)?;
        p.encapsulate(now, ip_packet, out).then_some(p.link)
    }

    /// Lets an authenticated client in with `setup` (addresses, iroutes, pushed options).
    pub fn accept(&mut self, now: Instant, peer_id: u32, setup: PeerSetup) {
        let Some(p) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if p.state != State::Authenticating {
            return;
        }
        for a in [setup.v4.map(IpAddr::V4), setup.v6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
        {
            if let Some(prev) = self.routes.add_host(a, peer_id) {
                self.events.push_back(ServerEvent::Info {
                    peer_id,
                    text: format!("address {a} moved here from peer {prev}"),
                });
            }
        }
        for n in &setup.iroutes {
            self.routes.add_net(*n, peer_id);
        }
        self.addrs.insert(peer_id, (setup.v4, setup.v6));
        if let Some(p) = self.peers.get_mut(&peer_id) {
            p.accept(now, setup);
        }
        self.after_peer(now, peer_id);
    }

    /// Refuses an authenticated client: it gets `AUTH_FAILED[,reason]`.
    pub fn refuse(&mut self, now: Instant, peer_id: u32, reason: &str) {
        if let Some(p) = self.peers.get_mut(&peer_id) {
            p.refuse(now, reason.to_string());
        }
        self.after_peer(now, peer_id);
    }

    /// Disconnects a client, telling it `text` (normally `RESTART`, so it reconnects at once;
    /// `HALT` makes it stop).
    pub fn kill(&mut self, now: Instant, peer_id: u32, text: &str) -> bool {
        let Some(p) = self.peers.get_mut(&peer_id) else {
            return false;
        };
        let live = p.state != State::Closed;
        p.kill(now, text);
        self.after_peer(now, peer_id);
        live
    }

    /// Raw control-channel plaintext to a session (tests playing a hostile server).
    #[cfg(test)]
    pub(crate) fn send_raw_plaintext(&mut self, now: Instant, peer_id: u32, data: &[u8]) {
        if let Some(p) = self.peers.get_mut(&peer_id) {
            p.send_raw_plaintext(now, data);
        }
        self.after_peer(now, peer_id);
    }

    /// A TCP connection went away: its session ends.
    pub fn link_closed(&mut self, now: Instant, link: Link) {
        if let Some(id) = self.by_link.get(&link).copied() {
            if let Some(p) = self.peers.get_mut(&id) {
                p.close_now(now, "the TCP connection closed");
            }
            self.after_peer(now, id);
        }
    }

    /// Tells every client to reconnect (`RESTART`) and ends all sessions (server shutdown).
    pub fn shutdown(&mut self, now: Instant) {
        for id in self.peer_ids() {
            self.kill(now, id, "RESTART");
        }
    }

    /// Bookkeeping after a peer was touched: events, tables, timers, transmit queue.
    fn after_peer(&mut self, _now: Instant, id: u32) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let mut closed = None;
        while let Some(e) = p.events.pop_front() {
            match e {
                PeerEvent::Authenticate(r) => self.events.push_back(ServerEvent::Authenticate(r)),
                PeerEvent::Connected => self
                    .events
                    .push_back(ServerEvent::Connected { peer_id: id }),
                PeerEvent::Renegotiated(key_id) => {
                    self.events.push_back(ServerEvent::Renegotiated {
                        peer_id: id,
                        key_id,
                    })
                }
                PeerEvent::Info(text) => self
                    .events
                    .push_back(ServerEvent::Info { peer_id: id, text }),
                PeerEvent::Closed(reason) => closed = Some(reason),
            }
        }
        if let Some(reason) = closed {
            let was_connected = p.connected_at.is_some();
            self.events.push_back(ServerEvent::Closed {
                peer_id: id,
                link: p.link,
                common_name: p.common_name.clone(),
                reason,
                was_connected,
            });
            self.routes.remove_peer(id);
            self.addrs.remove(&id);
            if self.by_link.get(&p.link) == Some(&id) {
                self.by_link.remove(&p.link);
            }
        }
        let next = p.poll_timeout();
        if let Some(old) = self.deadline.remove(&id) {
            self.timers.remove(&(old, id));
        }
        if let Some(t) = next {
            self.deadline.insert(id, t);
            self.timers.insert((t, id));
        }
        if self.dirty_set.insert(id) {
            self.dirty.push_back(id);
        }
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Link> {
        if let Some((link, pkt)) = self.transmits.pop_front() {
            out.clear();
            out.extend_from_slice(&pkt);
            return Some(link);
        }
        while let Some(&id) = self.dirty.front() {
            if let Some(p) = self.peers.get_mut(&id) {
                if p.poll_transmit(now, out) {
                    return Some(p.link);
                }
                if p.is_finished(now) {
                    self.remove_peer(id);
                }
            }
            self.dirty.pop_front();
            self.dirty_set.remove(&id);
        }
        None
    }

    fn remove_peer(&mut self, id: u32) {
        if let Some(p) = self.peers.remove(&id)
            && self.by_link.get(&p.link) == Some(&id)
        {
            self.by_link.remove(&p.link);
        }
        if let Some(t) = self.deadline.remove(&id) {
            self.timers.remove(&(t, id));
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When to call [`Server::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// Runs due timers (each due session once; retransmissions go out at the next
    /// [`Server::poll_transmit`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            self.deadline.remove(&id);
            due.push(id);
        }
        for id in due {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            p.handle_timeout(now);
            if p.is_finished(now) && p.events.is_empty() {
                self.remove_peer(id);
                continue;
            }
            self.after_peer(now, id);
        }
    }
}

/// Source and destination of an IPv4 or IPv6 packet.
pub(crate) fn ip_addrs(p: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let s: [u8; 4] = p[12..16].try_into().ok()?;
            let d: [u8; 4] = p[16..20].try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        6 if p.len() >= 40 => {
            let s: [u8; 16] = p[8..24].try_into().ok()?;
            let d: [u8; 16] = p[24..40].try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        _ => None,
    }
}
