//! Two stacks back to back in memory: TCP, UDP, limits, errors. No kernel device.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferrovpn_netstack::{Limits, Stack, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MB10: usize = 10 * 1024 * 1024;

/// Writes `data` then FIN; reads to EOF. Returns (checksum, length) of what was read.
async fn exchange(stream: TcpStream, data: Arc<Vec<u8>>) -> (u64, usize) {
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(64 * 1024) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
        w
    });
    let mut got = Vec::with_capacity(MB10);
    r.read_to_end(&mut got).await.unwrap();
    let _w = writer.await.unwrap();
    (checksum(&got), got.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_10mb_both_ways() {
    let (a, b) = pair();
    let listener = b.tcp_listen(5001, 4).await.unwrap();
    let to_b = Arc::new(pattern(1, MB10));
    let to_a = Arc::new(pattern(2, MB10));
    let (sum_to_b, sum_to_a) = (checksum(&to_b), checksum(&to_a));

    let started = tokio::time::Instant::now();
    let server = {
        let to_a = to_a.clone();
        tokio::spawn(async move {
            let (s, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), std::net::IpAddr::V4(A4));
            exchange(s, to_a).await
        })
    };
    let s = a
        .tcp_connect(SocketAddr::new(B4.into(), 5001))
        .await
        .unwrap();
    assert_eq!(s.local_addr().ip(), std::net::IpAddr::V4(A4));
    let (got_sum_a, got_len_a) = exchange(s, to_b).await;
    let (got_sum_b, got_len_b) = server.await.unwrap();
    let secs = started.elapsed().as_secs_f64();

    assert_eq!((got_len_a, got_sum_a), (MB10, sum_to_a));
    assert_eq!((got_len_b, got_sum_b), (MB10, sum_to_b));
    eprintln!(
        "in-memory TCP: 2 x 10 MiB in {secs:.2} s = {:.1} MB/s per direction, {:.1} MB/s total",
        MB10 as f64 / secs / 1e6,
        2.0 * MB10 as f64 / secs / 1e6
    );
    let st = a.stats();
    assert!(
        st.bytes_out > MB10 as u64 && st.bytes_in > MB10 as u64,
        "{st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_over_ipv6() {
    let (a, b) = pair();
    let listener = b.tcp_listen(6000, 1).await.unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V6(A6));
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let mut s = a
        .tcp_connect(SocketAddr::new(B6.into(), 6000))
        .await
        .unwrap();
    s.write_all(b"hello over v6").await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello over v6");
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_connections() {
    const N: usize = 1000;
    let limits = Limits {
        tcp_rx_buf: 16 * 1024,
        tcp_tx_buf: 16 * 1024,
        ..Limits::default()
    };
    let (a, b) = pair_with(limits);
    let listener = b.tcp_listen(7000, 64).await.unwrap();
    // Echo server: every connection stays open until its client closes.
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => s.write_all(&buf[..n]).await.unwrap(),
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    // Open all N (handshakes throttled to the listener's backlog), hold them all open at once,
    // then exchange a little on each.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(48));
    let all_open = Arc::new(tokio::sync::Barrier::new(N + 1));
    let mut tasks = Vec::new();
    for i in 0..N {
        let (a, handshakes, all_open) = (a.clone(), handshakes.clone(), all_open.clone());
        tasks.push(tokio::spawn(async move {
            let permit = handshakes.acquire().await.unwrap();
            let mut s = a
                .tcp_connect(SocketAddr::new(B4.into(), 7000))
                .await
                .unwrap();
            drop(permit);
            all_open.wait().await;
            let msg = pattern(i as u64 + 10, 1000 + i);
            s.write_all(&msg).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).await.unwrap();
            assert_eq!(checksum(&back), checksum(&msg), "connection {i}");
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), all_open.wait())
        .await
        .expect("all connections open");
    let open = a.stats().tcp_sockets;
    assert!(open >= N, "{open} sockets open on A");
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
    }
    // Closed connections are reaped: only B's listener sockets stay.
    for _ in 0..200 {
        if a.stats().tcp_sockets == 0 && b.stats().tcp_sockets <= 64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.stats().tcp_sockets, 0, "{:?}", a.stats());
    assert!(b.stats().tcp_sockets <= 64, "{:?}", b.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_timed_out() {
    let limits = Limits {
        connect_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (a, _b) = pair_with(limits);
    let e = a
        .tcp_connect(SocketAddr::new(B4.into(), 9))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    let e = a
        .tcp_connect(SocketAddr::new(B6.into(), 9))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    // Nobody at .99: B drops the SYNs.
    let e = a
        .tcp_connect(SocketAddr::new([198, 18, 0, 99].into(), 80))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    // Failed attempts leave nothing behind.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.stats().tcp_sockets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_port_taken_and_released() {
    let (_a, b) = pair();
    let l = b.tcp_listen(8000, 2).await.unwrap();
    assert_eq!(
        b.tcp_listen(8000, 2).await.unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );
    drop(l);
    let _l = b.tcp_listen(8000, 2).await.unwrap();
    assert_eq!(b.stats().tcp_sockets, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_v4_and_v6() {
    let (a, b) = pair();
    let server = b.udp_bind_port(5353).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&buf[..n], from).await.unwrap();
        }
    });
    let c = a.udp_bind().await.unwrap();
    for dst in [
        SocketAddr::new(B4.into(), 5353),
        SocketAddr::new(B6.into(), 5353),
    ] {
        for len in [0usize, 1, 500, c.max_payload(dst)] {
            let msg = pattern(len as u64, len);
            c.send_to(&msg, dst).await.unwrap();
            let mut buf = [0u8; 2048];
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(from, dst);
            assert_eq!(&buf[..n], &msg[..]);
        }
        let too_big = vec![0u8; c.max_payload(dst) + 1];
        assert_eq!(
            c.send_to(&too_big, dst).await.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_resets_connections_on_old_address() {
    let (a, b) = pair();
    let listener = b.tcp_listen(5002, 1).await.unwrap();
    let server = tokio::spawn(async move { listener.accept().await.unwrap().0 });
    let mut s = a
        .tcp_connect(SocketAddr::new(B4.into(), 5002))
        .await
        .unwrap();
    let _peer = server.await.unwrap();
    let mut cfg = a.config();
    cfg.ipv4 = Some(([198, 18, 0, 11].into(), 24));
    a.reconfigure(cfg).await;
    // Writing makes the socket dispatch, which notices the address is gone.
    let _ = s.write_all(b"x").await;
    let mut buf = [0u8; 1];
    let e = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    // New connections use the new address.
    let l2 = b.tcp_listen(5003, 1).await.unwrap();
    let acc = tokio::spawn(async move { l2.accept().await.unwrap().1 });
    let s2 = a
        .tcp_connect(SocketAddr::new(B4.into(), 5003))
        .await
        .unwrap();
    assert_eq!(
        s2.local_addr().ip(),
        std::net::IpAddr::V4([198, 18, 0, 11].into())
    );
    assert_eq!(
        acc.await.unwrap().ip(),
        std::net::IpAddr::V4([198, 18, 0, 11].into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_stops_when_pipe_dropped() {
    let (a, pipe) = ferrovpn_netstack::spawn(config(A4, A6, Limits::default()));
    let u = a.udp_bind().await.unwrap();
    drop(pipe);
    let mut buf = [0u8; 10];
    let e = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
    let e = a
        .tcp_connect(SocketAddr::new(B4.into(), 1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
    let _: &Stack = &a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_when_outbound_is_not_drained() {
    let limits = Limits {
        packet_queue: 16,
        ..Limits::default()
    };
    let (a, pa) = ferrovpn_netstack::spawn(config(A4, A6, limits.clone()));
    let (b, pb) = ferrovpn_netstack::spawn(config(B4, B6, limits));
    let (gate, mut gate_rx) = tokio::sync::watch::channel(true);
    // A -> B only while the gate is open: the consumer of A's `outbound` stalls.
    let (mut from, to) = (pa.outbound, pb.inbound);
    tokio::spawn(async move {
        loop {
            if gate_rx.wait_for(|open| *open).await.is_err() {
                break;
            }
            let Some(p) = from.recv().await else { break };
            if to.send(p).await.is_err() {
                break;
            }
        }
    });
    wire(pb.outbound, pa.inbound);

    let listener = b.tcp_listen(5004, 1).await.unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        (got.len(), checksum(&got))
    });
    let data = Arc::new(pattern(9, MB10));
    let mut s = a
        .tcp_connect(SocketAddr::new(B4.into(), 5004))
        .await
        .unwrap();
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            s.write_all(&data).await.unwrap();
            s.shutdown().await.unwrap();
            s
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    gate.send(false).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = a.stats().packets_out;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = a.stats().packets_out;
    // Nothing is emitted beyond what the channel holds; the rest waits in the socket.
    assert!(after - before <= 16, "{before} -> {after}");
    assert!(!writer.is_finished(), "the writer is held back");
    gate.send(true).unwrap();
    let _s = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .unwrap()
        .unwrap();
    let (len, sum) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((len, sum), (MB10, checksum(&data)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_survives_loss_and_reordering() {
    const LEN: usize = 2 * 1024 * 1024;
    let (a, pa) = ferrovpn_netstack::spawn(config(A4, A6, Limits::default()));
    let (b, pb) = ferrovpn_netstack::spawn(config(B4, B6, Limits::default()));
    wire_lossy(pa.outbound, pb.inbound, 7, 10);
    wire_lossy(pb.outbound, pa.inbound, 11, 10);
    let listener = b.tcp_listen(5005, 1).await.unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        (got.len(), checksum(&got))
    });
    let data = pattern(3, LEN);
    let started = tokio::time::Instant::now();
    let mut s = tokio::time::timeout(
        Duration::from_secs(30),
        a.tcp_connect(SocketAddr::new(B4.into(), 5005)),
    )
    .await
    .unwrap()
    .unwrap();
    s.write_all(&data).await.unwrap();
    s.shutdown().await.unwrap();
    let (len, sum) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((len, sum), (LEN, checksum(&data)));
    eprintln!(
        "1% loss + reordering: 2 MiB in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
