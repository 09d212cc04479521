//! Key material and algorithm names shared by the wire wrappers, the data channel and the profile
//! parser: the 256-byte OpenVPN `key2` ("OpenVPN Static key V1"), key directions, data-channel
//! ciphers and HMAC digests.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

/// Length of a `struct key2`: two `{ cipher[64], hmac[64] }` halves.
pub const KEY2_LEN: usize = 256;

/// One direction's half of a [`Key2`]: `cipher[64] || hmac[64]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyIndex {
    /// `keys[0]`.
    Zero = 0,
    /// `keys[1]`.
    One = 1,
}

/// The 256 bytes of an OpenVPN `key2` (static key file, tls-auth/tls-crypt key, EKM output,
/// legacy PRF output). Wiped on drop.
#[derive(Clone)]
pub struct Key2(Zeroizing<[u8; KEY2_LEN]>);

impl Key2 {
    /// Wraps raw bytes.
    pub fn from_bytes(bytes: &[u8; KEY2_LEN]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// Builds from a slice that must be exactly [`KEY2_LEN`] long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: &[u8; KEY2_LEN] = bytes.try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    /// All 256 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY2_LEN] {
        &self.0
    }

    /// `keys[i].cipher` (64 bytes).
    pub fn cipher(&self, i: KeyIndex) -> &[u8] {
        let base = i as usize * 128;
        &self.0[base..base + 64]
    }

    /// `keys[i].hmac` (64 bytes).
    pub fn hmac(&self, i: KeyIndex) -> &[u8] {
        let base = i as usize * 128 + 64;
        &self.0[base..base + 64]
    }

    /// XOR with another key2 (dynamic tls-crypt mixes the exporter output with the original key).
    pub fn xor(&self, other: &Key2) -> Key2 {
        let mut out = Zeroizing::new([0u8; KEY2_LEN]);
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Key2(out)
    }

    /// Parses the PEM-like `-----BEGIN OpenVPN Static key V1-----` text: hex between the markers,
    /// lenient about line lengths and anything outside the markers.
    pub fn parse_static_key_file(text: &str) -> Result<Self, KeyFileError> {
        let hex = pem_body(text, "OpenVPN Static key V1")?;
        let bytes = Zeroizing::new(
            hex::decode(hex.as_bytes()).map_err(|_| KeyFileError::BadEncoding("hex"))?,
        );
        Self::from_slice(&bytes).ok_or(KeyFileError::WrongLength {
            expected: KEY2_LEN,
            found: bytes.len(),
        })
    }
}

impl fmt::Debug for Key2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key2(..)")
    }
}

/// Returns the concatenated non-blank lines between `-----BEGIN {label}-----` and
/// `-----END {label}-----`, with whitespace removed.
pub fn pem_body(text: &str, label: &str) -> Result<String, KeyFileError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or(KeyFileError::MissingMarker(label.to_owned()))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or(KeyFileError::MissingMarker(label.to_owned()))?
        + start;
    Ok(text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect())
}

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    /// The BEGIN/END lines are missing.
    #[error("no '-----BEGIN {0}-----' ... '-----END {0}-----' block found")]
    MissingMarker(String),
    /// The body is not valid hex/base64.
    #[error("the key body is not valid {0}")]
    BadEncoding(&'static str),
    /// The body decodes to the wrong number of bytes.
    #[error("the key is {found} bytes long, expected {expected}")]
    WrongLength {
        /// Expected length.
        expected: usize,
        /// Length found.
        found: usize,
    },
}

/// `key-direction` / the direction argument of `tls-auth` and `secret`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyDirection {
    /// No direction: both ways use `keys[0]`.
    #[default]
    Bidirectional,
    /// `0`: send with `keys[0]`, receive with `keys[1]`.
    Normal,
    /// `1`: send with `keys[1]`, receive with `keys[0]`.
    Inverse,
}

impl KeyDirection {
    /// The half used for sending.
    pub fn send(self) -> KeyIndex {
        match self {
            Self::Bidirectional | Self::Normal => KeyIndex::Zero,
            Self::Inverse => KeyIndex::One,
        }
    }

    /// The half used for receiving.
    pub fn recv(self) -> KeyIndex {
        match self {
            Self::Bidirectional | Self::Inverse => KeyIndex::Zero,
            Self::Normal => KeyIndex::One,
        }
    }
}

/// HMAC digests used by `--auth` (tls-auth and CBC data channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Digest {
    /// SHA1, 20 bytes (OpenVPN's default `--auth`).
    #[default]
    Sha1,
    /// SHA224, 28 bytes.
    Sha224,
    /// SHA256, 32 bytes.
    Sha256,
    /// SHA384, 48 bytes.
    Sha384,
    /// SHA512, 64 bytes.
    Sha512,
    /// `auth none`.
    None,
}

impl Digest {
    /// Output (and key) length in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
            Self::None => 0,
        }
    }

    /// The aws-lc-rs HMAC algorithm (None for `auth none`).
    pub fn hmac_algorithm(self) -> Option<aws_lc_rs::hmac::Algorithm> {
        use aws_lc_rs::hmac;
        Some(match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha224 => hmac::HMAC_SHA224,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha384 => hmac::HMAC_SHA384,
            Self::Sha512 => hmac::HMAC_SHA512,
            Self::None => return None,
        })
    }

    /// OpenVPN's name for the digest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha224 => "SHA224",
            Self::Sha256 => "SHA256",
            Self::Sha384 => "SHA384",
            Self::Sha512 => "SHA512",
            Self::None => "none",
        }
    }
}

impl FromStr for Digest {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Self::Sha1,
            "SHA224" => Self::Sha224,
            "SHA256" => Self::Sha256,
            "SHA384" => Self::Sha384,
            "SHA512" => Self::Sha512,
            "NONE" => Self::None,
            _ => return Err(UnknownAlgorithm(s.to_owned())),
        })
    }
}

/// Data-channel ciphers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-192-GCM.
    Aes192Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// CHACHA20-POLY1305.
    Chacha20Poly1305,
    /// AES-128-CBC with HMAC (`--auth`).
    Aes128Cbc,
    /// AES-192-CBC with HMAC.
    Aes192Cbc,
    /// AES-256-CBC with HMAC.
    Aes256Cbc,
}

impl Cipher {
    /// OpenVPN's (upper-case) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "AES-128-GCM",
            Self::Aes192Gcm => "AES-192-GCM",
            Self::Aes256Gcm => "AES-256-GCM",
            Self::Chacha20Poly1305 => "CHACHA20-POLY1305",
            Self::Aes128Cbc => "AES-128-CBC",
            Self::Aes192Cbc => "AES-192-CBC",
            Self::Aes256Cbc => "AES-256-CBC",
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm | Self::Aes128Cbc => 16,
            Self::Aes192Gcm | Self::Aes192Cbc => 24,
            Self::Aes256Gcm | Self::Aes256Cbc | Self::Chacha20Poly1305 => 32,
        }
    }

    /// AEAD (tag + implicit IV) or CBC + HMAC.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            Self::Aes128Gcm | Self::Aes192Gcm | Self::Aes256Gcm | Self::Chacha20Poly1305
        )
    }

    /// The 2.6 default `data-ciphers`.
    pub fn default_list() -> Vec<Cipher> {
        vec![Self::Aes256Gcm, Self::Aes128Gcm, Self::Chacha20Poly1305]
    }
}

impl FromStr for Cipher {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "AES-128-GCM" | "ID-AES128-GCM" => Self::Aes128Gcm,
            "AES-192-GCM" | "ID-AES192-GCM" => Self::Aes192Gcm,
            "AES-256-GCM" | "ID-AES256-GCM" => Self::Aes256Gcm,
            "CHACHA20-POLY1305" => Self::Chacha20Poly1305,
            "AES-128-CBC" => Self::Aes128Cbc,
            "AES-192-CBC" => Self::Aes192Cbc,
            "AES-256-CBC" => Self::Aes256Cbc,
            _ => return Err(UnknownAlgorithm(s.to_owned())),
        })
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cipher or digest name this implementation does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown or unsupported algorithm '{0}'")]
pub struct UnknownAlgorithm(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_pick_halves() {
        assert_eq!(KeyDirection::Normal.send(), KeyIndex::Zero);
        assert_eq!(KeyDirection::Normal.recv(), KeyIndex::One);
        assert_eq!(KeyDirection::Inverse.send(), KeyIndex::One);
        assert_eq!(KeyDirection::Inverse.recv(), KeyIndex::Zero);
        assert_eq!(KeyDirection::Bidirectional.recv(), KeyIndex::Zero);
    }

    #[test]
    fn parses_static_key_file() {
        let mut text = String::from(
            "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n",
        );
        for i in 0..16 {
            text.push_str(&format!("{:02x}", i).repeat(16));
            text.push('\n');
        }
        text.push_str("-----END OpenVPN Static key V1-----\n");
        let k = Key2::parse_static_key_file(&text).unwrap();
        assert_eq!(k.cipher(KeyIndex::Zero)[0], 0);
        assert_eq!(k.hmac(KeyIndex::Zero)[0], 4);
        assert_eq!(k.cipher(KeyIndex::One)[0], 8);
        assert_eq!(k.hmac(KeyIndex::One)[0], 12);
        assert!(matches!(
            Key2::parse_static_key_file("nothing"),
            Err(KeyFileError::MissingMarker(_))
        ));
    }
}
