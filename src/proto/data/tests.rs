//! Data-channel tests: round trips for every cipher, packet-id and replay rules, malformed
//! input, and real OpenVPN 2.6.14 captures (`tests/data/vectors/*`, keys from
//! `verify_vectors.py --keys`).

use super::*;
use crate::proto::keys::{Cipher, Digest, KEY2_LEN, Key2};
use crate::proto::replay::ReplayError;

const ALL: [(Cipher, Digest); 7] = [
    (Cipher::Aes128Gcm, Digest::Sha1),
    (Cipher::Aes192Gcm, Digest::Sha1),
    (Cipher::Aes256Gcm, Digest::Sha1),
    (Cipher::Chacha20Poly1305, Digest::Sha1),
    (Cipher::Aes128Cbc, Digest::Sha1),
    (Cipher::Aes192Cbc, Digest::Sha256),
    (Cipher::Aes256Cbc, Digest::Sha512),
];

fn test_key2(seed: u8) -> Key2 {
    let mut b = [0u8; KEY2_LEN];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
    Key2::from_bytes(&b)
}

fn pair(cipher: Cipher, auth: Digest) -> (DataKey, DataKey) {
    let k = test_key2(7);
    (
        DataKey::new(cipher, auth, &k, Role::Client).unwrap(),
        DataKey::new(cipher, auth, &k, Role::Server).unwrap(),
    )
}

#[test]
fn headers() {
    assert_eq!(header_v1(0), [0x30]);
    assert_eq!(header_v1(3), [0x33]);
    assert_eq!(header_v2(0, 0), [0x48, 0, 0, 0]);
    assert_eq!(header_v2(1, 0x00AB_CDEF), [0x49, 0xAB, 0xCD, 0xEF]);
    assert_eq!(header_v2(9, 0xFFFF_FFFF), [0x49, 0xFF, 0xFF, 0xFF]);
}

#[test]
fn round_trip_every_cipher_both_directions_and_headers() {
    for (cipher, auth) in ALL {
        let (mut client, mut server) = pair(cipher, auth);
        let mut wire = Vec::new();
        let mut out = Vec::new();
        for len in [0usize, 1, 11, 12, 15, 16, 17, 100, 1400] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for header in [&header_v2(2, 77)[..], &header_v1(2)[..]] {
                client.seal(header, &pt, &mut wire).unwrap();
                assert_eq!(&wire[..header.len()], header);
                assert!(wire.len() <= pt.len() + client.max_overhead(header.len()));
                assert_eq!(server.open(&wire, header.len(), &mut out).unwrap(), &pt[..]);
                // Keys are directional: the sender cannot open its own packet.
                assert!(
                    client.open(&wire, header.len(), &mut out).is_err(),
                    "{cipher}"
                );

                server.seal(header, &pt, &mut wire).unwrap();
                assert_eq!(client.open(&wire, header.len(), &mut out).unwrap(), &pt[..]);
            }
        }
        assert_eq!(client.sent_packets(), 18);
        assert_eq!(server.sent_packets(), 18);
        assert_eq!(client.cipher(), cipher);
    }
}

#[test]
fn packet_ids_start_at_one_and_never_wrap() {
    for (cipher, auth) in ALL {
        let (mut client, mut server) = pair(cipher, auth);
        let mut wire = Vec::new();
        let mut out = Vec::new();
        client.seal(&header_v2(0, 0), b"x", &mut wire).unwrap();
        if cipher.is_aead() {
            assert_eq!(wire[4..8], [0, 0, 0, 1]);
        }
        assert!(!client.wants_renegotiation());
        client.force_next_packet_id(RENEGOTIATE_AFTER_PACKET_ID);
        client.seal(&header_v2(0, 0), b"x", &mut wire).unwrap();
        assert!(!client.wants_renegotiation());
        client.seal(&header_v2(0, 0), b"x", &mut wire).unwrap();
        assert!(client.wants_renegotiation());
        client.force_next_packet_id(0xFFFF_FFFE);
        client.seal(&header_v2(0, 0), b"last", &mut wire).unwrap();
        assert_eq!(server.open(&wire, 4, &mut out).unwrap(), b"last");
        assert_eq!(
            client.seal(&header_v2(0, 0), b"x", &mut wire),
            Err(DataError::PacketIdExhausted)
        );
        assert_eq!(
            client.seal(&header_v2(0, 0), b"x", &mut wire),
            Err(DataError::PacketIdExhausted)
        );
    }
}

#[test]
fn replay_window_rejects_duplicates_and_old_but_accepts_reordering() {
    for (cipher, auth) in ALL {
        let (mut client, mut server) = pair(cipher, auth);
        server.set_replay_window(8);
        let mut out = Vec::new();
        let packets: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let mut w = Vec::new();
                client
                    .seal(&header_v2(0, 0), &[i as u8; 40], &mut w)
                    .unwrap();
                w
            })
            .collect();
        // ids 1..=20; deliver 2 then 1 (reordered), then 1 again (replay).
        assert!(server.open(&packets[1], 4, &mut out).is_ok());
        assert!(server.open(&packets[0], 4, &mut out).is_ok());
        assert_eq!(
            server.open(&packets[0], 4, &mut out),
            Err(DataError::Replay(ReplayError::Replayed(1)))
        );
        assert!(server.open(&packets[19], 4, &mut out).is_ok());
        assert_eq!(
            server.open(&packets[5], 4, &mut out),
            Err(DataError::Replay(ReplayError::TooOld(6)))
        );
        assert!(server.open(&packets[15], 4, &mut out).is_ok());
    }
}

#[test]
fn tampering_is_detected_and_not_recorded() {
    for (cipher, auth) in ALL {
        let (mut client, mut server) = pair(cipher, auth);
        let mut wire = Vec::new();
        let mut out = Vec::new();
        client
            .seal(&header_v2(0, 5), &[0x45; 100], &mut wire)
            .unwrap();
        let expected = if cipher.is_aead() {
            DataError::BadTag
        } else {
            DataError::BadHmac
        };
        for i in 4..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            let r = server.open(&bad, 4, &mut out);
            if cipher.is_aead() && i == 7 {
                // Packet id 1 -> 0: refused by the replay pre-check before any crypto.
                assert_eq!(r, Err(DataError::Replay(ReplayError::Zero)));
            } else {
                assert_eq!(r, Err(expected), "{cipher} byte {i}");
            }
        }
        // The header (peer-id) is in the AEAD AD, but not covered by the CBC HMAC (A.0).
        let mut bad = wire.clone();
        bad[3] ^= 1;
        if cipher.is_aead() {
            assert_eq!(server.open(&bad, 4, &mut out), Err(DataError::BadTag));
        }
        // Failed packets did not consume the id.
        assert_eq!(server.open(&wire, 4, &mut out).unwrap(), &[0x45; 100][..]);
    }
}

#[test]
fn truncated_and_malformed_packets_give_errors() {
    for (cipher, auth) in ALL {
        let (mut client, mut server) = pair(cipher, auth);
        let mut wire = Vec::new();
        let mut out = Vec::new();
        client
            .seal(&header_v2(0, 0), &[0x45; 64], &mut wire)
            .unwrap();
        for n in 0..wire.len() {
            let r = server.open(&wire[..n], 4, &mut out);
            assert!(r.is_err(), "{cipher} len {n}");
        }
        let min = if cipher.is_aead() {
            4 + 4 + AEAD_TAG_LEN
        } else {
            4 + auth.len() + CBC_IV_LEN + 16
        };
        assert_eq!(
            server.open(&wire[..min - 1], 4, &mut out),
            Err(DataError::Truncated {
                needed: min,
                have: min - 1
            })
        );
        if !cipher.is_aead() {
            assert_eq!(
                server.open(&wire[..wire.len() - 1], 4, &mut out),
                Err(DataError::BadBlockLength(wire.len() - 1 - (min - 16)))
            );
        }
        for hl in [0, 2, 3, 5] {
            assert_eq!(
                server.open(&wire, hl, &mut out),
                Err(DataError::BadHeaderLen(hl))
            );
            assert_eq!(
                client.seal(&wire[..hl], b"x", &mut out),
                Err(DataError::BadHeaderLen(hl))
            );
        }
        // Junk of every length never panics.
        for n in 0..200 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            assert!(server.open(&junk, 4, &mut out).is_err());
            assert!(server.open(&junk, 1, &mut out).is_err());
        }
    }
}

#[test]
fn cbc_with_auth_none_is_refused() {
    let k = test_key2(1);
    assert_eq!(
        DataKey::new(Cipher::Aes256Cbc, Digest::None, &k, Role::Client).err(),
        Some(DataError::UnsupportedCipher)
    );
    // AEAD ignores --auth.
    assert!(DataKey::new(Cipher::Aes256Gcm, Digest::None, &k, Role::Client).is_ok());
}

#[test]
fn cbc_ivs_are_fresh_per_packet_with_and_without_rng() {
    let (mut client, mut server) = pair(Cipher::Aes256Cbc, Digest::Sha256);
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut out = Vec::new();
    client.seal(&header_v2(0, 0), b"same", &mut a).unwrap();
    client.seal(&header_v2(0, 0), b"same", &mut b).unwrap();
    assert_ne!(a[36..52], b[36..52], "derived IVs differ");
    let mut counter = 0u8;
    client.set_rng(Box::new(move |buf: &mut [u8]| {
        counter += 1;
        buf.fill(counter);
    }));
    client.seal(&header_v2(0, 0), b"rng", &mut a).unwrap();
    assert_eq!(a[36..52], [1; 16]);
    client.seal(&header_v2(0, 0), b"rng", &mut a).unwrap();
    assert_eq!(a[36..52], [2; 16]);
    assert_eq!(server.open(&a, 4, &mut out).unwrap(), b"rng");
}

#[test]
fn open_then_unframe_in_place_and_classify() {
    let (mut client, mut server) = pair(Cipher::Aes128Gcm, Digest::Sha1);
    let mut framed = Vec::new();
    let mut wire = Vec::new();
    let mut out = Vec::new();
    Framing::Stub.frame(&PING_MAGIC, &mut framed);
    client.seal(&header_v2(0, 0), &framed, &mut wire).unwrap();
    let pt = server.open(&wire, 4, &mut out).unwrap();
    let payload = Framing::Stub.unframe_in_place(pt).unwrap();
    assert_eq!(classify(payload), Inband::Ping);
}

// ---------------------------------------------------------------------------------------------
// Real captures.

struct Capture {
    name: &'static str,
    pcap: &'static [u8],
    keys: &'static str,
    cipher: Cipher,
    auth: Digest,
    data_packets: usize,
}

macro_rules! capture {
    ($name:literal, $cipher:expr, $auth:expr, $n:expr) => {
        Capture {
            name: $name,
            pcap: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/vectors/",
                $name,
                "/capture.pcap"
            )),
            keys: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/vectors/",
                $name,
                "/data-keys.txt"
            )),
            cipher: $cipher,
            auth: $auth,
            data_packets: $n,
        }
    };
}

fn captures() -> [Capture; 4] {
    [
        capture!(
            "a-tls-crypt-udp-aes256gcm-reneg",
            Cipher::Aes256Gcm,
            Digest::Sha1,
            29
        ),
        capture!(
            "b-tls-auth-sha256-udp-chacha20",
            Cipher::Chacha20Poly1305,
            Digest::Sha256,
            8
        ),
        capture!(
            "c-tls-crypt-v2-cookie-udp-aes128gcm",
            Cipher::Aes128Gcm,
            Digest::Sha1,
            8
        ),
        capture!(
            "f-tls-plain-udp-aes256cbc-sha1-reneg",
            Cipher::Aes256Cbc,
            Digest::Sha1,
            31
        ),
    ]
}

/// `(key_id, key2)` lines of a `data-keys.txt`.
fn parse_keys(text: &str) -> Vec<(u8, Key2)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (id, hex) = l.split_once(' ').unwrap();
            let id: u8 = id.trim_start_matches("key_id-").parse().unwrap();
            (
                id,
                Key2::from_slice(&hex::decode(hex.trim()).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// One UDP payload of a classic Ethernet/IPv4 pcap and whether it went client → server.
struct Datagram<'a> {
    to_server: bool,
    payload: &'a [u8],
}

/// Minimal classic-pcap reader: little-endian microsecond header, Ethernet, IPv4, UDP.
fn udp_datagrams(pcap: &[u8], server_port: u16) -> Vec<Datagram<'_>> {
    assert_eq!(
        pcap[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian classic pcap"
    );
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let frame = &pcap[pos + 16..pos + 16 + incl];
        pos += 16 + incl;
        if frame.len() < 14 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if ip[9] != 17 {
            continue;
        }
        let udp = &ip[ihl..total];
        let dst = u16::from_be_bytes([udp[2], udp[3]]);
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(Datagram {
            to_server: dst == server_port,
            payload: &udp[8..len],
        });
    }
    out
}

fn is_icmp(ip: &[u8]) -> bool {
    match ip.first().map(|b| b >> 4) {
        Some(4) => ip.len() >= 20 && ip[9] == 1,
        Some(6) => ip.len() >= 40 && ip[6] == 58,
        _ => false,
    }
}

#[test]
fn opens_every_data_packet_of_real_captures_and_reseals_byte_for_byte() {
    for cap in captures() {
        let keys = parse_keys(cap.keys);
        // Per key_id: (server key opening C>S, client key opening S>C).
        let mut openers: Vec<(u8, DataKey, DataKey)> = keys
            .iter()
            .map(|(id, k)| {
                (
                    *id,
                    DataKey::new(cap.cipher, cap.auth, k, Role::Server).unwrap(),
                    DataKey::new(cap.cipher, cap.auth, k, Role::Client).unwrap(),
                )
            })
            .collect();
        let mut out = Vec::new();
        let mut resealed = Vec::new();
        let (mut opened, mut icmp, mut pings) = (0, 0, 0);
        for d in udp_datagrams(cap.pcap, 1194) {
            let p = d.payload;
            let (op, key_id) = (p[0] >> 3, p[0] & 7);
            let hl = match op {
                OP_DATA_V1 => 1,
                OP_DATA_V2 => 4,
                _ => continue,
            };
            let (_, server, client) = openers
                .iter_mut()
                .find(|(id, _, _)| *id == key_id)
                .unwrap_or_else(|| panic!("{}: no key for key_id {key_id}", cap.name));
            let (rx, role) = if d.to_server {
                (server, Role::Client)
            } else {
                (client, Role::Server)
            };
            let pt = rx
                .open(p, hl, &mut out)
                .unwrap_or_else(|e| panic!("{}: packet {opened}: {e}", cap.name))
                .to_vec();
            opened += 1;
            match classify(&pt) {
                Inband::Ping => pings += 1,
                Inband::Ip(ip) if is_icmp(ip) => icmp += 1,
                other => panic!("{}: unexpected payload {other:?}", cap.name),
            }
            // Replaying the captured packet is refused.
            assert!(matches!(
                rx.open(p, hl, &mut out),
                Err(DataError::Replay(_))
            ));

            // The sender's key, with the captured packet id (and IV), rebuilds the exact bytes.
            let key2 = &keys.iter().find(|(id, _)| *id == key_id).unwrap().1;
            let mut tx = DataKey::new(cap.cipher, cap.auth, key2, role).unwrap();
            if cap.cipher.is_aead() {
                tx.force_next_packet_id(u32::from_be_bytes(p[hl..hl + 4].try_into().unwrap()));
            } else {
                let iv_at = hl + cap.auth.len();
                let iv: [u8; 16] = p[iv_at..iv_at + 16].try_into().unwrap();
                tx.set_rng(Box::new(move |b: &mut [u8]| b.copy_from_slice(&iv)));
                // The packet id is encrypted: take it from the opened plaintext's position.
                let id = packet_id_of_cbc(cap.cipher, cap.auth, key2, role, p, hl);
                tx.force_next_packet_id(id);
            }
            tx.seal(&p[..hl], &pt, &mut resealed).unwrap();
            assert_eq!(resealed, p, "{}: reseal packet {opened}", cap.name);
        }
        assert_eq!(opened, cap.data_packets, "{}", cap.name);
        assert!(icmp >= 6, "{}: {icmp} ICMP packets", cap.name);
        if cap.name.starts_with('a') || cap.name.starts_with('f') {
            assert!(pings > 0, "{}: pings", cap.name);
        }
    }
}

/// Decrypts a captured CBC packet by hand (HMAC already checked elsewhere) to learn its packet id.
fn packet_id_of_cbc(
    cipher: Cipher,
    auth: Digest,
    key2: &Key2,
    sender: Role,
    packet: &[u8],
    hl: usize,
) -> u32 {
    let receiver = match sender {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut k = DataKey::new(cipher, auth, key2, receiver).unwrap();
    let mut out = Vec::new();
    let pt_len = k.open(packet, hl, &mut out).unwrap().len();
    // open() returned out[4..4 + pt_len]: the id is the first 4 bytes of the buffer.
    assert!(out.len() >= pt_len + 4);
    u32::from_be_bytes(out[..4].try_into().unwrap())
}

#[test]
fn annotated_chacha_packet_b16() {
    // README "Annotated bytes": b- frame 16, C>S, packet id 2, tag 313591a7...
    let cap = &captures()[1];
    let keys = parse_keys(cap.keys);
    let mut server = DataKey::new(cap.cipher, cap.auth, &keys[0].1, Role::Server).unwrap();
    let d = udp_datagrams(cap.pcap, 1194)
        .into_iter()
        .find(|d| d.to_server && d.payload.len() == 108 && d.payload[4..8] == [0, 0, 0, 2])
        .unwrap();
    assert_eq!(d.payload[..4], [0x48, 0, 0, 0]);
    assert_eq!(
        hex::encode(&d.payload[8..24]),
        "313591a7b41721be37a684227458a53a"
    );
    let mut out = Vec::new();
    let pt = server.open(d.payload, 4, &mut out).unwrap();
    assert_eq!(pt.len(), 84);
    assert!(is_icmp(pt));
    // Without the header in the AD (the DATA_V1 rule) the tag does not verify.
    let mut fresh = DataKey::new(cap.cipher, cap.auth, &keys[0].1, Role::Server).unwrap();
    let mut v1 = vec![0x30];
    v1.extend_from_slice(&d.payload[4..]);
    assert_eq!(fresh.open(&v1, 1, &mut out), Err(DataError::BadTag));
}

/// Static-key mode against capture e (OpenVPN 2.6 `secret static.key 0` server and `... 1`
/// client, AES-256-CBC + HMAC-SHA256): every packet opens with the receiver's direction, carries
/// the long packet id, and is a ping, OCC or an IP packet; a replay of it is refused.
#[test]
fn static_key_capture_e_opens_every_packet() {
    use crate::proto::keys::KeyDirection;
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/vectors/e-static-key-udp-aes256cbc-sha256/"
    );
    let text = std::fs::read_to_string(format!("{dir}static.key")).unwrap();
    let pcap = std::fs::read(format!("{dir}capture.pcap")).unwrap();
    let key = Key2::parse_static_key_file(&text).unwrap();
    let mk = |d| DataKey::new_static_key(Cipher::Aes256Cbc, Digest::Sha256, &key, d, 1).unwrap();
    // The server (direction 0) receives what the client sends, and the other way round.
    let mut server = mk(KeyDirection::Normal);
    let mut client = mk(KeyDirection::Inverse);
    let pkts = udp_datagrams(&pcap, 1194);
    assert!(pkts.len() >= 10, "capture e has {} packets", pkts.len());
    let mut out = Vec::new();
    let (mut pings, mut ip) = (0, 0);
    for p in &pkts {
        let rx = if p.to_server {
            &mut server
        } else {
            &mut client
        };
        let plain = rx
            .open(p.payload, 0, &mut out)
            .unwrap_or_else(|e| panic!("packet of {} bytes: {e}", p.payload.len()));
        match crate::proto::data::classify(plain) {
            crate::proto::data::Inband::Ping => pings += 1,
            crate::proto::data::Inband::Ip(_) => ip += 1,
            crate::proto::data::Inband::Occ { .. } => {}
        }
        let rx = if p.to_server {
            &mut server
        } else {
            &mut client
        };
        assert!(rx.open(p.payload, 0, &mut out).is_err(), "replay accepted");
    }
    assert!(pings > 0 && ip > 0, "pings {pings}, IP packets {ip}");
    // And what we seal opens on the other side (no header, 8-byte packet id).
    let (mut server, mut client) = (mk(KeyDirection::Normal), mk(KeyDirection::Inverse));
    let mut sealed = Vec::new();
    client.seal(&[], b"\x45hello", &mut sealed).unwrap();
    assert_eq!((sealed.len() - 32 - 16) % 16, 0);
    assert_eq!(server.open(&sealed, 0, &mut out).unwrap(), b"\x45hello");
    assert!(client.seal(&[0x30], b"x", &mut sealed).is_err());
    assert!(
        DataKey::new_static_key(
            Cipher::Aes256Gcm,
            Digest::Sha256,
            &key,
            KeyDirection::Normal,
            1
        )
        .is_err()
    );
}

/// Every CBC key size with every `auth` digest: round trip both ways, the HMAC length on the
/// wire, and a flipped bit anywhere in the authenticated part is refused.
#[test]
fn cbc_every_key_size_with_every_digest() {
    let digests = [
        Digest::Sha1,
        Digest::Sha224,
        Digest::Sha256,
        Digest::Sha384,
        Digest::Sha512,
    ];
    for cipher in [Cipher::Aes128Cbc, Cipher::Aes192Cbc, Cipher::Aes256Cbc] {
        for auth in digests {
            let (mut client, mut server) = pair(cipher, auth);
            let mut wire = Vec::new();
            let mut out = Vec::new();
            let pt: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
            let h = header_v2(0, 5);
            client.seal(&h, &pt, &mut wire).unwrap();
            // header || HMAC || IV || E(packet_id || payload || pad)
            let ct_len = (4 + pt.len()) / 16 * 16 + 16;
            assert_eq!(
                wire.len(),
                4 + auth.len() + 16 + ct_len,
                "{cipher} {auth:?}"
            );
            for i in [4, 4 + auth.len(), wire.len() - 1] {
                let mut bad = wire.clone();
                bad[i] ^= 1;
                assert_eq!(
                    server.open(&bad, 4, &mut out).err(),
                    Some(DataError::BadHmac),
                    "{cipher} {auth:?} byte {i}"
                );
            }
            assert_eq!(server.open(&wire, 4, &mut out).unwrap(), &pt[..]);
            server.seal(&h, &pt[..3], &mut wire).unwrap();
            assert_eq!(client.open(&wire, 4, &mut out).unwrap(), &pt[..3]);
            // Another digest with the same keys cannot open it.
            let other = if auth == Digest::Sha1 {
                Digest::Sha256
            } else {
                Digest::Sha1
            };
            let (mut c2, _) = pair(cipher, other);
            assert!(c2.open(&wire, 4, &mut out).is_err());
        }
    }
}
