//! TCP through the stack: [`TcpStream`] (tokio `AsyncRead`/`AsyncWrite`) and [`TcpListener`].

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stack::{Shared, Stack, close_when_drained};

impl Stack {
    /// Opens a TCP connection through the tunnel.
    ///
    /// Errors: `ConnectionRefused` when the peer answers with a RST, `TimedOut` after
    /// [`Limits::connect_timeout`](crate::Limits), `NetworkUnreachable` when the tunnel has no
    /// address of `dst`'s family.
    pub async fn tcp_connect(&self, dst: SocketAddr) -> io::Result<TcpStream> {
        let handle = self.shared.lock().tcp_connect(dst)?;
        self.shared.wake.notify_one();
        let timeout = self.shared.lock().cfg.limits.connect_timeout;
        let mut stream = TcpStream::new(self.shared.clone(), handle, unspecified(dst.ip()), dst);
        match tokio::time::timeout(timeout, poll_fn(|cx| stream.poll_established(cx))).await {
            Ok(Ok(())) => {
                let mut inner = self.shared.lock();
                inner.tcp_established(handle);
                if let Some(local) = inner.sockets.get::<tcp::Socket>(handle).local_endpoint() {
                    stream.local = local.into();
                }
                Ok(stream)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                stream.abort();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TCP connect to {dst} timed out"),
                ))
            }
        }
    }

    /// Listens on `port` of the VPN addresses, keeping `backlog` (at least 1) smoltcp listening
    /// sockets armed so that as many handshakes can start at once; established connections
    /// wait for [`TcpListener::accept`] in a queue of up to 1024.
    pub async fn tcp_listen(&self, port: u16, backlog: usize) -> io::Result<TcpListener> {
        let backlog = backlog.max(1);
        self.shared.lock().listen(port, backlog)?;
        self.shared.wake.notify_one();
        Ok(TcpListener {
            shared: self.shared.clone(),
            port,
            backlog,
            accept_lock: tokio::sync::Mutex::new(()),
        })
    }
}

fn unspecified(like: IpAddr) -> SocketAddr {
    match like {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// A TCP connection through the tunnel.
///
/// Reads return 0 at the peer's FIN and `ConnectionReset` after a RST or when the VPN address
/// went away. `shutdown` sends a FIN once everything written has been acknowledged (and waits
/// for that). Dropping the stream closes it the same way in the background, with a RST after
/// 30 s without completing.
pub struct TcpStream {
    shared: Arc<Shared>,
    handle: SocketHandle,
    local: SocketAddr,
    peer: SocketAddr,
    live: bool,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish()
    }
}

impl TcpStream {
    fn new(shared: Arc<Shared>, handle: SocketHandle, local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            shared,
            handle,
            local,
            peer,
            live: true,
        }
    }

    /// Our VPN address and port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The remote end.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn abort(&mut self) {
        if std::mem::take(&mut self.live) {
            let now = self.shared.now();
            self.shared.lock().abort_tcp(self.handle, now);
            self.shared.wake.notify_one();
        }
    }

    fn poll_established(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        inner.check_running()?;
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived => {
                s.register_send_waker(cx.waker());
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
            tcp::State::Closed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("connection to {} refused", self.peer),
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut inner = self.shared.lock();
        if inner.stopped {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "netstack stopped",
            )));
        }
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        let mut total = 0;
        // The ring buffer hands out at most two contiguous pieces.
        for _ in 0..2 {
            let r = s.recv(|data| {
                let n = data.len().min(buf.remaining());
                buf.put_slice(&data[..n]);
                (n, n)
            });
            match r {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(tcp::RecvError::Finished) if total == 0 => return Poll::Ready(Ok(())),
                Err(tcp::RecvError::InvalidState) if total == 0 => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("connection to {} reset", self.peer),
                    )));
                }
                Err(_) => break,
            }
            if buf.remaining() == 0 {
                break;
            }
        }
        if total > 0 {
            drop(inner);
            // The window opened: let the task announce it.
            self.shared.wake.notify_one();
            return Poll::Ready(Ok(()));
        }
        s.register_recv_waker(cx.waker());
        Poll::Pending
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut inner = self.shared.lock();
        if inner.stopped {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "netstack stopped",
            )));
        }
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.send_slice(data) {
            Ok(0) => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                drop(inner);
                self.shared.wake.notify_one();
                Poll::Ready(Ok(n))
            }
            Err(tcp::SendError::InvalidState) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("connection to {} is closed for sending", self.peer),
            ))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends a FIN once all queued data has been acknowledged (this waits for that; see
    /// `close_when_drained` for why).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if !close_when_drained(s) {
            s.register_send_waker(cx.waker());
            return Poll::Pending;
        }
        drop(inner);
        self.shared.wake.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if self.live {
            let now = self.shared.now();
            self.shared.lock().orphan_tcp(self.handle, now);
            self.shared.wake.notify_one();
        }
    }
}

/// Listening TCP port on the VPN addresses.
pub struct TcpListener {
    shared: Arc<Shared>,
    port: u16,
    backlog: usize,
    accept_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("port", &self.port)
            .field("backlog", &self.backlog)
            .finish()
    }
}

impl TcpListener {
    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for an established connection. Several tasks may call it at once.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let _turn = self.accept_lock.lock().await;
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let mut guard = self.shared.lock();
        guard.check_running()?;
        let inner = &mut *guard;
        let Some(l) = inner.listeners.get_mut(&self.port) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "listener closed",
            )));
        };
        // Oldest connection past the handshake; those still handshaking wake us on change.
        let mut ready = None;
        for (i, h) in l.queue.iter().enumerate() {
            let s = inner.sockets.get_mut::<tcp::Socket>(*h);
            match s.state() {
                tcp::State::SynReceived => s.register_recv_waker(cx.waker()),
                tcp::State::Closed if !s.can_recv() => {}
                _ => {
                    ready = Some(i);
                    break;
                }
            }
        }
        let Some(h) = ready.and_then(|i| l.queue.remove(i)) else {
            l.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        inner.tcp_established(h);
        let s = inner.sockets.get::<tcp::Socket>(h);
        let unspec = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let local = s.local_endpoint().map_or(unspec, SocketAddr::from);
        let peer = s.remote_endpoint().map_or(unspec, SocketAddr::from);
        drop(guard);
        // The queue has room again: let the task re-arm.
        self.shared.wake.notify_one();
        Poll::Ready(Ok((
            TcpStream::new(self.shared.clone(), h, local, peer),
            peer,
        )))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let now = self.shared.now();
        self.shared.lock().unlisten(self.port, now);
        self.shared.wake.notify_one();
    }
}
