//! Compression on top of the framing: what `allow-compression` permits, decompression of the
//! peer's LZO and LZ4 packets with bounded output, compression of ours (only with
//! `allow-compression yes`, only when it makes the packet smaller), and counters.
//!
//! Like OpenVPN, packets shorter than [`COMPRESS_THRESHOLD`] are never compressed, and a
//! compressed packet is sent only when it is smaller than the original.

use super::compress::{Algorithm, Framing, Stripped};
use super::error::DataError;
use super::lzo;

/// Packets shorter than this are sent uncompressed (OpenVPN's `COMPRESS_THRESHOLD`).
pub const COMPRESS_THRESHOLD: usize = 100;

/// Counters of compressed packets, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressionStats {
    /// Compressed packets received (before any policy or decoding decision).
    pub compressed_rx: u64,
    /// Of those, decompressed and delivered.
    pub decompressed: u64,
    /// Of those, refused by policy (`allow-compression no`) or an algorithm we lack (Snappy).
    pub refused: u64,
    /// Of those, malformed or expanding beyond the maximum packet size (dropped).
    pub malformed: u64,
    /// Packets we sent compressed.
    pub compressed_tx: u64,
}

impl CompressionStats {
    /// Whether any compressed packet went either way.
    pub fn any(&self) -> bool {
        self.compressed_rx > 0 || self.compressed_tx > 0
    }
}

impl std::fmt::Display for CompressionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compressed packets received {}, decompressed {}, refused {}, malformed {}, sent compressed {}",
            self.compressed_rx, self.decompressed, self.refused, self.malformed, self.compressed_tx
        )
    }
}

/// Decompresses `z` with `algorithm` into `out` (cleared first), at most `max` bytes.
pub fn decompress(algorithm: Algorithm, z: &[u8], out: &mut Vec<u8>, max: usize) -> bool {
    match algorithm {
        Algorithm::Lzo => lzo::decompress(z, out, max).is_ok(),
        Algorithm::Lz4 => {
            out.clear();
            out.resize(max, 0);
            match lz4_flex::block::decompress_into(z, out) {
                Ok(n) => {
                    out.truncate(n);
                    true
                }
                Err(_) => {
                    out.clear();
                    false
                }
            }
        }
    }
}

/// Compresses `data` with `algorithm` into `out` (cleared first).
pub fn compress(algorithm: Algorithm, data: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    match algorithm {
        Algorithm::Lzo => match lzo::compress(data) {
            Ok(z) => {
                *out = z;
                true
            }
            Err(_) => false,
        },
        Algorithm::Lz4 => {
            out.resize(lz4_flex::block::get_maximum_output_size(data.len()), 0);
            match lz4_flex::block::compress_into(data, out) {
                Ok(n) => {
                    out.truncate(n);
                    true
                }
                Err(_) => false,
            }
        }
    }
}

/// The framing and the compression algorithm `c` stands for.
pub fn framing_for(c: crate::config::Compression) -> (Framing, Option<Algorithm>) {
    use crate::config::Compression as C;
    match c {
        C::None => (Framing::None, None),
        C::LzoFraming => (Framing::Lzo, None),
        C::Lzo => (Framing::Lzo, Some(Algorithm::Lzo)),
        C::Stub => (Framing::Stub, None),
        C::Lz4 => (Framing::Stub, Some(Algorithm::Lz4)),
        C::StubV2 => (Framing::StubV2, None),
        C::Lz4V2 => (Framing::StubV2, Some(Algorithm::Lz4)),
    }
}

/// The compression state of one session direction pair: framing, policy, buffers, counters.
#[derive(Debug, Clone)]
pub struct Codec {
    framing: Framing,
    /// Compress outgoing packets with this (only with `allow-compression yes`).
    send: Option<Algorithm>,
    /// Decompress incoming compressed packets (`allow-compression asym|yes`).
    receive: bool,
    /// Largest packet a decompression may produce.
    max_packet: usize,
    stats: CompressionStats,
    /// A refused packet arrived and nobody has been told yet.
    refusal_unreported: bool,
    refusal_reported: bool,
    work: Vec<u8>,
    zbuf: Vec<u8>,
}

impl Codec {
    /// A codec for `framing`; `send` is the algorithm to compress with (None: never), `receive`
    /// whether compressed packets from the peer are decompressed, `max_packet` the largest
    /// packet decompression may produce (the tunnel MTU).
    pub fn new(
        framing: Framing,
        send: Option<Algorithm>,
        receive: bool,
        max_packet: usize,
    ) -> Self {
        Self {
            framing,
            send,
            receive,
            max_packet,
            stats: CompressionStats::default(),
            refusal_unreported: false,
            refusal_reported: false,
            work: Vec::new(),
            zbuf: Vec::new(),
        }
    }

    /// Changes framing and policy (a push), keeping the counters.
    pub fn reconfigure(
        &mut self,
        framing: Framing,
        send: Option<Algorithm>,
        receive: bool,
        max_packet: usize,
    ) {
        self.framing = framing;
        self.send = send;
        self.receive = receive;
        self.max_packet = max_packet;
    }

    /// The framing in effect.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The algorithm outgoing packets are compressed with, if any.
    pub fn send(&self) -> Option<Algorithm> {
        self.send
    }

    /// Whether compressed packets from the peer are decompressed.
    pub fn receives(&self) -> bool {
        self.receive
    }

    /// The largest packet a decompression may produce.
    pub fn max_packet(&self) -> usize {
        self.max_packet
    }

    /// The counters.
    pub fn stats(&self) -> CompressionStats {
        self.stats
    }

    /// `true` once, after the first compressed packet refused by policy: the caller logs what
    /// to change.
    pub fn take_refusal_notice(&mut self) -> bool {
        let r = self.refusal_unreported;
        self.refusal_unreported = false;
        r
    }

    /// Frames `packet` into `out` (cleared first), compressed when the policy allows it, the
    /// packet is long enough and compression makes it smaller.
    pub fn frame(&mut self, packet: &[u8], out: &mut Vec<u8>) {
        if let Some(alg) = self.send
            && packet.len() >= COMPRESS_THRESHOLD
            && compress(alg, packet, &mut self.zbuf)
            && self.zbuf.len() < packet.len()
            && self
                .framing
                .frame_compressed(alg, &self.zbuf, out)
                .is_some()
        {
            self.stats.compressed_tx += 1;
            return;
        }
        self.framing.frame(packet, out);
    }

    /// Removes the framing from a decrypted payload, decompressing when it is compressed and
    /// allowed. The result is a slice of `payload` or of the codec's own buffer.
    pub fn unframe<'a>(&'a mut self, payload: &'a mut [u8]) -> Result<&'a [u8], DataError> {
        match self.framing.strip(payload)? {
            Stripped::Range(start) => Ok(&payload[start..]),
            Stripped::Swapped => Ok(unswap(payload)),
            Stripped::Compressed {
                code,
                algorithm,
                start,
                swapped,
            } => {
                self.stats.compressed_rx += 1;
                let Some(alg) = algorithm.filter(|_| self.receive) else {
                    self.stats.refused += 1;
                    if !self.refusal_reported {
                        self.refusal_reported = true;
                        self.refusal_unreported = true;
                    }
                    return Err(DataError::CompressedPacketRefused(code));
                };
                let z: &[u8] = if swapped {
                    unswap(payload)
                } else {
                    &payload[start..]
                };
                if decompress(alg, z, &mut self.work, self.max_packet) {
                    self.stats.decompressed += 1;
                    Ok(&self.work)
                } else {
                    self.stats.malformed += 1;
                    Err(DataError::BadCompressedPacket(code))
                }
            }
        }
    }
}

/// `[hdr, b1 .. b(n-2), b0]` → `[b0, b1 .. b(n-2)]`, in place.
fn unswap(payload: &mut [u8]) -> &[u8] {
    let n = payload.len();
    if n <= 1 {
        return &payload[n..];
    }
    payload[0] = payload[n - 1];
    &payload[..n - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: usize = 1500;

    fn text_packet(len: usize) -> Vec<u8> {
        let mut p = vec![0x45, 0x00];
        p.extend(
            b"The quick brown fox jumps over the lazy dog. "
                .iter()
                .cycle()
                .take(len - 2),
        );
        p
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9u32;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    fn sender(f: Framing, a: Algorithm) -> Codec {
        Codec::new(f, Some(a), true, MTU)
    }

    fn receiver(f: Framing) -> Codec {
        Codec::new(f, None, true, MTU)
    }

    #[test]
    fn round_trips_per_framing_and_algorithm() {
        let cases = [
            (Framing::Lzo, Algorithm::Lzo, 0x66),
            (Framing::Stub, Algorithm::Lz4, 0x69),
            (Framing::StubV2, Algorithm::Lz4, 0x50),
            (Framing::StubV2, Algorithm::Lzo, 0x50),
        ];
        for (f, a, head) in cases {
            let mut tx = sender(f, a);
            let mut rx = receiver(f);
            let mut wire = Vec::new();
            for p in [
                text_packet(1400),
                text_packet(COMPRESS_THRESHOLD),
                noise(1400),
                text_packet(40),
                vec![0x50; 300],
            ] {
                tx.frame(&p, &mut wire);
                let compressible = p.len() >= COMPRESS_THRESHOLD && p != noise(1400);
                assert_eq!(
                    wire[0] == head && wire.len() < p.len(),
                    compressible,
                    "{f:?} {a:?}"
                );
                assert_eq!(
                    rx.unframe(&mut wire.clone()).unwrap(),
                    &p[..],
                    "{f:?} {a:?}"
                );
            }
            assert_eq!(tx.stats().compressed_tx, 3, "{f:?} {a:?}");
            let s = rx.stats();
            assert_eq!((s.compressed_rx, s.decompressed, s.refused), (3, 3, 0));
        }
    }

    /// A framing without a header for the algorithm sends uncompressed.
    #[test]
    fn mismatched_algorithm_sends_plain() {
        let mut tx = sender(Framing::Lzo, Algorithm::Lz4);
        let mut wire = Vec::new();
        let p = text_packet(800);
        tx.frame(&p, &mut wire);
        assert_eq!(wire[0], 0xFA);
        assert_eq!(tx.stats().compressed_tx, 0);
    }

    /// The `allow-compression` matrix: `no` refuses and reports once, `asym` decompresses but
    /// never compresses, `yes` does both.
    #[test]
    fn allow_compression_matrix() {
        let p = text_packet(1200);
        let mut wire = Vec::new();
        sender(Framing::StubV2, Algorithm::Lz4).frame(&p, &mut wire);
        // no
        let mut no = Codec::new(Framing::StubV2, None, false, MTU);
        for _ in 0..3 {
            assert_eq!(
                no.unframe(&mut wire.clone()),
                Err(DataError::CompressedPacketRefused(1))
            );
        }
        assert!(no.take_refusal_notice());
        assert!(!no.take_refusal_notice());
        assert_eq!(no.stats().refused, 3);
        let mut out = Vec::new();
        no.frame(&p, &mut out);
        assert_eq!(out, p);
        // asym
        let mut asym = Codec::new(Framing::StubV2, None, true, MTU);
        assert_eq!(asym.unframe(&mut wire.clone()).unwrap(), &p[..]);
        asym.frame(&p, &mut out);
        assert_eq!(out, p);
        assert_eq!(asym.stats().compressed_tx, 0);
        assert!(!asym.take_refusal_notice());
        // yes
        let mut yes = sender(Framing::StubV2, Algorithm::Lz4);
        yes.frame(&p, &mut out);
        assert_eq!(&out[..2], &[0x50, 0x01]);
        assert_eq!(yes.unframe(&mut out.clone()).unwrap(), &p[..]);
    }

    #[test]
    fn snappy_is_refused_even_when_allowed() {
        let mut rx = receiver(Framing::StubV2);
        assert_eq!(
            rx.unframe(&mut [0x50, 0x03, 1, 2, 3]),
            Err(DataError::CompressedPacketRefused(3))
        );
        assert_eq!(rx.stats().refused, 1);
    }

    #[test]
    fn bombs_and_garbage_are_dropped_and_counted() {
        // 64 KiB of zeros compresses to a few hundred bytes but must not come out.
        let big = vec![0u8; 65_000];
        let mut z = Vec::new();
        for (f, a) in [
            (Framing::Lzo, Algorithm::Lzo),
            (Framing::Stub, Algorithm::Lz4),
            (Framing::StubV2, Algorithm::Lz4),
        ] {
            assert!(compress(a, &big, &mut z));
            let mut wire = Vec::new();
            f.frame_compressed(a, &z, &mut wire).unwrap();
            let mut rx = receiver(f);
            assert_eq!(rx.unframe(&mut wire), Err(rx_err(f)), "{f:?}");
            assert_eq!(rx.stats().malformed, 1);
            let mut garbage = vec![0u8; 0];
            f.frame_compressed(a, &[0xff, 0xff, 0xff, 0xff, 0x00], &mut garbage)
                .unwrap();
            assert!(rx.unframe(&mut garbage).is_err());
            assert_eq!(rx.stats().malformed, 2);
            assert_eq!(rx.stats().decompressed, 0);
        }
    }

    fn rx_err(f: Framing) -> DataError {
        DataError::BadCompressedPacket(match f {
            Framing::Lzo => 0x66,
            Framing::Stub => 0x69,
            _ => 0x01,
        })
    }

    proptest::proptest! {
        /// Whatever the peer sends, unframing never panics and never yields more than the
        /// maximum packet size.
        #[test]
        fn unframe_never_panics(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
                                 which in 0usize..4) {
            let f = [Framing::None, Framing::Lzo, Framing::Stub, Framing::StubV2][which];
            let mut rx = Codec::new(f, None, true, 256);
            let mut p = payload.clone();
            let _ = rx.unframe(&mut p);
            // Also with a valid compression header in front of random data.
            for head in [[0x66u8, 0], [0x69, 0], [0x50, 0x01], [0x50, 0x02]] {
                let mut p = head.to_vec();
                p.extend_from_slice(&payload);
                let before = rx.stats().decompressed;
                let got = rx.unframe(&mut p).map(<[u8]>::len);
                if rx.stats().decompressed > before {
                    proptest::prop_assert!(got.unwrap() <= 256);
                }
            }
        }

        /// Compression round-trips for any input, under every framing.
        #[test]
        fn compression_round_trips(data in proptest::collection::vec(0u8..4, 0..1600)) {
            for (f, a) in [(Framing::Lzo, Algorithm::Lzo), (Framing::Stub, Algorithm::Lz4),
                           (Framing::StubV2, Algorithm::Lz4), (Framing::StubV2, Algorithm::Lzo)] {
                let mut wire = Vec::new();
                sender(f, a).frame(&data, &mut wire);
                let mut rx = Codec::new(f, None, true, 1600);
                proptest::prop_assert_eq!(rx.unframe(&mut wire).unwrap(), &data[..]);
            }
        }
    }
}
