//! UDP through the stack.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use tokio::io::ReadBuf;

use crate::stack::{Shared, Stack};

const IPV4_UDP_HEADERS: usize = 20 + 8;
const IPV6_UDP_HEADERS: usize = 40 + 8;

impl Stack {
    /// A UDP socket on an ephemeral port of the VPN addresses.
    pub async fn udp_bind(&self) -> io::Result<UdpSocket> {
        self.udp_bind_port(0).await
    }

    /// A UDP socket on `port` (0: ephemeral) of the VPN addresses.
    pub async fn udp_bind_port(&self, port: u16) -> io::Result<UdpSocket> {
        self.bind_udp(port, false)
    }

    /// A socket with small buffers, for the stack's own DNS queries.
    pub(crate) fn udp_bind_small(&self) -> io::Result<UdpSocket> {
        self.bind_udp(0, true)
    }

    fn bind_udp(&self, port: u16, small: bool) -> io::Result<UdpSocket> {
        let (handle, port) = self.shared.lock().udp_bind(Some(port), small)?;
        Ok(UdpSocket {
            shared: self.shared.clone(),
            handle,
            port,
            recv_turn: tokio::sync::Mutex::new(()),
            send_turn: tokio::sync::Mutex::new(()),
        })
    }
}

/// A UDP socket through the tunnel. Datagrams larger than the tunnel MTU allows are refused
/// with `InvalidInput` (the stack does not fragment); received datagrams longer than the
/// caller's buffer are truncated.
pub struct UdpSocket {
    shared: Arc<Shared>,
    handle: SocketHandle,
    port: u16,
    recv_turn: tokio::sync::Mutex<()>,
    send_turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("port", &self.port)
            .finish()
    }
}

impl UdpSocket {
    /// The local port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Largest payload that can be sent to `dst` in one datagram.
    pub fn max_payload(&self, dst: SocketAddr) -> usize {
        let mtu = self.shared.lock().mtu();
        mtu.saturating_sub(if dst.is_ipv4() {
            IPV4_UDP_HEADERS
        } else {
            IPV6_UDP_HEADERS
        })
    }

    /// Queues one datagram. Concurrent callers take turns.
    pub async fn send_to(&self, data: &[u8], dst: SocketAddr) -> io::Result<usize> {
        let _turn = self.send_turn.lock().await;
        poll_fn(|cx| self.poll_send_to(cx, data, dst)).await
    }

    /// Receives one datagram. Concurrent callers take turns.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let _turn = self.recv_turn.lock().await;
        let mut rb = ReadBuf::new(buf);
        let from = poll_fn(|cx| self.poll_recv_from(cx, &mut rb)).await?;
        Ok((rb.filled().len(), from))
    }

    /// Poll form of [`send_to`](Self::send_to). Only one task may poll sends at a time (one
    /// waker is kept).
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        dst: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.shared.lock();
        inner.check_running()?;
        inner.check_family(dst.ip())?;
        let max = inner.mtu().saturating_sub(if dst.is_ipv4() {
            IPV4_UDP_HEADERS
        } else {
            IPV6_UDP_HEADERS
        });
        if data.len() > max {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "UDP datagram of {} bytes exceeds the tunnel's {max}",
                    data.len()
                ),
            )));
        }
        if dst.port() == 0 || dst.ip().is_unspecified() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "send to an unspecified address",
            )));
        }
        let s = inner.sockets.get_mut::<udp::Socket>(self.handle);
        match s.send_slice(data, smoltcp::wire::IpEndpoint::from(dst)) {
            Ok(()) => {
                drop(inner);
                self.shared.wake.notify_one();
                Poll::Ready(Ok(data.len()))
            }
            Err(udp::SendError::BufferFull) => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            Err(udp::SendError::Unaddressable) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("cannot send to {dst}"),
            ))),
        }
    }

    /// Poll form of [`recv_from`](Self::recv_from): fills `buf` (truncating) and returns the
    /// sender. Only one task may poll receives at a time.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        let mut inner = self.shared.lock();
        inner.check_running()?;
        let s = inner.sockets.get_mut::<udp::Socket>(self.handle);
        match s.recv() {
            Ok((data, meta)) => {
                let n = data.len().min(buf.remaining());
                buf.put_slice(&data[..n]);
                Poll::Ready(Ok(meta.endpoint.into()))
            }
            Err(_) => {
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.shared.lock().remove(self.handle);
    }
}
