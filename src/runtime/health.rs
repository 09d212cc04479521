//! `--health ADDR`: `/readyz` (200 when the tunnel is up, 503 otherwise) and `/metrics`
//! (Prometheus text format) over a minimal HTTP/1.1 responder.

use std::sync::atomic::{AtomicU64, Ordering};

use ferrovpn_netstack::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::client_driver::TunnelState;

/// Counters the session loop updates.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sessions that reached "connected" after the first.
    pub reconnects: AtomicU64,
    /// Completed connections.
    pub connects: AtomicU64,
    /// Last handshake time in milliseconds.
    pub handshake_ms: AtomicU64,
    /// Packets from the server the client dropped (bad tag, replay, malformed).
    pub dropped: AtomicU64,
    /// Bytes read from the device (sent into the tunnel).
    pub tun_read: AtomicU64,
    /// Bytes written to the device (decrypted).
    pub tun_write: AtomicU64,
    /// Bytes received from the server (datagrams).
    pub link_read: AtomicU64,
    /// Bytes sent to the server.
    pub link_write: AtomicU64,
    /// Bytes of datagrams that authenticated (data packets that decrypted).
    pub auth_read: AtomicU64,
}

/// The process-wide counters.
pub static METRICS: Metrics = Metrics {
    reconnects: AtomicU64::new(0),
    connects: AtomicU64::new(0),
    handshake_ms: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    tun_read: AtomicU64::new(0),
    tun_write: AtomicU64::new(0),
    link_read: AtomicU64::new(0),
    link_write: AtomicU64::new(0),
    auth_read: AtomicU64::new(0),
};

/// The client's `status FILE` text, in OpenVPN 2.6's client format.
pub fn client_status_text(updated: &str) -> String {
    let m = &METRICS;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "OpenVPN STATISTICS\nUpdated,{updated}\nTUN/TAP read bytes,{}\nTUN/TAP write bytes,{}\n\
         TCP/UDP read bytes,{}\nTCP/UDP write bytes,{}\nAuth read bytes,{}\n\
         pre-compress bytes,0\npost-compress bytes,0\npre-decompress bytes,0\n\
         post-decompress bytes,0\nEND\n",
        g(&m.tun_read),
        g(&m.tun_write),
        g(&m.link_read),
        g(&m.link_write),
        g(&m.auth_read),
    )
}

/// Rewrites the client's `status FILE` every `every` (and once more when `stop` turns true).
pub async fn client_status_file(
    path: std::path::PathBuf,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let write = |path: &std::path::Path| {
        let text = client_status_text(&super::server::status::format_local_time(
            super::clock::wall(),
        ));
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::warn!("status file {}: {e}", path.display());
        }
    };
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = tick.tick() => write(&path),
            _ = stop.wait_for(|s| *s) => {
                write(&path);
                return;
            }
        }
    }
}

fn render(stack: &Stack, up: bool) -> String {
    let st = stack.stats();
    let m = &METRICS;
    format!(
        "# HELP ferrovpn_up Whether the tunnel is up.\n# TYPE ferrovpn_up gauge\nferrovpn_up {}\n\
         # HELP ferrovpn_tunnel_bytes_total Bytes of IP packets through the tunnel.\n# TYPE ferrovpn_tunnel_bytes_total counter\n\
         ferrovpn_tunnel_bytes_total{{direction=\"in\"}} {}\nferrovpn_tunnel_bytes_total{{direction=\"out\"}} {}\n\
         # HELP ferrovpn_tunnel_packets_total IP packets through the tunnel.\n# TYPE ferrovpn_tunnel_packets_total counter\n\
         ferrovpn_tunnel_packets_total{{direction=\"in\"}} {}\nferrovpn_tunnel_packets_total{{direction=\"out\"}} {}\n\
         # HELP ferrovpn_tcp_connections Open TCP sockets in the userspace stack.\n# TYPE ferrovpn_tcp_connections gauge\nferrovpn_tcp_connections {}\n\
         # HELP ferrovpn_connects_total Sessions that reached Initialization Sequence Completed.\n# TYPE ferrovpn_connects_total counter\nferrovpn_connects_total {}\n\
         # HELP ferrovpn_reconnects_total Reconnections after the first connect.\n# TYPE ferrovpn_reconnects_total counter\nferrovpn_reconnects_total {}\n\
         # HELP ferrovpn_handshake_seconds Duration of the last handshake.\n# TYPE ferrovpn_handshake_seconds gauge\nferrovpn_handshake_seconds {:.3}\n\
         # HELP ferrovpn_dropped_packets_total Packets from the server dropped (bad tag, replay, malformed).\n# TYPE ferrovpn_dropped_packets_total counter\nferrovpn_dropped_packets_total {}\n",
        u8::from(up),
        st.bytes_in,
        st.bytes_out,
        st.packets_in,
        st.packets_out,
        st.tcp_connections,
        m.connects.load(Ordering::Relaxed),
        m.reconnects.load(Ordering::Relaxed),
        m.handshake_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        m.dropped.load(Ordering::Relaxed),
    )
}

/// Serves the endpoint until the listener fails.
pub async fn serve(listener: TcpListener, stack: Stack, state: watch::Receiver<TunnelState>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let (stack, state) = (stack.clone(), state.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut len = 0;
            while len < buf.len() {
                match conn.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let up = *state.borrow() == TunnelState::Up;
            let (status, body, ctype) = match path {
                "/readyz" if up => ("200 OK", "ready\n".to_owned(), "text/plain"),
                "/readyz" => (
                    "503 Service Unavailable",
                    "tunnel down\n".to_owned(),
                    "text/plain",
                ),
                "/metrics" => ("200 OK", render(&stack, up), "text/plain; version=0.0.4"),
                _ => ("404 Not Found", "not found\n".to_owned(), "text/plain"),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        });
    }
}
