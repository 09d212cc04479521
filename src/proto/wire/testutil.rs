//! Test helpers: a minimal classic-pcap reader (Ethernet / IPv4 / UDP or TCP) and loaders for the
//! captures in `tests/data/vectors/`.

use crate::proto::keys::{Key2, pem_body};
use base64::Engine as _;

/// Server port of every capture.
pub(crate) const SERVER_PORT: u16 = 1194;

/// One UDP datagram or TCP segment payload.
#[derive(Debug, Clone)]
pub(crate) struct Pkt {
    pub tcp: bool,
    pub dst_port: u16,
    pub payload: Vec<u8>,
}

impl Pkt {
    /// Client to server.
    pub fn c2s(&self) -> bool {
        self.dst_port == SERVER_PORT
    }
}

fn u16be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses a classic pcap file with Ethernet link type; skips non-IPv4/UDP/TCP frames.
pub(crate) fn read_pcap(file: &[u8]) -> Vec<Pkt> {
    assert!(file.len() >= 24, "pcap too short");
    let magic = &file[..4];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a classic pcap"),
    };
    let rd32 = |b: &[u8]| {
        let a: [u8; 4] = b[..4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(rd32(&file[20..]), 1, "link type must be Ethernet");
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= file.len() {
        let incl = rd32(&file[pos + 8..]) as usize;
        let rec = &file[pos + 16..pos + 16 + incl];
        pos += 16 + incl;
        if rec.len() < 14 || u16be(rec, 12) != 0x0800 {
            continue;
        }
        let ip = &rec[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16be(ip, 2));
        let ip = &ip[..total];
        let l4 = &ip[ihl..];
        let (tcp, hdr_len) = match ip[9] {
            17 => (false, 8),
            6 => (true, usize::from(l4[12] >> 4) * 4),
            _ => continue,
        };
        out.push(Pkt {
            tcp,
            dst_port: u16be(l4, 2),
            payload: l4[hdr_len..].to_vec(),
        });
    }
    out
}

/// Path of a file in a vector folder.
pub(crate) fn vector_path(capture: &str, file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vectors")
        .join(capture)
        .join(file)
}

/// All UDP/TCP packets of a capture.
pub(crate) fn capture(name: &str) -> Vec<Pkt> {
    let bytes = std::fs::read(vector_path(name, "capture.pcap")).unwrap();
    read_pcap(&bytes)
}

/// `ta.key` of a capture.
pub(crate) fn ta_key(name: &str) -> Key2 {
    let text = std::fs::read_to_string(vector_path(name, "ta.key")).unwrap();
    Key2::parse_static_key_file(&text).unwrap()
}

/// `(Kc, WKc)` from `tc2-client.key` of a capture.
pub(crate) fn tc2_client_key(name: &str) -> (Key2, Vec<u8>) {
    let text = std::fs::read_to_string(vector_path(name, "tc2-client.key")).unwrap();
    let b64 = pem_body(&text, "OpenVPN tls-crypt-v2 client key").unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    (Key2::from_slice(&raw[..256]).unwrap(), raw[256..].to_vec())
}

/// A key2 whose tls-crypt halves are the given hex keys: `keys[1]` = client-to-server,
/// `keys[0]` = server-to-client (as `verify_vectors.py --keys` prints them).
pub(crate) fn tls_crypt_key2(c2s_ke: &str, c2s_ka: &str, s2c_ke: &str, s2c_ka: &str) -> Key2 {
    let mut k = [0u8; 256];
    for (off, h) in [(0, s2c_ke), (64, s2c_ka), (128, c2s_ke), (192, c2s_ka)] {
        let v = hex::decode(h).unwrap();
        k[off..off + v.len()].copy_from_slice(&v);
    }
    Key2::from_bytes(&k)
}

/// Hex (spaces allowed) to bytes.
pub(crate) fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}
