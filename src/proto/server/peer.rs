//! One client's session on the server: its control channel (key states, TLS, key exchange),
//! its data keys and its timers. The mirror of [`crate::proto::client::Client`]; owned and
//! driven by [`super::Server`], which routes packets to it by link or peer-id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::config::{AuthRequest, PeerSetup, ServerConfig, iv_var};
use super::link::Link;
use crate::proto::channel::{ControlChannel, Incoming};
use crate::proto::client::ClientError;
use crate::proto::client::key_state::{KeyState, Phase};
use crate::proto::data::{self, Codec, DataKey, Inband};
use crate::proto::handshake::key_method2;
use crate::proto::handshake::peer_info::iv_proto;
use crate::proto::handshake::prf::{PrfInputs, derive_key2};
use crate::proto::keys::{Cipher, Key2};
use crate::proto::reliable::ReliableSend;
use crate::proto::tls::TlsSession;
use crate::proto::wire::{self, ControlWrap, Opcode, SessionId};

/// How long a closing session keeps retransmitting its last control messages.
const LINGER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// TLS and key exchange of key_id 0.
    Handshake,
    /// Waiting for the shell's [`super::Server::accept`] / [`super::Server::refuse`].
    Authenticating,
    /// Pushed and keyed.
    Connected,
    /// Ended; lingers until its last messages are out.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    NotAsked,
    Pending,
    Accepted,
    Refused(String),
}

/// What a peer tells the server.
#[derive(Debug)]
pub(crate) enum PeerEvent {
    Authenticate(Box<AuthRequest>),
    Connected,
    Renegotiated(u8),
    Info(String),
    Closed(String),
}

/// Outcome of a data packet.
pub(crate) enum DataOutcome {
    /// Nothing for anyone (ping, dropped, control of the session).
    None,
    /// A decrypted IP packet (in the caller's buffer).
    Packet,
}

pub(crate) struct Peer {
    pub cfg: Arc<ServerConfig>,
    pub peer_id: u32,
    pub link: Link,
    ch: ControlChannel,
    pub state: State,
    started: Instant,
    closed_at: Option<Instant>,
    last_rx: Instant,
    last_tx: Instant,
    pub cipher: Option<Cipher>,
    ekm: bool,
    iv_proto: u32,
    pub common_name: Option<String>,
    pub username: Option<String>,
    auth: Auth,
    push_requested: bool,
    setup: Option<PeerSetup>,
    pub tls_crypt_v2_metadata: Option<Vec<u8>>,
    tx_key: Option<usize>,
    pub events: VecDeque<PeerEvent>,
    transmits: VecDeque<Vec<u8>>,
    scratch: Vec<u8>,
    /// Compression framing; decompresses what the client compressed when allowed.
    pub codec: Codec,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connected_at: Option<Instant>,
    pub dropped: u64,
}

impl Peer {
    /// A session whose hard reset exchange already happened statelessly: the client's reset
    /// (message 0) is received, ours (message 0) is acknowledged, and our wrap
    /// continues after the replay id the reset reply used.
    pub(crate) fn after_cookie(
        cfg: Arc<ServerConfig>,
        peer_id: u32,
        link: Link,
        sid: SessionId,
        peer_sid: SessionId,
        wrap: ControlWrap,
        now: Instant,
    ) -> Result<Self, ClientError> {
        let mut ch = ControlChannel::new(sid, wrap, now, cfg.unix_time_at_start);
        ch.peer_sid = Some(peer_sid);
        let tls = TlsSession::server(cfg.tls.clone())?;
        let mut send = ReliableSend::new(cfg.tls_timeout);
        let id = send.push(Opcode::HardResetServerV2, Vec::new(), now);
        send.handle_ack(id);
        let mut ks = KeyState::new(0, tls, send, now);
        ks.recv.handle(0, Opcode::HardResetClientV2, &[]);
        ks.recv.poll_in_order();
        ks.recv.take_acks(usize::MAX);
        ks.phase = Phase::Tls;
        ch.keys.push(ks);
        let (framing, _) = data::framing_for(cfg.compression);
        let codec = Codec::new(framing, None, cfg.decompress, usize::from(cfg.tun_mtu));
        Ok(Self {
            cfg,
            peer_id,
            link,
            ch,
            state: State::Handshake,
            started: now,
            closed_at: None,
            last_rx: now,
            last_tx: now,
            cipher: None,
            ekm: false,
            iv_proto: 0,
            common_name: None,
            username: None,
            auth: Auth::NotAsked,
            push_requested: false,
            setup: None,
            tls_crypt_v2_metadata: None,
            tx_key: None,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            scratch: Vec::with_capacity(2048),
            codec,
            bytes_in: 0,
            bytes_out: 0,
            connected_at: None,
            dropped: 0,
        })
    }

    pub(crate) fn peer_sid(&self) -> Option<SessionId> {
        self.ch.peer_sid
    }

    /// Unwraps a control packet with this session's wrap (the channel counts what it drops).
    pub(crate) fn receive(&mut self, datagram: &[u8]) -> Option<Incoming> {
        self.ch.receive(datagram)
    }

    /// Handles an unwrapped control packet of this session.
    pub(crate) fn handle_control(&mut self, now: Instant, inc: Incoming) {
        if self.state == State::Closed {
            // Still take acks so the last messages stop being resent.
            if let Some(idx) = self.ch.key_index(inc.key_id) {
                self.ch.deliver(idx, &inc);
            }
            return;
        }
        if let Err(e) = self.control(now, inc) {
            self.finish(now, e.to_string());
        }
    }

    fn control(&mut self, now: Instant, inc: Incoming) -> Result<(), ClientError> {
        if self.ch.peer_sid != Some(inc.session_id) {
            self.dropped += 1;
            return Ok(());
        }
        self.last_rx = now;
        let idx = match self.ch.key_index(inc.key_id) {
            Some(i) => i,
            None if inc.opcode == Opcode::SoftResetV1 && self.state == State::Connected => {
                self.start_key_state(inc.key_id, Opcode::SoftResetV1, now)?;
                self.ch.keys.len() - 1
            }
            None => {
                self.dropped += 1;
                return Ok(());
            }
        };
        for (opcode, payload) in self.ch.deliver(idx, &inc) {
            if matches!(opcode, Opcode::ControlV1 | Opcode::ControlWkcV1) {
                let ks = &mut self.ch.keys[idx];
                if let Err(e) = ks.tls.feed(&payload) {
                    ks.tls.drain(&mut ks.tls_out);
                    ks.flush(now, usize::MAX, usize::MAX);
                    return Err(ClientError::Tls(format!("TLS handshake failed: {e}")));
                }
            }
        }
        self.progress(now)
    }

    fn start_key_state(
        &mut self,
        key_id: u8,
        reset: Opcode,
        now: Instant,
    ) -> Result<(), ClientError> {
        let tls = TlsSession::server(self.cfg.tls.clone())?;
        let mut send = ReliableSend::new(self.cfg.tls_timeout);
        send.push(reset, Vec::new(), now);
        let mut ks = KeyState::new(key_id, tls, send, now);
        ks.phase = Phase::Tls;
        self.ch.keys.push(ks);
        Ok(())
    }

    /// Drops expired key states and re-points the send key at the newest keyed state.
    fn prune(&mut self, now: Instant) {
        self.ch.keys.retain(|k| k.expires.is_none_or(|e| now < e));
        self.tx_key = self.ch.keys.iter().rposition(|k| k.data.is_some());
    }

    fn progress(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.state != State::Closed {
            self.prune(now);
        }
        let mut idx = 0;
        while idx < self.ch.keys.len() {
            self.progress_key(now, idx)?;
            if self.state == State::Closed {
                return Ok(());
            }
            idx += 1;
        }
        Ok(())
    }

    fn progress_key(&mut self, now: Instant, idx: usize) -> Result<(), ClientError> {
        let (max_payload, max_wkc) = self.ch.max_payloads();
        let ks = &mut self.ch.keys[idx];
        ks.tls.read_plain(&mut ks.plain_in);
        if !ks.km_sent
            && ks.received_client_km.is_none()
            && let Some(len) = key_method2::message_len(&ks.plain_in, true)
        {
            let km = key_method2::read_client_message(&ks.plain_in[..len])?;
            ks.plain_in.drain(..len);
            ks.received_client_km = Some(km);
            self.on_client_key_message(now, idx)?;
        }
        loop {
            let ks = &mut self.ch.keys[idx];
            if !ks.km_sent {
                break;
            }
            let Some(text) = ks.take_text_message() else {
                break;
            };
            self.handle_text(now, idx, &text)?;
            if self.state == State::Closed {
                return Ok(());
            }
        }
        self.ch.keys[idx].flush(now, max_payload, max_wkc);
        Ok(())
    }

    /// The cipher to use with a client offering `peer_info` (and, from old clients, the OCC
    /// options string).
    fn negotiate_cipher(&self, peer_info: &str, occ: &str) -> Option<Cipher> {
        let offered: Vec<String> = match iv_var(peer_info, "IV_CIPHERS") {
            Some(list) => list.split(':').map(str::to_owned).collect(),
            None if iv_var(peer_info, "IV_NCP").and_then(|v| v.parse::<u32>().ok()) >= Some(2) => {
                vec!["AES-256-GCM".into(), "AES-128-GCM".into()]
            }
            None => Vec::new(),
        };
        if let Some(c) = self
            .cfg
            .ciphers
            .iter()
            .copied()
            .find(|c| offered.iter().any(|o| o.eq_ignore_ascii_case(c.name())))
        {
            return Some(c);
        }
        // A client without negotiation uses its `cipher`: accept it if the server allows it.
        let occ_cipher = occ
            .split(',')
            .find_map(|o| o.strip_prefix("cipher "))
            .and_then(|c| c.parse::<Cipher>().ok());
        occ_cipher
            .filter(|c| self.cfg.ciphers.contains(c) || self.cfg.fallback_cipher == Some(*c))
            .or(if offered.is_empty() {
                self.cfg.fallback_cipher
            } else {
                None
            })
    }

    fn on_client_key_message(&mut self, now: Instant, idx: usize) -> Result<(), ClientError> {
        let ks = &self.ch.keys[idx];
        let km = ks.received_client_km.as_ref().expect("just set");
        let peer_info = km.peer_info.clone();
        let occ = km.options.clone();
        let (user, pass) = (km.username.to_string(), km.password.clone());
        let cn = ks.tls.peer_common_name();
        let serial = ks.tls.peer_serial();
        let first = ks.key_id == 0 && self.state == State::Handshake;
        if first {
            self.iv_proto = iv_var(&peer_info, "IV_PROTO")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            self.ekm = self.iv_proto & iv_proto::TLS_KEY_EXPORT != 0;
            match self.negotiate_cipher(&peer_info, &occ) {
                Some(c) => self.cipher = Some(c),
                None => {
                    let names: Vec<&str> = self.cfg.ciphers.iter().map(|c| c.name()).collect();
                    let offered = iv_var(&peer_info, "IV_CIPHERS").unwrap_or("none announced");
                    return Err(ClientError::NoCipher(format!(
                        "no data cipher in common: the client offers {offered}, data-ciphers is {}",
                        names.join(":")
                    )));
                }
            }
            self.common_name = cn.clone();
            if !user.is_empty() {
                self.username = Some(user.clone());
            }
        } else if cn != self.common_name
            && self
                .setup
                .as_ref()
                .and_then(|s| s.common_name.as_ref())
                .is_none()
        {
            return Err(ClientError::Protocol(format!(
                "the client renegotiated with another certificate ({} instead of {})",
                cn.as_deref().unwrap_or("none"),
                self.common_name.as_deref().unwrap_or("none")
            )));
        }
        let mut r1 = Zeroizing::new([0u8; 32]);
        let mut r2 = Zeroizing::new([0u8; 32]);
        (self.cfg.rng)(&mut r1[..]);
        (self.cfg.rng)(&mut r2[..]);
        let mut buf = Zeroizing::new(Vec::new());
        let cipher = self.cipher.map_or("[null-cipher]", |c| c.name());
        let proto = if self.link.is_tcp() {
            "TCPv4_SERVER"
        } else {
            "UDPv4"
        };
        key_method2::write_server_message(
            &r1,
            &r2,
            &format!(
                "V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto {proto},cipher {cipher},auth {},keysize 256,key-method 2,tls-server",
                self.cfg.auth.name()
            ),
            &mut buf,
        );
        let ks = &mut self.ch.keys[idx];
        ks.server_randoms = Some((r1, r2));
        ks.tls.write_plain(&buf)?;
        ks.km_sent = true;
        ks.phase = Phase::Exchanged;
        if first {
            self.state = State::Authenticating;
            self.auth = Auth::Pending;
            self.events
                .push_back(PeerEvent::Authenticate(Box::new(AuthRequest {
                    peer_id: self.peer_id,
                    link: self.link,
                    common_name: cn,
                    cert_serial: serial,
                    username: user,
                    password: pass,
                    peer_info,
                    cipher: self.cipher.expect("negotiated above"),
                    tls_crypt_v2_metadata: self.tls_crypt_v2_metadata.clone(),
                })));
        } else if self.state == State::Connected {
            self.install_keys(now, idx)?;
        }
        Ok(())
    }

    /// The shell let the client in.
    pub(crate) fn accept(&mut self, now: Instant, setup: PeerSetup) {
        if self.state != State::Authenticating {
            return;
        }
        if let Some(cn) = &setup.common_name {
            self.common_name = Some(cn.clone());
        }
        self.setup = Some(setup);
        self.auth = Auth::Accepted;
        if (self.push_requested || self.iv_proto & iv_proto::REQUEST_PUSH != 0)
            && let Err(e) = self.send_push_reply(now)
        {
            self.finish(now, e.to_string());
        }
    }

    /// The shell refused the client: it gets `AUTH_FAILED` (at its push request, as OpenVPN).
    pub(crate) fn refuse(&mut self, now: Instant, reason: String) {
        if self.state != State::Authenticating {
            return;
        }
        self.auth = Auth::Refused(reason);
        if self.push_requested || self.iv_proto & iv_proto::REQUEST_PUSH != 0 {
            self.send_auth_failed(now);
        }
    }

    fn send_auth_failed(&mut self, now: Instant) {
        let Auth::Refused(reason) = self.auth.clone() else {
            return;
        };
        let text = if reason.is_empty() {
            "AUTH_FAILED".to_string()
        } else {
            format!("AUTH_FAILED,{reason}")
        };
        self.send_control_text(now, &text);
        self.finish(
            now,
            format!(
                "refused: {}",
                if reason.is_empty() {
                    "authentication failed"
                } else {
                    &reason
                }
            ),
        );
    }

    fn key0_index(&self) -> Option<usize> {
        self.ch.keys.iter().position(|k| k.km_sent)
    }

    fn send_push_reply(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.state == State::Connected {
            return Ok(());
        }
        let idx = self
            .key0_index()
            .ok_or_else(|| ClientError::Protocol("no key state to push on".into()))?;
        let cipher = self
            .cipher
            .ok_or_else(|| ClientError::Protocol("no cipher".into()))?;
        let mut opts = self
            .setup
            .as_ref()
            .map(|s| s.push.clone())
            .unwrap_or_default();
        opts.push(format!("peer-id {}", self.peer_id));
        opts.push(format!("cipher {}", cipher.name()));
        let mut flags = Vec::new();
        if self.iv_proto & iv_proto::CC_EXIT_NOTIFY != 0 {
            flags.push("cc-exit");
        }
        if self.ekm {
            flags.push("tls-ekm");
        }
        if !flags.is_empty() {
            opts.push(format!("protocol-flags {}", flags.join(" ")));
        }
        // PUSH_REPLY must fit one control message; split long pushes as OpenVPN does
        // (`push-continuation 2` on all but the last).
        for text in split_push(&opts, 1400) {
            self.ch.send_text(now, idx, &text)?;
        }
        self.install_keys(now, idx)?;
        self.state = State::Connected;
        self.connected_at = Some(now);
        self.last_rx = now;
        self.last_tx = now;
        self.events.push_back(PeerEvent::Connected);
        Ok(())
    }

    fn handle_text(&mut self, now: Instant, _idx: usize, text: &str) -> Result<(), ClientError> {
        if text == "PUSH_REQUEST" {
            self.push_requested = true;
            match self.auth {
                Auth::Accepted => self.send_push_reply(now)?,
                Auth::Refused(_) => self.send_auth_failed(now),
                Auth::Pending | Auth::NotAsked => {}
            }
        } else if text == "EXIT" {
            self.finish(now, "the client disconnected (exit notification)".into());
        } else {
            self.events
                .push_back(PeerEvent::Info(format!("client says '{text}'")));
        }
        Ok(())
    }

    fn install_keys(&mut self, now: Instant, idx: usize) -> Result<(), ClientError> {
        let cipher = self
            .cipher
            .ok_or_else(|| ClientError::Protocol("no cipher".into()))?;
        let key2 = {
            let ks = &self.ch.keys[idx];
            if self.ekm {
                let mut out = Zeroizing::new([0u8; 256]);
                ks.tls.export(b"EXPORTER-OpenVPN-datakeys", &mut out[..])?;
                Key2::from_bytes(&out)
            } else {
                let (Some(c), Some((r1, r2)), Some(peer)) = (
                    &ks.received_client_km,
                    &ks.server_randoms,
                    &self.ch.peer_sid,
                ) else {
                    return Err(ClientError::Protocol("key exchange incomplete".into()));
                };
                derive_key2(&PrfInputs {
                    pre_master: &c.pre_master,
                    client_random1: &c.random1,
                    client_random2: &c.random2,
                    server_random1: r1,
                    server_random2: r2,
                    client_sid: peer,
                    server_sid: &self.ch.sid,
                })
            }
        };
        let mut dk = DataKey::new(cipher, self.cfg.auth, &key2, data::Role::Server)
            .map_err(|e| ClientError::NoCipher(e.to_string()))?;
        let rng = self.cfg.rng.clone();
        dk.set_rng(Box::new(move |b: &mut [u8]| rng(b)));
        dk.set_replay_window(self.cfg.replay_window);
        let ks = &mut self.ch.keys[idx];
        ks.data = Some(dk);
        ks.installed_at = Some(now);
        ks.received_client_km = None;
        ks.server_randoms = None;
        let key_id = ks.key_id;
        // The server switches to the newest key at once (as OpenVPN 2.6 does).
        self.tx_key = Some(idx);
        if key_id != 0 {
            self.events.push_back(PeerEvent::Renegotiated(key_id));
            // Keep one lame duck at most: older keys go at the next prune.
            let keyed: Vec<usize> = (0..self.ch.keys.len())
                .filter(|&i| self.ch.keys[i].data.is_some())
                .collect();
            for &i in keyed.iter().rev().skip(2) {
                self.ch.keys[i].expires = Some(now);
            }
        }
        Ok(())
    }

    /// Sends a control-channel text message (`RESTART`, `HALT`, `INFO,...`) on the newest key.
    pub(crate) fn send_control_text(&mut self, now: Instant, text: &str) {
        if let Some(idx) = self.ch.keys.iter().rposition(|k| k.km_sent) {
            let _ = self.ch.send_text(now, idx, text);
        }
    }

    /// Writes raw control-channel plaintext (no NUL added) in TLS-record-sized pieces: for
    /// tests playing a hostile server.
    #[cfg(test)]
    pub(crate) fn send_raw_plaintext(&mut self, now: Instant, data: &[u8]) {
        let (max_payload, max_wkc) = self.ch.max_payloads();
        if let Some(idx) = self.ch.keys.iter().rposition(|k| k.km_sent) {
            for piece in data.chunks(8192) {
                let ks = &mut self.ch.keys[idx];
                let _ = ks.tls.write_plain(piece);
                ks.flush(now, max_payload, max_wkc);
            }
        }
    }

    /// Encrypts an IP packet for the client into `out`.
    pub(crate) fn encapsulate(
        &mut self,
        now: Instant,
        ip_packet: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        if self.state != State::Connected || !self.seal(now, ip_packet, out) {
            return false;
        }
        self.bytes_out += ip_packet.len() as u64;
        true
    }

    /// The key to send with: the newest one the client is known to have (it used it, or it
    /// acknowledged our key-exchange message), as OpenVPN activates keys.
    fn send_key(&self) -> Option<usize> {
        let newest = self.tx_key?;
        (0..=newest).rev().find(|&i| {
            let k = &self.ch.keys[i];
            k.data.is_some() && (k.key_id == 0 || k.peer_uses || k.send.is_empty())
        })
    }

    fn seal(&mut self, now: Instant, payload: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(idx) = self.send_key() else {
            return false;
        };
        let key_id = self.ch.keys[idx].key_id;
        self.codec.frame(payload, &mut self.scratch);
        let peer_id = self.peer_id;
        let Some(dk) = self.ch.keys[idx].data.as_mut() else {
            return false;
        };
        if dk
            .seal(&data::header_v2(key_id, peer_id), &self.scratch, out)
            .is_err()
        {
            out.clear();
            return false;
        }
        self.last_tx = now;
        true
    }

    /// Decrypts a data packet; an IP packet lands in `packet_out`.
    pub(crate) fn handle_data(
        &mut self,
        now: Instant,
        datagram: &[u8],
        packet_out: &mut Vec<u8>,
    ) -> DataOutcome {
        let Ok((_, key_id, _, header_len)) = wire::data_header(datagram) else {
            self.dropped += 1;
            return DataOutcome::None;
        };
        let Some(idx) = self.ch.key_index(key_id) else {
            self.dropped += 1;
            return DataOutcome::None;
        };
        let Some(dk) = self.ch.keys[idx].data.as_mut() else {
            self.dropped += 1;
            return DataOutcome::None;
        };
        let Ok(plain) = dk.open(datagram, header_len, &mut self.scratch) else {
            self.dropped += 1;
            return DataOutcome::None;
        };
        self.ch.keys[idx].peer_uses = true;
        self.last_rx = now;
        let Ok(plain) = self.codec.unframe(plain) else {
            self.dropped += 1;
            return DataOutcome::None;
        };
        match data::classify(plain) {
            Inband::Ip(ip) => {
                packet_out.clear();
                packet_out.extend_from_slice(ip);
                self.bytes_in += ip.len() as u64;
                DataOutcome::Packet
            }
            Inband::Ping => DataOutcome::None,
            Inband::Occ {
                opcode: data::OCC_EXIT,
                ..
            } => {
                self.finish(now, "the client disconnected (exit notification)".into());
                DataOutcome::None
            }
            Inband::Occ { .. } => DataOutcome::None,
        }
    }

    /// Writes the next datagram for the client.
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if let Some(t) = self.transmits.pop_front() {
            out.extend_from_slice(&t);
            return true;
        }
        if self.state == State::Closed && self.is_finished(now) {
            return false;
        }
        self.ch.poll_transmit(now, out)
    }

    /// A closed session with nothing left to send (or lingering too long).
    pub(crate) fn is_finished(&self, now: Instant) -> bool {
        self.state == State::Closed
            && (self.ch.keys.iter().all(|k| k.send.is_empty())
                || self.closed_at.is_some_and(|t| now >= t + LINGER))
    }

    /// When to call [`Peer::handle_timeout`].
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return self
                .ch
                .next_timeout()
                .map(|t| t.min(self.closed_at.unwrap_or(t) + LINGER));
        }
        let mut t = self.ch.next_timeout();
        let mut min = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        match self.state {
            State::Handshake | State::Authenticating => min(self.started + self.cfg.hand_window),
            State::Connected => {
                if let Some(p) = self.cfg.ping {
                    min(self.last_tx + p);
                }
                if let Some(p) = self.cfg.ping_restart {
                    min(self.last_rx + p);
                }
                if let (Some(r), Some(ks)) = (self.cfg.reneg_sec, self.ch.keys.last())
                    && ks.data.is_some()
                {
                    min(ks.installed_at.unwrap_or(ks.started) + r);
                }
                for k in &self.ch.keys {
                    if let Some(e) = k.expires {
                        min(e);
                    }
                }
            }
            State::Closed => {}
        }
        t
    }

    /// Runs timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Handshake | State::Authenticating => {
                if now >= self.started + self.cfg.hand_window {
                    let what = if self.state == State::Handshake {
                        "the TLS handshake did not finish within hand-window (check the client's certificate and tls settings)"
                    } else {
                        "authentication did not finish within hand-window"
                    };
                    self.finish(now, what.into());
                    return;
                }
            }
            State::Connected => {
                if let Some(p) = self.cfg.ping_restart
                    && now >= self.last_rx + p
                {
                    self.finish(
                        now,
                        format!(
                            "no packets from the client for {}s (keepalive timeout)",
                            p.as_secs()
                        ),
                    );
                    return;
                }
                if let Some(p) = self.cfg.ping
                    && now >= self.last_tx + p
                {
                    let mut out = Vec::new();
                    if self.seal(now, &data::PING_MAGIC, &mut out) {
                        self.transmits.push_back(out);
                    }
                }
                if let (Some(r), Some(ks)) = (self.cfg.reneg_sec, self.ch.keys.last())
                    && ks.data.is_some()
                    && now >= ks.installed_at.unwrap_or(ks.started) + r
                {
                    let last = ks.key_id;
                    let key_id = if last >= 7 { 1 } else { last + 1 };
                    if let Err(e) = self.start_key_state(key_id, Opcode::SoftResetV1, now) {
                        self.finish(now, e.to_string());
                        return;
                    }
                }
            }
        }
        if let Err(e) = self.progress(now) {
            self.finish(now, e.to_string());
        }
    }

    /// Tells the client to reconnect (`RESTART`, or `text`) and ends the session.
    pub(crate) fn kill(&mut self, now: Instant, text: &str) {
        if self.state == State::Closed {
            return;
        }
        if self.key0_index().is_some() {
            self.send_control_text(now, text);
        }
        self.finish(now, format!("killed ({text})"));
    }

    /// Ends the session at once (TCP connection gone).
    pub(crate) fn close_now(&mut self, now: Instant, why: &str) {
        self.finish(now, why.into());
        for k in self.ch.keys.iter_mut() {
            k.send = ReliableSend::new(self.cfg.tls_timeout);
        }
        self.transmits.clear();
    }

    pub(crate) fn finish(&mut self, now: Instant, why: String) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.closed_at = Some(now);
        for k in self.ch.keys.iter_mut() {
            k.data = None;
        }
        self.tx_key = None;
        self.events.push_back(PeerEvent::Closed(why));
    }
}

/// Splits pushed options into `PUSH_REPLY` messages of at most `max` bytes.
fn split_push(opts: &[String], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::from("PUSH_REPLY");
    for o in opts {
        if cur.len() + 1 + o.len() > max - 20 && cur != "PUSH_REPLY" {
            out.push(format!("{cur},push-continuation 2"));
            cur = String::from("PUSH_REPLY");
        }
        cur.push(',');
        cur.push_str(o);
    }
    if !out.is_empty() {
        cur.push_str(",push-continuation 1");
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::split_push;

    #[test]
    fn long_pushes_are_split_with_continuation() {
        let opts: Vec<String> = (0..200)
            .map(|i| format!("route 198.18.{i}.0 255.255.255.0"))
            .collect();
        let msgs = split_push(&opts, 1400);
        assert!(msgs.len() > 1);
        assert!(
            msgs.iter()
                .all(|m| m.len() <= 1400 && m.starts_with("PUSH_REPLY,"))
        );
        assert!(
            msgs[..msgs.len() - 1]
                .iter()
                .all(|m| m.ends_with(",push-continuation 2"))
        );
        let joined: Vec<&str> = msgs
            .iter()
            .flat_map(|m| m.split(',').skip(1))
            .filter(|o| !o.starts_with("push-continuation"))
            .collect();
        assert_eq!(joined.len(), 200);
    }
}
