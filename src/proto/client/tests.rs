//! Client state machine against the simulated server ([`crate::proto::sim`]).

#![allow(clippy::disallowed_methods)] // the virtual clock starts from one real Instant

use std::time::Duration;

use zeroize::Zeroizing;

use super::*;
use crate::config::TlsSettings;
use crate::proto::handshake::peer_info::PeerInfo;
use crate::proto::sim::*;
use crate::proto::tls::{ClientTlsOptions, client_config};

#[test]
fn clean_handshake_and_traffic_each_wrap_and_cipher() {
    let pki = pki(true);
    for (i, (wrap, cipher)) in [
        (Wrap::None, Cipher::Aes256Gcm),
        (Wrap::Auth, Cipher::Aes128Gcm),
        (Wrap::Crypt, Cipher::Chacha20Poly1305),
        (Wrap::Crypt, Cipher::Aes256Cbc),
    ]
    .into_iter()
    .enumerate()
    {
        let (c, s) = configs(&pki, wrap, i as u64, cipher);
        let mut pair = Pair::new(c, s, Impair::default(), 1);
        assert!(
            pair.drive_until(Duration::from_secs(10), Pair::connected),
            "case {i} did not connect"
        );
        assert_eq!(pair.client.cipher(), Some(cipher));
        let st = pair.server.peer_status(pair.peer_id()).unwrap();
        assert_eq!(st.username.as_deref(), Some("alice"));
        let pushed = pair.client_events.iter().find_map(|e| match e {
            Event::Connected(p) => Some(p.clone()),
            _ => None,
        });
        assert_eq!(pushed.unwrap().peer_id, Some(pair.peer_id()));
        for t in 0..5 {
            pair.exchange(t);
        }
        pair.drive_until(Duration::from_secs(1), |p| {
            p.server_got.len() == 5 && p.client_got.len() == 5
        });
        assert_eq!(pair.server_got.len(), 5, "case {i}");
        assert_eq!(pair.client_got[4], ip_packet(4, 0x0b));
    }
}

#[test]
fn handshake_survives_loss_reordering_and_duplication() {
    let pki = pki(true);
    let impair = Impair {
        loss: 0.3,
        dup: 0.1,
        reorder: 0.3,
    };
    let mut times = Vec::new();
    for seed in 0..12u64 {
        let wrap = [Wrap::None, Wrap::Auth, Wrap::Crypt][seed as usize % 3];
        let (c, s) = configs(&pki, wrap, seed, Cipher::Aes256Gcm);
        let mut pair = Pair::new(c, s, impair, seed);
        let start = pair.now;
        assert!(
            pair.drive_until(Duration::from_secs(59), Pair::connected),
            "seed {seed}: no connection under 30% loss; client events {:?}",
            pair.client_events
        );
        times.push(pair.now - start);
    }
    assert!(
        times.iter().any(|t| *t > Duration::from_secs(1)),
        "loss had no effect: {times:?}"
    );
}

#[test]
fn renegotiation_under_traffic_loses_nothing() {
    let pki = pki(true);
    let (mut c, s) = configs(&pki, Wrap::Crypt, 3, Cipher::Aes256Gcm);
    c.reneg_sec = Some(Duration::from_secs(5));
    let mut pair = Pair::new(c, s, Impair::default(), 3);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
    let total = 2000u32;
    for t in 0..total {
        pair.exchange(t);
        let until = pair.now + Duration::from_millis(10);
        while pair.now < until {
            if !pair.step() {
                break;
            }
        }
        pair.now = pair.now.max(until);
    }
    pair.drive_until(Duration::from_secs(2), |p| {
        p.server_got.len() as u32 == total
    });
    let renegs = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, Event::Renegotiated { .. }))
        .count();
    assert!(
        renegs >= 3,
        "only {renegs} renegotiations in 20 s with reneg-sec 5"
    );
    let got: Vec<u32> = pair
        .server_got
        .iter()
        .map(|p| u32::from_be_bytes(p[20..24].try_into().unwrap()))
        .collect();
    let missing: Vec<u32> = (0..total).filter(|t| !got.contains(t)).collect();
    assert_eq!(
        pair.server_got.len() as u32,
        total,
        "client→server packets lost across renegotiations: server dropped {:?}, missing {:?}",
        pair.server.stats(),
        &missing[..missing.len().min(40)]
    );
    assert_eq!(
        pair.client_got.len() as u32,
        total,
        "server→client packets lost across renegotiations"
    );
    assert!(pair.client.is_connected());
}

#[test]
fn renegotiation_started_by_the_server() {
    let pki = pki(true);
    let (c, mut s) = configs(&pki, Wrap::Auth, 4, Cipher::Chacha20Poly1305);
    s.server.reneg_sec = Some(Duration::from_secs(4));
    let mut pair = Pair::new(
        c,
        s,
        Impair {
            loss: 0.1,
            dup: 0.0,
            reorder: 0.1,
        },
        4,
    );
    assert!(pair.drive_until(Duration::from_secs(30), Pair::connected));
    pair.drive_until(Duration::from_secs(20), |p| {
        p.client_events
            .iter()
            .filter(|e| matches!(e, Event::Renegotiated { .. }))
            .count()
            >= 2
    });
    assert!(pair.client.is_connected());
    pair.client_got.clear();
    pair.impair = Impair::default();
    pair.exchange(99);
    pair.drive_until(Duration::from_secs(3), |p| !p.client_got.is_empty());
    assert_eq!(pair.client_got.last(), Some(&ip_packet(99, 0x0b)));
}

#[test]
fn server_restart_is_detected_and_a_new_session_connects() {
    let pki = pki(true);
    let (mut c, s) = configs(&pki, Wrap::Crypt, 5, Cipher::Aes256Gcm);
    c.ping_restart = Some(Duration::from_secs(15));
    let mut s = s;
    s.server.ping_restart = Some(Duration::from_secs(30));
    let c2 = c.clone();
    let mut pair = Pair::new(c, s, Impair::default(), 5);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
    // The server process restarts: a fresh session that knows nothing of the old one.
    pair.restart_server();
    pair.exchange(1);
    assert!(pair.drive_until(Duration::from_secs(30), |p| p.client.is_closed()));
    let reason = pair.client_events.iter().find_map(|e| match e {
        Event::Closed(e) => Some(e.clone()),
        _ => None,
    });
    let reason = reason.expect("closed event");
    assert!(matches!(reason, ClientError::PingRestart(_)), "{reason}");
    assert!(reason.should_reconnect());
    // The shell reconnects with a new session id.
    let old_sid = pair.client.session_id();
    pair.client = Client::new(c2, pair.now).unwrap();
    assert_ne!(pair.client.session_id(), old_sid);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
}

#[test]
fn wrong_password_ends_with_auth_failed() {
    let pki = pki(true);
    let (mut c, s) = configs(&pki, Wrap::Crypt, 6, Cipher::Aes256Gcm);
    c.credentials = Some(Credentials {
        username: Zeroizing::new("alice".into()),
        password: Zeroizing::new("wrong".into()),
    });
    let mut pair = Pair::new(c, s, Impair::default(), 6);
    pair.drive_until(Duration::from_secs(10), |p| p.client.is_closed());
    let closed = pair.client_events.iter().find_map(|e| match e {
        Event::Closed(e) => Some(e.clone()),
        _ => None,
    });
    assert!(
        matches!(closed, Some(ClientError::AuthFailed(_))),
        "{closed:?}"
    );
    assert!(!closed.unwrap().should_reconnect());
}

#[test]
fn server_without_server_auth_eku_is_refused_by_default() {
    let pki = pki(false);
    let (mut c, s) = configs(&pki, Wrap::None, 7, Cipher::Aes256Gcm);
    let tls = TlsSettings {
        ca: Some(pki.ca.clone().into_bytes()),
        cert: Some(pki.client_cert.clone().into_bytes()),
        key: Some(pki.client_key.clone().into_bytes()),
        ..Default::default()
    };
    c.tls = client_config(&tls, ClientTlsOptions::default()).unwrap();
    let mut pair = Pair::new(c, s, Impair::default(), 7);
    pair.drive_until(Duration::from_secs(10), |p| p.client.is_closed());
    let closed = pair.client_events.iter().find_map(|e| match e {
        Event::Closed(e) => Some(e.to_string()),
        _ => None,
    });
    let msg = closed.expect("the client must refuse the server");
    assert!(
        msg.contains("serverAuth") && msg.contains("--no-server-eku-check"),
        "{msg}"
    );
}

#[test]
fn explicit_exit_notify_reaches_the_server() {
    let pki = pki(true);
    let (c, s) = configs(&pki, Wrap::Crypt, 8, Cipher::Aes256Gcm);
    let mut pair = Pair::new(c, s, Impair::default(), 8);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
    let now = pair.now;
    pair.client.close(now);
    pair.drive_until(Duration::from_secs(5), |p| {
        p.server.connected_count() == 0 && p.client.is_closed()
    });
    assert!(
        pair.server.connected_count() == 0,
        "the server did not see the client's EXIT"
    );
}

#[test]
fn legacy_prf_key_derivation_when_ekm_is_not_offered() {
    let pki = pki(true);
    let (mut c, s) = configs(&pki, Wrap::Auth, 9, Cipher::Aes128Gcm);
    c.peer_info = PeerInfo {
        ciphers: vec![Cipher::Aes128Gcm],
        mtu: 1600,
        tcp: false,
        extra: vec![],
        platform: "linux",
        offer_ekm: false,
        decompress: false,
        compat: None,
    }
    .render();
    let mut pair = Pair::new(c, s, Impair::default(), 9);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
    assert!(!pair.client.ekm, "the server must not have pushed tls-ekm");
    pair.exchange(1);
    pair.drive_until(Duration::from_secs(1), |p| {
        p.server_got.len() == 1 && p.client_got.len() == 1
    });
    assert_eq!(pair.server_got, vec![ip_packet(1, 0x0a)]);
    assert_eq!(pair.client_got, vec![ip_packet(1, 0x0b)]);
}

#[test]
fn control_messages_after_the_push_are_handled() {
    let pki = pki(true);
    let (c, s) = configs(&pki, Wrap::Crypt, 10, Cipher::Aes256Gcm);
    let mut pair = Pair::new(c, s, Impair::default(), 10);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
    let now = pair.now;
    let id = pair.peer_id();
    assert!(pair.server.kill(now, id, "RESTART"));
    assert!(pair.drive_until(Duration::from_secs(5), |p| p.client.is_closed()));
    let closed = pair.client_events.iter().find_map(|e| match e {
        Event::Closed(e) => Some(e.clone()),
        _ => None,
    });
    assert!(
        matches!(closed, Some(ClientError::ServerRestart(_))),
        "{closed:?}"
    );
}

#[test]
fn a_server_that_comes_back_is_found_within_tls_timeout() {
    let pki = pki(true);
    let (c, s) = configs(&pki, Wrap::Crypt, 11, Cipher::Aes256Gcm);
    let mut pair = Pair::new(c, s, Impair::default(), 11);
    let back = pair.now + Duration::from_secs(40);
    pair.blackhole_until = Some(back);
    let start = pair.now;
    let ok = pair.drive_until(Duration::from_secs(59), Pair::connected);
    assert!(
        ok,
        "not connected after {:?}: client {:?} server {:?}",
        pair.now - start,
        pair.client_events,
        pair.server_events
    );
    let late = pair.now - back;
    assert!(
        late <= Duration::from_secs(3),
        "connected {late:?} after the server came back"
    );
}

#[test]
fn endless_control_message_is_refused_not_buffered() {
    let pki = pki(true);
    let (c, s) = configs(&pki, Wrap::Crypt, 12, Cipher::Aes256Gcm);
    let mut pair = Pair::new(c, s, Impair::default(), 12);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
    // A control message that never ends (no NUL), far beyond the bound.
    let huge = format!("INFO,{}", "x".repeat(4 * MAX_CONTROL_MESSAGE));
    let (now, id) = (pair.now, pair.peer_id());
    pair.server.send_raw_plaintext(now, id, huge.as_bytes());
    pair.drive_until(Duration::from_secs(60), |p| p.client.is_closed());
    let closed = pair.client_events.iter().find_map(|e| match e {
        Event::Closed(e) => Some(e.clone()),
        _ => None,
    });
    let closed = closed.expect("the client must give up on the endless message");
    assert!(matches!(closed, ClientError::Protocol(_)), "{closed}");
    assert!(closed.to_string().contains("terminating NUL"), "{closed}");
}

#[test]
fn auth_failed_temp_flags() {
    use std::time::Duration;
    let p = super::parse_auth_failed_temp;
    assert_eq!(
        p("[backoff 30,advance addr]:try later"),
        ("try later".into(), Some(Duration::from_secs(30)), true)
    );
    assert_eq!(p(":plain"), ("plain".into(), None, false));
    assert_eq!(p("[advance no]:x"), ("x".into(), None, false));
    assert_eq!(p("[backoff x]:m"), ("m".into(), None, false));
    assert_eq!(p("[unterminated"), ("unterminated".into(), None, false));
    assert_eq!(p(""), (String::new(), None, false));
}

#[test]
fn crv1_challenge_is_parsed() {
    match super::parse_crv1("R,E:state42:YWxpY2U=:Enter the code: now") {
        Some(ClientError::Challenge {
            echo,
            state,
            username,
            text,
        }) => {
            assert!(echo);
            assert_eq!(state, "state42");
            assert_eq!(username, "alice");
            assert_eq!(text, "Enter the code: now", "colons in the text stay");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        super::parse_crv1("R:s:YWxpY2U=:PIN"),
        Some(ClientError::Challenge { echo: false, .. })
    ));
    assert!(super::parse_crv1("R,E:state").is_none(), "truncated");
    assert!(super::parse_crv1("R:s:!!notbase64:PIN").is_none());
}

#[test]
fn pending_auth_messages_become_events() {
    use super::Event;
    assert!(matches!(
        super::info_pre_event("WEB_AUTH::https://sso.example/x?a=b"),
        Event::OpenUrl(u) if u == "https://sso.example/x?a=b"
    ));
    assert!(matches!(
        super::info_pre_event("WEB_AUTH:hidden:https://sso.example/"),
        Event::OpenUrl(u) if u == "https://sso.example/"
    ));
    assert!(matches!(
        super::info_pre_event("OPEN_URL:https://x/"),
        Event::OpenUrl(u) if u == "https://x/"
    ));
    assert!(matches!(
        super::info_pre_event("CR_TEXT:R,E:Your PIN"),
        Event::CrText { echo: true, text } if text == "Your PIN"
    ));
    assert!(matches!(
        super::info_pre_event("CR_TEXT:R:Code"),
        Event::CrText { echo: false, .. }
    ));
    assert!(matches!(super::info_pre_event("hello"), Event::Info(_)));
}
