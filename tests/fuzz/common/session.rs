//! The whole client and the whole multi-client server, driven together in virtual time over a
//! link the input controls.
//!
//! A real client and a real server (the committed test PKI, fixed wrap keys) talk through two
//! queues. The input picks the control-channel wrapping, then is read as a script of operations
//! on the side under test (the "focus"): deliver, drop, duplicate, change one byte, truncate,
//! replay an old packet, inject arbitrary bytes (for the server: from arbitrary addresses, UDP or
//! TCP), pass time, send tunnel packets, close. The other side is honest, so handshakes,
//! renegotiations and data packets all happen and the fuzzer can corrupt any of them.
//!
//! Invariants: no panic; every `poll_*` loop ends; no state machine asks for a timeout it then
//! does not consume (the timer loop ends).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferrovpn::config::{TlsSettings, parse_profile};
use ferrovpn::proto::client::{Client, ClientConfig, Rng};
use ferrovpn::proto::server::{Link, PeerSetup, Server, ServerConfig, ServerEvent, ServerWrap};
use ferrovpn::proto::tls::{ClientTlsOptions, ServerTlsSettings, server_config};

use super::Cursor;
use super::fixtures::{MemFiles, file, keys};

/// Which side the script attacks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Focus {
    Client,
    Server,
}

/// The client under attack.
pub fn client(data: &[u8]) {
    run(data, Focus::Client);
}

/// The server under attack.
pub fn server(data: &[u8]) {
    run(data, Focus::Server);
}

const MAX_QUEUE: usize = 64;
const MAX_OPS: usize = 200;
/// More packets than any sane state machine emits at one instant.
const MAX_POLL: usize = 4096;

fn rng(seed: u64) -> Rng {
    let state = Mutex::new(seed | 1);
    Arc::new(move |b: &mut [u8]| {
        let mut s = state.lock().expect("rng lock");
        for x in b {
            // xorshift64*
            *s ^= *s >> 12;
            *s ^= *s << 25;
            *s ^= *s >> 27;
            *x = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    })
}

/// Client and server configurations per wrap mode, built once.
fn configs(mode: usize) -> (ClientConfig, ServerConfig) {
    static C: OnceLock<Vec<(ClientConfig, ServerConfig)>> = OnceLock::new();
    let all = C.get_or_init(|| {
        let k = keys();
        let modes = [
            ("", ServerWrap::None),
            (
                "tls-auth tls-auth.key 1\nauth SHA256\n",
                ServerWrap::Auth {
                    key: k.tls_auth.clone(),
                    direction: ferrovpn::proto::keys::KeyDirection::Normal,
                },
            ),
            (
                "tls-crypt ta.key\n",
                ServerWrap::Crypt {
                    key: k.tls_crypt.clone(),
                },
            ),
            (
                "tls-crypt-v2 tc2-client.key\n",
                ServerWrap::CryptV2 {
                    server_key: k.tc2_server.clone(),
                },
            ),
        ];
        let stls = server_config(&ServerTlsSettings {
            tls: TlsSettings {
                ca: Some(file("ca.crt").as_bytes().to_vec()),
                cert: Some(file("server.crt").as_bytes().to_vec()),
                key: Some(file("server.key").as_bytes().to_vec()),
                ..Default::default()
            },
            client_cert_optional: false,
        })
        .expect("server TLS fixture");
        modes
            .into_iter()
            .map(|(wrap_line, server_wrap)| {
                let text = format!(
                    "client\ndev tun\nremote 198.18.0.1 1194\nca ca.crt\ncert client.crt\n\
                     key client.key\nremote-cert-tls server\nreneg-sec 60\nkeepalive 10 60\n\
                     {wrap_line}"
                );
                let profile =
                    parse_profile(&text, Path::new("session.ovpn"), &MemFiles).expect("profile");
                let client = ClientConfig::from_profile(
                    &profile,
                    None,
                    ClientTlsOptions::default(),
                    false,
                    false,
                    1_700_000_000,
                    rng(1),
                )
                .expect("client config");
                let mut server = ServerConfig::new(stls.clone(), server_wrap, rng(2));
                server.auth = profile.auth;
                server.reneg_sec = Some(Duration::from_secs(90));
                server.unix_time_at_start = 1_700_000_000;
                (client, server)
            })
            .collect()
    });
    let (mut c, mut s) = all[mode].clone();
    c.rng = rng(0x5eed);
    s.rng = rng(0xfeed);
    (c, s)
}

struct World {
    now: Instant,
    client: Client,
    server: Server,
    link: Link,
    c2s: VecDeque<Vec<u8>>,
    s2c: VecDeque<Vec<u8>>,
    /// Recent packets towards the focus side, for replays.
    history: VecDeque<Vec<u8>>,
    focus: Focus,
    buf: Vec<u8>,
}

impl World {
    fn new(mode: usize, focus: Focus) -> Self {
        let now = Instant::now();
        let (c, s) = configs(mode);
        Self {
            now,
            client: Client::new(c, now).expect("client"),
            server: Server::new(s, now),
            link: Link::udp(SocketAddr::from(([198, 18, 0, 2], 40000))),
            c2s: VecDeque::new(),
            s2c: VecDeque::new(),
            history: VecDeque::new(),
            focus,
            buf: Vec::new(),
        }
    }

    /// Moves everything the two sides want to send onto the queues, answers the server's
    /// authentication requests.
    fn collect(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        let mut n = 0;
        while self.client.poll_transmit(now, &mut out) {
            n += 1;
            assert!(n < MAX_POLL, "client poll_transmit does not end");
            push(&mut self.c2s, std::mem::take(&mut out));
        }
        n = 0;
        while let Some(to) = self.server.poll_transmit(now, &mut out) {
            n += 1;
            assert!(n < MAX_POLL, "server poll_transmit does not end");
            let p = std::mem::take(&mut out);
            if to == self.link {
                push(&mut self.s2c, p);
            }
        }
        n = 0;
        while self.client.poll_event().is_some() {
            n += 1;
            assert!(n < MAX_POLL, "client poll_event does not end");
        }
        n = 0;
        while let Some(e) = self.server.poll_event() {
            n += 1;
            assert!(n < MAX_POLL, "server poll_event does not end");
            if let ServerEvent::Authenticate(r) = e {
                let v4 = Ipv4Addr::new(198, 19, 0, 2 + (r.peer_id % 200) as u8);
                self.server.accept(
                    now,
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
            }
        }
    }

    fn to_server(&mut self, link: Link, p: &[u8]) {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        let _ = self.server.handle_datagram(self.now, link, p, &mut out);
        self.buf = out;
    }

    fn to_client(&mut self, p: &[u8]) {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        let _ = self.client.handle_datagram(self.now, p, &mut out);
        self.buf = out;
    }

    /// Delivers `p` to side `to_focus` (the focus side or the other one).
    fn deliver(&mut self, to_focus: bool, p: &[u8]) {
        let to_server = (self.focus == Focus::Server) == to_focus;
        if to_focus {
            if self.history.len() >= 16 {
                self.history.pop_front();
            }
            self.history.push_back(p.to_vec());
        }
        if to_server {
            self.to_server(self.link, p);
        } else {
            self.to_client(p);
        }
    }

    /// The queue towards the focus side (or the other side).
    fn queue(&mut self, to_focus: bool) -> &mut VecDeque<Vec<u8>> {
        if (self.focus == Focus::Server) == to_focus {
            &mut self.c2s
        } else {
            &mut self.s2c
        }
    }

    /// Honest delivery of everything queued, `rounds` times.
    fn pump(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.collect();
            if self.c2s.is_empty() && self.s2c.is_empty() {
                break;
            }
            for to_focus in [false, true] {
                let q: Vec<_> = self.queue(to_focus).drain(..).collect();
                for p in q {
                    self.deliver(to_focus, &p);
                }
            }
        }
    }

    /// Moves time forward and runs the timers that are due.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        for _ in 0..MAX_POLL {
            let now = self.now;
            let c = self.client.poll_timeout().is_some_and(|t| t <= now);
            let s = self.server.poll_timeout().is_some_and(|t| t <= now);
            if !c && !s {
                return;
            }
            if c {
                self.client.handle_timeout(now);
            }
            if s {
                self.server.handle_timeout(now);
            }
            self.collect();
        }
        panic!("a timer stays due after handle_timeout");
    }
}

fn push(q: &mut VecDeque<Vec<u8>>, p: Vec<u8>) {
    if q.len() >= MAX_QUEUE {
        q.pop_front();
    }
    q.push_back(p);
}

fn ip_packet(c: &mut Cursor<'_>, to_server: bool) -> Vec<u8> {
    let (src, dst) = if to_server { (2, 1) } else { (1, 2) };
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&[198, 19, 0, src, 198, 19, 0, dst]);
    let n = usize::from(c.u16().unwrap_or(0) % 1400);
    p.extend_from_slice(c.bytes(n));
    p.resize(p.len().max(28), 0);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p
}

fn run(data: &[u8], focus: Focus) {
    let Some((&mode, script)) = data.split_first() else {
        return;
    };
    let mut w = World::new(usize::from(mode % 4), focus);
    let mut c = Cursor::new(script);
    for _ in 0..MAX_OPS {
        let Some(op) = c.byte() else { break };
        w.collect();
        match op % 12 {
            0 => w.pump(1 + usize::from(op >> 4)),
            1 => {
                if let Some(p) = w.queue(true).pop_front() {
                    w.deliver(true, &p);
                }
            }
            2 => {
                w.queue(true).pop_front();
            }
            3 => {
                if let Some(p) = w.queue(true).front().cloned() {
                    w.deliver(true, &p);
                }
            }
            4 => {
                let pos = usize::from(c.u16().unwrap_or(0));
                let x = c.byte().unwrap_or(0x80);
                if let Some(mut p) = w.queue(true).pop_front() {
                    if !p.is_empty() {
                        let i = pos % p.len();
                        p[i] ^= x;
                    }
                    w.deliver(true, &p);
                }
            }
            5 => {
                let from = c.byte().unwrap_or(0);
                let n = usize::from(c.u16().unwrap_or(0) % 2048);
                let p = c.bytes(n).to_vec();
                match focus {
                    Focus::Client => w.deliver(true, &p),
                    Focus::Server => {
                        let link = match from % 4 {
                            0 => w.link,
                            1 => Link::udp(SocketAddr::from(([198, 18, 1, from], 1194))),
                            2 => Link::tcp(SocketAddr::from(([198, 18, 2, 1], 50000)), 1),
                            _ => Link::udp(SocketAddr::from((
                                [0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(from)],
                                u16::from(from) << 8,
                            ))),
                        };
                        w.to_server(link, &p);
                    }
                }
            }
            6 => {
                let ms = u64::from(c.u16().unwrap_or(0)) * 10;
                w.advance(Duration::from_millis(ms));
            }
            7 => {
                let len = usize::from(c.byte().unwrap_or(0));
                if let Some(mut p) = w.queue(true).pop_front() {
                    p.truncate(len);
                    w.deliver(true, &p);
                }
            }
            8 => {
                let i = usize::from(c.byte().unwrap_or(0));
                if !w.history.is_empty() {
                    let p = w.history[i % w.history.len()].clone();
                    w.deliver(true, &p);
                }
            }
            9 => {
                let now = w.now;
                let mut out = Vec::new();
                if op & 0x10 == 0 {
                    let mut p = ip_packet(&mut c, true);
                    if w.client.encapsulate(now, &mut p, &mut out) {
                        push(&mut w.c2s, out);
                    }
                } else {
                    let p = ip_packet(&mut c, false);
                    if let Some(to) = w.server.handle_packet(now, &p, &mut out)
                        && to == w.link
                    {
                        push(&mut w.s2c, out);
                    }
                }
            }
            10 => {
                let now = w.now;
                match (op >> 4) % 4 {
                    0 => w.client.close(now),
                    1 => {
                        for id in w.server.peer_ids() {
                            w.server.kill(now, id, "fuzz");
                        }
                    }
                    2 => w.server.link_closed(now, w.link),
                    _ => w.server.shutdown(now),
                }
            }
            _ => {
                if let Some(p) = w.queue(false).pop_front() {
                    w.deliver(false, &p);
                }
            }
        }
    }
    w.pump(4);
    w.advance(Duration::from_secs(5));
    let _ = (w.client.stats(), w.server.stats(), w.server.routes());
}

/// Whether an honest exchange in wrap `mode` connects both sides (the scripts start from there;
/// the replay test checks it so the targets cannot silently become shallow).
pub fn honest_handshake_connects(mode: u8) -> bool {
    let mut w = World::new(usize::from(mode % 4), Focus::Client);
    for _ in 0..20 {
        w.pump(16);
        if w.client.is_connected() && w.server.connected_count() == 1 {
            return true;
        }
        w.advance(Duration::from_millis(500));
    }
    false
}
