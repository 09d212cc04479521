//! SOCKS5, HTTP proxy, forwards and the routing dialer, in process: the proxies dial over
//! stack A; the services (echo, HTTP, DNS) run on stack B.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ferrovpn_netstack::proxy::http::{parse_request_head, parse_response_head};
use ferrovpn_netstack::proxy::{
    self, DirectDialer, RoutingDialer, Target, TunnelDialer, forward, http::base64_encode,
};
use ferrovpn_netstack::{Limits, Stack};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const ECHO: u16 = 7;
const HTTP: u16 = 80;
const CLOSED: u16 = 81;

/// A DNS answer for a query: server.test -> B4 / B6; big.test is truncated over UDP.
fn dns_answer(query: &[u8], over_udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries().first()?.clone();
    let name = question.name().to_ascii().to_lowercase();
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_recursion_available(true);
    r.add_query(question.clone());
    match name.as_str() {
        "server.test." | "big.test." => {
            if name == "big.test." && over_udp {
                r.set_truncated(true);
            } else if question.query_type() == RecordType::A {
                r.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    RData::A(A(B4)),
                ));
            } else if question.query_type() == RecordType::AAAA {
                r.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    RData::AAAA(AAAA(B6)),
                ));
            }
        }
        _ => {
            r.set_response_code(ResponseCode::NXDomain);
        }
    }
    r.to_vec().ok()
}

/// Echo (TCP and UDP), an HTTP server, and DNS (UDP and TCP) on stack B.
async fn services(b: &Stack, dns_queries: Arc<AtomicUsize>) {
    let echo = b.tcp_listen(ECHO, 16).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    let uecho = b.udp_bind_port(ECHO).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = uecho.recv_from(&mut buf).await {
            let _ = uecho.send_to(&buf[..n], from).await;
        }
    });
    let web = b.tcp_listen(HTTP, 16).await.unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = web.accept().await {
            tokio::spawn(http_server_conn(s));
        }
    });
    let dns = b.udp_bind_port(53).await.unwrap();
    let counter = dns_queries.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = dns.recv_from(&mut buf).await {
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some(a) = dns_answer(&buf[..n], true) {
                let _ = dns.send_to(&a, from).await;
            }
        }
    });
    let dns_tcp = b.tcp_listen(53, 4).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = dns_tcp.accept().await {
            tokio::spawn(async move {
                let len = s.read_u16().await.unwrap();
                let mut q = vec![0u8; usize::from(len)];
                s.read_exact(&mut q).await.unwrap();
                let a = dns_answer(&q, false).unwrap();
                s.write_u16(a.len() as u16).await.unwrap();
                s.write_all(&a).await.unwrap();
                let _ = s.shutdown().await;
            });
        }
    });
}

/// HTTP/1.1 with keep-alive: answers "METHOD PATH BODY [#n]" where n counts requests on this
/// connection.
async fn http_server_conn(mut s: ferrovpn_netstack::TcpStream) {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        let head = loop {
            if let Ok(Some(h)) = parse_request_head(&buf) {
                break h;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        buf.drain(..head.len);
        let len: usize =
            proxy::http::header(&head.headers, "content-length").map_or(0, |v| v.parse().unwrap());
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            let k = s.read(&mut chunk).await.unwrap();
            assert!(k > 0);
            buf.extend_from_slice(&chunk[..k]);
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        n += 1;
        let path = match &head.target {
            proxy::http::RequestTarget::Origin(p) => p.clone(),
            other => format!("{other:?}"),
        };
        let host = proxy::http::header(&head.headers, "host")
            .unwrap_or("-")
            .to_owned();
        let reply = format!(
            "{} {} {} host={host} #{n}",
            head.method,
            path,
            String::from_utf8_lossy(&body)
        );
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

struct Env {
    a: Stack,
    b: Stack,
    dns_queries: Arc<AtomicUsize>,
}

async fn env_with(limits: Limits) -> Env {
    let (a, b) = pair_with(limits);
    let dns_queries = Arc::new(AtomicUsize::new(0));
    services(&b, dns_queries.clone()).await;
    Env { a, b, dns_queries }
}

async fn env() -> Env {
    env_with(Limits::default()).await
}

async fn socks_server(a: &Stack, auth: Option<(String, String)>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let dialer: Arc<dyn proxy::Dialer> = Arc::new(TunnelDialer::new(a.clone()));
    tokio::spawn(proxy::socks5::serve_socks5(l, dialer, auth));
    addr
}

async fn http_proxy(dialer: Arc<dyn proxy::Dialer>, auth: Option<(String, String)>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(proxy::http::serve_http(l, dialer, auth));
    addr
}

// ---- a tiny SOCKS5 client ----

fn socks_addr(t: &Target) -> Vec<u8> {
    let mut out = Vec::new();
    match t {
        Target::Addr(SocketAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
        }
        Target::Addr(SocketAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
        }
        Target::Name(n, _) => {
            out.push(3);
            out.push(n.len() as u8);
            out.extend_from_slice(n.as_bytes());
        }
    }
    out.extend_from_slice(&t.port().to_be_bytes());
    out
}

async fn read_socks_reply<S: AsyncRead + Unpin>(s: &mut S) -> (u8, SocketAddr) {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.unwrap();
    assert_eq!(h[0], 5);
    let ip: IpAddr = match h[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await.unwrap();
            a.into()
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await.unwrap();
            a.into()
        }
        t => panic!("reply ATYP {t}"),
    };
    let port = s.read_u16().await.unwrap();
    (h[1], SocketAddr::new(ip, port))
}

/// Greeting (+ user/pass) and a request; returns the reply code, bound address and stream.
async fn socks_request(
    proxy: SocketAddr,
    auth: Option<(&str, &str)>,
    cmd: u8,
    target: &Target,
) -> (u8, SocketAddr, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    match auth {
        None => {
            s.write_all(&[5, 1, 0]).await.unwrap();
            let mut r = [0u8; 2];
            s.read_exact(&mut r).await.unwrap();
            assert_eq!(r, [5, 0]);
        }
        Some((u, p)) => {
            s.write_all(&[5, 2, 0, 2]).await.unwrap();
            let mut r = [0u8; 2];
            s.read_exact(&mut r).await.unwrap();
            assert_eq!(r, [5, 2]);
            let mut m = vec![1, u.len() as u8];
            m.extend_from_slice(u.as_bytes());
            m.push(p.len() as u8);
            m.extend_from_slice(p.as_bytes());
            s.write_all(&m).await.unwrap();
            s.read_exact(&mut r).await.unwrap();
            if r != [1, 0] {
                return (0xff, "0.0.0.0:0".parse().unwrap(), s);
            }
        }
    }
    let mut req = vec![5, cmd, 0];
    req.extend_from_slice(&socks_addr(target));
    s.write_all(&req).await.unwrap();
    let (code, bound) = read_socks_reply(&mut s).await;
    (code, bound, s)
}

async fn echo_round<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_connect_by_ip_and_name() {
    let e = env().await;
    let p = socks_server(&e.a, None).await;
    let (code, _, mut s) =
        socks_request(p, None, 1, &Target::Addr(SocketAddr::new(B4.into(), ECHO))).await;
    assert_eq!(code, 0);
    echo_round(&mut s, b"by IPv4").await;
    let (code, _, mut s) =
        socks_request(p, None, 1, &Target::Addr(SocketAddr::new(B6.into(), ECHO))).await;
    assert_eq!(code, 0);
    echo_round(&mut s, b"by IPv6").await;
    let (code, _, mut s) =
        socks_request(p, None, 1, &Target::Name("server.test".into(), ECHO)).await;
    assert_eq!(code, 0);
    let big = pattern(5, 300_000);
    echo_round(&mut s, &big).await;
    drop(s);
    // The answer is cached: a second connect by name sends no query.
    let before = e.dns_queries.load(Ordering::Relaxed);
    assert!(before >= 1);
    let (code, _, mut s) =
        socks_request(p, None, 1, &Target::Name("SERVER.test".into(), ECHO)).await;
    assert_eq!(code, 0);
    echo_round(&mut s, b"cached").await;
    assert_eq!(e.dns_queries.load(Ordering::Relaxed), before);
    // Failures map to reply codes.
    let (code, _, _) = socks_request(
        p,
        None,
        1,
        &Target::Addr(SocketAddr::new(B4.into(), CLOSED)),
    )
    .await;
    assert_eq!(code, 5, "connection refused");
    let (code, _, _) = socks_request(p, None, 1, &Target::Name("nope.test".into(), ECHO)).await;
    assert_eq!(code, 4, "host unreachable (no such name)");
    let (code, _, _) =
        socks_request(p, None, 2, &Target::Addr(SocketAddr::new(B4.into(), ECHO))).await;
    assert_eq!(code, 7, "BIND is not supported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_falls_back_to_tcp_when_truncated() {
    let e = env().await;
    let addrs = e.a.resolve("big.test").await.unwrap();
    assert_eq!(addrs, vec![IpAddr::V4(B4), IpAddr::V6(B6)]);
    assert_eq!(
        e.a.resolve("server.test.").await.unwrap(),
        vec![IpAddr::V4(B4), IpAddr::V6(B6)]
    );
    let err = e.a.resolve("missing.test").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(
        e.a.resolve("198.18.0.9").await.unwrap(),
        vec![IpAddr::from([198, 18, 0, 9])]
    );
    let _ = &e.b;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_user_pass() {
    let e = env().await;
    let p = socks_server(&e.a, Some(("alice".into(), "s3cret".into()))).await;
    let (code, _, mut s) = socks_request(
        p,
        Some(("alice", "s3cret")),
        1,
        &Target::Addr(SocketAddr::new(B4.into(), ECHO)),
    )
    .await;
    assert_eq!(code, 0);
    echo_round(&mut s, b"authenticated").await;
    let (code, _, _) = socks_request(
        p,
        Some(("alice", "wrong")),
        1,
        &Target::Addr(SocketAddr::new(B4.into(), ECHO)),
    )
    .await;
    assert_eq!(code, 0xff);
    // No acceptable method without credentials.
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.unwrap();
    assert_eq!(r, [5, 0xff]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_udp_associate_echo() {
    let e = env().await;
    let p = socks_server(&e.a, None).await;
    let (code, relay, control) =
        socks_request(p, None, 3, &Target::Addr("0.0.0.0:0".parse().unwrap())).await;
    assert_eq!(code, 0);
    assert_eq!(relay.ip(), IpAddr::from([127, 0, 0, 1]));
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (target, expect_from) in [
        (
            Target::Addr(SocketAddr::new(B4.into(), ECHO)),
            SocketAddr::new(B4.into(), ECHO),
        ),
        (
            Target::Name("server.test".into(), ECHO),
            SocketAddr::new(B4.into(), ECHO),
        ),
        (
            Target::Addr(SocketAddr::new(B6.into(), ECHO)),
            SocketAddr::new(B6.into(), ECHO),
        ),
    ] {
        let mut d = vec![0, 0, 0];
        d.extend_from_slice(&socks_addr(&target));
        d.extend_from_slice(b"datagram");
        // UDP may be lost while things warm up: retry a few times.
        let mut got = None;
        for _ in 0..5 {
            u.send_to(&d, relay).await.unwrap();
            let mut buf = [0u8; 2048];
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), u.recv_from(&mut buf)).await
            {
                let (n, _) = r.unwrap();
                got = Some(buf[..n].to_vec());
                break;
            }
        }
        let got = got.expect("UDP echo through SOCKS5");
        let (from, off) = proxy::socks5::parse_udp_header(&got).unwrap();
        assert_eq!(from, Target::Addr(expect_from));
        assert_eq!(&got[off..], b"datagram");
    }
    drop(control);
}

// ---- HTTP proxy ----

/// Reads one response (Content-Length framed, or until close); returns (status, body).
async fn read_response<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    let head = loop {
        if let Some(h) = parse_response_head(buf).unwrap() {
            break h;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "EOF before response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    buf.drain(..head.len);
    let len: usize = proxy::http::header(&head.headers, "content-length")
        .unwrap()
        .parse()
        .unwrap();
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    (head.status, buf.drain(..len).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_connect_get_post_keepalive() {
    let e = env().await;
    let p = http_proxy(Arc::new(TunnelDialer::new(e.a.clone())), None).await;

    // CONNECT, then raw bytes.
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(b"CONNECT 198.18.0.2:7 HTTP/1.1\r\nHost: 198.18.0.2:7\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let head = loop {
        let mut c = [0u8; 256];
        let n = s.read(&mut c).await.unwrap();
        buf.extend_from_slice(&c[..n]);
        if let Some(h) = parse_response_head(&buf).unwrap() {
            break h;
        }
    };
    assert_eq!(head.status, 200);
    assert_eq!(buf.len(), head.len);
    echo_round(&mut s, b"tunnelled bytes").await;

    // Absolute-form GET and POST with a body on one kept-alive connection.
    let mut s = TcpStream::connect(p).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET http://198.18.0.2/hello?x=1 HTTP/1.1\r\nHost: 198.18.0.2\r\nProxy-Connection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let (status, body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "GET /hello?x=1  host=198.18.0.2 #1"
    );
    s.write_all(b"POST http://198.18.0.2/form HTTP/1.1\r\nHost: 198.18.0.2\r\nContent-Length: 9\r\n\r\nname=ferr").await.unwrap();
    let (status, body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    // "#2": the proxy reused its upstream connection too.
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "POST /form name=ferr host=198.18.0.2 #2"
    );
    // By name, with a chunked request body and no Host header.
    s.write_all(b"PUT http://server.test/up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").await.unwrap();
    let (status, body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("PUT /up "), "{body}");
    assert!(body.ends_with("host=server.test #1"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_errors_and_auth() {
    let e = env_with(Limits {
        connect_timeout: Duration::from_millis(400),
        ..Limits::default()
    })
    .await;
    let dialer: Arc<dyn proxy::Dialer> = Arc::new(TunnelDialer::new(e.a.clone()));
    let p = http_proxy(dialer.clone(), None).await;
    let ask = |req: &'static str| async move {
        let mut s = TcpStream::connect(p).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        read_response(&mut s, &mut buf).await.0
    };
    assert_eq!(
        ask("GET http://198.18.0.2:81/ HTTP/1.1\r\n\r\n").await,
        502,
        "refused"
    );
    assert_eq!(
        ask("CONNECT 198.18.0.2:81 HTTP/1.1\r\n\r\n").await,
        502,
        "refused"
    );
    assert_eq!(
        ask("GET http://198.18.0.99/ HTTP/1.1\r\n\r\n").await,
        504,
        "timeout"
    );
    assert_eq!(
        ask("GET http://nope.test/ HTTP/1.1\r\n\r\n").await,
        502,
        "no such name"
    );
    assert_eq!(ask("GET /origin-form HTTP/1.1\r\n\r\n").await, 400);
    assert_eq!(
        ask("GET http://a/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").await,
        400
    );

    let pa = http_proxy(dialer, Some(("bob".into(), "pw".into()))).await;
    let mut s = TcpStream::connect(pa).await.unwrap();
    s.write_all(b"GET http://198.18.0.2/ HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let head = loop {
        let mut c = [0u8; 1024];
        let n = s.read(&mut c).await.unwrap();
        buf.extend_from_slice(&c[..n]);
        if let Some(h) = parse_response_head(&buf).unwrap() {
            break h;
        }
    };
    assert_eq!(head.status, 407);
    assert!(
        proxy::http::header(&head.headers, "proxy-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    let mut s = TcpStream::connect(pa).await.unwrap();
    let req = format!(
        "GET http://198.18.0.2/ok HTTP/1.1\r\nProxy-Authorization: Basic {}\r\n\r\n",
        base64_encode(b"bob:pw")
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (status, body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().starts_with("GET /ok"));
}

// ---- forwards ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_local_remote_udp() {
    let e = env().await;
    let dialer: Arc<dyn proxy::Dialer> = Arc::new(TunnelDialer::new(e.a.clone()));

    // -L 127.0.0.1:0:server.test:7
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let laddr = l.local_addr().unwrap();
    tokio::spawn(forward::forward_local(
        l,
        dialer.clone(),
        Target::Name("server.test".into(), ECHO),
    ));
    let mut s = TcpStream::connect(laddr).await.unwrap();
    echo_round(&mut s, b"local forward").await;

    // -R 2222:127.0.0.1:<host echo>: B connects to A's VPN address.
    let host_echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_echo_addr = host_echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = host_echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    tokio::spawn(forward::forward_remote(
        e.a.clone(),
        2222,
        8,
        Target::Addr(host_echo_addr),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut conns = Vec::new();
    for i in 0..5u8 {
        let mut c =
            e.b.tcp_connect(SocketAddr::new(A4.into(), 2222))
                .await
                .unwrap();
        echo_round(&mut c, &[i; 100]).await;
        conns.push(c);
    }

    // --udp-forward 127.0.0.1:0:198.18.0.2:7, two client sources.
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let uaddr = u.local_addr().unwrap();
    tokio::spawn(forward::forward_udp(
        u,
        dialer,
        Target::Addr(SocketAddr::new(B4.into(), ECHO)),
    ));
    for who in [&b"first"[..], &b"second"[..]] {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut got = None;
        for _ in 0..5 {
            c.send_to(who, uaddr).await.unwrap();
            let mut buf = [0u8; 100];
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), c.recv_from(&mut buf)).await
            {
                let (n, from) = r.unwrap();
                assert_eq!(from, uaddr);
                got = Some(buf[..n].to_vec());
                break;
            }
        }
        assert_eq!(got.as_deref(), Some(who));
    }
}

// ---- routing dialer ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_fails_closed_and_splits() {
    let e = env().await;
    let (up_tx, up_rx) = tokio::sync::watch::channel(false);
    let d = RoutingDialer {
        routes: vec![
            "198.18.0.0/24".parse().unwrap(),
            "2001:db8::/64".parse().unwrap(),
        ],
        all_through_tunnel: false,
        domains: vec!["test".into()],
        tunnel: TunnelDialer::new(e.a.clone()),
        direct: DirectDialer::default(),
        tunnel_up: up_rx,
        wait_timeout: Duration::from_millis(300),
    };
    let d: Arc<dyn proxy::Dialer> = Arc::new(d);
    // Tunnel down: a tunnel destination fails (never dialed directly), after the wait.
    let t0 = tokio::time::Instant::now();
    let err = d
        .connect(Target::Addr(SocketAddr::new(B4.into(), ECHO)))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    let err = d
        .connect(Target::Name("server.test".into(), ECHO))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    // A host destination goes direct regardless.
    let host = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let haddr = host.local_addr().unwrap();
    let acc = tokio::spawn(async move { host.accept().await.unwrap().1 });
    let _direct = d.connect(Target::Addr(haddr)).await.unwrap();
    acc.await.unwrap();
    // The tunnel comes up while a connect waits: it proceeds through the tunnel.
    let pending = tokio::spawn({
        let d = d.clone();
        async move { d.connect(Target::Name("server.test".into(), ECHO)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    up_tx.send(true).unwrap();
    let mut s = pending.await.unwrap().unwrap();
    echo_round(&mut s, b"routed").await;
}
