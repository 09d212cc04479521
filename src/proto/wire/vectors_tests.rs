//! Tests against the real OpenVPN 2.6 captures in `tests/data/vectors/` (copied from the shared
//! vectors): annotated packets of the README, then every key_id 0 control packet of captures
//! a, b, c, d and f (and the key_id 1 dynamic tls-crypt packets of a and f), which must unwrap,
//! parse, re-emit and re-wrap byte-identically.

use super::testutil::{Pkt, capture, h, ta_key, tc2_client_key, tls_crypt_key2};
use super::*;
use crate::proto::keys::{Digest, KeyDirection};
use crate::proto::replay::ReplayError;

const A: &str = "a-tls-crypt-udp-aes256gcm-reneg";
const B: &str = "b-tls-auth-sha256-udp-chacha20";
const C: &str = "c-tls-crypt-v2-cookie-udp-aes128gcm";
const D: &str = "d-tls-crypt-tcp-aes256gcm";
const F: &str = "f-tls-plain-udp-aes256cbc-sha1-reneg";

fn sid(s: &str) -> SessionId {
    h(s).try_into().unwrap()
}

#[test]
fn b_frame1_tls_auth_sha256_client_reset() {
    let wire = h("38 2b9acaf358d8bcf0
        e1abdf07f07d84d180f4ec63e6c205ebf1f825ff1bddfc3989e49080c48076f9
        00000001 6b02438a 00 00000000");
    assert_eq!(capture(B)[0].payload, wire);
    let plain = h("38 2b9acaf358d8bcf0 00 00000000");
    let ta = ta_key(B);

    // The client (key-direction 1) produces it at its first wrap.
    let mut client = ControlWrap::tls_auth(&ta, KeyDirection::Inverse, Digest::Sha256);
    assert_eq!(client.overhead(), 40);
    let mut out = Vec::new();
    client.wrap(&plain, 0x6b02_438a, &mut out).unwrap();
    assert_eq!(out, wire);

    // The server (key-direction 0) accepts it once.
    let mut server = ControlWrap::tls_auth(&ta, KeyDirection::Normal, Digest::Sha256);
    let mut got = Vec::new();
    server.unwrap(&wire, &mut got).unwrap();
    assert_eq!(got, plain);
    let p = ControlPacket::parse(&got).unwrap();
    assert_eq!(p.opcode, Opcode::HardResetClientV2);
    assert_eq!(p.session_id, sid("2b9acaf358d8bcf0"));
    assert_eq!(
        server.unwrap(&wire, &mut got),
        Err(WrapError::Replay(ReplayError::Replayed(1)))
    );
    assert_eq!(got, plain, "nothing appended on error");

    // Wrong key slot, flipped bits, truncation.
    let mut wrong = ControlWrap::tls_auth(&ta, KeyDirection::Inverse, Digest::Sha256);
    assert_eq!(
        wrong.unwrap(&wire, &mut Vec::new()),
        Err(WrapError::BadHmac)
    );
    let mut server = ControlWrap::tls_auth(&ta, KeyDirection::Normal, Digest::Sha256);
    for i in 0..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        assert!(server.unwrap(&bad, &mut Vec::new()).is_err(), "byte {i}");
    }
    assert!(matches!(
        server.unwrap(&wire[..48], &mut Vec::new()),
        Err(WrapError::Wire(WireError::Truncated {
            needed: 49,
            have: 48
        }))
    ));
    server.unwrap(&wire, &mut Vec::new()).unwrap();
}

#[test]
fn a_frame1_tls_crypt_client_reset() {
    let wire = h("38 6cdae5fff39507ac 00000001 6b024374
        cfa209729d25b3227a35f2a402446f9e1c42f412c756075bce3e73d26010ded3
        eab137f3e4");
    assert_eq!(capture(A)[0].payload, wire);
    let plain = h("38 6cdae5fff39507ac 00 00000000");
    let ta = ta_key(A);

    let mut client = ControlWrap::tls_crypt(&ta, Role::Client);
    assert_eq!(client.overhead(), 40);
    assert_eq!(client.wkc_len(), 0);
    let mut out = Vec::new();
    client.wrap(&plain, 0x6b02_4374, &mut out).unwrap();
    assert_eq!(out, wire);
    // The second wrap uses the next id and the same time.
    let mut out2 = Vec::new();
    client.wrap(&plain, 0x7000_0000, &mut out2).unwrap();
    assert_eq!(&out2[9..17], &h("00000002 6b024374")[..]);

    let mut server = ControlWrap::tls_crypt(&ta, Role::Server);
    let mut got = Vec::new();
    server.unwrap(&wire, &mut got).unwrap();
    assert_eq!(got, plain);
    assert_eq!(
        server.unwrap(&wire, &mut got),
        Err(WrapError::Replay(ReplayError::Replayed(1)))
    );
    // Our own role's receive key is the other slot.
    assert_eq!(
        ControlWrap::tls_crypt(&ta, Role::Client).unwrap(&wire, &mut Vec::new()),
        Err(WrapError::BadTag)
    );
    let mut server = ControlWrap::tls_crypt(&ta, Role::Server);
    for i in 0..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x80;
        assert!(server.unwrap(&bad, &mut Vec::new()).is_err(), "byte {i}");
    }
    server.unwrap(&wire, &mut Vec::new()).unwrap();

    // A fresh wrapper (new key_state / dynamic tls-crypt) restarts at id 1 with a new time.
    let mut dynamic = ControlWrap::dynamic_tls_crypt(ta.clone(), Role::Client);
    let mut out3 = Vec::new();
    dynamic.wrap(&plain, 0x6b02_5000, &mut out3).unwrap();
    assert_eq!(&out3[9..17], &h("00000001 6b025000")[..]);
}

#[test]
fn c_tls_crypt_v2_reset_and_wkc() {
    let pkts = capture(C);
    let (kc, wkc) = tc2_client_key(C);
    assert_eq!(wkc.len(), 299);

    // Frame 1: P_CONTROL_HARD_RESET_CLIENT_V3 with the WKc in clear; our client wrapper makes
    // exactly these bytes at its first wrap (replay id 0x0f000001).
    let f1 = &pkts[0].payload;
    let (wrapped, tail) = split_wkc(f1).unwrap();
    assert_eq!(tail, &wkc[..]);
    let mut server = ControlWrap::tls_crypt(&kc, Role::Server);
    let mut plain = Vec::new();
    server.unwrap(wrapped, &mut plain).unwrap();
    let p = ControlPacket::parse(&plain).unwrap();
    assert_eq!(p.opcode, Opcode::HardResetClientV3);
    let time = u32::from_be_bytes(f1[13..17].try_into().unwrap());
    let mut client = ControlWrap::tls_crypt_v2_client(&kc, wkc.clone()).unwrap();
    assert_eq!(client.wkc_len(), 299);
    assert_eq!(client.overhead(), 40);
    let mut out = Vec::new();
    client.wrap(&plain, time, &mut out).unwrap();
    assert_eq!(&out, f1);
    assert_eq!(&out[9..13], &[0x0f, 0, 0, 1]);

    // Frame 2: the server reset, decrypting to the TLV "resend WKc".
    let f2 = &pkts[1].payload;
    assert_eq!(f2.len(), 72);
    let mut got = Vec::new();
    client.unwrap(f2, &mut got).unwrap();
    assert_eq!(
        got,
        h("40 a5ee2bfcb6fea8ec 01 00000000 b67bf1676c4e8207 00000000 0001 0002 0001")
    );
    let p = ControlPacket::parse(&got).unwrap();
    assert_eq!(p.opcode, Opcode::HardResetServerV2);
    assert_eq!(p.acks, vec![0]);
    assert_eq!(p.ack_peer_session_id, Some(sid("b67bf1676c4e8207")));
    assert_eq!(p.payload, &h("0001 0002 0001")[..]);

    // No WKc on other opcodes.
    let ack = ControlPacket {
        opcode: Opcode::AckV1,
        key_id: 0,
        session_id: [1; 8],
        acks: vec![0],
        ack_peer_session_id: Some([2; 8]),
        message_id: None,
        payload: &[],
    };
    let mut buf = Vec::new();
    ack.emit(&mut buf);
    let mut w = Vec::new();
    client.wrap(&buf, time, &mut w).unwrap();
    assert_eq!(w.len(), buf.len() + 40);

    assert!(matches!(
        ControlWrap::tls_crypt_v2_client(&kc, vec![0; 1025]),
        Err(WrapError::WkcTooLong {
            len: 1025,
            max: 1024
        })
    ));
}

/// Wraps for both ends of a capture and the offset of the replay id in wrapped packets.
struct Ends {
    client: ControlWrap,
    server: ControlWrap,
    replay_off: Option<usize>,
    wkc: Option<Vec<u8>>,
}

/// Per-direction bookkeeping.
#[derive(Default)]
struct Dir {
    sid: Option<SessionId>,
    next_msg: u32,
    count: usize,
}

/// Unwraps, parses, re-emits and re-wraps every control packet with `key_id` of `pkts` (in
/// capture order); returns (client-to-server, server-to-client) counts.
fn check_control(pkts: &[(bool, Vec<u8>)], key_id: u8, mut e: Ends) -> (usize, usize) {
    let mut c2s = Dir::default();
    let mut s2c = Dir::default();
    for (i, (to_server, datagram)) in pkts.iter().enumerate() {
        let (op, kid) = split_first_byte(datagram[0]).unwrap();
        if op.is_data() || kid != key_id {
            continue;
        }
        let ctx = format!("packet #{i} {op:?} c2s={to_server}");
        let (sender, receiver, me, peer) = if *to_server {
            (&mut e.client, &mut e.server, &mut c2s, &mut s2c)
        } else {
            (&mut e.server, &mut e.client, &mut s2c, &mut c2s)
        };
        let mut wire = &datagram[..];
        if *to_server && op.carries_wkc() {
            let (w, tail) = split_wkc(datagram).unwrap();
            assert_eq!(Some(tail), e.wkc.as_deref(), "{ctx}");
            wire = w;
        }
        let mut plain = Vec::new();
        receiver
            .unwrap(wire, &mut plain)
            .unwrap_or_else(|err| panic!("{ctx}: {err}"));
        let p = ControlPacket::parse(&plain).unwrap_or_else(|err| panic!("{ctx}: {err}"));
        assert_eq!(p.key_id, key_id);
        let mut again = Vec::new();
        p.emit(&mut again);
        assert_eq!(again, plain, "{ctx}: re-emit");
        assert_eq!(p.emitted_len(), plain.len());

        // Session ids and message ids as the reliability layer expects them.
        assert_eq!(*me.sid.get_or_insert(p.session_id), p.session_id, "{ctx}");
        if !p.acks.is_empty() {
            assert_eq!(p.ack_peer_session_id, peer.sid, "{ctx}: ack peer sid");
        }
        assert!(
            p.acks.len() <= if op == Opcode::AckV1 { 8 } else { 4 },
            "{ctx}"
        );
        if let Some(id) = p.message_id {
            assert_eq!(id, me.next_msg, "{ctx}: msg-id sequence");
            me.next_msg += 1;
        }
        me.count += 1;

        // Re-wrap with the captured replay id: byte-identical (WKc included).
        match e.replay_off {
            None => assert_eq!(&plain, datagram, "{ctx}"),
            Some(off) => {
                let pid = u32::from_be_bytes(datagram[off..off + 4].try_into().unwrap());
                let time = u32::from_be_bytes(datagram[off + 4..off + 8].try_into().unwrap());
                sender.set_next_send_pid(pid, time);
            }
        }
        let mut rewrapped = Vec::new();
        sender.wrap(&plain, 0, &mut rewrapped).unwrap();
        assert_eq!(&rewrapped, datagram, "{ctx}: re-wrap");
    }
    (c2s.count, s2c.count)
}

fn udp(pkts: Vec<Pkt>) -> Vec<(bool, Vec<u8>)> {
    pkts.into_iter()
        .filter(|p| !p.tcp && !p.payload.is_empty())
        .map(|p| (p.c2s(), p.payload))
        .collect()
}

fn tls_crypt_ends(key: &crate::proto::keys::Key2) -> Ends {
    Ends {
        client: ControlWrap::tls_crypt(key, Role::Client),
        server: ControlWrap::tls_crypt(key, Role::Server),
        replay_off: Some(9),
        wkc: None,
    }
}

#[test]
fn a_every_control_packet() {
    let pkts = udp(capture(A));
    let counts = check_control(&pkts, 0, tls_crypt_ends(&ta_key(A)));
    // Key_id 1: dynamic tls-crypt (keys as printed by verify_vectors.py --keys).
    let dynamic = tls_crypt_key2(
        "75b8327e75fdc61dce0caa0766f728310103b8abe7966c6291405e270986ce15",
        "6ba9e07d23f2e27d2a44bc5ac6f658126d92b9c48e78591250058ceb7d2e7573",
        "1ac19787a826cebb56bf8c1fe9b10adbc58b47b4ee4b347540db6e6fc35c846b",
        "dad7f8deda8d90312ea03884299bf38c629d0c6befde67798d0229f870817782",
    );
    let counts1 = check_control(&pkts, 1, tls_crypt_ends(&dynamic));
    assert_eq!(counts.0 + counts.1 + counts1.0 + counts1.1, 28);
    assert!(counts1.0 >= 2 && counts1.1 >= 2, "{counts1:?}");
}

#[test]
fn b_every_control_packet() {
    let ta = ta_key(B);
    let ends = Ends {
        client: ControlWrap::tls_auth(&ta, KeyDirection::Inverse, Digest::Sha256),
        server: ControlWrap::tls_auth(&ta, KeyDirection::Normal, Digest::Sha256),
        replay_off: Some(9 + 32),
        wkc: None,
    };
    let (c, s) = check_control(&udp(capture(B)), 0, ends);
    assert_eq!(c + s, 16);
}

#[test]
fn c_every_control_packet() {
    let (kc, wkc) = tc2_client_key(C);
    let ends = Ends {
        client: ControlWrap::tls_crypt_v2_client(&kc, wkc.clone()).unwrap(),
        server: ControlWrap::tls_crypt(&kc, Role::Server),
        replay_off: Some(9),
        wkc: Some(wkc),
    };
    let (c, s) = check_control(&udp(capture(C)), 0, ends);
    assert_eq!(c + s, 16);
}

#[test]
fn f_every_control_packet() {
    let pkts = udp(capture(F));
    let ends = Ends {
        client: ControlWrap::none(),
        server: ControlWrap::none(),
        replay_off: None,
        wkc: None,
    };
    let counts = check_control(&pkts, 0, ends);
    let dynamic = tls_crypt_key2(
        "3b6fbc62abf5cbc5460d537a3d959c29cecffca33d44dbce1872dc4c2a0ded9a",
        "0588a6bf6ecd7bb7f8676fbf46b0e335b0501af53a5e6a3a7ca5a833bbf8f44a",
        "ad5560a9d5fa0a9bd0a28441f78a6e1f517f713c1fce00fd787d74b792aa5f3c",
        "e67e66bfee6c916fbe19ac5fd04492378dfc7f852fa09e5dcf67ef366973e0f8",
    );
    let counts1 = check_control(&pkts, 1, tls_crypt_ends(&dynamic));
    assert_eq!(counts.0 + counts.1 + counts1.0 + counts1.1, 28);
    // f1 and f2 are the annotated plain resets.
    assert_eq!(pkts[0].1, h("38 98bb9fda7596b995 00 00000000"));
    assert_eq!(
        pkts[1].1,
        h("40 3cee46bcb717295c 01 00000000 98bb9fda7596b995 00000000")
    );
}

#[test]
fn d_tcp_stream_deframes_and_unwraps() {
    // Segments in capture order, each pushed into its direction's deframer, so packets come out
    // in (per-direction exact, cross-direction approximate) capture order.
    let mut deframers = [TcpDeframer::new(), TcpDeframer::new()];
    let mut stream_len = [0usize; 2];
    let mut pkts = Vec::new();
    let mut counts = [0usize; 2];
    for seg in capture(D).into_iter().filter(|p| p.tcp) {
        let dir = usize::from(!seg.c2s());
        stream_len[dir] += seg.payload.len();
        // Feed in awkward chunks to exercise reassembly.
        for chunk in seg.payload.chunks(13) {
            deframers[dir].push(chunk);
            while let Some(p) = deframers[dir].next_packet() {
                let p = p.unwrap();
                let mut reframed = Vec::new();
                frame(&p, &mut reframed).unwrap();
                assert_eq!(
                    usize::from(u16::from_be_bytes([reframed[0], reframed[1]])),
                    p.len()
                );
                pkts.push((dir == 0, p));
                counts[dir] += 1;
            }
        }
    }
    assert_eq!(stream_len, [2746, 2671]);
    assert_eq!(counts, [12, 9]);
    assert!(
        deframers
            .iter()
            .all(|d| d.buffered() == 0 && !d.is_poisoned())
    );
    let (c, s) = check_control(&pkts, 0, tls_crypt_ends(&ta_key(D)));
    assert_eq!(c + s, 14);
}
