//! Per-key_id data-channel crypto: AEAD (AES-GCM, ChaCha20-Poly1305) and AES-CBC + HMAC, packet
//! ids and the receive replay window (PROTOCOL.md A.3.3, A.4.1-A.4.3).
//!
//! Layouts (header = 1 byte P_DATA_V1 or 4 bytes P_DATA_V2, written by the caller):
//! * AEAD: `[header][packet_id:4][tag:16][ciphertext]`, nonce = `packet_id || implicit_iv(8)`,
//!   AD = `header (only the 4-byte V2 header) || packet_id`.
//! * CBC: `[header][HMAC][IV:16][E(packet_id:4 || payload || PKCS#7)]`, HMAC over `IV || ciphertext`.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext,
    UnboundCipherKey,
};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use super::error::DataError;
use crate::proto::keys::{Cipher, Digest, Key2, KeyDirection, KeyIndex};
use crate::proto::replay::{DEFAULT_WINDOW, ReplayWindow};

/// Opcode of `P_DATA_V1` (1-byte header).
pub const OP_DATA_V1: u8 = 6;
/// Opcode of `P_DATA_V2` (4-byte header with a 24-bit peer-id).
pub const OP_DATA_V2: u8 = 9;
/// AEAD tag length, always 16.
pub const AEAD_TAG_LEN: usize = 16;
/// AES-CBC IV length (one block).
pub const CBC_IV_LEN: usize = 16;
/// Past this send packet id the key should be renegotiated (`PACKET_ID_WRAP_TRIGGER`).
pub const RENEGOTIATE_AFTER_PACKET_ID: u32 = 0xFF00_0000;

/// A source of random bytes (fills the whole slice), injected by the caller.
pub type RandomSource = Box<dyn FnMut(&mut [u8]) + Send + Sync>;

/// Which side of the connection this key belongs to.
///
/// Data-channel convention: the client sends with `keys[0]` and receives with `keys[1]`, the
/// server the inverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends with `keys[0]`, receives with `keys[1]`.
    Client,
    /// Sends with `keys[1]`, receives with `keys[0]`.
    Server,
}

impl Role {
    fn send_index(self) -> KeyIndex {
        match self {
            Self::Client => KeyIndex::Zero,
            Self::Server => KeyIndex::One,
        }
    }

    fn recv_index(self) -> KeyIndex {
        match self {
            Self::Client => KeyIndex::One,
            Self::Server => KeyIndex::Zero,
        }
    }
}

/// The 1-byte `P_DATA_V1` header: `6 << 3 | key_id`.
pub fn header_v1(key_id: u8) -> [u8; 1] {
    [(OP_DATA_V1 << 3) | (key_id & 7)]
}

/// The 4-byte `P_DATA_V2` header: `(9 << 3 | key_id) << 24 | peer_id` (peer_id is 24 bits).
pub fn header_v2(key_id: u8, peer_id: u32) -> [u8; 4] {
    let op = u32::from((OP_DATA_V2 << 3) | (key_id & 7));
    ((op << 24) | (peer_id & 0x00FF_FFFF)).to_be_bytes()
}

/// One key_id's data-channel crypto state, both directions: the send packet-id counter, the
/// receive replay window and the keys. Keys live in aws-lc contexts (wiped when freed); the raw
/// bytes we keep (implicit IVs) are in [`Zeroizing`].
pub struct DataKey {
    cipher: Cipher,
    sealer: Sealer,
    opener: Opener,
    /// Last packet id sent (0 = none yet).
    last_sent_id: u32,
    sent: u64,
    replay: ReplayWindow,
    /// CBC IV source; `None` = deterministic IVs (see [`DataKey::set_rng`]).
    rng: Option<RandomSource>,
    /// Static-key mode: packets have no header and carry the long packet id, `id || time`,
    /// with this time (the sender's start time) in what we send.
    long_id_time: Option<u32>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one per direction and key_id, never moved on the packet path; boxing the AEAD key would add an indirection per packet"
)]
enum Sealer {
    Aead {
        key: LessSafeKey,
        implicit_iv: Zeroizing<[u8; 8]>,
    },
    Cbc {
        key: EncryptingKey,
        /// Boxed: an HMAC key is ~1.7 KB, the AEAD variant a few hundred bytes.
        hmac: Box<hmac::Key>,
        digest_len: usize,
    },
}

#[allow(
    clippy::large_enum_variant,
    reason = "one per direction and key_id, never moved on the packet path; boxing the AEAD key would add an indirection per packet"
)]
enum Opener {
    Aead {
        key: LessSafeKey,
        implicit_iv: Zeroizing<[u8; 8]>,
    },
    Cbc {
        key: DecryptingKey,
        hmac: Box<hmac::Key>,
        digest_len: usize,
    },
}

impl DataKey {
    /// Builds both directions of one key_id from the 256-byte key material (A.3.3): cipher key =
    /// `cipher[0..key_len]`; AEAD implicit IV = `hmac[0..8]`; CBC HMAC key =
    /// `hmac[0..digest_len]`. `auth` is ignored for AEAD ciphers; CBC with `auth none` is refused.
    pub fn new(cipher: Cipher, auth: Digest, key2: &Key2, role: Role) -> Result<Self, DataError> {
        Self::build(cipher, auth, key2, role.send_index(), role.recv_index())
    }

    /// Static-key mode (`secret`): the key file's halves chosen by `direction`, CBC only, no
    /// packet header, long packet ids (`id || time`, `time` = `unix_time`) inside the encryption
    /// (the vectors' README, correction 3).
    pub fn new_static_key(
        cipher: Cipher,
        auth: Digest,
        key2: &Key2,
        direction: KeyDirection,
        unix_time: u32,
    ) -> Result<Self, DataError> {
        if cipher.is_aead() {
            return Err(DataError::UnsupportedCipher);
        }
        let mut k = Self::build(cipher, auth, key2, direction.send(), direction.recv())?;
        k.long_id_time = Some(unix_time);
        Ok(k)
    }

    fn build(
        cipher: Cipher,
        auth: Digest,
        key2: &Key2,
        send: KeyIndex,
        recv: KeyIndex,
    ) -> Result<Self, DataError> {
        let (sealer, opener) = if cipher.is_aead() {
            let alg = aead_algorithm(cipher)?;
            let (key, implicit_iv) = aead_parts(alg, cipher, key2, send)?;
            let sealer = Sealer::Aead { key, implicit_iv };
            let (key, implicit_iv) = aead_parts(alg, cipher, key2, recv)?;
            (sealer, Opener::Aead { key, implicit_iv })
        } else {
            let alg = auth.hmac_algorithm().ok_or(DataError::UnsupportedCipher)?;
            let digest_len = auth.len();
            let sealer = Sealer::Cbc {
                key: EncryptingKey::cbc(cbc_key(cipher, key2, send)?)
                    .map_err(|_| DataError::Crypto)?,
                hmac: Box::new(hmac::Key::new(alg, &key2.hmac(send)[..digest_len])),
                digest_len,
            };
            let opener = Opener::Cbc {
                key: DecryptingKey::cbc(cbc_key(cipher, key2, recv)?)
                    .map_err(|_| DataError::Crypto)?,
                hmac: Box::new(hmac::Key::new(alg, &key2.hmac(recv)[..digest_len])),
                digest_len,
            };
            (sealer, opener)
        };
        Ok(Self {
            cipher,
            sealer,
            opener,
            last_sent_id: 0,
            sent: 0,
            replay: ReplayWindow::new(DEFAULT_WINDOW),
            rng: None,
            long_id_time: None,
        })
    }

    /// Uses `rng` for CBC IVs (random per packet, as OpenVPN does). Without it, CBC IVs are
    /// derived as `E_K(packet_id || constant)` (NIST SP 800-38A appendix C: unpredictable without
    /// the key and unique because packet ids never repeat). Irrelevant for AEAD ciphers.
    pub fn set_rng(&mut self, rng: RandomSource) {
        self.rng = Some(rng);
    }

    /// Replaces the receive replay window by an empty one remembering `n` packets
    /// (`--replay-window n`, clamped to 1..=1024). Call before the first [`DataKey::open`].
    pub fn set_replay_window(&mut self, n: u32) {
        self.replay = ReplayWindow::new(n);
    }

    /// Encrypts `plaintext` (already compression-framed) into `out` (cleared first): the whole
    /// packet, starting with `header` (1 byte P_DATA_V1 or 4 bytes P_DATA_V2). `out` keeps its
    /// capacity, so a reused buffer means no allocation per packet.
    pub fn seal(
        &mut self,
        header: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let hl = self.header_len(header.len())?;
        let id = self.last_sent_id.wrapping_add(1);
        if id == u32::MAX {
            return Err(DataError::PacketIdExhausted);
        }
        self.last_sent_id = id;
        self.sent += 1;
        let id_bytes = id.to_be_bytes();
        out.clear();
        match &self.sealer {
            Sealer::Aead { key, implicit_iv } => {
                let body = hl + 4 + AEAD_TAG_LEN;
                out.reserve(body + plaintext.len());
                out.extend_from_slice(header);
                out.extend_from_slice(&id_bytes);
                out.extend_from_slice(&[0; AEAD_TAG_LEN]);
                out.extend_from_slice(plaintext);
                let (ad, ad_len) = aead_ad(header, id);
                let (head, ct) = out.split_at_mut(body);
                let tag = key
                    .seal_in_place_separate_tag(
                        aead_nonce(id, implicit_iv),
                        Aad::from(&ad[..ad_len]),
                        ct,
                    )
                    .map_err(|_| DataError::Crypto)?;
                head[hl + 4..].copy_from_slice(tag.as_ref());
            }
            Sealer::Cbc {
                key,
                hmac: hmac_key,
                digest_len,
            } => {
                let dl = *digest_len;
                let id_len = if self.long_id_time.is_some() { 8 } else { 4 };
                let inner = id_len + plaintext.len();
                let pad = CBC_BLOCK - inner % CBC_BLOCK;
                let ct_start = hl + dl + CBC_IV_LEN;
                out.reserve(ct_start + inner + pad);
                out.extend_from_slice(header);
                out.resize(hl + dl, 0);
                let mut iv = [0u8; CBC_IV_LEN];
                match &mut self.rng {
                    Some(rng) => rng(&mut iv),
                    None => derive_cbc_iv(key, id, &mut iv)?,
                }
                out.extend_from_slice(&iv);
                out.extend_from_slice(&id_bytes);
                if let Some(t) = self.long_id_time {
                    out.extend_from_slice(&t.to_be_bytes());
                }
                out.extend_from_slice(plaintext);
                // pad is 1..=16, fits in a byte.
                out.resize(ct_start + inner + pad, pad as u8);
                key.less_safe_encrypt(
                    &mut out[ct_start..],
                    EncryptionContext::Iv128(FixedLength::from(iv)),
                )
                .map_err(|_| DataError::Crypto)?;
                let mac = hmac::sign(hmac_key, &out[hl + dl..]);
                out[hl..hl + dl].copy_from_slice(mac.as_ref());
            }
        }
        Ok(())
    }

    /// Authenticates and decrypts a whole received packet (`packet[..header_len]` is the 1- or
    /// 4-byte header the caller already demultiplexed), then records its packet id in the replay
    /// window. Returns the plaintext (compression framing still on it), a slice of `out`;
    /// the rest of `out` is scratch. Nothing is recorded if any check fails.
    pub fn open<'o>(
        &mut self,
        packet: &[u8],
        header_len: usize,
        out: &'o mut Vec<u8>,
    ) -> Result<&'o mut [u8], DataError> {
        let hl = self.header_len(header_len)?;
        match &self.opener {
            Opener::Aead { key, implicit_iv } => {
                let body = hl + 4 + AEAD_TAG_LEN;
                if packet.len() < body {
                    return Err(truncated(body, packet.len()));
                }
                let id = read_u32(&packet[hl..hl + 4]);
                self.replay.check(id)?;
                let (ad, ad_len) = aead_ad(&packet[..hl], id);
                out.clear();
                out.extend_from_slice(&packet[body..]);
                key.open_in_place_separate_tag(
                    aead_nonce(id, implicit_iv),
                    Aad::from(&ad[..ad_len]),
                    &packet[hl + 4..body],
                    out,
                )
                .map_err(|_| DataError::BadTag)?;
                self.replay.accept(id)?;
                Ok(&mut out[..])
            }
            Opener::Cbc {
                key,
                hmac: hmac_key,
                digest_len,
            } => {
                let dl = *digest_len;
                let ct_start = hl + dl + CBC_IV_LEN;
                let min = ct_start + CBC_BLOCK;
                if packet.len() < min {
                    return Err(truncated(min, packet.len()));
                }
                let ct = &packet[ct_start..];
                // (not `is_multiple_of`: the declared MSRV is 1.85)
                let partial = ct.len() % CBC_BLOCK;
                if partial != 0 {
                    return Err(DataError::BadBlockLength(ct.len()));
                }
                hmac::verify(hmac_key, &packet[hl + dl..], &packet[hl..hl + dl])
                    .map_err(|_| DataError::BadHmac)?;
                let mut iv = [0u8; CBC_IV_LEN];
                iv.copy_from_slice(&packet[hl + dl..ct_start]);
                out.clear();
                out.extend_from_slice(ct);
                let len = key
                    .decrypt(out, DecryptionContext::Iv128(FixedLength::from(iv)))
                    .map_err(|_| DataError::Crypto)?
                    .len();
                let end = strip_pkcs7(&out[..len])?;
                let id_len = if self.long_id_time.is_some() { 8 } else { 4 };
                if end < id_len {
                    return Err(truncated(id_len, end));
                }
                let id = read_u32(&out[..4]);
                if id_len == 8 {
                    self.replay.accept_long(id, read_u32(&out[4..8]))?;
                } else {
                    self.replay.accept(id)?;
                }
                Ok(&mut out[id_len..end])
            }
        }
    }

    /// Packets have a 1- or 4-byte header, none in static-key mode.
    fn header_len(&self, len: usize) -> Result<usize, DataError> {
        match (self.long_id_time, len) {
            (Some(_), 0) => Ok(0),
            (Some(_), n) => Err(DataError::BadHeaderLen(n)),
            (None, n) => check_header_len(n),
        }
    }

    /// The negotiated cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Number of packets sealed with this key.
    pub fn sent_packets(&self) -> u64 {
        self.sent
    }

    /// True once the send packet id passed [`RENEGOTIATE_AFTER_PACKET_ID`]: start a new key_id.
    pub fn wants_renegotiation(&self) -> bool {
        self.last_sent_id > RENEGOTIATE_AFTER_PACKET_ID
    }

    /// Largest number of bytes [`DataKey::seal`] adds to a payload with a header of
    /// `header_len` bytes (for MTU/MSS computations). CBC counts a full padding block.
    pub fn max_overhead(&self, header_len: usize) -> usize {
        match &self.sealer {
            Sealer::Aead { .. } => header_len + 4 + AEAD_TAG_LEN,
            Sealer::Cbc { digest_len, .. } => header_len + digest_len + CBC_IV_LEN + 4 + CBC_BLOCK,
        }
    }

    /// Test hook: the next sealed packet gets packet id `id` (must be >= 1).
    #[cfg(test)]
    pub(crate) fn force_next_packet_id(&mut self, id: u32) {
        self.last_sent_id = id.wrapping_sub(1);
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("cipher", &self.cipher)
            .field("last_sent_id", &self.last_sent_id)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

const CBC_BLOCK: usize = 16;

/// Constant 12 bytes completing the packet id in the deterministic CBC IV input block.
const CBC_IV_LABEL: &[u8; 12] = b"ferrovpn-cbc";

fn aead_algorithm(cipher: Cipher) -> Result<&'static aead::Algorithm, DataError> {
    Ok(match cipher {
        Cipher::Aes128Gcm => &aead::AES_128_GCM,
        Cipher::Aes192Gcm => &aead::AES_192_GCM,
        Cipher::Aes256Gcm => &aead::AES_256_GCM,
        Cipher::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        _ => return Err(DataError::UnsupportedCipher),
    })
}

fn aead_parts(
    alg: &'static aead::Algorithm,
    cipher: Cipher,
    key2: &Key2,
    dir: KeyIndex,
) -> Result<(LessSafeKey, Zeroizing<[u8; 8]>), DataError> {
    let key = UnboundKey::new(alg, &key2.cipher(dir)[..cipher.key_len()])
        .map_err(|_| DataError::Crypto)?;
    let mut iv = Zeroizing::new([0u8; 8]);
    iv.copy_from_slice(&key2.hmac(dir)[..8]);
    Ok((LessSafeKey::new(key), iv))
}

fn cbc_key(cipher: Cipher, key2: &Key2, dir: KeyIndex) -> Result<UnboundCipherKey, DataError> {
    let alg = match cipher {
        Cipher::Aes128Cbc => &AES_128,
        Cipher::Aes192Cbc => &AES_192,
        Cipher::Aes256Cbc => &AES_256,
        _ => return Err(DataError::UnsupportedCipher),
    };
    UnboundCipherKey::new(alg, &key2.cipher(dir)[..cipher.key_len()]).map_err(|_| DataError::Crypto)
}

/// `E_K(packet_id || label)`: one block encrypted in CBC mode with a zero IV (= ECB).
fn derive_cbc_iv(key: &EncryptingKey, id: u32, iv: &mut [u8; CBC_IV_LEN]) -> Result<(), DataError> {
    iv[..4].copy_from_slice(&id.to_be_bytes());
    iv[4..].copy_from_slice(CBC_IV_LABEL);
    key.less_safe_encrypt(
        iv,
        EncryptionContext::Iv128(FixedLength::from([0u8; CBC_IV_LEN])),
    )
    .map_err(|_| DataError::Crypto)?;
    Ok(())
}

fn check_header_len(len: usize) -> Result<usize, DataError> {
    match len {
        1 | 4 => Ok(len),
        _ => Err(DataError::BadHeaderLen(len)),
    }
}

fn truncated(needed: usize, have: usize) -> DataError {
    DataError::Truncated { needed, have }
}

fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// AD = 4-byte V2 header || packet id, or the packet id alone for the 1-byte V1 header.
fn aead_ad(header: &[u8], id: u32) -> ([u8; 8], usize) {
    let mut ad = [0u8; 8];
    if header.len() == 4 {
        ad[..4].copy_from_slice(header);
        ad[4..].copy_from_slice(&id.to_be_bytes());
        (ad, 8)
    } else {
        ad[..4].copy_from_slice(&id.to_be_bytes());
        (ad, 4)
    }
}

fn aead_nonce(id: u32, implicit_iv: &[u8; 8]) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&id.to_be_bytes());
    n[4..].copy_from_slice(implicit_iv);
    Nonce::assume_unique_for_key(n)
}

/// Length of the data once the (authenticated) PKCS#7 padding is removed.
fn strip_pkcs7(data: &[u8]) -> Result<usize, DataError> {
    let Some(&last) = data.last() else {
        return Err(DataError::BadPadding);
    };
    let pad = usize::from(last);
    if pad == 0 || pad > CBC_BLOCK || pad > data.len() {
        return Err(DataError::BadPadding);
    }
    let end = data.len() - pad;
    if data[end..].iter().any(|&b| b != last) {
        return Err(DataError::BadPadding);
    }
    Ok(end)
}
