//! The userspace exit, black-box: a client stack wired in memory to the exit, which reaches
//! real sockets on loopback. No kernel device, no privileges.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{checksum, pattern, wire};
use ferrovpn_netstack::{
    AllowRule, ExitConfig, ExitHandle, Limits, Stack, StackConfig, spawn, spawn_exit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXIT4: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 2);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn rules(list: &[&str]) -> Vec<AllowRule> {
    list.iter().map(|r| r.parse().unwrap()).collect()
}

/// A client stack (198.18.100.2, 2001:db8:100::2) wired to an exit (.1, ::1).
fn setup(allow: Vec<AllowRule>, local_services: Vec<(u16, SocketAddr)>) -> (Stack, ExitHandle) {
    let (exit, ep) = spawn_exit(ExitConfig {
        addresses: vec![
            "198.18.100.1/24".parse().unwrap(),
            "2001:db8:100::1/64".parse().unwrap(),
        ],
        mtu: 1500,
        allow,
        local_services,
        ..ExitConfig::default()
    });
    let (client, cp) = spawn(StackConfig {
        ipv4: Some((CLIENT4, 24)),
        ipv6: Some((CLIENT6, 64)),
        mtu: 1500,
        dns_servers: Vec::new(),
        limits: Limits::default(),
    });
    wire(cp.outbound, ep.inbound);
    wire(ep.outbound, cp.inbound);
    (client, exit)
}

/// A TCP echo server on `ip` (echoes until EOF, then closes).
async fn echo_server(ip: IpAddr) -> SocketAddr {
    let l = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Writes `msg`, half-closes, reads to EOF.
async fn echo_once(client: &Stack, dst: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = client.tcp_connect(dst).await?;
    s.write_all(msg).await?;
    s.shutdown().await?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).await?;
    Ok(got)
}

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_to_allowed_loopback() {
    let (client, exit) = setup(rules(&["127.0.0.1/32"]), Vec::new());
    let dst = echo_server(LOCALHOST).await;
    let got = tokio::time::timeout(T, echo_once(&client, dst, b"hello through the exit"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello through the exit");
    let st = exit.stats();
    assert_eq!(st.tcp_flows_opened, 1, "{st:?}");
    assert_eq!(st.bytes_to_host, 22, "{st:?}");
    assert_eq!(st.bytes_from_host, 22, "{st:?}");
    assert_eq!((st.denied, st.connect_failed), (0, 0), "{st:?}");
    // The flow ends once both sides closed.
    tokio::time::timeout(Duration::from_secs(10), async {
        while exit.stats().tcp_flows_active != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("flow never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_over_ipv6_to_a_local_service() {
    // (smoltcp will not send to ::1, so IPv6 is tried on the exit's own address.)
    let web = echo_server(LOCALHOST).await;
    let (client, exit) = setup(Vec::new(), vec![(8080, web)]);
    let at: SocketAddr = "[2001:db8:100::1]:8080".parse().unwrap();
    let got = tokio::time::timeout(T, echo_once(&client, at, b"six"))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}: {:?}", exit.stats()));
    assert_eq!(got, b"six");
}

/// Writes `data` and FIN while reading to EOF; returns (checksum, length) of what was read.
async fn exchange<S>(stream: S, data: Arc<Vec<u8>>) -> (u64, usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(64 * 1024) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
        w
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    let _w = writer.await.unwrap();
    (checksum(&got), got.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_multi_megabyte_both_ways() {
    const LEN: usize = 8 * 1024 * 1024;
    let (client, exit) = setup(rules(&["127.0.0.1/32"]), Vec::new());
    let to_host = Arc::new(pattern(1, LEN));
    let to_client = Arc::new(pattern(2, LEN));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dst = l.local_addr().unwrap();
    let server = {
        let to_client = to_client.clone();
        tokio::spawn(async move {
            let (s, peer) = l.accept().await.unwrap();
            assert!(peer.ip().is_loopback());
            exchange(s, to_client).await
        })
    };
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(T, async {
        let s = client.tcp_connect(dst).await.unwrap();
        let got_client = exchange(s, to_host.clone()).await;
        (got_client, server.await.unwrap())
    })
    .await
    .expect("transfer stalled");
    let secs = started.elapsed().as_secs_f64();
    let ((sum_c, len_c), (sum_h, len_h)) = result;
    assert_eq!((len_c, sum_c), (LEN, checksum(&to_client)));
    assert_eq!((len_h, sum_h), (LEN, checksum(&to_host)));
    eprintln!(
        "exit TCP: 2 x {} MiB in {secs:.2} s = {:.1} MB/s per direction",
        LEN >> 20,
        LEN as f64 / secs / 1e6
    );
    let st = exit.stats();
    assert_eq!(st.bytes_to_host, LEN as u64, "{st:?}");
    assert_eq!(st.bytes_from_host, LEN as u64, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_download_throughput() {
    const LEN: usize = 32 * 1024 * 1024;
    let (client, _exit) = setup(rules(&["127.0.0.1/32"]), Vec::new());
    let data = Arc::new(pattern(3, LEN));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dst = l.local_addr().unwrap();
    {
        let data = data.clone();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(&data).await.unwrap();
            s.shutdown().await.unwrap();
        });
    }
    let started = tokio::time::Instant::now();
    let got = tokio::time::timeout(T, async {
        let mut s = client.tcp_connect(dst).await.unwrap();
        let mut got = Vec::with_capacity(LEN);
        s.read_to_end(&mut got).await.unwrap();
        got
    })
    .await
    .expect("download stalled");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!((got.len(), checksum(&got)), (LEN, checksum(&data)));
    eprintln!(
        "exit TCP download: {} MiB in {secs:.2} s = {:.1} MB/s",
        LEN >> 20,
        LEN as f64 / secs / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_destination_is_refused_at_once() {
    let (client, exit) = setup(rules(&["127.0.0.1/32:1-1023"]), Vec::new());
    let dst = echo_server(LOCALHOST).await;
    assert!(dst.port() > 1023);
    let started = tokio::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), client.tcp_connect(dst))
        .await
        .expect("denied connect hung")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Another loopback address, not named by the rule.
    let other = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 80);
    let err = client.tcp_connect(other).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let st = exit.stats();
    assert_eq!((st.denied, st.tcp_flows_opened), (2, 0), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_host_connect_refuses_the_client() {
    let (client, exit) = setup(rules(&["127.0.0.1/32"]), Vec::new());
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        client.tcp_connect(SocketAddr::new(LOCALHOST, port)),
    )
    .await
    .expect("connect hung")
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let st = exit.stats();
    assert_eq!((st.connect_failed, st.tcp_flows_active), (1, 0), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_refuses_loopback() {
    let (client, exit) = setup(Vec::new(), Vec::new());
    let dst = echo_server(LOCALHOST).await;
    let err = tokio::time::timeout(Duration::from_secs(5), client.tcp_connect(dst))
        .await
        .expect("connect hung")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let sock = client.udp_bind().await.unwrap();
    sock.send_to(b"x", dst).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = exit.stats();
    assert_eq!(st.denied, 2, "{st:?}");
    assert_eq!(st.udp_flows_active, 0, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_service_on_the_exit_address() {
    // The default policy refuses loopback, but the mapping is reached all the same.
    let web = echo_server(LOCALHOST).await;
    let (client, exit) = setup(Vec::new(), vec![(80, web)]);
    let at = SocketAddr::new(EXIT4.into(), 80);
    let got = tokio::time::timeout(T, echo_once(&client, at, b"GET / HTTP/1.0\r\n\r\n"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"GET / HTTP/1.0\r\n\r\n");
    // Other ports of the exit address have nothing.
    let err = client
        .tcp_connect(SocketAddr::new(EXIT4.into(), 81))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // And the service's host address itself stays refused.
    let err = client.tcp_connect(web).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(exit.stats().tcp_flows_opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_to_one_port() {
    const N: usize = 64;
    let (client, exit) = setup(rules(&["127.0.0.1/32"]), Vec::new());
    let dst = echo_server(LOCALHOST).await;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let msg = pattern(i as u64 + 10, 1000 + 997 * i);
                let got = echo_once(&client, dst, &msg).await.unwrap();
                assert_eq!(checksum(&got), checksum(&msg), "connection {i}");
            })
        })
        .collect();
    tokio::time::timeout(T, async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("connections stalled");
    assert_eq!(exit.stats().tcp_flows_opened, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_through_the_exit() {
    let (client, exit) = setup(rules(&["127.0.0.1/32"]), Vec::new());
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dst = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = server.recv_from(&mut buf).await {
            let _ = server.send_to(&buf[..n], from).await;
        }
    });
    let sock = client.udp_bind().await.unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..20u8 {
        let msg = vec![i; 100 + usize::from(i) * 50];
        sock.send_to(&msg, dst).await.unwrap();
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no UDP reply: {:?}", exit.stats()))
            .unwrap();
        assert_eq!(from, dst);
        assert_eq!(&buf[..n], &msg[..]);
    }
    let st = exit.stats();
    assert_eq!(
        st.udp_flows_active, 1,
        "one flow for one (client, destination): {st:?}"
    );
    // A denied destination is dropped and counted.
    sock.send_to(
        b"x",
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 9),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(exit.stats().denied, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_udp_flows_expire() {
    let (exit, ep) = spawn_exit(ExitConfig {
        addresses: vec!["198.18.100.1/24".parse().unwrap()],
        allow: rules(&["127.0.0.1/32"]),
        limits: ferrovpn_netstack::ExitLimits {
            udp_idle_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..ExitConfig::default()
    });
    let (client, cp) = spawn(StackConfig {
        ipv4: Some((CLIENT4, 24)),
        ..StackConfig::default()
    });
    wire(cp.outbound, ep.inbound);
    wire(ep.outbound, cp.inbound);
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sock = client.udp_bind().await.unwrap();
    sock.send_to(b"ping", server.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), server.recv_from(&mut buf))
        .await
        .expect("datagram not delivered")
        .unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(exit.stats().udp_flows_active, 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(exit.stats().udp_flows_active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_resets_connections() {
    let (client, exit) = setup(rules(&["127.0.0.1/32"]), Vec::new());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dst = l.local_addr().unwrap();
    let host = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        // Ends with an error (reset) or EOF once the exit stops.
        let _ = s.read_to_end(&mut buf).await;
    });
    let mut s = client.tcp_connect(dst).await.unwrap();
    s.write_all(b"x").await.unwrap();
    exit.shutdown();
    tokio::time::timeout(Duration::from_secs(5), host)
        .await
        .expect("host side not closed")
        .unwrap();
}

/// ICMP echo to the server's own tunnel address is answered by the exit itself.
#[tokio::test]
async fn echo_to_the_servers_address_is_answered() {
    use ferrovpn_netstack::exit::{ExitConfig, spawn_exit};
    let (_h, mut pipe) = spawn_exit(ExitConfig {
        addresses: vec!["198.18.100.1/24".parse().unwrap()],
        ..ExitConfig::default()
    });
    // IPv4 header + ICMP echo request (id 0x1234, seq 1, 8 bytes of payload).
    let mut icmp = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
    let sum = inet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0, 198, 18, 100, 2, 198, 18, 100, 1,
    ];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let hsum = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&hsum.to_be_bytes());
    ip.extend_from_slice(&icmp);
    pipe.inbound
        .send(bytes::BytesMut::from(&ip[..]))
        .await
        .unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(2), pipe.outbound.recv())
        .await
        .expect("no echo reply within 2 s")
        .expect("exit stopped");
    assert_eq!(reply[9], 1, "not ICMP: {reply:?}");
    assert_eq!(&reply[12..16], &[198, 18, 100, 1]);
    assert_eq!(&reply[16..20], &[198, 18, 100, 2]);
    assert_eq!(reply[20], 0, "not an echo reply: {reply:?}");
}

fn inet_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
