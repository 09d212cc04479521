//! Opcodes and the first byte of every packet: `opcode << 3 | key_id`.

use super::error::WireError;

/// Number of bits the opcode is shifted left in the first byte.
pub const OPCODE_SHIFT: u8 = 3;
/// Mask of the key_id in the first byte.
pub const KEY_ID_MASK: u8 = 0x07;

/// OpenVPN packet opcodes (2.6). Opcodes 1 and 2 (key-method 1 resets) are obsolete and invalid.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// `P_CONTROL_SOFT_RESET_V1`: starts a renegotiation on a new key_id.
    SoftResetV1 = 3,
    /// `P_CONTROL_V1`: reliable control packet carrying TLS records.
    ControlV1 = 4,
    /// `P_ACK_V1`: acks only, no message id, no payload.
    AckV1 = 5,
    /// `P_DATA_V1`: data packet with a 1-byte header.
    DataV1 = 6,
    /// `P_CONTROL_HARD_RESET_CLIENT_V2`: the client's first packet.
    HardResetClientV2 = 7,
    /// `P_CONTROL_HARD_RESET_SERVER_V2`: the server's reply.
    HardResetServerV2 = 8,
    /// `P_DATA_V2`: data packet with a 4-byte header holding a 24-bit peer id.
    DataV2 = 9,
    /// `P_CONTROL_HARD_RESET_CLIENT_V3`: client reset with tls-crypt-v2 (WKc appended).
    HardResetClientV3 = 10,
    /// `P_CONTROL_WKC_V1`: `P_CONTROL_V1` with the WKc appended (tls-crypt-v2 cookie mode).
    ControlWkcV1 = 11,
}

impl Opcode {
    /// The opcode with this number, if valid.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            3 => Self::SoftResetV1,
            4 => Self::ControlV1,
            5 => Self::AckV1,
            6 => Self::DataV1,
            7 => Self::HardResetClientV2,
            8 => Self::HardResetServerV2,
            9 => Self::DataV2,
            10 => Self::HardResetClientV3,
            11 => Self::ControlWkcV1,
            _ => return None,
        })
    }

    /// Control-channel opcodes (everything except the two data opcodes).
    pub fn is_control(self) -> bool {
        !self.is_data()
    }

    /// `P_DATA_V1` or `P_DATA_V2`.
    pub fn is_data(self) -> bool {
        matches!(self, Self::DataV1 | Self::DataV2)
    }

    /// Control opcodes that carry a message id and go through the reliability layer
    /// (all control opcodes except `P_ACK_V1`).
    pub fn is_reliable(self) -> bool {
        self.is_control() && self != Self::AckV1
    }

    /// Opcodes after which a tls-crypt-v2 client appends its WKc in clear.
    pub fn carries_wkc(self) -> bool {
        matches!(self, Self::HardResetClientV3 | Self::ControlWkcV1)
    }
}

/// Splits the first byte of a packet into opcode and key_id.
pub fn split_first_byte(b: u8) -> Result<(Opcode, u8), WireError> {
    let op = b >> OPCODE_SHIFT;
    let opcode = Opcode::from_u8(op).ok_or(WireError::BadOpcode(op))?;
    Ok((opcode, b & KEY_ID_MASK))
}

/// Builds the first byte of a packet. `key_id` must be 0..=7 (higher bits are dropped).
pub fn first_byte(op: Opcode, key_id: u8) -> u8 {
    debug_assert!(key_id <= KEY_ID_MASK, "key_id {key_id} out of range");
    ((op as u8) << OPCODE_SHIFT) | (key_id & KEY_ID_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_byte_roundtrip() {
        for v in 0..=255u8 {
            match split_first_byte(v) {
                Ok((op, kid)) => {
                    assert_eq!(first_byte(op, kid), v);
                    assert_eq!(op as u8, v >> 3);
                }
                Err(WireError::BadOpcode(op)) => assert!(!(3..=11).contains(&op), "{v:#x}"),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(split_first_byte(0x38), Ok((Opcode::HardResetClientV2, 0)));
        assert_eq!(split_first_byte(0x40), Ok((Opcode::HardResetServerV2, 0)));
        assert_eq!(split_first_byte(0x48), Ok((Opcode::DataV2, 0)));
        assert_eq!(split_first_byte(0x21), Ok((Opcode::ControlV1, 1)));
        assert_eq!(split_first_byte(0x08), Err(WireError::BadOpcode(1)));
        assert_eq!(split_first_byte(0x10), Err(WireError::BadOpcode(2)));
        assert!(Opcode::AckV1.is_control() && !Opcode::AckV1.is_reliable());
        assert!(Opcode::DataV1.is_data() && !Opcode::DataV1.is_control());
        assert!(Opcode::ControlWkcV1.carries_wkc());
    }
}
