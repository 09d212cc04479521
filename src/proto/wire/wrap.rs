//! Control-channel wrapping: none, tls-auth (HMAC firewall), tls-crypt and tls-crypt-v2 (client
//! side).
//!
//! Input of [`ControlWrap::wrap`] and output of [`ControlWrap::unwrap`] is always a plain control
//! packet as [`super::control::ControlPacket::emit`] writes it: `[op|kid][sid:8][rest]`.
//!
//! ```text
//! tls-auth:  [op|kid][sid][HMAC(digest_len)][pid:4][time:4][rest]
//!            HMAC over pid || time || op|kid || sid || rest
//! tls-crypt: [op|kid][sid][pid:4][time:4][tag:32][AES-256-CTR(Ke, IV = tag[0..16], rest)]
//!            tag = HMAC-SHA256(Ka, op|kid || sid || pid || time || rest)
//! ```
//!
//! Each wrap consumes a fresh replay packet id (first 1, or `0x0f000001` for a tls-crypt-v2
//! client); `time` is fixed at the first wrap. Unwrapping checks the replay window before the
//! crypto, authenticates in constant time, then records the id.

use std::fmt;

use aws_lc_rs::cipher::{AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use crate::proto::keys::{Digest, Key2, KeyDirection, KeyIndex};
use crate::proto::replay::ReplayWindow;

use super::control::CONTROL_HEADER_LEN;
use super::error::{WireError, WrapError};
use super::opcode::{Opcode, split_first_byte};

/// Long-form replay id: `pid:4 || time:4`.
pub const REPLAY_ID_LEN: usize = 8;
/// tls-crypt HMAC-SHA256 tag length.
pub const TLS_CRYPT_TAG_LEN: usize = 32;
/// Bytes tls-crypt adds on the wire (replay id + tag; CTR adds no padding).
pub const TLS_CRYPT_OVERHEAD: usize = REPLAY_ID_LEN + TLS_CRYPT_TAG_LEN;
/// Longest tls-crypt-v2 wrapped client key OpenVPN accepts (`TLS_CRYPT_V2_MAX_WKC_LEN`).
pub const MAX_WKC_LEN: usize = 1024;
/// Replay counter start of a tls-crypt-v2 client (early negotiation marker, `EARLY_NEG_START`):
/// the first id sent is `0x0f000001`.
pub const EARLY_NEG_START: u32 = 0x0f00_0000;

/// Which end of the connection we are (tls-crypt key direction: server NORMAL, client INVERSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The connecting side.
    Client,
    /// The listening side.
    Server,
}

impl Role {
    /// Key direction tls-crypt uses for this role.
    pub fn tls_crypt_direction(self) -> KeyDirection {
        match self {
            Self::Client => KeyDirection::Inverse,
            Self::Server => KeyDirection::Normal,
        }
    }
}

/// The control-channel wrapping of one key_state (or of the whole session for key_id 0).
pub enum ControlWrap {
    /// No wrapping ("tls-plain"): packets go on the wire as emitted.
    None,
    /// `--tls-auth`.
    TlsAuth(TlsAuth),
    /// `--tls-crypt`, dynamic tls-crypt, or `--tls-crypt-v2` (client).
    TlsCrypt(TlsCrypt),
}

/// tls-auth state: HMAC keys per direction, send counter, receive replay window.
pub struct TlsAuth {
    /// `None` for `auth none` (no HMAC field at all).
    send_key: Option<hmac::Key>,
    recv_key: Option<hmac::Key>,
    hmac_len: usize,
    send: SendPid,
    replay: ReplayWindow,
}

/// tls-crypt state: AES-256-CTR + HMAC-SHA256 keys per direction, send counter, replay window,
/// and the WKc of a tls-crypt-v2 client.
pub struct TlsCrypt {
    send: CryptKeys,
    recv: CryptKeys,
    send_pid: SendPid,
    replay: ReplayWindow,
    wkc: Option<Vec<u8>>,
}

struct CryptKeys {
    cipher: Zeroizing<[u8; 32]>,
    mac: hmac::Key,
}

/// The sending half of a long-form packet id.
#[derive(Debug, Clone, Copy)]
struct SendPid {
    /// Last id sent (pre-incremented before use).
    last: u32,
    /// Set at the first wrap.
    time: Option<u32>,
}

impl SendPid {
    fn starting_at(last: u32) -> Self {
        Self { last, time: None }
    }

    fn next(&mut self, now_unix: u32) -> (u32, u32) {
        let mut time = *self.time.get_or_insert(now_unix);
        if self.last == u32::MAX {
            // Counter wrap: a new time value starts a fresh replay window at the peer.
            time = now_unix.max(time.saturating_add(1));
            self.time = Some(time);
            self.last = 0;
        }
        self.last += 1;
        (self.last, time)
    }
}

impl ControlWrap {
    /// No wrapping.
    pub fn none() -> Self {
        Self::None
    }

    /// tls-auth with `key` in `direction` (`key-direction` / the tls-auth argument) and the
    /// `--auth` digest. `Digest::None` gives packets with a replay id but no HMAC.
    pub fn tls_auth(key: &Key2, direction: KeyDirection, digest: Digest) -> Self {
        let hmac_len = digest.len();
        let mk = |i: KeyIndex| {
            digest
                .hmac_algorithm()
                .map(|alg| hmac::Key::new(alg, &key.hmac(i)[..hmac_len]))
        };
        Self::TlsAuth(TlsAuth {
            send_key: mk(direction.send()),
            recv_key: mk(direction.recv()),
            hmac_len,
            send: SendPid::starting_at(0),
            replay: ReplayWindow::default(),
        })
    }

    /// tls-crypt with `key` (server NORMAL, client INVERSE). A fresh wrapper starts at packet
    /// id 1 with the time of its first wrap.
    pub fn tls_crypt(key: &Key2, role: Role) -> Self {
        Self::TlsCrypt(TlsCrypt::new(key, role, 0, None))
    }

    /// Dynamic tls-crypt for a renegotiated key_state: tls-crypt with the derived key2
    /// (`EKM("EXPORTER-OpenVPN-dynamic-tls-crypt") XOR original key`, computed by the caller).
    pub fn dynamic_tls_crypt(key: Key2, role: Role) -> Self {
        Self::tls_crypt(&key, role)
    }

    /// tls-crypt-v2, client side: tls-crypt with the client key `Kc` (INVERSE direction), the
    /// replay counter starting at [`EARLY_NEG_START`], and `wkc` appended in clear to every
    /// `P_CONTROL_HARD_RESET_CLIENT_V3` and `P_CONTROL_WKC_V1`.
    pub fn tls_crypt_v2_client(key: &Key2, wkc: Vec<u8>) -> Result<Self, WrapError> {
        if wkc.len() > MAX_WKC_LEN {
            return Err(WrapError::WkcTooLong {
                len: wkc.len(),
                max: MAX_WKC_LEN,
            });
        }
        if wkc.len() < 2 {
            return Err(WrapError::BadWkc);
        }
        Ok(Self::TlsCrypt(TlsCrypt::new(
            key,
            Role::Client,
            EARLY_NEG_START,
            Some(wkc),
        )))
    }

    /// Wraps the plain control packet `plain` and appends the wire bytes to `out`. Consumes one
    /// replay packet id (not for [`ControlWrap::None`]). `now_unix` is only used at the first
    /// call (and on counter wrap).
    pub fn wrap(
        &mut self,
        plain: &[u8],
        now_unix: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), WrapError> {
        let (opcode, hdr, rest) = split_plain(plain)?;
        let start = out.len();
        let res = match self {
            Self::None => {
                out.extend_from_slice(plain);
                Ok(())
            }
            Self::TlsAuth(a) => {
                a.wrap(hdr, rest, now_unix, out);
                Ok(())
            }
            Self::TlsCrypt(c) => c.wrap(opcode, hdr, rest, now_unix, out),
        };
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    /// Verifies and unwraps the wire packet `wire` (without any WKc trailer), appending the plain
    /// control packet to `out`. On error nothing is appended and the replay window is unchanged.
    pub fn unwrap(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), WrapError> {
        let start = out.len();
        let res = match self {
            Self::None => {
                split_plain(wire)?;
                out.extend_from_slice(wire);
                Ok(())
            }
            Self::TlsAuth(a) => a.unwrap(wire, out),
            Self::TlsCrypt(c) => c.unwrap(wire, out),
        };
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    /// Bytes the wrapping adds to a plain control packet on the wire, excluding the WKc.
    pub fn overhead(&self) -> usize {
        match self {
            Self::None => 0,
            Self::TlsAuth(a) => a.hmac_len + REPLAY_ID_LEN,
            Self::TlsCrypt(_) => TLS_CRYPT_OVERHEAD,
        }
    }

    /// Length of the WKc appended to `P_CONTROL_HARD_RESET_CLIENT_V3` / `P_CONTROL_WKC_V1`
    /// (0 unless tls-crypt-v2 client).
    pub fn wkc_len(&self) -> usize {
        self.wkc().map_or(0, <[u8]>::len)
    }

    /// The WKc of a tls-crypt-v2 client.
    pub fn wkc(&self) -> Option<&[u8]> {
        match self {
            Self::TlsCrypt(c) => c.wkc.as_deref(),
            _ => None,
        }
    }

    /// Whether this is a tls-crypt-v2 client wrapper.
    pub fn is_tls_crypt_v2(&self) -> bool {
        self.wkc().is_some()
    }

    /// The next wrap uses packet id `pid` and time `time` (a server session continuing after
    /// its stateless reset reply; tests).
    pub(crate) fn set_next_send_pid(&mut self, pid: u32, time: u32) {
        let p = match self {
            Self::None => return,
            Self::TlsAuth(a) => &mut a.send,
            Self::TlsCrypt(c) => &mut c.send_pid,
        };
        p.last = pid.wrapping_sub(1);
        p.time = Some(time);
    }
}

impl fmt::Debug for ControlWrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("ControlWrap::None"),
            Self::TlsAuth(a) => f
                .debug_struct("ControlWrap::TlsAuth")
                .field("hmac_len", &a.hmac_len)
                .field("last_pid", &a.send.last)
                .finish_non_exhaustive(),
            Self::TlsCrypt(c) => f
                .debug_struct("ControlWrap::TlsCrypt")
                .field("last_pid", &c.send_pid.last)
                .field("wkc_len", &c.wkc.as_ref().map(Vec::len))
                .finish_non_exhaustive(),
        }
    }
}

/// Splits the trailing WKc off a packet received by a tls-crypt-v2 server
/// (`P_CONTROL_HARD_RESET_CLIENT_V3` / `P_CONTROL_WKC_V1`): the last two bytes hold the WKc's
/// total length. Returns `(wrapped packet, wkc)`.
pub fn split_wkc(wire: &[u8]) -> Result<(&[u8], &[u8]), WrapError> {
    let n = wire.len();
    let len_bytes: [u8; 2] = wire
        .get(n.saturating_sub(2)..)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated { needed: 2, have: n })?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    if len > MAX_WKC_LEN {
        return Err(WrapError::WkcTooLong {
            len,
            max: MAX_WKC_LEN,
        });
    }
    if len < 2 || len + CONTROL_HEADER_LEN > n {
        return Err(WrapError::BadWkc);
    }
    Ok(wire.split_at(n - len))
}

/// `(opcode, [op|kid][sid], rest)` of a control packet (plain, or wrapped: only the first 9
/// bytes are looked at).
fn split_plain(b: &[u8]) -> Result<(Opcode, &[u8], &[u8]), WireError> {
    let first = *b.first().ok_or(WireError::Truncated {
        needed: CONTROL_HEADER_LEN,
        have: 0,
    })?;
    let (opcode, _) = split_first_byte(first)?;
    if !opcode.is_control() {
        return Err(WireError::NotControl(opcode));
    }
    if b.len() < CONTROL_HEADER_LEN {
        return Err(WireError::Truncated {
            needed: CONTROL_HEADER_LEN,
            have: b.len(),
        });
    }
    let (hdr, rest) = b.split_at(CONTROL_HEADER_LEN);
    Ok((opcode, hdr, rest))
}

fn read_u32(b: &[u8], at: usize) -> Result<u32, WireError> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_be_bytes)
        .ok_or(WireError::Truncated {
            needed: at + 4,
            have: b.len(),
        })
}

impl TlsAuth {
    fn wrap(&mut self, hdr: &[u8], rest: &[u8], now_unix: u32, out: &mut Vec<u8>) {
        let (pid, time) = self.send.next(now_unix);
        let mut replay_id = [0u8; REPLAY_ID_LEN];
        replay_id[..4].copy_from_slice(&pid.to_be_bytes());
        replay_id[4..].copy_from_slice(&time.to_be_bytes());
        out.reserve(hdr.len() + self.hmac_len + REPLAY_ID_LEN + rest.len());
        out.extend_from_slice(hdr);
        if let Some(key) = &self.send_key {
            let mut ctx = hmac::Context::with_key(key);
            ctx.update(&replay_id);
            ctx.update(hdr);
            ctx.update(rest);
            out.extend_from_slice(ctx.sign().as_ref());
        }
        out.extend_from_slice(&replay_id);
        out.extend_from_slice(rest);
    }

    fn unwrap(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), WrapError> {
        let (_, hdr, after) = split_plain(wire)?;
        let min = CONTROL_HEADER_LEN + self.hmac_len + REPLAY_ID_LEN;
        if wire.len() < min {
            return Err(WireError::Truncated {
                needed: min,
                have: wire.len(),
            }
            .into());
        }
        let (mac, after) = after.split_at(self.hmac_len);
        let (replay_id, rest) = after.split_at(REPLAY_ID_LEN);
        let pid = read_u32(replay_id, 0)?;
        let time = read_u32(replay_id, 4)?;
        self.replay.check_long(pid, time)?;
        if let Some(key) = &self.recv_key {
            let mut ctx = hmac::Context::with_key(key);
            ctx.update(replay_id);
            ctx.update(hdr);
            ctx.update(rest);
            verify_slices_are_equal(ctx.sign().as_ref(), mac).map_err(|_| WrapError::BadHmac)?;
        }
        self.replay.accept_long(pid, time)?;
        out.reserve(hdr.len() + rest.len());
        out.extend_from_slice(hdr);
        out.extend_from_slice(rest);
        Ok(())
    }
}

impl TlsCrypt {
    fn new(key: &Key2, role: Role, pid_start: u32, wkc: Option<Vec<u8>>) -> Self {
        let dir = role.tls_crypt_direction();
        Self {
            send: CryptKeys::new(key, dir.send()),
            recv: CryptKeys::new(key, dir.recv()),
            send_pid: SendPid::starting_at(pid_start),
            replay: ReplayWindow::default(),
            wkc,
        }
    }

    fn wrap(
        &mut self,
        opcode: Opcode,
        hdr: &[u8],
        rest: &[u8],
        now_unix: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), WrapError> {
        let (pid, time) = self.send_pid.next(now_unix);
        let wkc = self.wkc.as_deref().filter(|_| opcode.carries_wkc());
        out.reserve(hdr.len() + TLS_CRYPT_OVERHEAD + rest.len() + wkc.map_or(0, <[u8]>::len));
        let start = out.len();
        out.extend_from_slice(hdr);
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&time.to_be_bytes());
        let mut ctx = hmac::Context::with_key(&self.send.mac);
        ctx.update(&out[start..]);
        ctx.update(rest);
        let tag = ctx.sign();
        let tag = tag.as_ref();
        out.extend_from_slice(tag);
        let ct_start = out.len();
        out.extend_from_slice(rest);
        self.send.ctr(tag, &mut out[ct_start..])?;
        if let Some(wkc) = wkc {
            out.extend_from_slice(wkc);
        }
        Ok(())
    }

    fn unwrap(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), WrapError> {
        let (_, hdr, _) = split_plain(wire)?;
        let min = CONTROL_HEADER_LEN + TLS_CRYPT_OVERHEAD;
        if wire.len() < min {
            return Err(WireError::Truncated {
                needed: min,
                have: wire.len(),
            }
            .into());
        }
        let (clear, after) = wire.split_at(CONTROL_HEADER_LEN + REPLAY_ID_LEN);
        let (tag, ct) = after.split_at(TLS_CRYPT_TAG_LEN);
        let pid = read_u32(clear, CONTROL_HEADER_LEN)?;
        let time = read_u32(clear, CONTROL_HEADER_LEN + 4)?;
        self.replay.check_long(pid, time)?;
        out.reserve(hdr.len() + ct.len());
        out.extend_from_slice(hdr);
        let pt_start = out.len();
        out.extend_from_slice(ct);
        self.recv.ctr(tag, &mut out[pt_start..])?;
        let mut ctx = hmac::Context::with_key(&self.recv.mac);
        ctx.update(clear);
        ctx.update(&out[pt_start..]);
        verify_slices_are_equal(ctx.sign().as_ref(), tag).map_err(|_| WrapError::BadTag)?;
        self.replay.accept_long(pid, time)?;
        Ok(())
    }
}

impl CryptKeys {
    fn new(key: &Key2, i: KeyIndex) -> Self {
        let mut cipher = Zeroizing::new([0u8; 32]);
        cipher.copy_from_slice(&key.cipher(i)[..32]);
        Self {
            cipher,
            mac: hmac::Key::new(hmac::HMAC_SHA256, &key.hmac(i)[..32]),
        }
    }

    /// AES-256-CTR in place with IV = `tag[0..16]` (encryption and decryption are the same).
    fn ctr(&self, tag: &[u8], buf: &mut [u8]) -> Result<(), WrapError> {
        let iv: [u8; 16] = tag
            .get(..16)
            .and_then(|s| s.try_into().ok())
            .ok_or(WrapError::Crypto)?;
        let key =
            UnboundCipherKey::new(&AES_256, &self.cipher[..]).map_err(|_| WrapError::Crypto)?;
        let key = EncryptingKey::ctr(key).map_err(|_| WrapError::Crypto)?;
        key.less_safe_encrypt(buf, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| WrapError::Crypto)?;
        Ok(())
    }
}
