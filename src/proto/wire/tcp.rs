//! TCP framing: every packet is preceded by its length as a big-endian u16.

use super::error::WireError;

/// Largest packet a u16 length prefix can describe.
pub const MAX_TCP_PACKET: usize = u16::MAX as usize;

/// Appends `packet` to `out` with its u16 length prefix. Packets of length 0 or longer than
/// 65535 bytes are refused (nothing is appended).
pub fn frame(packet: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    if packet.is_empty() {
        return Err(WireError::EmptyFrame);
    }
    let len = u16::try_from(packet.len()).map_err(|_| WireError::FrameTooLong {
        len: packet.len(),
        max: MAX_TCP_PACKET,
    })?;
    out.reserve(2 + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Ok(())
}

/// Splits a TCP byte stream into packets.
///
/// After a framing error (length 0 or above the limit) the stream cannot be resynchronised: the
/// error is returned once, then the deframer is poisoned (ignores input, yields `None`) and the
/// connection must be dropped.
#[derive(Debug, Clone)]
pub struct TcpDeframer {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    max_len: usize,
    poisoned: bool,
}

impl TcpDeframer {
    /// A deframer accepting packets up to 65535 bytes.
    pub fn new() -> Self {
        Self::with_max_len(MAX_TCP_PACKET)
    }

    /// A deframer refusing frames longer than `max_len` bytes (e.g. the largest packet the
    /// configured MTU allows).
    pub fn with_max_len(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len: max_len.min(MAX_TCP_PACKET),
            poisoned: false,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete packet, `None` if more bytes are needed (or after an error).
    pub fn next_packet(&mut self) -> Option<Result<Vec<u8>, WireError>> {
        if self.poisoned {
            return None;
        }
        let avail = &self.buf[self.start..];
        let len_bytes: [u8; 2] = avail.get(..2)?.try_into().ok()?;
        let len = usize::from(u16::from_be_bytes(len_bytes));
        if len == 0 || len > self.max_len {
            self.poisoned = true;
            self.buf = Vec::new();
            self.start = 0;
            return Some(Err(if len == 0 {
                WireError::EmptyFrame
            } else {
                WireError::FrameTooLong {
                    len,
                    max: self.max_len,
                }
            }));
        }
        let packet = avail.get(2..2 + len)?.to_vec();
        self.start += 2 + len;
        Some(Ok(packet))
    }

    /// Bytes buffered that do not yet form a complete packet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether a framing error occurred.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl Default for TcpDeframer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_deframes_byte_by_byte() {
        let packets: Vec<Vec<u8>> = vec![vec![1], vec![2; 300], vec![3; 65535], vec![4, 5]];
        let mut stream = Vec::new();
        for p in &packets {
            frame(p, &mut stream).unwrap();
        }
        assert_eq!(&stream[..3], &[0, 1, 1]);
        let mut d = TcpDeframer::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            d.push(chunk);
            while let Some(p) = d.next_packet() {
                got.push(p.unwrap());
            }
        }
        assert_eq!(got, packets);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn errors() {
        let mut out = Vec::new();
        assert_eq!(frame(&[], &mut out), Err(WireError::EmptyFrame));
        assert_eq!(
            frame(&vec![0; 65536], &mut out),
            Err(WireError::FrameTooLong {
                len: 65536,
                max: 65535
            })
        );
        assert!(out.is_empty());

        let mut d = TcpDeframer::new();
        d.push(&[0, 1, 9, 0, 0, 0, 1, 7]);
        assert_eq!(d.next_packet(), Some(Ok(vec![9])));
        assert_eq!(d.next_packet(), Some(Err(WireError::EmptyFrame)));
        assert_eq!(d.next_packet(), None);
        assert!(d.is_poisoned());

        let mut d = TcpDeframer::with_max_len(100);
        d.push(&[0, 101]);
        assert_eq!(
            d.next_packet(),
            Some(Err(WireError::FrameTooLong { len: 101, max: 100 }))
        );
        let mut d = TcpDeframer::new();
        d.push(&[0]);
        assert_eq!(d.next_packet(), None);
        d.push(&[2, 1]);
        assert_eq!(d.next_packet(), None);
        d.push(&[2]);
        assert_eq!(d.next_packet(), Some(Ok(vec![1, 2])));
    }
}
