//! The multi-client server in the simulation ([`crate::proto::sim`]): stateless cookie
//! handshake, many peers, float, rekey, client-to-client, source checks, limits.

#![allow(clippy::disallowed_methods)] // the virtual clock starts from one real Instant

use std::time::Duration;

use super::*;
use crate::proto::client::Event;
use crate::proto::keys::Cipher;
use crate::proto::sim::*;
use crate::proto::wire::{ControlPacket, ControlWrap, Opcode, Role};

fn pair(seed: u64) -> Pair {
    let pki = pki(true);
    let (c, s) = configs(&pki, Wrap::Crypt, seed, Cipher::Aes256Gcm);
    Pair::new(c, s, Impair::default(), seed)
}

#[test]
fn a_reset_gets_a_cookie_reply_and_no_state() {
    let mut p = pair(1);
    let key = wrap_key(1);
    let mut client_wrap = ControlWrap::tls_crypt(&key, Role::Client);
    let reset = ControlPacket {
        opcode: Opcode::HardResetClientV2,
        key_id: 0,
        session_id: [9; 8],
        acks: vec![],
        ack_peer_session_id: None,
        message_id: Some(0),
        payload: &[],
    };
    let mut plain = Vec::new();
    reset.emit(&mut plain);
    let mut wire = Vec::new();
    client_wrap.wrap(&plain, 1_700_000_000, &mut wire).unwrap();
    let now = p.now;
    let mut out = Vec::new();
    for _ in 0..3 {
        let r = p
            .server
            .handle_datagram(now, client_link(5), &wire, &mut out);
        assert_eq!(r, Received::Nothing);
    }
    assert!(
        p.server.peer_ids().is_empty(),
        "state kept before the cookie came back"
    );
    let mut replies = Vec::new();
    while let Some(link) = p.server.poll_transmit(now, &mut out) {
        assert_eq!(link, client_link(5));
        replies.push(out.clone());
    }
    assert_eq!(replies.len(), 3);
    // The reply is a server reset acking our message 0, with a cookie session id that does
    // not depend on how often we asked.
    let mut un = Vec::new();
    client_wrap.unwrap(&replies[0], &mut un).unwrap();
    let pkt = ControlPacket::parse(&un).unwrap();
    assert_eq!(pkt.opcode, Opcode::HardResetServerV2);
    assert_eq!(pkt.acks, vec![0]);
    assert_eq!(pkt.ack_peer_session_id, Some([9; 8]));
    let sid = pkt.session_id;
    let mut un2 = Vec::new();
    ControlWrap::tls_crypt(&key, Role::Client)
        .unwrap(&replies[2], &mut un2)
        .unwrap();
    assert_eq!(ControlPacket::parse(&un2).unwrap().session_id, sid);
    // An ack echoing a wrong cookie creates nothing.
    let ack = ControlPacket {
        opcode: Opcode::AckV1,
        key_id: 0,
        session_id: [9; 8],
        acks: vec![0],
        ack_peer_session_id: Some([1; 8]),
        message_id: None,
        payload: &[],
    };
    plain.clear();
    ack.emit(&mut plain);
    wire.clear();
    client_wrap.wrap(&plain, 1_700_000_000, &mut wire).unwrap();
    p.server
        .handle_datagram(now, client_link(5), &wire, &mut out);
    assert!(p.server.peer_ids().is_empty());
    assert_eq!(p.server.stats().bad_cookie, 1);
    // The right cookie from another address creates nothing either.
    let ack = ControlPacket {
        ack_peer_session_id: Some(sid),
        ..ack
    };
    plain.clear();
    ack.emit(&mut plain);
    wire.clear();
    client_wrap.wrap(&plain, 1_700_000_000, &mut wire).unwrap();
    p.server
        .handle_datagram(now, client_link(6), &wire, &mut out);
    assert!(p.server.peer_ids().is_empty());
    // From the right address it starts a session.
    wire.clear();
    client_wrap.wrap(&plain, 1_700_000_000, &mut wire).unwrap();
    p.server
        .handle_datagram(now, client_link(5), &wire, &mut out);
    assert_eq!(p.server.peer_ids().len(), 1);
}

#[test]
fn initial_replies_are_rate_limited() {
    let pki = pki(true);
    let (c, mut s) = configs(&pki, Wrap::None, 2, Cipher::Aes256Gcm);
    s.server.connect_freq_initial = (5, Duration::from_secs(10));
    let mut p = Pair::new(c, s, Impair::default(), 2);
    let now = p.now;
    let mut out = Vec::new();
    for i in 0..20u8 {
        let reset = ControlPacket {
            opcode: Opcode::HardResetClientV2,
            key_id: 0,
            session_id: [i; 8],
            acks: vec![],
            ack_peer_session_id: None,
            message_id: Some(0),
            payload: &[],
        };
        let mut plain = Vec::new();
        reset.emit(&mut plain);
        p.server
            .handle_datagram(now, client_link(100 + u16::from(i)), &plain, &mut out);
    }
    let mut n = 0;
    while p.server.poll_transmit(now, &mut out).is_some() {
        n += 1;
    }
    assert_eq!(n, 5);
    assert_eq!(p.server.stats().rate_limited, 15);
}

#[test]
fn many_clients_connect_and_talk_to_each_other() {
    let pki = pki(true);
    let (c, mut s) = configs(&pki, Wrap::Auth, 3, Cipher::Aes128Gcm);
    s.server.client_to_client = true;
    let mut p = Pair::new(
        c.clone(),
        s,
        Impair {
            loss: 0.05,
            dup: 0.02,
            reorder: 0.05,
        },
        3,
    );
    for _ in 0..15 {
        p.add_client(c.clone());
    }
    assert!(
        p.drive_until(Duration::from_secs(60), |p| {
            p.server.connected_count() == 16
                && p.client.is_connected()
                && p.extra.iter().all(|x| x.client.is_connected())
        }),
        "connected: {} of 16",
        p.server.connected_count()
    );
    // Every session has its own peer-id and address.
    let mut addrs: Vec<_> = p
        .server
        .peer_ids()
        .iter()
        .map(|id| p.server.peer_status(*id).unwrap().v4.unwrap())
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 16);
    // Client 0 (198.19.0.2) sends to every other client; client-to-client delivers inside the
    // server, nothing goes to the device.
    p.impair = Impair::default();
    let now = p.now;
    for x in 0..15u32 {
        let dst = p.server.peer_status(x + 1).unwrap().v4.unwrap().octets();
        let mut pkt = ip_packet_between([198, 19, 0, 2], dst, 1000 + x);
        let mut out = Vec::new();
        assert!(p.client.encapsulate(now, &mut pkt, &mut out));
        p.c2s.push_back((now, (p.link, out)));
    }
    p.drive_until(Duration::from_secs(2), |p| {
        p.extra.iter().all(|x| !x.got.is_empty())
    });
    assert!(
        p.server_got.is_empty(),
        "client-to-client traffic reached the device"
    );
    for x in &p.extra {
        assert_eq!(x.got.len(), 1);
        let tag = u32::from_be_bytes(x.got[0][20..24].try_into().unwrap());
        assert!((1000..1015).contains(&tag));
    }
}

#[test]
fn spoofed_source_addresses_are_dropped() {
    let mut p = pair(4);
    assert!(p.drive_until(Duration::from_secs(10), Pair::connected));
    let now = p.now;
    let mut pkt = ip_packet_between([198, 19, 0, 77], [198, 19, 0, 1], 5);
    let mut out = Vec::new();
    assert!(p.client.encapsulate(now, &mut pkt, &mut out));
    p.c2s.push_back((now, (p.link, out)));
    p.exchange(6);
    p.drive_until(Duration::from_secs(1), |p| !p.server_got.is_empty());
    p.drive_until(Duration::from_millis(100), |_| false);
    assert_eq!(p.server_got, vec![ip_packet(6, 0x0a)]);
    assert_eq!(p.server.stats().bad_source, 1);
}

#[test]
fn a_client_floats_to_a_new_address() {
    let mut p = pair(5);
    assert!(p.drive_until(Duration::from_secs(10), Pair::connected));
    let id = p.peer_id();
    // NAT rebinding: the client's packets now come from another port.
    p.link = client_link(999);
    p.exchange(1);
    p.drive_until(Duration::from_secs(1), |p| !p.server_got.is_empty());
    assert_eq!(p.server.peer_status(id).unwrap().link, client_link(999));
    assert!(
        p.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Floated { .. }))
    );
    // Replies go to the new address.
    p.client_got.clear();
    p.exchange(2);
    p.drive_until(Duration::from_secs(1), |p| p.client_got.len() >= 2);
    assert!(p.client_got.contains(&ip_packet(2, 0x0b)));
    // A packet with a forged peer-id from yet another address does not move the session.
    let now = p.now;
    let mut out = Vec::new();
    let mut junk = vec![0x48, 0, 0, id as u8];
    junk.extend_from_slice(&[0u8; 60]);
    p.server
        .handle_datagram(now, client_link(555), &junk, &mut out);
    assert_eq!(p.server.peer_status(id).unwrap().link, client_link(999));
}

#[test]
fn server_rekeys_many_sessions_and_traffic_continues() {
    let pki = pki(true);
    let (c, mut s) = configs(&pki, Wrap::Crypt, 6, Cipher::Chacha20Poly1305);
    s.server.reneg_sec = Some(Duration::from_secs(5));
    let mut p = Pair::new(c.clone(), s, Impair::default(), 6);
    for _ in 0..4 {
        p.add_client(c.clone());
    }
    assert!(p.drive_until(Duration::from_secs(20), |p| p.server.connected_count() == 5));
    p.drive_until(Duration::from_secs(16), |_| false);
    let renegs = p
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Renegotiated { .. }))
        .count();
    assert!(
        renegs >= 10,
        "only {renegs} renegotiations for 5 sessions in 16 s"
    );
    assert_eq!(p.server.connected_count(), 5);
    p.exchange(42);
    p.drive_until(Duration::from_secs(1), |p| {
        p.server_got.contains(&ip_packet(42, 0x0a)) && p.client_got.contains(&ip_packet(42, 0x0b))
    });
    assert!(p.client_got.contains(&ip_packet(42, 0x0b)));
    assert!(p.server_got.contains(&ip_packet(42, 0x0a)));
}

#[test]
fn max_clients_is_enforced_and_a_killed_client_frees_its_slot() {
    let pki = pki(true);
    let (c, mut s) = configs(&pki, Wrap::None, 7, Cipher::Aes256Gcm);
    s.server.max_clients = 2;
    let mut p = Pair::new(c.clone(), s, Impair::default(), 7);
    p.add_client(c.clone());
    p.add_client(c.clone());
    p.drive_until(Duration::from_secs(10), |p| p.server.connected_count() == 2);
    p.drive_until(Duration::from_secs(3), |_| false);
    assert_eq!(p.server.connected_count(), 2);
    assert!(p.server.stats().over_max_clients > 0);
    let first = p.server.peer_ids()[0];
    assert!(p.server.kill(p.now, first, "RESTART"));
    let killed_restart = |p: &Pair| {
        p.client_events
            .iter()
            .chain(p.extra.iter().flat_map(|x| x.events.iter()))
            .any(|e| {
                matches!(
                    e,
                    Event::Closed(crate::proto::client::ClientError::ServerRestart(_))
                )
            })
    };
    assert!(p.drive_until(Duration::from_secs(5), killed_restart));
    // The waiting client gets in now (it keeps retrying its reset).
    assert!(p.drive_until(Duration::from_secs(20), |p| {
        p.server.connected_count() == 2
            && p.extra.iter().filter(|x| x.client.is_connected()).count()
                + usize::from(p.client.is_connected())
                >= 2
    }));
}

#[test]
fn wrong_credentials_get_auth_failed_and_free_the_session() {
    let pki = pki(true);
    let (mut c, s) = configs(&pki, Wrap::Crypt, 8, Cipher::Aes256Gcm);
    c.credentials = Some(crate::proto::client::Credentials {
        username: zeroize::Zeroizing::new("mallory".into()),
        password: zeroize::Zeroizing::new("x".into()),
    });
    let mut p = Pair::new(c, s, Impair::default(), 8);
    p.drive_until(Duration::from_secs(10), |p| p.client.is_closed());
    p.drive_until(Duration::from_secs(5), |p| p.server.peer_ids().is_empty());
    assert!(
        p.server.peer_ids().is_empty(),
        "the refused session lingers"
    );
    assert!(p.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            was_connected: false,
            ..
        }
    )));
}
