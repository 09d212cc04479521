//! LZO1X for `comp-lzo`: a bounded decoder of our own (the packets come from the network, so
//! every read, every back-reference and every byte of output is checked; malformed input is an
//! error, never a panic, and the output never grows beyond the limit the caller gives) and an
//! encoder from `lzokay-native`, used only when `allow-compression yes` lets us compress.
//!
//! The stream format (as liblzo2's `lzo1x_1_15_compress` writes it, which is what OpenVPN
//! uses): an optional first literal run, then instructions whose high bits select a copy from
//! the output so far (M1 to M4), each followed by 0 to 3 literals given by the low two bits of
//! its last distance byte; the stream ends with the M4 instruction of distance 16384 (`11 00
//! 00`).

/// Why an LZO1X stream could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LzoError {
    /// The input ended inside an instruction or before the end marker.
    #[error("LZO input truncated")]
    InputOverrun,
    /// The output would exceed the limit (a decompression bomb or a bad length).
    #[error("LZO output exceeds the limit")]
    OutputOverrun,
    /// A back-reference points before the start of the output.
    #[error("LZO back-reference before the start of the output")]
    LookBehind,
    /// Bytes follow the end marker.
    #[error("LZO input continues after the end marker")]
    TrailingInput,
}

/// The encoder refused the input (does not happen for packet-sized input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("LZO compression failed")]
pub struct LzoCompressError;

/// Compresses `input` (one packet, not empty) into a new buffer.
pub fn compress(input: &[u8]) -> Result<Vec<u8>, LzoCompressError> {
    lzokay_native::compress(input).map_err(|_| LzoCompressError)
}

/// Decodes the LZO1X stream `input` into `out` (cleared first), producing at most `max` bytes.
pub fn decompress(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), LzoError> {
    out.clear();
    Decoder {
        input,
        pos: 0,
        out,
        max,
    }
    .run()
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    out: &'a mut Vec<u8>,
    max: usize,
}

/// What the decoder expects next, from the literals the previous instruction copied.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// No literals (or the start): a byte below 16 is a literal run.
    Nothing,
    /// 1 to 3 literals: a byte below 16 copies 2 bytes from within 1 KiB.
    FewLiterals,
    /// A run of 4 or more literals: a byte below 16 copies 3 bytes from 2 to 3 KiB back.
    LiteralRun,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<usize, LzoError> {
        let b = *self.input.get(self.pos).ok_or(LzoError::InputOverrun)?;
        self.pos += 1;
        Ok(usize::from(b))
    }

    fn le16(&mut self) -> Result<usize, LzoError> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(lo | hi << 8)
    }

    /// A length continued in following bytes: each 0 adds 255, the first non-zero byte ends
    /// it and is added together with `base`.
    fn long_len(&mut self, base: usize) -> Result<usize, LzoError> {
        let mut n = base;
        loop {
            match self.byte()? {
                0 => n = n.checked_add(255).ok_or(LzoError::OutputOverrun)?,
                b => return n.checked_add(b).ok_or(LzoError::OutputOverrun),
            }
        }
    }

    fn room(&self, n: usize) -> Result<(), LzoError> {
        if self
            .out
            .len()
            .checked_add(n)
            .is_none_or(|end| end > self.max)
        {
            return Err(LzoError::OutputOverrun);
        }
        Ok(())
    }

    fn literals(&mut self, n: usize) -> Result<(), LzoError> {
        self.room(n)?;
        let end = self.pos.checked_add(n).ok_or(LzoError::InputOverrun)?;
        let src = self
            .input
            .get(self.pos..end)
            .ok_or(LzoError::InputOverrun)?;
        self.out.extend_from_slice(src);
        self.pos = end;
        Ok(())
    }

    /// Copies `len` bytes starting `distance` bytes back (the ranges may overlap).
    fn copy_back(&mut self, distance: usize, len: usize) -> Result<(), LzoError> {
        if distance == 0 || distance > self.out.len() {
            return Err(LzoError::LookBehind);
        }
        self.room(len)?;
        let start = self.out.len() - distance;
        for i in start..start + len {
            let b = self.out[i];
            self.out.push(b);
        }
        Ok(())
    }

    fn run(mut self) -> Result<(), LzoError> {
        let mut after = After::Nothing;
        let mut inst = self.byte()?;
        if inst > 17 {
            let n = inst - 17;
            self.literals(n)?;
            after = if n < 4 {
                After::FewLiterals
            } else {
                After::LiteralRun
            };
            inst = self.byte()?;
        }
        loop {
            // Each arm copies from the output and yields the literal count (0 to 3) that the
            // low bits of the instruction's last byte announce.
            let state = if inst >= 64 {
                // M2: 3 to 8 bytes from within 2 KiB.
                let h = self.byte()?;
                self.copy_back(1 + ((inst >> 2) & 7) + (h << 3), (inst >> 5) + 1)?;
                inst & 3
            } else if inst >= 32 {
                // M3: within 16 KiB.
                let len = match inst & 31 {
                    0 => self.long_len(31)?,
                    n => n,
                } + 2;
                let d = self.le16()?;
                self.copy_back(1 + (d >> 2), len)?;
                d & 3
            } else if inst >= 16 {
                // M4: 16 to 48 KiB back; distance exactly 16384 ends the stream.
                let len = match inst & 7 {
                    0 => self.long_len(7)?,
                    n => n,
                } + 2;
                let d = self.le16()?;
                let distance = ((inst & 8) << 11) + (d >> 2);
                if distance == 0 {
                    return if self.pos == self.input.len() {
                        Ok(())
                    } else {
                        Err(LzoError::TrailingInput)
                    };
                }
                self.copy_back(distance + 0x4000, len)?;
                d & 3
            } else {
                match after {
                    After::Nothing => {
                        // A literal run of 4 or more; the next small byte is a far M1.
                        let n = match inst {
                            0 => self.long_len(15)?,
                            n => n,
                        } + 3;
                        self.literals(n)?;
                        after = After::LiteralRun;
                        inst = self.byte()?;
                        continue;
                    }
                    After::FewLiterals => {
                        let h = self.byte()?;
                        self.copy_back(1 + (inst >> 2) + (h << 2), 2)?;
                    }
                    After::LiteralRun => {
                        let h = self.byte()?;
                        self.copy_back(0x801 + (inst >> 2) + (h << 2), 3)?;
                    }
                }
                inst & 3
            };
            if state == 0 {
                after = After::Nothing;
            } else {
                self.literals(state)?;
                after = After::FewLiterals;
            }
            inst = self.byte()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) {
        let z = compress(data).unwrap();
        let mut out = Vec::new();
        decompress(&z, &mut out, data.len()).unwrap();
        assert_eq!(out, data);
        if !data.is_empty() {
            assert_eq!(
                decompress(&z, &mut out, data.len() - 1),
                Err(LzoError::OutputOverrun)
            );
        }
    }

    #[test]
    fn round_trips_through_the_encoder() {
        round_trip(b"a");
        round_trip(b"abc");
        round_trip(&[0u8; 1500]);
        round_trip(&b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".repeat(40));
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..1400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        round_trip(&noise);
        let mixed: Vec<u8> = noise
            .iter()
            .enumerate()
            .map(|(i, b)| if i % 7 < 4 { b'z' } else { *b })
            .collect();
        round_trip(&mixed);
    }

    /// Streams written by hand: a literal-only stream and one with an overlapping M2 copy.
    #[test]
    fn decodes_hand_made_streams() {
        let mut out = Vec::new();
        // First byte 17+5: 5 literals, then the end marker.
        decompress(b"\x16hello\x11\x00\x00", &mut out, 100).unwrap();
        assert_eq!(out, b"hello");
        // "ab" as literals (first byte 17+2), then M2 length 8 distance 2 (0b111_001_00 with
        // H = 0: distance 1 + 1), no trailing literals, then the end marker.
        decompress(b"\x13ab\xe4\x00\x11\x00\x00", &mut out, 100).unwrap();
        assert_eq!(out, b"ababababab");
    }

    #[test]
    fn malformed_streams_are_errors() {
        let mut out = Vec::new();
        let cases: [(&[u8], LzoError); 7] = [
            (b"", LzoError::InputOverrun),
            (b"\x16hel", LzoError::InputOverrun),
            (b"\x16hello", LzoError::InputOverrun),
            (b"\x16hello\x11\x00\x00x", LzoError::TrailingInput),
            // M2 reaching before the start.
            (b"\x13ab\xe4\x10\x11\x00\x00", LzoError::LookBehind),
            // A literal run whose length is continued by zeros past the end.
            (b"\x00\x00\x00", LzoError::InputOverrun),
            // One literal, then M2 9 bytes back.
            (b"\x12a\x40\x01", LzoError::LookBehind),
        ];
        for (input, want) in cases {
            assert_eq!(decompress(input, &mut out, 1500), Err(want), "{input:02x?}");
        }
    }

    /// A small stream that would expand to megabytes stops at the limit.
    #[test]
    fn bomb_is_cut_at_the_limit() {
        // "a", then M3 with a long length (many zero bytes) and distance 1.
        let mut bomb = vec![0x12, b'a', 0x20];
        bomb.extend(std::iter::repeat_n(0u8, 10_000));
        bomb.extend_from_slice(&[0xff, 0x00, 0x00, 0x11, 0x00, 0x00]);
        let mut out = Vec::new();
        assert_eq!(
            decompress(&bomb, &mut out, 1600),
            Err(LzoError::OutputOverrun)
        );
        assert!(out.len() <= 1600);
    }
}
