//! The client state machine: one session with one server (one session id). Reconnecting means
//! a new [`Client`]; the shell decides when and to which remote.
//!
//! Sans-IO contract:
//! - inputs: [`Client::handle_datagram`] (one OpenVPN packet, already de-framed for TCP),
//!   [`Client::encapsulate`] (one IP packet from the device), [`Client::handle_timeout`],
//!   [`Client::close`];
//! - outputs, polled in this order after every input: [`Client::poll_transmit`] until `false`,
//!   [`Client::poll_event`] until `None`, then [`Client::poll_timeout`] to arm the one timer.
//!
//! `now` only moves forward. Nothing here reads a clock or touches a socket.

mod config;
mod error;
mod event;
pub(crate) mod key_state;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use config::{ClientConfig, Credentials, Rng};
pub use error::ClientError;
pub use event::Event;
use key_state::{KeyState, Phase};
use zeroize::Zeroizing;

use crate::config::Compression;
use crate::proto::channel::ControlChannel;
use crate::proto::data::{self, Codec, CompressionStats, DataKey, Framing, Inband};
use crate::proto::handshake::key_method2::{self, ClientKeyMessage};
use crate::proto::handshake::prf::{PrfInputs, derive_key2};
use crate::proto::handshake::push::PushedOptions;
use crate::proto::keys::{Cipher, Digest, Key2};
use crate::proto::reliable::ReliableSend;
use crate::proto::tls::TlsSession;
use crate::proto::wire::{self, Opcode, SessionId};

/// PUSH_REQUEST retry interval.
const PUSH_REQUEST_INTERVAL: Duration = Duration::from_secs(5);
/// How long after installing new keys the client keeps sending with the old key unless the
/// server is seen using the new one.
const KEY_SWITCH_GRACE: Duration = Duration::from_secs(2);
/// Spacing of repeated OCC EXIT packets.
const EXIT_NOTIFY_INTERVAL: Duration = Duration::from_secs(1);
/// How long a close waits for the EXIT message to be acknowledged.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// The hint when the server answered the reset but the TLS handshake stalled: OpenVPN servers
/// drop a session whose TLS handshake fails (often without the alert reaching the client), so
/// silence is all we get; name the usual server-side causes, then the path.
const TLS_REFUSED_SILENTLY: &str = "the server answered the session reset but the TLS \
    handshake never completed. An OpenVPN server drops a TLS handshake it refuses without \
    saying why; the usual causes: the server allows only TLS below 1.2 ('tls-version-max 1.0/1.1' \
    on the server: rustls speaks only TLS 1.2 and 1.3, so set 'tls-version-min 1.2' or remove \
    tls-version-max there); the server offers only DHE key exchange ('tls-cipher DHE-...' with a \
    'dh' file: rustls does ECDHE only, so use an ECDHE 'tls-cipher' or remove it on the server, \
    and 'dh none'); or no common cipher suite or group ('tls-cipher', 'tls-ciphersuites', \
    'tls-groups' on either side). The server's log names the reason ('TLS error'); if it shows \
    none, the ClientHello is lost on the way (a path MTU problem: try 'proto tcp' or a smaller \
    'tun-mtu')";

/// Longest control message (PUSH_REPLY chunk, AUTH_FAILED, ...) buffered while waiting for its
/// terminating NUL; OpenVPN's own are at most a few KiB.
pub const MAX_CONTROL_MESSAGE: usize = 64 * 1024;

/// Counters for the shell's logs and metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Data packets decrypted.
    pub rx_packets: u64,
    /// Data bytes (IP) delivered.
    pub rx_bytes: u64,
    /// Data packets sent.
    pub tx_packets: u64,
    /// IP bytes sent.
    pub tx_bytes: u64,
    /// Packets dropped: bad MAC/tag, replay, malformed, unknown key or session.
    pub dropped: u64,
    /// Renegotiations completed.
    pub renegotiations: u64,
    /// Compressed packets received, decompressed, refused, sent.
    pub compression: CompressionStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Handshake and push in progress.
    Connecting,
    /// Tunnel up.
    Connected,
    /// Sending exit notification.
    Closing { until: Instant },
    /// Done; the last event was `Closed`.
    Closed,
}

/// A client session.
pub struct Client {
    cfg: ClientConfig,
    state: State,
    ch: ControlChannel,
    /// Index into `keys` used to send data.
    tx_key: Option<usize>,
    push: PushedOptions,
    push_done: bool,
    next_push_request: Option<Instant>,
    codec: Codec,
    peer_id: Option<u32>,
    cipher: Option<Cipher>,
    cc_exit: bool,
    ekm: bool,
    ping: Option<Duration>,
    ping_restart: Option<Duration>,
    ping_exit: Option<Duration>,
    started: Instant,
    last_rx: Instant,
    last_tx: Instant,
    got_any: bool,
    /// While the server has not answered, the hard reset is resent every `tls-timeout`
    /// instead of backing off: a server that comes back is found within seconds.
    next_reset_resend: Option<Instant>,
    auth_token: Option<Zeroizing<String>>,
    auth_token_user: Option<String>,
    /// `AUTH_PENDING,timeout N`: the handshake may last until then.
    pending_until: Option<Instant>,
    exit_notify_left: u32,
    next_exit_notify: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
    stats: Stats,
}

impl Client {
    /// Starts a session: the first transmit is the hard reset.
    pub fn new(cfg: ClientConfig, now: Instant) -> Result<Self, ClientError> {
        let mut sid = [0u8; 8];
        (cfg.rng)(&mut sid);
        let wrap = cfg
            .control_wrap()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let ping = cfg.ping;
        let ping_restart = cfg.ping_restart;
        let codec = codec_for(cfg.compression, &cfg, cfg.tun_mtu);
        let first_resend = now + cfg.tls_timeout;
        let mut me = Self {
            state: State::Connecting,
            ch: ControlChannel::new(sid, wrap, now, cfg.unix_time_at_start),
            tx_key: None,
            push: PushedOptions::default(),
            push_done: false,
            next_push_request: None,
            codec,
            peer_id: None,
            cipher: None,
            cc_exit: false,
            ekm: false,
            ping,
            ping_restart,
            ping_exit: cfg.ping_exit,
            started: now,
            last_rx: now,
            last_tx: now,
            got_any: false,
            next_reset_resend: Some(first_resend),
            auth_token: cfg.auth_token.clone().map(Zeroizing::new),
            auth_token_user: None,
            pending_until: None,
            exit_notify_left: 0,
            next_exit_notify: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(2048),
            stats: Stats::default(),
            cfg,
        };
        let opcode = if me.ch.wrap.is_tls_crypt_v2() {
            Opcode::HardResetClientV3
        } else {
            Opcode::HardResetClientV2
        };
        me.start_key_state(0, opcode, now)?;
        Ok(me)
    }

    /// Our session id.
    pub fn session_id(&self) -> SessionId {
        self.ch.sid
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            dropped: self.stats.dropped + self.ch.dropped,
            compression: self.codec.stats(),
            ..self.stats
        }
    }

    /// Whether the tunnel is up.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The auth token pushed by the server (to reuse on reconnect), with its user name.
    pub fn auth_token(&self) -> Option<(Option<&str>, &str)> {
        self.auth_token
            .as_ref()
            .map(|t| (self.auth_token_user.as_deref(), t.as_str()))
    }

    /// The data cipher in use.
    pub fn cipher(&self) -> Option<Cipher> {
        self.cipher
    }

    /// The HMAC digest of a CBC data channel (`None` for AEAD ciphers and before the push).
    pub fn data_auth(&self) -> Option<Digest> {
        self.cipher.filter(|c| !c.is_aead()).map(|_| self.cfg.auth)
    }

    /// How the data-channel keys are derived: TLS-EKM when the server agreed to it, else the
    /// TLS 1.0 PRF of OpenVPN's key method 2 (servers before 2.5, or a client not offering EKM).
    pub fn key_derivation(&self) -> &'static str {
        if self.ekm {
            "TLS-EKM"
        } else {
            "the legacy TLS 1.0 PRF"
        }
    }

    /// The largest IP packet that fits the negotiated tun MTU.
    pub fn tun_mtu(&self) -> u16 {
        self.push.tun_mtu.unwrap_or(self.cfg.tun_mtu)
    }

    // ----- inputs -----

    /// Handles one OpenVPN packet from the server. Returns `true` when `packet_out` now holds
    /// an IP packet for the device.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        packet_out: &mut Vec<u8>,
    ) -> bool {
        let Some(&first) = datagram.first() else {
            self.stats.dropped += 1;
            return false;
        };
        let Ok((opcode, key_id)) = wire::split_first_byte(first) else {
            self.stats.dropped += 1;
            return false;
        };
        if opcode.is_data() {
            return self.handle_data(now, datagram, key_id, packet_out);
        }
        if let Err(e) = self.handle_control(now, datagram) {
            self.fail(e);
        }
        if matches!(self.state, State::Closing { .. }) {
            // The EXIT message may just have been acknowledged.
            let _ = self.run_timers(now);
        }
        false
    }

    /// Encrypts one IP packet from the device into `out` (a datagram to send). Returns `false`
    /// (and leaves `out` empty) when the tunnel is not up: the packet is dropped.
    pub fn encapsulate(&mut self, now: Instant, ip_packet: &mut [u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.state != State::Connected {
            return false;
        }
        self.clamp_mss(ip_packet);
        let ip_packet = &*ip_packet;
        let ok = self.seal_payload(now, Payload::Ip(ip_packet), out);
        if ok {
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += ip_packet.len() as u64;
        }
        ok
    }

    /// Answers a `CR_TEXT` question (control message `CR_RESPONSE,base64(answer)`).
    pub fn send_cr_response(&mut self, now: Instant, answer: &str) {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(answer);
        if let Err(e) = self.send_control_message(now, &format!("CR_RESPONSE,{b}")) {
            self.fail(e);
        }
    }

    /// Runs timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if let Err(e) = self.run_timers(now) {
            self.fail(e);
        }
        if let Err(e) = self.progress(now) {
            self.fail(e);
        }
    }

    /// Starts a clean shutdown: sends the exit notification (control-channel `EXIT` when the
    /// server pushed `cc-exit`, else `explicit-exit-notify` OCC packets over UDP).
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Closing { .. } => return,
            State::Connecting => {
                self.finish(ClientError::LocallyClosed);
                return;
            }
            State::Connected => {}
        }
        let mut until = now;
        if self.cc_exit {
            if self.send_control_message(now, "EXIT").is_ok() {
                until = now + CLOSE_LINGER;
            }
        } else if self.cfg.explicit_exit_notify > 0 && !self.cfg.tcp {
            self.exit_notify_left = self.cfg.explicit_exit_notify;
            self.next_exit_notify = Some(now);
            until = now + EXIT_NOTIFY_INTERVAL * (self.cfg.explicit_exit_notify - 1);
        }
        self.state = State::Closing { until };
        let _ = self.run_timers(now);
        let _ = self.progress(now);
    }

    // ----- outputs -----

    /// Writes the next datagram to send into `out`. Returns `false` when there is none.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if let Some(t) = self.transmits.pop_front() {
            out.extend_from_slice(&t);
            return true;
        }
        if self.state == State::Closed {
            return false;
        }
        self.ch.poll_transmit(now, out)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        min(self.ch.next_timeout());
        for (i, ks) in self.ch.keys.iter().enumerate() {
            min(ks.expires);
            // Only a key newer than the one we send with can be switched to; an older key the
            // server never used must not keep a timer in the past.
            if ks.data.is_some() && !ks.peer_uses && self.tx_key.is_none_or(|t| i > t) {
                min(ks.installed_at.map(|i| i + KEY_SWITCH_GRACE));
            }
        }
        min(self.next_push_request);
        min(self.next_exit_notify);
        if let State::Closing { until } = self.state {
            min(Some(until));
        }
        match self.state {
            State::Connecting => {
                if !self.got_any {
                    min(Some(self.started + self.cfg.server_poll_timeout));
                    min(self.next_reset_resend);
                }
                min(Some(self.started + self.cfg.hand_window));
            }
            State::Connected => {
                if let Some(p) = self.ping {
                    min(Some(self.last_tx + p));
                }
                if let Some(p) = self.ping_restart {
                    min(Some(self.last_rx + p));
                }
                if let Some(p) = self.ping_exit {
                    min(Some(self.last_rx + p));
                }
                min(self.reneg_due());
                // A renegotiation in progress must finish within hand-window.
                if let Some(ks) = self.ch.keys.last()
                    && ks.data.is_none()
                {
                    min(Some(ks.started + self.cfg.hand_window));
                }
            }
            _ => {}
        }
        t
    }

    // ----- internals: control channel -----

    fn start_key_state(
        &mut self,
        key_id: u8,
        reset: Opcode,
        now: Instant,
    ) -> Result<(), ClientError> {
        let tls = TlsSession::client(self.cfg.tls.clone())?;
        let mut send = ReliableSend::new(self.cfg.tls_timeout);
        send.push(reset, Vec::new(), now);
        self.ch.keys.push(KeyState::new(key_id, tls, send, now));
        Ok(())
    }

    fn handle_control(&mut self, now: Instant, datagram: &[u8]) -> Result<(), ClientError> {
        let Some(inc) = self.ch.receive(datagram) else {
            return Ok(());
        };
        match (inc.opcode, self.ch.peer_sid) {
            (Opcode::HardResetServerV2, None) => self.ch.peer_sid = Some(inc.session_id),
            (_, Some(peer)) if peer == inc.session_id => {}
            _ => {
                self.stats.dropped += 1;
                return Ok(());
            }
        }
        self.got_any = true;
        self.last_rx = now;
        let idx = match self.ch.key_index(inc.key_id) {
            Some(i) => i,
            None if inc.opcode == Opcode::SoftResetV1 && self.state == State::Connected => {
                // Server-initiated renegotiation.
                self.start_key_state(inc.key_id, Opcode::SoftResetV1, now)?;
                self.ch.keys.len() - 1
            }
            None => {
                self.stats.dropped += 1;
                return Ok(());
            }
        };
        for (opcode, payload) in self.ch.deliver(idx, &inc) {
            self.handle_message(now, idx, opcode, &payload)?;
        }
        self.progress(now)
    }

    fn handle_message(
        &mut self,
        _now: Instant,
        idx: usize,
        opcode: Opcode,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        let ks = &mut self.ch.keys[idx];
        match opcode {
            Opcode::HardResetServerV2 => {
                // TLVs: type 1 = flags, flag 1 = resend WKc (tls-crypt-v2 cookie mode).
                let mut p = payload;
                while p.len() >= 4 {
                    let ty = u16::from_be_bytes([p[0], p[1]]);
                    let len = u16::from_be_bytes([p[2], p[3]]) as usize;
                    let Some(v) = p.get(4..4 + len) else { break };
                    if ty == 1 && len >= 2 && u16::from_be_bytes([v[0], v[1]]) & 1 != 0 {
                        ks.send_wkc = self.ch.wrap.is_tls_crypt_v2();
                    }
                    p = &p[4 + len..];
                }
            }
            Opcode::SoftResetV1 => {}
            Opcode::ControlV1 | Opcode::ControlWkcV1 => {
                if let Err(e) = ks.tls.feed(payload) {
                    // Let the TLS alert reach the server before failing.
                    ks.tls.drain(&mut ks.tls_out);
                    return Err(e.into());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Advances every key state: starts TLS once our reset is acked, packetizes TLS output,
    /// runs the key exchange, reads control messages.
    fn progress(&mut self, now: Instant) -> Result<(), ClientError> {
        let mut i = 0;
        while i < self.ch.keys.len() {
            self.progress_key(now, i)?;
            i += 1;
        }
        Ok(())
    }

    fn progress_key(&mut self, now: Instant, idx: usize) -> Result<(), ClientError> {
        let (max_payload, max_wkc) = self.ch.max_payloads();
        let peer_known = self.ch.peer_sid.is_some();
        {
            let ks = &mut self.ch.keys[idx];
            if ks.phase == key_state::Phase::Reset && ks.send.is_empty() && peer_known {
                ks.phase = Phase::Tls;
            }
            if ks.phase == Phase::Reset {
                return Ok(());
            }
            if !ks.tls.is_handshaking() && !ks.km_sent {
                let tls_desc = ks.tls.describe();
                self.events.push_back(Event::TlsEstablished(tls_desc));
                self.write_key_method(idx)?;
            }
        }
        let ks = &mut self.ch.keys[idx];
        ks.tls.read_plain(&mut ks.plain_in);
        // `server_km` is wiped once the keys are installed: the phase says it was received.
        if ks.server_km.is_none()
            && ks.phase != Phase::Exchanged
            && let Some(len) = key_method2::message_len(&ks.plain_in, false)
        {
            let msg = key_method2::read_server_message(&ks.plain_in[..len])?;
            ks.plain_in.drain(..len);
            ks.server_km = Some(msg);
        }
        if ks.km_sent && ks.server_km.is_some() && ks.phase == Phase::Tls {
            ks.phase = Phase::Exchanged;
            if ks.key_id == 0 && !self.push_done {
                self.send_push_request(now)?;
            } else if self.push_done {
                self.install_keys(now, idx)?;
            }
        }
        // Control messages: NUL-terminated strings.
        loop {
            let ks = &mut self.ch.keys[idx];
            if ks.phase != Phase::Exchanged {
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
        let ks = &self.ch.keys[idx];
        if ks.phase == Phase::Exchanged && ks.plain_in.len() > MAX_CONTROL_MESSAGE {
            return Err(ClientError::Protocol(format!(
                "the server sent a control message longer than {MAX_CONTROL_MESSAGE} bytes \
                 without its terminating NUL: refusing to buffer more"
            )));
        }
        self.ch.keys[idx].flush(now, max_payload, max_wkc);
        Ok(())
    }

    fn write_key_method(&mut self, idx: usize) -> Result<(), ClientError> {
        let km = ClientKeyMessage::generate(&mut |b: &mut [u8]| (self.cfg.rng)(b));
        let mut buf = Zeroizing::new(Vec::with_capacity(512));
        let token_creds;
        let creds = match (&self.auth_token, &self.cfg.credentials) {
            (Some(tok), Some(c)) => {
                let user = self
                    .auth_token_user
                    .clone()
                    .unwrap_or_else(|| c.username.to_string());
                token_creds = (user, tok.to_string());
                Some((token_creds.0.as_str(), token_creds.1.as_str()))
            }
            (Some(tok), None) => {
                let user = self.auth_token_user.clone().unwrap_or_default();
                token_creds = (user, tok.to_string());
                Some((token_creds.0.as_str(), token_creds.1.as_str()))
            }
            (None, Some(c)) => Some((c.username.as_str(), c.password.as_str())),
            (None, None) => None,
        };
        km.write(&self.cfg.occ_options, creds, &self.cfg.peer_info, &mut buf);
        let ks = &mut self.ch.keys[idx];
        ks.tls.write_plain(&buf)?;
        ks.client_km = Some(km);
        ks.km_sent = true;
        Ok(())
    }

    fn send_control_message(&mut self, now: Instant, text: &str) -> Result<(), ClientError> {
        let Some(idx) = self.primary_index() else {
            return Ok(());
        };
        Ok(self.ch.send_text(now, idx, text)?)
    }

    /// The newest key state whose key exchange finished.
    fn primary_index(&self) -> Option<usize> {
        self.ch
            .keys
            .iter()
            .rposition(|k| k.phase == Phase::Exchanged)
    }

    fn send_push_request(&mut self, now: Instant) -> Result<(), ClientError> {
        self.next_push_request = Some(now + PUSH_REQUEST_INTERVAL);
        self.send_control_message(now, "PUSH_REQUEST")
    }

    fn handle_text(&mut self, now: Instant, _idx: usize, text: &str) -> Result<(), ClientError> {
        if let Some(body) = text.strip_prefix("PUSH_REPLY") {
            if self.push_done {
                return Ok(());
            }
            let body = body.strip_prefix(',').unwrap_or(body);
            let more = self.push.apply_chunk(body, &self.cfg.pull)?;
            if !more {
                self.push_done = true;
                self.next_push_request = None;
                self.apply_push(now)?;
            }
        } else if let Some(reason) = text.strip_prefix("AUTH_FAILED") {
            let reason = reason.strip_prefix(',').unwrap_or(reason).to_owned();
            if let Some(c) = reason.strip_prefix("CRV1:").and_then(parse_crv1) {
                self.finish(c);
            } else if let Some(rest) = reason.strip_prefix("TEMP") {
                let (message, backoff, advance) = parse_auth_failed_temp(rest);
                self.finish(ClientError::AuthFailedTemp {
                    message,
                    backoff,
                    advance,
                });
            } else if let Some(msg) = reason.strip_prefix("SESSION:") {
                self.auth_token = None;
                self.finish(ClientError::TokenExpired(msg.to_owned()));
            } else if self.auth_token.is_some() && self.cfg.credentials.is_some() {
                // 2.6 drops the token on a plain AUTH_FAILED too and retries with the password.
                self.auth_token = None;
                self.finish(ClientError::TokenExpired(reason));
            } else {
                self.finish(ClientError::AuthFailed(reason));
            }
        } else if let Some(rest) = text.strip_prefix("RESTART") {
            self.finish(ClientError::ServerRestart(strip_flags(rest)));
        } else if let Some(rest) = text.strip_prefix("HALT") {
            self.finish(ClientError::ServerHalt(strip_flags(rest)));
        } else if text == "EXIT" || text.starts_with("EXIT,") {
            self.finish(ClientError::ServerRestart(
                "the server is shutting down".into(),
            ));
        } else if let Some(rest) = text.strip_prefix("AUTH_PENDING") {
            // `AUTH_PENDING,timeout N`: the handshake may take that long (a web login, a push
            // notification to confirm), not just hand-window.
            let timeout = rest
                .trim_start_matches(',')
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix("timeout "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // Without a timeout, the wait starts over (hand-window from now).
            self.pending_until = Some(now + timeout.unwrap_or(self.cfg.hand_window));
            self.events.push_back(Event::Info(format!(
                "authentication pending{}: complete it as the server instructs",
                timeout
                    .map(|t| format!(" (up to {}s)", t.as_secs()))
                    .unwrap_or_default()
            )));
            self.next_push_request = Some(now + PUSH_REQUEST_INTERVAL);
        } else if let Some(rest) = text.strip_prefix("INFO_PRE,") {
            self.events.push_back(info_pre_event(rest));
        } else if let Some(rest) = text.strip_prefix("INFO,") {
            self.events.push_back(Event::Info(rest.to_owned()));
        } else {
            self.events
                .push_back(Event::Warning(format!("unknown control message '{text}'")));
        }
        Ok(())
    }

    fn apply_push(&mut self, now: Instant) -> Result<(), ClientError> {
        let cipher = match self.push.cipher {
            Some(c) => c,
            None => self.cfg.fallback_cipher.ok_or_else(|| {
                ClientError::NoCipher(match &self.cfg.unusable_cipher {
                    Some(advice) => format!("the server pushed no data cipher (it cannot negotiate); {advice}"),
                    None => "the server pushed no data cipher and the profile has no 'data-ciphers-fallback' (an old server? add 'data-ciphers-fallback AES-256-CBC' or whatever the server uses)".into(),
                })
            })?,
        };
        if !self.cfg.ciphers.contains(&cipher) && Some(cipher) != self.cfg.fallback_cipher {
            return Err(ClientError::NoCipher(format!(
                "the server chose data cipher {cipher}, which is not in this profile's data-ciphers ({})",
                self.cfg
                    .ciphers
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(":")
            )));
        }
        self.cipher = Some(cipher);
        self.peer_id = self.push.peer_id;
        self.cc_exit = self.push.cc_exit;
        self.ekm = self.push.tls_ekm;
        let compression = self.push.compression.unwrap_or(self.cfg.compression);
        let c = codec_for(compression, &self.cfg, self.tun_mtu());
        self.codec
            .reconfigure(c.framing(), c.send(), c.receives(), c.max_packet());
        if let Some(p) = self.push.ping {
            self.ping = Some(p).filter(|d| !d.is_zero());
        }
        if let Some(p) = self.push.ping_restart {
            self.ping_restart = Some(p).filter(|d| !d.is_zero());
        }
        if let Some(p) = self.push.ping_exit {
            self.ping_exit = Some(p).filter(|d| !d.is_zero());
        }
        if let Some(tok) = self.push.auth_token.take() {
            self.auth_token = Some(Zeroizing::new(tok));
        }
        if let Some(user) = self.push.auth_token_user.take() {
            self.auth_token_user = Some(user);
        }
        if let Some(n) = self.push.explicit_exit_notify
            && self.cfg.explicit_exit_notify == 0
        {
            self.cfg.explicit_exit_notify = n;
        }
        for ignored in std::mem::take(&mut self.push.ignored) {
            self.events
                .push_back(Event::Warning(format!("pushed option ignored: {ignored}")));
        }
        let idx = self
            .ch
            .keys
            .iter()
            .position(|k| k.key_id == 0 && k.phase == Phase::Exchanged)
            .ok_or_else(|| ClientError::Protocol("PUSH_REPLY before the key exchange".into()))?;
        self.install_keys(now, idx)?;
        self.state = State::Connected;
        self.last_rx = now;
        self.last_tx = now;
        self.events
            .push_back(Event::Connected(Box::new(self.push.clone())));
        Ok(())
    }

    fn derive_key2(&self, idx: usize) -> Result<Key2, ClientError> {
        let ks = &self.ch.keys[idx];
        if self.ekm {
            let mut out = Zeroizing::new([0u8; 256]);
            ks.tls.export(b"EXPORTER-OpenVPN-datakeys", &mut out[..])?;
            return Ok(Key2::from_bytes(&out));
        }
        let (Some(c), Some(s), Some(peer)) = (&ks.client_km, &ks.server_km, &self.ch.peer_sid)
        else {
            return Err(ClientError::Protocol("key exchange incomplete".into()));
        };
        Ok(derive_key2(&PrfInputs {
            pre_master: &c.pre_master,
            client_random1: &c.random1,
            client_random2: &c.random2,
            server_random1: &s.random1,
            server_random2: &s.random2,
            client_sid: &self.ch.sid,
            server_sid: peer,
        }))
    }

    fn install_keys(&mut self, now: Instant, idx: usize) -> Result<(), ClientError> {
        let cipher = self
            .cipher
            .ok_or_else(|| ClientError::Protocol("no cipher".into()))?;
        let key2 = self.derive_key2(idx)?;
        let mut dk = DataKey::new(cipher, self.cfg.auth, &key2, data::Role::Client)
            .map_err(|e| ClientError::NoCipher(e.to_string()))?;
        let rng = self.cfg.rng.clone();
        dk.set_rng(Box::new(move |b: &mut [u8]| rng(b)));
        dk.set_replay_window(self.cfg.replay_window);
        let ks = &mut self.ch.keys[idx];
        ks.data = Some(dk);
        ks.installed_at = Some(now);
        // The key exchange secrets are no longer needed.
        ks.client_km = None;
        ks.server_km = None;
        if ks.key_id == 0 && self.tx_key.is_none() {
            self.tx_key = Some(idx);
            ks.peer_uses = true;
        } else {
            self.stats.renegotiations += 1;
            let key_id = ks.key_id;
            self.events.push_back(Event::Renegotiated { key_id });
            // Older keys become lame ducks.
            let expires = now + self.cfg.tran_window;
            for (i, k) in self.ch.keys.iter_mut().enumerate() {
                if i != idx && k.expires.is_none() {
                    k.expires = Some(expires);
                }
            }
        }
        Ok(())
    }

    fn reneg_due(&self) -> Option<Instant> {
        let sec = self.cfg.reneg_sec?;
        let newest = self.ch.keys.last()?;
        // Only one renegotiation at a time.
        newest.data.as_ref()?;
        Some(newest.installed_at.unwrap_or(newest.started) + sec)
    }

    fn start_renegotiation(&mut self, now: Instant) -> Result<(), ClientError> {
        let last = self.ch.keys.last().map(|k| k.key_id).unwrap_or(0);
        let key_id = if last >= 7 { 1 } else { last + 1 };
        // Keep at most the current key and one lame duck.
        self.drop_expired_keys(now, true);
        self.start_key_state(key_id, Opcode::SoftResetV1, now)
    }

    fn drop_expired_keys(&mut self, now: Instant, make_room: bool) {
        let tx_id = self.tx_key.map(|i| self.ch.keys[i].key_id);
        let primary = self.ch.keys.iter().rposition(|k| k.data.is_some());
        let mut i = 0;
        let mut keep_budget = self.ch.keys.len();
        while i < self.ch.keys.len() {
            let k = &self.ch.keys[i];
            let expired = k.expires.is_some_and(|e| now >= e);
            let is_tx = Some(k.key_id) == tx_id;
            let surplus = make_room && keep_budget > 1 && Some(i) != primary && !is_tx;
            if (expired || surplus) && !is_tx {
                self.ch.keys.remove(i);
                keep_budget -= 1;
                continue;
            }
            i += 1;
        }
        self.tx_key = tx_id.and_then(|id| self.ch.key_index(id));
    }

    fn run_timers(&mut self, now: Instant) -> Result<(), ClientError> {
        match self.state {
            State::Closed => return Ok(()),
            State::Closing { until } => {
                self.send_exit_notifications(now);
                let acked = self.ch.keys.iter().all(|k| k.send.is_empty());
                if now >= until || (self.cc_exit && acked && self.exit_notify_left == 0) {
                    self.finish(ClientError::LocallyClosed);
                }
                return Ok(());
            }
            State::Connecting => {
                if !self.got_any && now >= self.started + self.cfg.server_poll_timeout {
                    return Err(ClientError::NoResponse(self.cfg.server_poll_timeout));
                }
                if !self.got_any && self.next_reset_resend.is_some_and(|due| now >= due) {
                    if let Some(ks) = self.ch.keys.first_mut() {
                        ks.send.schedule_now(now);
                    }
                    self.next_reset_resend = Some(now + self.cfg.tls_timeout);
                }
                let deadline = (self.started + self.cfg.hand_window).max(
                    self.pending_until
                        .unwrap_or(self.started + self.cfg.hand_window),
                );
                if now >= deadline {
                    let hint = if !self.got_any {
                        "the server never answered"
                    } else if self.ch.keys.first().is_some_and(|k| k.tls.is_handshaking()) {
                        TLS_REFUSED_SILENTLY
                    } else {
                        "the server did not send its configuration (PUSH_REPLY); check the server log"
                    };
                    return Err(ClientError::HandshakeTimeout(self.cfg.hand_window, hint));
                }
            }
            State::Connected => {
                if let Some(p) = self.ping_exit
                    && now >= self.last_rx + p
                {
                    return Err(ClientError::PingExit(p));
                }
                if let Some(p) = self.ping_restart
                    && now >= self.last_rx + p
                {
                    return Err(ClientError::PingRestart(p));
                }
                if let Some(p) = self.ping
                    && now >= self.last_tx + p
                {
                    let mut out = Vec::new();
                    if self.seal_payload(now, Payload::Ping, &mut out) {
                        self.transmits.push_back(out);
                    }
                }
                let wants_reneg = self
                    .tx_key
                    .and_then(|i| self.ch.keys[i].data.as_ref())
                    .is_some_and(|d| d.wants_renegotiation());
                if self.reneg_due().is_some_and(|t| now >= t)
                    || (wants_reneg && self.reneg_due().is_some())
                {
                    self.start_renegotiation(now)?;
                }
                if let Some(ks) = self.ch.keys.last()
                    && ks.data.is_none()
                    && ks.key_id != 0
                    && now >= ks.started + self.cfg.hand_window
                {
                    return Err(ClientError::HandshakeTimeout(
                        self.cfg.hand_window,
                        "a renegotiation did not complete",
                    ));
                }
                self.maybe_switch_tx_key(now);
                self.drop_expired_keys(now, false);
            }
        }
        if let Some(t) = self.next_push_request
            && now >= t
            && !self.push_done
        {
            self.send_push_request(now)?;
        }
        Ok(())
    }

    /// Switches sending to the newest key once the server uses it (or after a grace period).
    fn maybe_switch_tx_key(&mut self, now: Instant) {
        let Some(newest) = self.ch.keys.iter().rposition(|k| k.data.is_some()) else {
            return;
        };
        if Some(newest) == self.tx_key {
            return;
        }
        let k = &self.ch.keys[newest];
        if k.peer_uses || k.installed_at.is_some_and(|t| now >= t + KEY_SWITCH_GRACE) {
            self.tx_key = Some(newest);
        }
    }

    /// The MSS that keeps a TCP segment's tunnel packet within `mssfix`, for IPv4 inner
    /// packets (IPv6 ones get 20 less).
    fn mss_v4(&self) -> Option<u16> {
        let mssfix = self.cfg.mssfix?;
        let idx = self.tx_key?;
        let header = if self.peer_id.is_some() { 4 } else { 1 };
        let overhead = self.ch.keys[idx].data.as_ref()?.max_overhead(header);
        let transport =
            if self.cfg.ipv6_transport { 40 } else { 20 } + if self.cfg.tcp { 22 } else { 8 };
        let framing = usize::from(self.codec.framing() != Framing::None);
        let ethernet = if self.cfg.layer2 { 14 } else { 0 };
        let mss =
            usize::from(mssfix).checked_sub(transport + overhead + framing + ethernet + 40)?;
        u16::try_from(mss).ok().filter(|m| *m >= 536)
    }

    fn clamp_mss(&self, packet: &mut [u8]) {
        clamp_mss_with(self.mss_v4(), self.cfg.layer2, packet);
    }

    fn send_exit_notifications(&mut self, now: Instant) {
        while self.exit_notify_left > 0 && self.next_exit_notify.is_some_and(|t| now >= t) {
            let mut out = Vec::new();
            if self.seal_payload(now, Payload::OccExit, &mut out) {
                self.transmits.push_back(out);
            }
            self.exit_notify_left -= 1;
            self.next_exit_notify =
                (self.exit_notify_left > 0).then_some(now + EXIT_NOTIFY_INTERVAL);
        }
    }

    fn fail(&mut self, e: ClientError) {
        self.finish(e);
    }

    fn finish(&mut self, e: ClientError) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        // Wipe every key.
        self.ch.keys.clear();
        self.tx_key = None;
        self.events.push_back(Event::Closed(e));
    }

    // ----- internals: data channel -----

    fn seal_payload(&mut self, now: Instant, payload: Payload<'_>, out: &mut Vec<u8>) -> bool {
        let Some(idx) = self.tx_key else { return false };
        let key_id = self.ch.keys[idx].key_id;
        match payload {
            Payload::Ip(p) => self.codec.frame(p, &mut self.scratch),
            Payload::Ping => self.codec.frame(&data::PING_MAGIC, &mut self.scratch),
            Payload::OccExit => self.codec.frame(&data::occ_exit(), &mut self.scratch),
        }
        let Some(dk) = self.ch.keys[idx].data.as_mut() else {
            return false;
        };
        let ok = match self.peer_id {
            Some(peer_id) => dk.seal(&data::header_v2(key_id, peer_id), &self.scratch, out),
            None => dk.seal(&data::header_v1(key_id), &self.scratch, out),
        };
        if ok.is_err() {
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
        let mss = self.mss_v4();
        let Ok((_, _, _, header_len)) = wire::data_header(datagram) else {
            self.stats.dropped += 1;
            return false;
        };
        let Some(idx) = self.ch.key_index(key_id) else {
            self.stats.dropped += 1;
            return false;
        };
        let ks = &mut self.ch.keys[idx];
        let Some(dk) = ks.data.as_mut() else {
            self.stats.dropped += 1;
            return false;
        };
        let plain = match dk.open(datagram, header_len, &mut self.scratch) {
            Ok(p) => p,
            Err(_) => {
                self.stats.dropped += 1;
                return false;
            }
        };
        let switch = !ks.peer_uses;
        ks.peer_uses = true;
        if switch {
            // The borrow of the plaintext lives in `scratch`; switching only touches keys.
            let newest = self.ch.keys.iter().rposition(|k| k.data.is_some());
            if newest == Some(idx) {
                self.tx_key = Some(idx);
            }
        }
        self.last_rx = now;
        let payload = match self.codec.unframe(plain) {
            Ok(p) => p,
            Err(e) => {
                if self.codec.take_refusal_notice() {
                    self.events.push_back(Event::Warning(refusal_message(e)));
                }
                self.stats.dropped += 1;
                return false;
            }
        };
        match data::classify(payload) {
            Inband::Ip(ip) => {
                packet_out.clear();
                packet_out.extend_from_slice(ip);
                clamp_mss_with(mss, self.cfg.layer2, packet_out);
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += ip.len() as u64;
                true
            }
            Inband::Ping => false,
            Inband::Occ { opcode, .. } => {
                if opcode == 6 {
                    // OCC EXIT: the server is going away.
                    self.finish(ClientError::ServerRestart(
                        "the server is shutting down".into(),
                    ));
                }
                false
            }
        }
    }
}

/// Clamps the MSS of a TCP SYN in an IP packet, or in an Ethernet frame (`layer2`) that carries
/// IPv4 or IPv6 without a VLAN tag.
fn clamp_mss_with(mss_v4: Option<u16>, layer2: bool, packet: &mut [u8]) {
    let Some(mss) = mss_v4 else { return };
    let packet = if layer2 {
        match crate::proto::mssfix::ip_packet_in_frame(packet) {
            Some(ip) => ip,
            None => return,
        }
    } else {
        packet
    };
    let mss = if packet.first().is_some_and(|b| b >> 4 == 6) {
        mss - 20
    } else {
        mss
    };
    crate::proto::mssfix::clamp_mss(packet, mss);
}

enum Payload<'a> {
    Ip(&'a [u8]),
    Ping,
    OccExit,
}

/// The codec for `c` under the profile's `allow-compression`: decompress with `asym` or `yes`,
/// compress only with `yes`, never produce more than `mtu` bytes.
fn codec_for(c: Compression, cfg: &ClientConfig, mtu: u16) -> Codec {
    let (framing, algorithm) = data::framing_for(c);
    Codec::new(
        framing,
        algorithm.filter(|_| cfg.compress_outgoing),
        cfg.pull.allow_compression,
        usize::from(mtu),
    )
}

fn refusal_message(e: data::DataError) -> String {
    format!(
        "the server sends compressed packets ({e}), which 'allow-compression no' refuses: they \
         are dropped (and counted). Compression leaks plaintext through packet sizes (VORACLE); \
         ask the server's admin for 'compress stub-v2' or 'compress migrate', or add \
         'allow-compression asym' to the profile to accept them"
    )
}

/// The part of `AUTH_FAILED,TEMP[backoff N,advance addr]:message` after `TEMP`: the message,
/// the backoff and whether to advance to the next remote (OpenVPN 2.6's
/// `parse_auth_failed_temp`). Unknown flags are ignored.
fn parse_auth_failed_temp(rest: &str) -> (String, Option<Duration>, bool) {
    let (flags, message) = match rest.strip_prefix('[') {
        Some(r) => match r.split_once(']') {
            Some((f, m)) => (f, m),
            None => ("", r),
        },
        None => ("", rest),
    };
    let message = message.strip_prefix(':').unwrap_or(message).to_owned();
    let mut backoff = None;
    let mut advance = false;
    for f in flags.split(',').map(str::trim) {
        if let Some(n) = f.strip_prefix("backoff ") {
            backoff = n.trim().parse::<u64>().ok().map(Duration::from_secs);
        } else if f.starts_with("advance") {
            advance = f != "advance no";
        }
    }
    (message, backoff, advance)
}

/// `INFO_PRE,...` during pending authentication: a URL to open (`WEB_AUTH:flags:url`,
/// `OPEN_URL:url`), a question (`CR_TEXT:flags:text`), or plain information.
fn info_pre_event(rest: &str) -> Event {
    if let Some(r) = rest.strip_prefix("WEB_AUTH:") {
        let url = r.split_once(':').map_or(r, |(_flags, url)| url);
        return Event::OpenUrl(url.to_owned());
    }
    if let Some(url) = rest.strip_prefix("OPEN_URL:") {
        return Event::OpenUrl(url.to_owned());
    }
    if let Some(r) = rest.strip_prefix("CR_TEXT:")
        && let Some((flags, text)) = r.split_once(':')
    {
        return Event::CrText {
            echo: flags.split(',').any(|f| f == "E"),
            text: text.to_owned(),
        };
    }
    Event::Info(rest.to_owned())
}

/// `AUTH_FAILED,CRV1:flags:state_id:base64(username):text` (after `CRV1:`), as OpenVPN's
/// management notes define it; `None` when malformed.
fn parse_crv1(rest: &str) -> Option<ClientError> {
    use base64::Engine as _;
    let mut parts = rest.splitn(4, ':');
    let flags = parts.next()?;
    let state = parts.next()?.to_owned();
    let user = parts.next()?;
    let text = parts.next()?.to_owned();
    let username = base64::engine::general_purpose::STANDARD
        .decode(user)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    Some(ClientError::Challenge {
        echo: flags.split(',').any(|f| f == "E"),
        state,
        username,
        text,
    })
}

/// `RESTART,[P]message` → `message`.
fn strip_flags(rest: &str) -> String {
    let rest = rest.strip_prefix(',').unwrap_or(rest);
    match rest.strip_prefix('[') {
        Some(r) => r.split_once(']').map(|(_, m)| m).unwrap_or("").to_owned(),
        None => rest.to_owned(),
    }
}
