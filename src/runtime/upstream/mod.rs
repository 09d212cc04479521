//! Reaching the server through an `http-proxy` or a `socks-proxy`: the async glue around the
//! sans-IO messages of [`crate::proto::upstream`]. [`connect`] hands back a [`Transport`] that
//! carries OpenVPN packets exactly like a direct one.

mod credentials;
mod http;
mod socks;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

pub use socks::SocksUdpPath;

use super::transport::Transport;
use crate::config::{Remote, UpstreamProxy};
use crate::proto::upstream::TargetAddr;

/// Why reaching the server through a proxy failed. Errors are ready to show.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt (proxy down, timeout, refused target).
    Retry(String),
    /// Retrying cannot help: the proxy refused the credentials, or there are none to give.
    Fatal(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Retry(s)
    }
}

/// Connects to `remote` through `proxy`. Returns the proxy's address (the peer the packets go
/// to, for the route exception) and the transport.
pub async fn connect(
    proxy: &UpstreamProxy,
    remote: &Remote,
    timeout: Duration,
) -> Result<(SocketAddr, Transport), Failure> {
    // The proxy resolves the server's name: the name is sent as is.
    let target = TargetAddr::new(&remote.host, remote.port);
    let (host, port) = proxy.host_port();
    let addr = resolve(host, port).await?;
    let tcp = remote.proto.is_tcp();
    let transport = match proxy {
        UpstreamProxy::Http(h) => {
            let (stream, rest) = http::connect(h, addr, &target, timeout).await?;
            Transport::from_tcp(stream, &rest)?
        }
        UpstreamProxy::Socks(s) if tcp => {
            let stream = socks::connect(s, addr, &target, timeout).await?;
            Transport::from_tcp(stream, &[])?
        }
        UpstreamProxy::Socks(s) => {
            Transport::SocksUdp(socks::associate(s, addr, target, timeout).await?)
        }
    };
    Ok((addr, transport))
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve the proxy '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("the proxy '{host}' has no address"))
}

/// Opens a TCP connection to the proxy within `timeout`.
async fn dial(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to the proxy {addr} timed out"))?
        .map_err(|e| format!("cannot reach the proxy {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Reads until `parse` finds a whole message; returns it and the bytes after it.
async fn read_message<T, E: std::fmt::Display>(
    stream: &mut TcpStream,
    timeout: Duration,
    what: &str,
    mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<(T, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(512);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some((v, n)) = parse(&buf).map_err(|e| e.to_string())? {
            return Ok((v, buf.split_off(n)));
        }
        let mut chunk = [0u8; 2048];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| format!("the proxy did not answer {what} within {timeout:?}"))?
            .map_err(|e| format!("reading the proxy's answer to {what}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "the proxy closed the connection instead of answering {what}"
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
