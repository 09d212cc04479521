//! The in-process simulated pair: a client and a server session over virtual links with
//! latency, loss, reordering and duplication, driven in virtual time. No sockets, no root.

#![allow(clippy::disallowed_methods)] // the virtual clock starts from one real Instant

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng, rngs::StdRng};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::*;
use crate::config::{CertRole, TlsSettings, TlsWrap};
use crate::proto::handshake::push::PullPolicy;
use crate::proto::keys::{Digest, Key2, KeyDirection};
use crate::proto::server::{ServerSession, ServerSessionConfig};
use crate::proto::tls::{ClientTlsOptions, ServerTlsSettings, client_config, server_config};

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki(server_eku: bool) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(vec![]).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "sim CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = |cn: &str, eku: Option<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = eku.into_iter().collect();
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        "server",
        server_eku.then_some(ExtendedKeyUsagePurpose::ServerAuth),
    );
    let (client_cert, client_key) = leaf("client1", Some(ExtendedKeyUsagePurpose::ClientAuth));
    Pki {
        ca: ca_cert.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn seeded_rng(seed: u64) -> Rng {
    let r = Mutex::new(StdRng::seed_from_u64(seed));
    Arc::new(move |b: &mut [u8]| r.lock().unwrap().fill(b))
}

fn wrap_key(seed: u64) -> Key2 {
    let mut b = [0u8; 256];
    StdRng::seed_from_u64(seed).fill(&mut b[..]);
    Key2::from_bytes(&b)
}

#[derive(Clone, Copy)]
enum Wrap {
    None,
    Auth,
    Crypt,
}

fn configs(
    pki: &Pki,
    wrap: Wrap,
    seed: u64,
    cipher: Cipher,
) -> (ClientConfig, ServerSessionConfig) {
    let tls = TlsSettings {
        ca: Some(pki.ca.clone().into_bytes()),
        cert: Some(pki.client_cert.clone().into_bytes()),
        key: Some(pki.client_key.clone().into_bytes()),
        remote_cert_tls: Some(CertRole::Server),
        ..Default::default()
    };
    let key = wrap_key(seed);
    let (cw, sw) = match wrap {
        Wrap::None => (None, None),
        Wrap::Auth => (
            Some(TlsWrap::Auth {
                key: key.clone(),
                direction: KeyDirection::Inverse,
            }),
            Some(TlsWrap::Auth {
                key,
                direction: KeyDirection::Normal,
            }),
        ),
        Wrap::Crypt => (
            Some(TlsWrap::Crypt { key: key.clone() }),
            Some(TlsWrap::Crypt { key }),
        ),
    };
    let client = ClientConfig {
        tls: client_config(&tls, ClientTlsOptions::default()).unwrap(),
        wrap: cw,
        auth: Digest::Sha256,
        ciphers: vec![cipher],
        fallback_cipher: None,
        compression: Compression::None,
        pull: PullPolicy::default(),
        peer_info: crate::proto::handshake::peer_info::PeerInfo {
            ciphers: vec![cipher],
            mtu: 1600,
            tcp: false,
            extra: vec![],
            platform: "linux",
            offer_ekm: true,
        }
        .render(),
        occ_options: "V4,dev-type tun".into(),
        credentials: Some(Credentials {
            username: Zeroizing::new("alice".into()),
            password: Zeroizing::new("secret".into()),
        }),
        auth_token: None,
        tcp: false,
        hand_window: Duration::from_secs(60),
        server_poll_timeout: Duration::from_secs(120),
        tls_timeout: Duration::from_secs(2),
        reneg_sec: None,
        tran_window: Duration::from_secs(3600),
        ping: None,
        ping_restart: None,
        ping_exit: None,
        explicit_exit_notify: 1,
        replay_window: 512,
        tun_mtu: 1500,
        mssfix: Some(1492),
        ipv6_transport: false,
        unix_time_at_start: 1_700_000_000,
        rng: seeded_rng(seed),
    };
    let stls = ServerTlsSettings {
        tls: TlsSettings {
            ca: Some(pki.ca.clone().into_bytes()),
            cert: Some(pki.server_cert.clone().into_bytes()),
            key: Some(pki.server_key.clone().into_bytes()),
            ..Default::default()
        },
        client_cert_optional: false,
    };
    let server = ServerSessionConfig {
        tls: server_config(&stls).unwrap(),
        wrap: sw,
        auth: Digest::Sha256,
        ciphers: vec![cipher],
        push: vec![
            "topology subnet".into(),
            "ifconfig 198.19.0.2 255.255.255.0".into(),
        ],
        peer_id: 7,
        tls_timeout: Duration::from_secs(2),
        hand_window: Duration::from_secs(60),
        reneg_sec: None,
        ping: Some(Duration::from_secs(10)),
        ping_restart: Some(Duration::from_secs(60)),
        verify: Some(Arc::new(|u: &str, p: &str| u == "alice" && p == "secret")),
        replay_window: 512,
        unix_time_at_start: 1_700_000_000,
        rng: seeded_rng(seed ^ 0xfeed),
    };
    (client, server)
}

/// Link impairments.
#[derive(Clone, Copy, Default)]
struct Impair {
    loss: f64,
    dup: f64,
    reorder: f64,
}

struct Pair {
    now: Instant,
    client: Client,
    server: ServerSession,
    c2s: VecDeque<(Instant, Vec<u8>)>,
    s2c: VecDeque<(Instant, Vec<u8>)>,
    latency: Duration,
    impair: Impair,
    rng: StdRng,
    client_got: Vec<Vec<u8>>,
    server_got: Vec<Vec<u8>>,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    /// Client packets sent before this instant are lost (the server is away).
    blackhole_until: Option<Instant>,
}

impl Pair {
    fn new(client: ClientConfig, server: ServerSessionConfig, impair: Impair, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: Client::new(client, now).unwrap(),
            server: ServerSession::new(server, now),
            c2s: VecDeque::new(),
            s2c: VecDeque::new(),
            latency: Duration::from_millis(10),
            impair,
            rng: StdRng::seed_from_u64(seed),
            client_got: Vec::new(),
            server_got: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            blackhole_until: None,
        }
    }

    fn send(
        rng: &mut StdRng,
        impair: Impair,
        q: &mut VecDeque<(Instant, Vec<u8>)>,
        at: Instant,
        p: Vec<u8>,
    ) {
        if rng.random_bool(impair.loss) {
            return;
        }
        let jitter = if rng.random_bool(impair.reorder) {
            Duration::from_millis(rng.random_range(1..30))
        } else {
            Duration::ZERO
        };
        if rng.random_bool(impair.dup) {
            q.push_back((at + jitter + Duration::from_millis(3), p.clone()));
        }
        q.push_back((at + jitter, p));
    }

    fn pump_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    /// Moves packets and events; returns false when nothing is left to do.
    fn step(&mut self) -> bool {
        self.pump_events();
        let now = self.now;
        let mut buf = Vec::new();
        while self.client.poll_transmit(now, &mut buf) {
            let p = std::mem::take(&mut buf);
            if self.blackhole_until.is_some_and(|t| now < t) {
                continue;
            }
            Self::send(
                &mut self.rng,
                self.impair,
                &mut self.c2s,
                now + self.latency,
                p,
            );
        }
        while self.server.poll_transmit(now, &mut buf) {
            let p = std::mem::take(&mut buf);
            Self::send(
                &mut self.rng,
                self.impair,
                &mut self.s2c,
                now + self.latency,
                p,
            );
        }
        let mut pkt = Vec::new();
        let mut delivered = false;
        for (q, to_server) in [(&mut self.c2s, true), (&mut self.s2c, false)] {
            let mut keep = VecDeque::new();
            while let Some((at, p)) = q.pop_front() {
                if at > now {
                    keep.push_back((at, p));
                    continue;
                }
                delivered = true;
                if to_server {
                    if self.server.handle_datagram(now, &p, &mut pkt) {
                        self.server_got.push(pkt.clone());
                    }
                } else if self.client.handle_datagram(now, &p, &mut pkt) {
                    self.client_got.push(pkt.clone());
                }
            }
            *q = keep;
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
            delivered = true;
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
            delivered = true;
        }
        self.pump_events();
        if delivered {
            return true;
        }
        // Advance virtual time to the next thing that happens.
        let next = [
            self.c2s.iter().map(|x| x.0).min(),
            self.s2c.iter().map(|x| x.0).min(),
            self.client.poll_timeout(),
            self.server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => {
                self.now = t.max(now);
                true
            }
            None => false,
        }
    }

    fn drive_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    fn connected(&self) -> bool {
        self.client.is_connected() && self.server.is_connected()
    }

    /// Sends one packet each way through the tunnel.
    fn exchange(&mut self, tag: u32) {
        let now = self.now;
        let mut out = Vec::new();
        if self
            .client
            .encapsulate(now, &mut ip_packet(tag, 0x0a), &mut out)
        {
            Self::send(
                &mut self.rng,
                self.impair,
                &mut self.c2s,
                now + self.latency,
                out.clone(),
            );
        }
        if self
            .server
            .encapsulate(now, &ip_packet(tag, 0x0b), &mut out)
        {
            Self::send(
                &mut self.rng,
                self.impair,
                &mut self.s2c,
                now + self.latency,
                out,
            );
        }
    }
}

/// A fake IPv4 packet carrying a tag.
fn ip_packet(tag: u32, dir: u8) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 198, 19, 0, 2, 198, 19, 0, dir,
    ];
    p.extend_from_slice(&tag.to_be_bytes());
    p.resize(40, 0xa5);
    p
}

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
        assert_eq!(pair.server.username(), Some("alice"));
        let pushed = pair.client_events.iter().find_map(|e| match e {
            Event::Connected(p) => Some(p.clone()),
            _ => None,
        });
        assert_eq!(pushed.unwrap().peer_id, Some(7));
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
        "client→server packets lost across renegotiations: server dropped {}, missing {:?}",
        pair.server.dropped,
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
    s.reneg_sec = Some(Duration::from_secs(4));
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
    s.ping_restart = Some(Duration::from_secs(15));
    let (c2, s2) = (c.clone(), s.clone());
    let mut pair = Pair::new(c, s, Impair::default(), 5);
    assert!(pair.drive_until(Duration::from_secs(10), Pair::connected));
    // The server process restarts: a fresh session that knows nothing of the old one.
    pair.server = ServerSession::new(s2, pair.now);
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
        !p.server.is_connected() && p.client.is_closed()
    });
    assert!(
        !pair.server.is_connected(),
        "the server did not see the client's EXIT"
    );
}

#[test]
fn legacy_prf_key_derivation_when_ekm_is_not_offered() {
    let pki = pki(true);
    let (mut c, s) = configs(&pki, Wrap::Auth, 9, Cipher::Aes128Gcm);
    c.peer_info = crate::proto::handshake::peer_info::PeerInfo {
        ciphers: vec![Cipher::Aes128Gcm],
        mtu: 1600,
        tcp: false,
        extra: vec![],
        platform: "linux",
        offer_ekm: false,
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
    pair.server.send_control_text(now, "RESTART");
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
