//! One server-side session with one client: the mirror of [`crate::proto::client::Client`].
//! Same sans-IO contract: `handle_datagram` / `encapsulate` / `handle_timeout` in,
//! `poll_transmit` / `poll_event` / `poll_timeout` out, `now` always passed in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::config::TlsWrap;
use crate::proto::channel::ControlChannel;
use crate::proto::client::key_state::{KeyState, Phase};
use crate::proto::client::{ClientError, Event, Rng};
use crate::proto::data::{self, DataKey, Framing, Inband};
use crate::proto::handshake::key_method2;
use crate::proto::handshake::peer_info::iv_proto;
use crate::proto::handshake::prf::{PrfInputs, derive_key2};
use crate::proto::keys::{Cipher, Digest, Key2, KeyDirection};
use crate::proto::reliable::ReliableSend;
use crate::proto::tls::TlsSession;
use crate::proto::wire::{self, ControlWrap, Opcode, Role};

/// Checks a user name and password (`auth-user-pass-verify`).
pub type VerifyFn = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Server session configuration.
#[derive(Clone)]
pub struct ServerSessionConfig {
    /// rustls server configuration.
    pub tls: Arc<rustls::ServerConfig>,
    /// Control-channel wrapping (tls-auth key direction as in the server config, usually 0).
    pub wrap: Option<TlsWrap>,
    /// `auth`.
    pub auth: Digest,
    /// `data-ciphers`, in preference order.
    pub ciphers: Vec<Cipher>,
    /// Options pushed besides the negotiated ones (`ifconfig ...`, `route ...`).
    pub push: Vec<String>,
    /// `peer-id` pushed to this client.
    pub peer_id: u32,
    /// `tls-timeout`.
    pub tls_timeout: Duration,
    /// `hand-window`.
    pub hand_window: Duration,
    /// `reneg-sec` (None = the server never starts one).
    pub reneg_sec: Option<Duration>,
    /// Pushed and used `ping`.
    pub ping: Option<Duration>,
    /// Pushed `ping-restart`; the server itself uses twice this (as OpenVPN's `keepalive`).
    pub ping_restart: Option<Duration>,
    /// Credential check; None = no `auth-user-pass-verify`.
    pub verify: Option<VerifyFn>,
    /// Replay window.
    pub replay_window: u32,
    /// Wall-clock seconds at start.
    pub unix_time_at_start: u32,
    /// Randomness.
    pub rng: Rng,
}

impl ServerSessionConfig {
    fn control_wrap(&self) -> ControlWrap {
        match &self.wrap {
            None | Some(TlsWrap::CryptV2 { .. }) => ControlWrap::none(),
            Some(TlsWrap::Auth { key, direction }) => {
                ControlWrap::tls_auth(key, *direction, self.auth)
            }
            Some(TlsWrap::Crypt { key }) => ControlWrap::tls_crypt(key, Role::Server),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connected,
    Closed,
}

/// A server-side session.
pub struct ServerSession {
    cfg: ServerSessionConfig,
    ch: ControlChannel,
    state: State,
    started: Instant,
    last_rx: Instant,
    last_tx: Instant,
    cipher: Option<Cipher>,
    ekm: bool,
    client_iv_proto: u32,
    username: Option<String>,
    auth_failed: Option<String>,
    tx_key: Option<usize>,
    events: VecDeque<Event>,
    transmits: VecDeque<Vec<u8>>,
    scratch: Vec<u8>,
    /// Data packets dropped (bad tag, replay, unknown key).
    pub dropped: u64,
}

impl ServerSession {
    /// A session waiting for a client's hard reset.
    pub fn new(cfg: ServerSessionConfig, now: Instant) -> Self {
        let mut sid = [0u8; 8];
        (cfg.rng)(&mut sid);
        let wrap = cfg.control_wrap();
        Self {
            ch: ControlChannel::new(sid, wrap, now, cfg.unix_time_at_start),
            cfg,
            state: State::Handshake,
            started: now,
            last_rx: now,
            last_tx: now,
            cipher: None,
            ekm: false,
            client_iv_proto: 0,
            username: None,
            auth_failed: None,
            tx_key: None,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            scratch: Vec::with_capacity(2048),
            dropped: 0,
        }
    }

    /// Whether the client is connected.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// The user name the client authenticated with.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The negotiated cipher.
    pub fn cipher(&self) -> Option<Cipher> {
        self.cipher
    }

    /// Handles one packet from the client; `true` when `packet_out` holds an IP packet.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        packet_out: &mut Vec<u8>,
    ) -> bool {
        let Some(Ok((opcode, key_id))) = datagram.first().map(|b| wire::split_first_byte(*b))
        else {
            self.dropped += 1;
            return false;
        };
        if opcode.is_data() {
            return self.handle_data(now, datagram, key_id, packet_out);
        }
        if let Err(e) = self.handle_control(now, datagram) {
            self.finish(e);
        }
        false
    }

    fn handle_control(&mut self, now: Instant, datagram: &[u8]) -> Result<(), ClientError> {
        if self.state == State::Closed {
            return Ok(());
        }
        let Some(inc) = self.ch.receive(datagram) else {
            return Ok(());
        };
        let is_reset = matches!(
            inc.opcode,
            Opcode::HardResetClientV2 | Opcode::HardResetClientV3
        );
        match self.ch.peer_sid {
            None if is_reset && inc.key_id == 0 => {
                self.ch.peer_sid = Some(inc.session_id);
                self.start_key_state(0, Opcode::HardResetServerV2, now)?;
            }
            Some(p) if p == inc.session_id => {}
            _ => {
                self.dropped += 1;
                return Ok(());
            }
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
                    return Err(e.into());
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

    fn on_client_key_message(&mut self, now: Instant, idx: usize) -> Result<(), ClientError> {
        let ks = &self.ch.keys[idx];
        let km = ks.received_client_km.as_ref().expect("just set");
        let peer_info = km.peer_info.clone();
        let (user, pass) = (km.username.to_string(), km.password.to_string());
        let iv = |name: &str| {
            peer_info.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix('='))
                    .map(str::to_owned)
            })
        };
        if idx == 0 || self.cipher.is_none() {
            self.client_iv_proto = iv("IV_PROTO").and_then(|v| v.parse().ok()).unwrap_or(0);
            let offered: Vec<String> = iv("IV_CIPHERS")
                .map(|c| c.split(':').map(str::to_owned).collect())
                .unwrap_or_default();
            let cipher = self
                .cfg
                .ciphers
                .iter()
                .copied()
                .find(|c| offered.iter().any(|o| o == c.name()));
            self.ekm = self.client_iv_proto & iv_proto::TLS_KEY_EXPORT != 0;
            match cipher {
                Some(c) => self.cipher = Some(c),
                None => {
                    self.send_text(
                        now,
                        idx,
                        "AUTH_FAILED,Data channel cipher negotiation failed (no shared cipher)",
                    )?;
                    return Err(ClientError::NoCipher(
                        "no shared data cipher with the client".into(),
                    ));
                }
            }
        }
        if let Some(verify) = &self.cfg.verify
            && !verify(&user, &pass)
        {
            // As OpenVPN: finish the key exchange, answer the PUSH_REQUEST with AUTH_FAILED.
            self.auth_failed = Some(user.clone());
        }
        if !user.is_empty() {
            self.username = Some(user);
        }
        let mut r1 = Zeroizing::new([0u8; 32]);
        let mut r2 = Zeroizing::new([0u8; 32]);
        (self.cfg.rng)(&mut r1[..]);
        (self.cfg.rng)(&mut r2[..]);
        let mut buf = Zeroizing::new(Vec::new());
        key_method2::write_server_message(
            &r1,
            &r2,
            "V4,dev-type tun,link-mtu 1521,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-server",
            &mut buf,
        );
        let ks = &mut self.ch.keys[idx];
        ks.server_randoms = Some((r1, r2));
        ks.tls.write_plain(&buf)?;
        ks.km_sent = true;
        ks.phase = Phase::Exchanged;
        if self.auth_failed.is_some() {
            return Ok(());
        }
        if ks.key_id != 0 || self.state == State::Connected {
            self.install_keys(now, idx)?;
        } else if self.client_iv_proto & iv_proto::REQUEST_PUSH != 0 {
            self.send_push_reply(now, idx)?;
        }
        Ok(())
    }

    fn send_text(&mut self, now: Instant, idx: usize, text: &str) -> Result<(), ClientError> {
        Ok(self.ch.send_text(now, idx, text)?)
    }

    fn send_push_reply(&mut self, now: Instant, idx: usize) -> Result<(), ClientError> {
        if self.state == State::Connected {
            return Ok(());
        }
        let cipher = self
            .cipher
            .ok_or_else(|| ClientError::Protocol("no cipher".into()))?;
        let mut opts = self.cfg.push.clone();
        if let Some(p) = self.cfg.ping {
            opts.push(format!("ping {}", p.as_secs()));
        }
        if let Some(p) = self.cfg.ping_restart {
            opts.push(format!("ping-restart {}", p.as_secs()));
        }
        opts.push(format!("peer-id {}", self.cfg.peer_id));
        opts.push(format!("cipher {}", cipher.name()));
        let mut flags = Vec::new();
        if self.client_iv_proto & iv_proto::CC_EXIT_NOTIFY != 0 {
            flags.push("cc-exit");
        }
        if self.ekm {
            flags.push("tls-ekm");
        }
        if !flags.is_empty() {
            opts.push(format!("protocol-flags {}", flags.join(" ")));
        }
        let text = format!("PUSH_REPLY,{}", opts.join(","));
        self.send_text(now, idx, &text)?;
        self.install_keys(now, idx)?;
        self.state = State::Connected;
        self.last_rx = now;
        self.last_tx = now;
        self.events.push_back(Event::Connected(Box::default()));
        Ok(())
    }

    fn handle_text(&mut self, now: Instant, idx: usize, text: &str) -> Result<(), ClientError> {
        if text == "PUSH_REQUEST" {
            if let Some(user) = self.auth_failed.take() {
                self.send_text(now, idx, "AUTH_FAILED")?;
                self.finish(ClientError::AuthFailed(format!("user '{user}'")));
                return Ok(());
            }
            if self.ch.keys[idx].key_id == 0 {
                self.send_push_reply(now, idx)?;
            }
        } else if text == "EXIT" {
            self.finish(ClientError::ServerRestart(
                "the client disconnected (EXIT)".into(),
            ));
        } else {
            self.events
                .push_back(Event::Info(format!("client says '{text}'")));
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
            self.events.push_back(Event::Renegotiated { key_id });
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
    pub fn send_control_text(&mut self, now: Instant, text: &str) {
        if let Some(idx) = self.ch.keys.iter().rposition(|k| k.km_sent) {
            let _ = self.send_text(now, idx, text);
        }
    }

    /// Encrypts an IP packet for the client.
    pub fn encapsulate(&mut self, now: Instant, ip_packet: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        self.state == State::Connected && self.seal(now, ip_packet, out)
    }

    fn seal(&mut self, now: Instant, payload: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(idx) = self.tx_key else { return false };
        let key_id = self.ch.keys[idx].key_id;
        Framing::None.frame(payload, &mut self.scratch);
        let peer_id = self.cfg.peer_id;
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

    fn handle_data(
        &mut self,
        now: Instant,
        datagram: &[u8],
        key_id: u8,
        packet_out: &mut Vec<u8>,
    ) -> bool {
        let Ok((_, _, _, header_len)) = wire::data_header(datagram) else {
            self.dropped += 1;
            return false;
        };
        let Some(idx) = self.ch.key_index(key_id) else {
            self.dropped += 1;
            return false;
        };
        let Some(dk) = self.ch.keys[idx].data.as_mut() else {
            self.dropped += 1;
            return false;
        };
        let Ok(plain) = dk.open(datagram, header_len, &mut self.scratch) else {
            self.dropped += 1;
            return false;
        };
        self.last_rx = now;
        match data::classify(plain) {
            Inband::Ip(ip) => {
                packet_out.clear();
                packet_out.extend_from_slice(ip);
                true
            }
            Inband::Ping => false,
            Inband::Occ { opcode: 6, .. } => {
                self.finish(ClientError::ServerRestart(
                    "the client disconnected (OCC EXIT)".into(),
                ));
                false
            }
            Inband::Occ { .. } => false,
        }
    }

    /// Writes the next datagram for the client.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if let Some(t) = self.transmits.pop_front() {
            out.extend_from_slice(&t);
            return true;
        }
        if self.state == State::Closed && self.ch.keys.iter().all(|k| k.send.is_empty()) {
            return false;
        }
        self.ch.poll_transmit(now, out)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`ServerSession::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return self.ch.next_timeout();
        }
        let mut t = self.ch.next_timeout();
        let mut min = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        match self.state {
            State::Handshake => min(self.started + self.cfg.hand_window),
            State::Connected => {
                if let Some(p) = self.cfg.ping {
                    min(self.last_tx + p);
                }
                if let Some(p) = self.cfg.ping_restart {
                    min(self.last_rx + p * 2);
                }
                if let (Some(r), Some(ks)) = (self.cfg.reneg_sec, self.ch.keys.last())
                    && ks.data.is_some()
                {
                    min(ks.installed_at.unwrap_or(ks.started) + r);
                }
            }
            State::Closed => {}
        }
        t
    }

    /// Runs timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Handshake => {
                if now >= self.started + self.cfg.hand_window {
                    self.finish(ClientError::HandshakeTimeout(
                        self.cfg.hand_window,
                        "client handshake",
                    ));
                    return;
                }
            }
            State::Connected => {
                if let Some(p) = self.cfg.ping_restart
                    && now >= self.last_rx + p * 2
                {
                    self.finish(ClientError::PingRestart(p * 2));
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
                        self.finish(e);
                        return;
                    }
                }
            }
        }
        if let Err(e) = self.progress(now) {
            self.finish(e);
        }
    }

    fn finish(&mut self, e: ClientError) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        for k in self.ch.keys.iter_mut() {
            k.data = None;
        }
        self.tx_key = None;
        self.events.push_back(Event::Closed(e));
    }
}

/// The server's side of `tls-auth` is the opposite direction of the client's.
pub fn server_key_direction(client: KeyDirection) -> KeyDirection {
    match client {
        KeyDirection::Inverse => KeyDirection::Normal,
        KeyDirection::Normal => KeyDirection::Inverse,
        KeyDirection::Bidirectional => KeyDirection::Bidirectional,
    }
}
