//! In-band data-channel messages (PROTOCOL.md A.4.6): keepalive pings and OCC messages travel
//! as data payloads (after compression framing) and are recognised by a 16-byte magic.

/// Payload of an OpenVPN keepalive ping.
pub const PING_MAGIC: [u8; 16] = [
    0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb, 0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48,
];

/// Prefix of an OCC message; one opcode byte and an optional body follow.
pub const OCC_MAGIC: [u8; 16] = [
    0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81, 0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c,
];

/// OCC opcode of the exit notification (`explicit-exit-notify` without `cc-exit`).
pub const OCC_EXIT: u8 = 6;

/// What a decrypted, unframed data payload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inband<'a> {
    /// An IP packet for the tunnel device.
    Ip(&'a [u8]),
    /// A keepalive ping (only resets the receive timer).
    Ping,
    /// An OCC message: opcode (0 REQUEST, 1 REPLY, ..., 6 EXIT) and the bytes after it.
    Occ {
        /// OCC opcode.
        opcode: u8,
        /// Everything after the opcode (e.g. the options string of a REPLY).
        body: &'a [u8],
    },
}

/// Tells pings and OCC messages from IP packets (an IP packet never starts with 0x2a or 0x28,
/// whose version nibble is 2).
pub fn classify(payload: &[u8]) -> Inband<'_> {
    if payload == PING_MAGIC {
        return Inband::Ping;
    }
    match payload.strip_prefix(&OCC_MAGIC[..]) {
        Some([opcode, body @ ..]) => Inband::Occ {
            opcode: *opcode,
            body,
        },
        _ => Inband::Ip(payload),
    }
}

/// The OCC_EXIT payload: `OCC_MAGIC || 6`.
pub fn occ_exit() -> [u8; 17] {
    let mut m = [0u8; 17];
    m[..16].copy_from_slice(&OCC_MAGIC);
    m[16] = OCC_EXIT;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(classify(&PING_MAGIC), Inband::Ping);
        assert_eq!(
            classify(&occ_exit()),
            Inband::Occ {
                opcode: 6,
                body: &[]
            }
        );
        let mut reply = OCC_MAGIC.to_vec();
        reply.extend_from_slice(b"\x01V4,dev-type tun\0");
        assert_eq!(
            classify(&reply),
            Inband::Occ {
                opcode: 1,
                body: b"V4,dev-type tun\0"
            }
        );
        // The bare magic without an opcode, or a longer ping, is not special.
        assert_eq!(classify(&OCC_MAGIC), Inband::Ip(&OCC_MAGIC));
        let ip = [0x45, 0, 0, 20];
        assert_eq!(classify(&ip), Inband::Ip(&ip));
        assert_eq!(classify(&[]), Inband::Ip(&[]));
    }
}
