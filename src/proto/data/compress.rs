//! Compression framing (PROTOCOL.md A.4.5): every framing a server may push, so that
//! uncompressed packets (including pings and OCC) get through. [`Framing::unframe`] refuses
//! compressed packets; [`super::Codec`] adds decompression and compression on top, as
//! `allow-compression` permits.

use super::error::DataError;

/// `comp-lzo` / `compress lzo`: not compressed.
const LZO_NONE: u8 = 0xFA;
/// `comp-lzo` / `compress lzo`: LZO compressed.
const LZO_COMPRESSED: u8 = 0x66;
/// `compress` / `compress stub` / `compress lz4`: not compressed, swap framing.
const SWAP_NONE: u8 = 0xFB;
/// `compress lz4`: LZ4 compressed.
const LZ4_COMPRESSED: u8 = 0x69;
/// V2 framing: escape/indicator byte.
const V2_INDICATOR: u8 = 0x50;
/// V2 framing: "not compressed" algorithm byte after the indicator.
const V2_UNCOMPRESSED: u8 = 0x00;
/// V2 algorithm bytes: 1 LZ4, 2 LZO, 3 Snappy.
const V2_ALGORITHMS: std::ops::RangeInclusive<u8> = 1..=3;
/// V2 algorithm byte for LZ4.
const V2_LZ4: u8 = 1;
/// V2 algorithm byte for LZO.
const V2_LZO: u8 = 2;

/// The compression framing in effect (from `comp-lzo`/`compress`, usually pushed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Framing {
    /// No compression configured: the payload is the bare IP packet.
    #[default]
    None,
    /// `comp-lzo [no|yes|adaptive]`, `compress lzo`: one prefix byte, `0xFA` = not compressed.
    Lzo,
    /// `compress`, `compress stub`, `compress lz4`: swap framing, the first payload byte moves to
    /// the end and `0xFB` takes its place.
    Stub,
    /// `compress stub-v2`, `compress lz4-v2`: no prefix unless the packet starts with `0x50`,
    /// which is escaped as `0x50 0x00`.
    StubV2,
}

impl Framing {
    /// Writes `ip_packet` with this framing into `out` (cleared first). Never compresses.
    pub fn frame(self, ip_packet: &[u8], out: &mut Vec<u8>) {
        out.clear();
        match self {
            Self::None => out.extend_from_slice(ip_packet),
            Self::Lzo => {
                out.reserve(ip_packet.len() + 1);
                out.push(LZO_NONE);
                out.extend_from_slice(ip_packet);
            }
            Self::Stub => {
                out.reserve(ip_packet.len() + 1);
                out.push(SWAP_NONE);
                if let Some((&first, rest)) = ip_packet.split_first() {
                    out.extend_from_slice(rest);
                    out.push(first);
                }
            }
            Self::StubV2 => {
                if ip_packet.first() == Some(&V2_INDICATOR) {
                    out.reserve(ip_packet.len() + 2);
                    out.push(V2_INDICATOR);
                    out.push(V2_UNCOMPRESSED);
                }
                out.extend_from_slice(ip_packet);
            }
        }
    }

    /// Removes the framing from a decrypted payload. Returns a slice of `payload`, or of
    /// `scratch` when the swap framing has to be undone by copying. Compressed packets are
    /// refused with [`DataError::CompressedPacketRefused`].
    pub fn unframe<'a>(
        self,
        payload: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], DataError> {
        match self.strip(payload)? {
            Stripped::Range(start) => Ok(&payload[start..]),
            Stripped::Compressed { code, .. } => Err(DataError::CompressedPacketRefused(code)),
            Stripped::Swapped => {
                scratch.clear();
                if let Some((&last, middle)) = payload[1..].split_last() {
                    scratch.reserve(payload.len() - 1);
                    scratch.push(last);
                    scratch.extend_from_slice(middle);
                }
                Ok(&scratch[..])
            }
        }
    }

    /// Like [`Framing::unframe`] but undoes the swap framing in place, without copying: use it
    /// on the buffer [`super::DataKey::open`] returns.
    pub fn unframe_in_place(self, payload: &mut [u8]) -> Result<&mut [u8], DataError> {
        match self.strip(payload)? {
            Stripped::Range(start) => Ok(&mut payload[start..]),
            Stripped::Compressed { code, .. } => Err(DataError::CompressedPacketRefused(code)),
            Stripped::Swapped => {
                let n = payload.len();
                if n == 1 {
                    return Ok(&mut payload[1..]);
                }
                // [0xFB, b1 .. b(n-2), b0] -> [b0, b1 .. b(n-2)]
                payload[0] = payload[n - 1];
                Ok(&mut payload[..n - 1])
            }
        }
    }

    /// Classifies a decrypted payload: where the packet starts, whether the swap framing has
    /// to be undone, or that it is compressed (see [`super::Codec`]).
    pub(super) fn strip(self, payload: &[u8]) -> Result<Stripped, DataError> {
        let first = payload.first().copied();
        match self {
            Self::None => Ok(Stripped::Range(0)),
            Self::Lzo => match first {
                Some(LZO_NONE) => Ok(Stripped::Range(1)),
                Some(code @ LZO_COMPRESSED) => Ok(Stripped::Compressed {
                    code,
                    algorithm: Some(Algorithm::Lzo),
                    start: 1,
                    swapped: false,
                }),
                Some(b) => Err(DataError::UnknownCompressionHeader(b)),
                None => Err(DataError::Truncated { needed: 1, have: 0 }),
            },
            Self::Stub => match first {
                Some(SWAP_NONE) => Ok(Stripped::Swapped),
                // Tolerated: a stub peer that prefixes instead of swapping.
                Some(LZO_NONE) => Ok(Stripped::Range(1)),
                // LZ4 under the swap framing is swapped too (OpenVPN's `compress lz4`).
                Some(code @ LZ4_COMPRESSED) => Ok(Stripped::Compressed {
                    code,
                    algorithm: Some(Algorithm::Lz4),
                    start: 1,
                    swapped: true,
                }),
                // LZO never uses the swap framing: no peer sends this.
                Some(code @ LZO_COMPRESSED) => Ok(Stripped::Compressed {
                    code,
                    algorithm: None,
                    start: 1,
                    swapped: true,
                }),
                Some(b) => Err(DataError::UnknownCompressionHeader(b)),
                None => Err(DataError::Truncated { needed: 1, have: 0 }),
            },
            Self::StubV2 => match (first, payload.get(1).copied()) {
                (Some(V2_INDICATOR), Some(V2_UNCOMPRESSED)) => Ok(Stripped::Range(2)),
                (Some(V2_INDICATOR), Some(code)) if V2_ALGORITHMS.contains(&code) => {
                    Ok(Stripped::Compressed {
                        code,
                        algorithm: match code {
                            V2_LZ4 => Some(Algorithm::Lz4),
                            V2_LZO => Some(Algorithm::Lzo),
                            _ => None,
                        },
                        start: 2,
                        swapped: false,
                    })
                }
                (Some(V2_INDICATOR), Some(alg)) => Err(DataError::UnknownCompressionHeader(alg)),
                (Some(V2_INDICATOR), None) => Err(DataError::Truncated { needed: 2, have: 1 }),
                _ => Ok(Stripped::Range(0)),
            },
        }
    }

    /// Writes the compressed packet `z` (made with `algorithm`) with this framing into `out`
    /// (cleared first). `None` when this framing has no header for `algorithm` (the caller then
    /// sends the packet uncompressed).
    pub(super) fn frame_compressed(
        self,
        algorithm: Algorithm,
        z: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<()> {
        out.clear();
        out.reserve(z.len() + 2);
        match (self, algorithm) {
            (Self::Lzo, Algorithm::Lzo) => {
                out.push(LZO_COMPRESSED);
                out.extend_from_slice(z);
            }
            (Self::Stub, Algorithm::Lz4) => {
                let (&first, rest) = z.split_first()?;
                out.push(LZ4_COMPRESSED);
                out.extend_from_slice(rest);
                out.push(first);
            }
            (Self::StubV2, _) => {
                out.push(V2_INDICATOR);
                out.push(match algorithm {
                    Algorithm::Lz4 => V2_LZ4,
                    Algorithm::Lzo => V2_LZO,
                });
                out.extend_from_slice(z);
            }
            _ => return None,
        }
        Some(())
    }
}

/// A compression algorithm this implementation can decode (and, when allowed, encode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// LZO1X (`comp-lzo`, `compress lzo`).
    Lzo,
    /// LZ4 block format (`compress lz4`, `compress lz4-v2`).
    Lz4,
}

pub(super) enum Stripped {
    /// The unframed packet is `payload[start..]`.
    Range(usize),
    /// Swap framing: the last byte goes back to the front, the header byte is dropped.
    Swapped,
    /// A compressed packet: header byte `code`, the compressed data after `start` bytes of
    /// framing (or, `swapped`, with its first byte moved to the end in place of the header).
    Compressed {
        code: u8,
        algorithm: Option<Algorithm>,
        start: usize,
        swapped: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Framing; 4] = [Framing::None, Framing::Lzo, Framing::Stub, Framing::StubV2];

    fn round_trip(f: Framing, ip: &[u8]) -> Vec<u8> {
        let mut framed = Vec::new();
        f.frame(ip, &mut framed);
        let mut scratch = Vec::new();
        assert_eq!(
            f.unframe(&framed, &mut scratch).unwrap(),
            ip,
            "{f:?} {ip:02x?}"
        );
        let mut copy = framed.clone();
        assert_eq!(f.unframe_in_place(&mut copy).unwrap(), ip, "{f:?} in place");
        framed
    }

    #[test]
    fn frames_and_unframes_every_framing() {
        let ip = [0x45, 0x00, 0x00, 0x54, 0xAA, 0xBB];
        assert_eq!(round_trip(Framing::None, &ip), ip);
        assert_eq!(
            round_trip(Framing::Lzo, &ip),
            [0xFA, 0x45, 0, 0, 0x54, 0xAA, 0xBB]
        );
        assert_eq!(
            round_trip(Framing::Stub, &ip),
            [0xFB, 0, 0, 0x54, 0xAA, 0xBB, 0x45]
        );
        assert_eq!(round_trip(Framing::StubV2, &ip), ip);
        let ping = super::super::inband::PING_MAGIC;
        for f in ALL {
            round_trip(f, &ping);
            round_trip(f, &[0x60]);
        }
        assert_eq!(round_trip(Framing::Stub, &[0x60]), [0xFB, 0x60]);
        assert_eq!(round_trip(Framing::Stub, &[]), [0xFB]);
        assert_eq!(round_trip(Framing::StubV2, &[]), Vec::<u8>::new());
    }

    #[test]
    fn stub_v2_escapes_0x50() {
        let pkt = [0x50, 0x01, 0x02];
        assert_eq!(
            round_trip(Framing::StubV2, &pkt),
            [0x50, 0x00, 0x50, 0x01, 0x02]
        );
        assert_eq!(round_trip(Framing::StubV2, &[0x50]), [0x50, 0x00, 0x50]);
        // Only a leading 0x50 is escaped.
        assert_eq!(round_trip(Framing::StubV2, &[0x45, 0x50]), [0x45, 0x50]);
    }

    #[test]
    fn refuses_compressed_packets() {
        let mut s = Vec::new();
        let cases: [(Framing, &[u8], DataError); 9] = [
            (
                Framing::Lzo,
                &[0x66, 1, 2],
                DataError::CompressedPacketRefused(0x66),
            ),
            (
                Framing::Lzo,
                &[0x45, 1],
                DataError::UnknownCompressionHeader(0x45),
            ),
            (
                Framing::Lzo,
                &[],
                DataError::Truncated { needed: 1, have: 0 },
            ),
            (
                Framing::Stub,
                &[0x69, 1, 2],
                DataError::CompressedPacketRefused(0x69),
            ),
            (
                Framing::Stub,
                &[0x66, 1, 2],
                DataError::CompressedPacketRefused(0x66),
            ),
            (
                Framing::Stub,
                &[0x45, 1],
                DataError::UnknownCompressionHeader(0x45),
            ),
            (
                Framing::StubV2,
                &[0x50, 0x01, 9],
                DataError::CompressedPacketRefused(1),
            ),
            (
                Framing::StubV2,
                &[0x50, 0x03, 9],
                DataError::CompressedPacketRefused(3),
            ),
            (
                Framing::StubV2,
                &[0x50],
                DataError::Truncated { needed: 2, have: 1 },
            ),
        ];
        for (f, p, e) in cases {
            assert_eq!(f.unframe(p, &mut s), Err(e), "{f:?} {p:02x?}");
            assert_eq!(
                f.unframe_in_place(&mut p.to_vec()),
                Err(e),
                "{f:?} {p:02x?}"
            );
        }
        assert_eq!(
            Framing::StubV2.unframe(&[0x50, 0x02], &mut s),
            Err(DataError::CompressedPacketRefused(2))
        );
        assert_eq!(
            Framing::StubV2.unframe(&[0x50, 0x09], &mut s),
            Err(DataError::UnknownCompressionHeader(9))
        );
        // Tolerated stub variant with a plain 0xFA prefix.
        assert_eq!(
            Framing::Stub.unframe(&[0xFA, 0x45], &mut s),
            Ok(&[0x45][..])
        );
    }
}
