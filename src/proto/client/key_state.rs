//! One key_id's control-channel state: its reliability layer, its TLS session and the
//! key-method-2 exchange, and once done, its data-channel key.

use std::time::Instant;

use crate::proto::data::DataKey;
use zeroize::Zeroizing;

use crate::proto::handshake::key_method2::{
    ClientKeyMessage, ReceivedClientKeyMessage, ServerKeyMessage,
};
use crate::proto::reliable::{ReliableRecv, ReliableSend};
use crate::proto::tls::TlsSession;
use crate::proto::wire::Opcode;

/// The server's random1/random2 of a key exchange.
pub(crate) type ServerRandoms = (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>);

/// Where a key state is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Our reset (hard or soft) is out, not yet acknowledged.
    Reset,
    /// TLS handshake and key exchange running.
    Tls,
    /// Key-method-2 messages exchanged both ways; data keys may be derived.
    Exchanged,
}

pub(crate) struct KeyState {
    pub key_id: u8,
    pub phase: Phase,
    pub tls: TlsSession,
    pub send: ReliableSend,
    pub recv: ReliableRecv,
    /// TLS records produced but not yet handed to the reliability layer.
    pub tls_out: Vec<u8>,
    /// Plaintext received from TLS, not yet consumed.
    pub plain_in: Vec<u8>,
    pub client_km: Option<ClientKeyMessage>,
    pub server_km: Option<ServerKeyMessage>,
    /// Server role: the client's key-method-2 message.
    pub received_client_km: Option<ReceivedClientKeyMessage>,
    /// Server role: our random1/random2 (for the legacy PRF).
    pub server_randoms: Option<ServerRandoms>,
    pub km_sent: bool,
    pub data: Option<DataKey>,
    pub started: Instant,
    /// When a lame-duck key is dropped.
    pub expires: Option<Instant>,
    /// A data packet arrived on this key (the peer uses it).
    pub peer_uses: bool,
    /// When the data keys were installed.
    pub installed_at: Option<Instant>,
    /// The next message sent goes out as `P_CONTROL_WKC_V1` (tls-crypt-v2 server asked).
    pub send_wkc: bool,
}

impl KeyState {
    pub(crate) fn new(key_id: u8, tls: TlsSession, send: ReliableSend, now: Instant) -> Self {
        Self {
            key_id,
            phase: Phase::Reset,
            tls,
            send,
            recv: ReliableRecv::new(),
            tls_out: Vec::new(),
            plain_in: Vec::new(),
            client_km: None,
            server_km: None,
            received_client_km: None,
            server_randoms: None,
            km_sent: false,
            data: None,
            started: now,
            expires: None,
            peer_uses: false,
            installed_at: None,
            send_wkc: false,
        }
    }

    /// The next complete NUL-terminated control message received over TLS (PUSH_REPLY,
    /// AUTH_FAILED, RESTART, ...).
    pub(crate) fn take_text_message(&mut self) -> Option<String> {
        let nul = self.plain_in.iter().position(|&b| b == 0)?;
        let msg: Vec<u8> = self.plain_in.drain(..=nul).collect();
        Some(String::from_utf8_lossy(&msg[..msg.len() - 1]).into_owned())
    }

    /// Hands pending TLS output to the reliability layer.
    pub(crate) fn flush(&mut self, now: Instant, max_payload: usize, max_payload_wkc: usize) {
        self.tls.drain(&mut self.tls_out);
        self.packetize(now, max_payload, max_payload_wkc);
    }

    /// Moves as much pending TLS output into reliable messages as the window allows, each at
    /// most `max_payload` bytes (`max_payload_wkc` for a `P_CONTROL_WKC_V1`).
    pub(crate) fn packetize(&mut self, now: Instant, max_payload: usize, max_payload_wkc: usize) {
        let mut off = 0;
        while off < self.tls_out.len() && self.send.can_push() {
            let (opcode, cap) = if self.send_wkc {
                (Opcode::ControlWkcV1, max_payload_wkc)
            } else {
                (Opcode::ControlV1, max_payload)
            };
            let n = (self.tls_out.len() - off).min(cap);
            self.send
                .push(opcode, self.tls_out[off..off + n].to_vec(), now);
            self.send_wkc = false;
            off += n;
        }
        self.tls_out.drain(..off);
    }
}
