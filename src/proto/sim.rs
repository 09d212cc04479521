//! The in-process simulation: clients and a multi-client server over virtual links with
//! latency, loss, reordering and duplication, driven in virtual time. No sockets, no root.
//! The server's shell is played by [`Shell`]: it answers authentication requests.

#![allow(clippy::disallowed_methods)] // the virtual clock starts from one real Instant

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng, rngs::StdRng};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::config::{CertRole, TlsSettings, TlsWrap};
use crate::proto::handshake::push::PullPolicy;
use crate::proto::keys::{Digest, Key2, KeyDirection};
use zeroize::Zeroizing;

use crate::config::Compression;
use crate::proto::client::{Client, ClientConfig, Credentials, Event, Rng};
use crate::proto::keys::Cipher;
use crate::proto::server::{
    Link, PeerSetup, Received, Server, ServerConfig, ServerEvent, ServerWrap,
};
use crate::proto::tls::{ClientTlsOptions, ServerTlsSettings, client_config, server_config};

pub(crate) struct Pki {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

pub(crate) fn pki(server_eku: bool) -> Pki {
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

pub(crate) fn seeded_rng(seed: u64) -> Rng {
    let r = Mutex::new(StdRng::seed_from_u64(seed));
    Arc::new(move |b: &mut [u8]| r.lock().unwrap().fill(b))
}

pub(crate) fn wrap_key(seed: u64) -> Key2 {
    let mut b = [0u8; 256];
    StdRng::seed_from_u64(seed).fill(&mut b[..]);
    Key2::from_bytes(&b)
}

#[derive(Clone, Copy)]
pub(crate) enum Wrap {
    None,
    Auth,
    Crypt,
}

pub(crate) fn configs(
    pki: &Pki,
    wrap: Wrap,
    seed: u64,
    cipher: Cipher,
) -> (ClientConfig, SimServerConfig) {
    let tls = TlsSettings {
        ca: Some(pki.ca.clone().into_bytes()),
        cert: Some(pki.client_cert.clone().into_bytes()),
        key: Some(pki.client_key.clone().into_bytes()),
        remote_cert_tls: Some(CertRole::Server),
        ..Default::default()
    };
    let key = wrap_key(seed);
    let (cw, sw) = match wrap {
        Wrap::None => (None, ServerWrap::None),
        Wrap::Auth => (
            Some(TlsWrap::Auth {
                key: key.clone(),
                direction: KeyDirection::Inverse,
            }),
            ServerWrap::Auth {
                key,
                direction: KeyDirection::Normal,
            },
        ),
        Wrap::Crypt => (
            Some(TlsWrap::Crypt { key: key.clone() }),
            ServerWrap::Crypt { key },
        ),
    };
    let client = ClientConfig {
        tls: client_config(&tls, ClientTlsOptions::default()).unwrap(),
        wrap: cw,
        auth: Digest::Sha256,
        ciphers: vec![cipher],
        fallback_cipher: None,
        unusable_cipher: None,
        compression: Compression::None,
        compress_outgoing: false,
        pull: PullPolicy::default(),
        peer_info: crate::proto::handshake::peer_info::PeerInfo {
            ciphers: vec![cipher],
            mtu: 1600,
            tcp: false,
            extra: vec![],
            platform: "linux",
            offer_ekm: true,
            decompress: false,
            compat: None,
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
        layer2: false,
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
    let mut server =
        ServerConfig::new(server_config(&stls).unwrap(), sw, seeded_rng(seed ^ 0xfeed));
    server.auth = Digest::Sha256;
    server.ciphers = vec![cipher];
    server.reneg_sec = None;
    server.ping = Some(Duration::from_secs(10));
    server.ping_restart = Some(Duration::from_secs(120));
    server.replay_window = 512;
    server.unix_time_at_start = 1_700_000_000;
    let server = SimServerConfig {
        server,
        users: Some(("alice".into(), "secret".into())),
        subnet: [198, 19, 0],
    };
    (client, server)
}

/// Link impairments.
#[derive(Clone, Copy, Default)]
pub(crate) struct Impair {
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
}

/// The simulated server's configuration and its shell's policy.
#[derive(Clone)]
pub(crate) struct SimServerConfig {
    pub server: ServerConfig,
    /// `auth-user-pass-verify`: the one accepted user (None: no check).
    pub users: Option<(String, String)>,
    /// Tunnel /24: the server is .1, client n gets .(2+n).
    pub subnet: [u8; 3],
}

/// One more client in the simulation.
pub(crate) struct SimClient {
    pub client: Client,
    pub link: Link,
    pub got: Vec<Vec<u8>>,
    pub events: Vec<Event>,
    pub q: VecDeque<(Instant, Vec<u8>)>,
}

pub(crate) struct Pair {
    pub now: Instant,
    pub client: Client,
    pub link: Link,
    pub server: Server,
    pub shell: SimServerConfig,
    pub c2s: VecDeque<(Instant, (Link, Vec<u8>))>,
    pub s2c: VecDeque<(Instant, Vec<u8>)>,
    pub latency: Duration,
    pub impair: Impair,
    pub rng: StdRng,
    pub client_got: Vec<Vec<u8>>,
    pub server_got: Vec<Vec<u8>>,
    pub client_events: Vec<Event>,
    pub server_events: Vec<ServerEvent>,
    /// Client packets sent before this instant are lost (the server is away).
    pub blackhole_until: Option<Instant>,
    /// Clients besides the first.
    pub extra: Vec<SimClient>,
    next_addr: u8,
    addr_of: std::collections::HashMap<u32, u8>,
}

pub(crate) fn client_link(n: u16) -> Link {
    Link::udp(std::net::SocketAddr::from(([198, 18, 0, 2], 40000 + n)))
}

impl Pair {
    pub fn new(client: ClientConfig, server: SimServerConfig, impair: Impair, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: Client::new(client, now).unwrap(),
            link: client_link(0),
            server: Server::new(server.server.clone(), now),
            shell: server,
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
            extra: Vec::new(),
            next_addr: 2,
            addr_of: Default::default(),
        }
    }

    /// A fresh server (process restart), knowing nothing of the old sessions.
    pub fn restart_server(&mut self) {
        self.server = Server::new(self.shell.server.clone(), self.now);
    }

    /// Adds another client on its own link.
    pub fn add_client(&mut self, cfg: ClientConfig) -> usize {
        let n = self.extra.len() + 1;
        self.extra.push(SimClient {
            client: Client::new(cfg, self.now).unwrap(),
            link: client_link(n as u16),
            got: Vec::new(),
            events: Vec::new(),
            q: VecDeque::new(),
        });
        n - 1
    }

    fn send<T>(rng: &mut StdRng, impair: Impair, q: &mut VecDeque<(Instant, T)>, at: Instant, p: T)
    where
        T: Clone,
    {
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

    /// The peer-id of the only (first) session.
    pub fn peer_id(&self) -> u32 {
        self.server.peer_ids().first().copied().unwrap_or(u32::MAX)
    }

    /// The shell's part: answer authentication requests.
    fn shell_events(&mut self) {
        while let Some(e) = self.server.poll_event() {
            if let ServerEvent::Authenticate(r) = &e {
                let ok = self
                    .shell
                    .users
                    .as_ref()
                    .is_none_or(|(u, p)| r.username == *u && r.password.as_str() == p);
                if ok {
                    let host = *self.addr_of.entry(r.peer_id).or_insert_with(|| {
                        self.next_addr += 1;
                        self.next_addr - 1
                    });
                    let [a, b, c] = self.shell.subnet;
                    let v4 = std::net::Ipv4Addr::new(a, b, c, host);
                    self.server.accept(
                        self.now,
                        r.peer_id,
                        PeerSetup {
                            push: vec![
                                "topology subnet".into(),
                                format!("ifconfig {v4} 255.255.255.0"),
                            ],
                            v4: Some(v4),
                            ..Default::default()
                        },
                    );
                } else {
                    self.server.refuse(self.now, r.peer_id, "");
                }
            }
            self.server_events.push(e);
        }
    }

    fn pump_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        for x in &mut self.extra {
            while let Some(e) = x.client.poll_event() {
                x.events.push(e);
            }
        }
        self.shell_events();
    }

    /// Moves packets and events; returns false when nothing is left to do.
    pub fn step(&mut self) -> bool {
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
                (self.link, p),
            );
        }
        for x in &mut self.extra {
            while x.client.poll_transmit(now, &mut buf) {
                let p = std::mem::take(&mut buf);
                Self::send(
                    &mut self.rng,
                    self.impair,
                    &mut self.c2s,
                    now + self.latency,
                    (x.link, p),
                );
            }
        }
        while let Some(link) = self.server.poll_transmit(now, &mut buf) {
            let p = std::mem::take(&mut buf);
            self.route_to_client(now, link, p);
        }
        let mut pkt = Vec::new();
        let mut delivered = false;
        let mut keep = VecDeque::new();
        while let Some((at, (link, p))) = self.c2s.pop_front() {
            if at > now {
                keep.push_back((at, (link, p)));
                continue;
            }
            delivered = true;
            match self.server.handle_datagram(now, link, &p, &mut pkt) {
                Received::ToDevice => self.server_got.push(pkt.clone()),
                Received::ToPeer(to) => {
                    let p = std::mem::take(&mut pkt);
                    self.route_to_client(now, to, p);
                }
                Received::Nothing => {}
            }
        }
        self.c2s = keep;
        let mut keep = VecDeque::new();
        while let Some((at, p)) = self.s2c.pop_front() {
            if at > now {
                keep.push_back((at, p));
                continue;
            }
            delivered = true;
            if self.client.handle_datagram(now, &p, &mut pkt) {
                self.client_got.push(pkt.clone());
            }
        }
        self.s2c = keep;
        for x in &mut self.extra {
            let mut keep = VecDeque::new();
            while let Some((at, p)) = x.q.pop_front() {
                if at > now {
                    keep.push_back((at, p));
                    continue;
                }
                delivered = true;
                if x.client.handle_datagram(now, &p, &mut pkt) {
                    x.got.push(pkt.clone());
                }
            }
            x.q = keep;
            if x.client.poll_timeout().is_some_and(|t| t <= now) {
                x.client.handle_timeout(now);
                delivered = true;
            }
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
        .chain(self.extra.iter().map(|x| x.q.iter().map(|y| y.0).min()))
        .chain(self.extra.iter().map(|x| x.client.poll_timeout()))
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

    fn route_to_client(&mut self, now: Instant, link: Link, p: Vec<u8>) {
        let at = now + self.latency;
        if link == self.link {
            Self::send(&mut self.rng, self.impair, &mut self.s2c, at, p);
        } else if let Some(x) = self.extra.iter_mut().find(|x| x.link == link) {
            Self::send(&mut self.rng, self.impair, &mut x.q, at, p);
        }
    }

    pub fn drive_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + limit;
        let mut steps = 0u64;
        let mut last_now = self.now;
        while self.now < end {
            if done(self) {
                return true;
            }
            steps += 1;
            if self.now != last_now {
                last_now = self.now;
                steps = 0;
            }
            assert!(
                steps < 100_000,
                "the simulation is stuck at one instant: server timeout {:?} (now {:?}), client timeout {:?}",
                self.server
                    .poll_timeout()
                    .map(|t| t.saturating_duration_since(self.now)),
                self.now,
                self.client
                    .poll_timeout()
                    .map(|t| t.saturating_duration_since(self.now))
            );
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    pub fn connected(&self) -> bool {
        self.client.is_connected() && self.server.connected_count() >= 1
    }

    /// Sends one packet each way through the tunnel.
    pub fn exchange(&mut self, tag: u32) {
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
                (self.link, out.clone()),
            );
        }
        if let Some(link) = self
            .server
            .handle_packet(now, &ip_packet(tag, 0x0b), &mut out)
        {
            let p = std::mem::take(&mut out);
            self.route_to_client(now, link, p);
        }
    }
}

/// A fake IPv4 packet carrying a tag: `0x0a` from the first client (198.19.0.2) to the
/// server side (198.19.0.1), `0x0b` the other way.
pub(crate) fn ip_packet(tag: u32, dir: u8) -> Vec<u8> {
    let (src, dst) = if dir == 0x0a { (2, 1) } else { (1, 2) };
    ip_packet_between([198, 19, 0, src], [198, 19, 0, dst], tag)
}

/// A fake IPv4/UDP packet from `src` to `dst` carrying a tag.
pub(crate) fn ip_packet_between(src: [u8; 4], dst: [u8; 4], tag: u32) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&tag.to_be_bytes());
    p.resize(40, 0xa5);
    p
}
