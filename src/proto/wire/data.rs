//! Data-channel packet headers: `P_DATA_V1` = `[op|kid]` (1 byte), `P_DATA_V2` =
//! `[op|kid][peer_id:3]` (4 bytes, `(op << 3 | kid) << 24 | peer_id`).

use super::error::WireError;
use super::opcode::{Opcode, first_byte, split_first_byte};

/// Length of a `P_DATA_V1` header.
pub const DATA_V1_HEADER_LEN: usize = 1;
/// Length of a `P_DATA_V2` header.
pub const DATA_V2_HEADER_LEN: usize = 4;
/// `peer_id` value meaning "no peer id assigned" (`MAX_PEER_ID`).
pub const PEER_ID_UNDEF: u32 = 0x00ff_ffff;

/// Reads a data packet header: `(opcode, key_id, peer_id, header_len)`. `peer_id` is `Some` only
/// for `P_DATA_V2`. Control opcodes give [`WireError::NotData`].
pub fn data_header(b: &[u8]) -> Result<(Opcode, u8, Option<u32>, usize), WireError> {
    let first = *b
        .first()
        .ok_or(WireError::Truncated { needed: 1, have: 0 })?;
    let (opcode, key_id) = split_first_byte(first)?;
    match opcode {
        Opcode::DataV1 => Ok((opcode, key_id, None, DATA_V1_HEADER_LEN)),
        Opcode::DataV2 => {
            let hdr: [u8; 4] = b
                .get(..DATA_V2_HEADER_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or(WireError::Truncated {
                    needed: DATA_V2_HEADER_LEN,
                    have: b.len(),
                })?;
            let peer_id = u32::from_be_bytes(hdr) & 0x00ff_ffff;
            Ok((opcode, key_id, Some(peer_id), DATA_V2_HEADER_LEN))
        }
        other => Err(WireError::NotData(other)),
    }
}

/// The 4-byte `P_DATA_V2` header (`peer_id` is masked to 24 bits).
pub fn data_v2_header(key_id: u8, peer_id: u32) -> [u8; 4] {
    let word = (u32::from(first_byte(Opcode::DataV2, key_id)) << 24) | (peer_id & 0x00ff_ffff);
    word.to_be_bytes()
}

/// The 1-byte `P_DATA_V1` header.
pub fn data_v1_header(key_id: u8) -> u8 {
    first_byte(Opcode::DataV1, key_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        // b- frame 16.
        let b = hex::decode("4800000000000002313591a7").unwrap();
        assert_eq!(data_header(&b), Ok((Opcode::DataV2, 0, Some(0), 4)));
        assert_eq!(data_v2_header(0, 0), [0x48, 0, 0, 0]);
        assert_eq!(data_v2_header(3, 0x123456), [0x4b, 0x12, 0x34, 0x56]);
        assert_eq!(
            data_header(&[0x4b, 0x12, 0x34, 0x56]),
            Ok((Opcode::DataV2, 3, Some(0x123456), 4))
        );
        assert_eq!(data_header(&[0x31, 9]), Ok((Opcode::DataV1, 1, None, 1)));
        assert_eq!(data_v1_header(1), 0x31);
        assert_eq!(
            data_header(&[0x48, 0]),
            Err(WireError::Truncated { needed: 4, have: 2 })
        );
        assert_eq!(
            data_header(&[]),
            Err(WireError::Truncated { needed: 1, have: 0 })
        );
        assert_eq!(
            data_header(&[0x20]),
            Err(WireError::NotData(Opcode::ControlV1))
        );
        assert_eq!(data_header(&[0x00]), Err(WireError::BadOpcode(0)));
    }
}
