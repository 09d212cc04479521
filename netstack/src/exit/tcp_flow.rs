//! One client TCP connection through the exit: the host connect, then the relay between the
//! smoltcp socket and the host `TcpStream`.
//!
//! The relay copies straight between the two without a buffer of its own: client data goes
//! from the smoltcp receive buffer into `try_write` on the host socket, host data from
//! `try_read` into the free room of the smoltcp send buffer. When one side cannot take more,
//! the other is not read (back-pressure: the client's window closes, or the host's kernel
//! buffers fill).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::{Counters, FlowKey, Shared};
use crate::stack::close_when_drained;

/// How a relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Both directions closed with a FIN.
    Done,
    /// The client reset (or never completed the handshake, or timed out): reset the host side.
    ClientReset,
    /// The host side failed: reset the client.
    HostFailed,
    /// The exit stopped.
    Stopped,
}

/// Connects to `target` for the flow `key` (its SYN waits in the flow table), then relays.
pub(super) async fn run(shared: Arc<Shared>, key: FlowKey, target: SocketAddr) {
    let timeout = shared.cfg.limits.tcp_connect_timeout;
    let connect = tokio::time::timeout(timeout, TcpStream::connect(target));
    let result = tokio::select! {
        r = connect => r,
        () = shared.stopped() => return,
    };
    let host = match result {
        Ok(Ok(host)) => host,
        Ok(Err(e)) => return refuse(&shared, key, target, &e.to_string()),
        Err(_) => return refuse(&shared, key, target, "timed out"),
    };
    let _ = host.set_nodelay(true);
    let opened = {
        let now = shared.now();
        shared.lock().open_tcp(&shared, key, now)
    };
    shared.wake.notify_one();
    let Some(handle) = opened else {
        return;
    };
    Counters::add(&shared.counters.tcp_flows_opened, 1);
    tracing::debug!("exit: {} -> {} relaying to {target}", key.0, key.1);

    let mut relay = Relay {
        shared: &shared,
        handle,
        host,
        established: false,
        up_open: true,
        down_open: true,
        fin_pending: false,
    };
    let outcome = tokio::select! {
        o = poll_fn(|cx| relay.poll(cx)) => o,
        () = shared.stopped() => Outcome::Stopped,
    };
    tracing::debug!("exit: {} -> {} ended: {outcome:?}", key.0, key.1);
    if matches!(outcome, Outcome::ClientReset | Outcome::Stopped) {
        // Closing with zero linger sends a RST instead of a FIN.
        let _ = relay.host.set_zero_linger();
    }
    drop(relay.host);
    let now = shared.now();
    shared
        .lock()
        .finish_tcp(key, handle, outcome == Outcome::HostFailed, now);
    shared.wake.notify_one();
}

fn refuse(shared: &Shared, key: FlowKey, target: SocketAddr, why: &str) {
    tracing::debug!("exit: {} -> {}: connect to {target}: {why}", key.0, key.1);
    Counters::add(&shared.counters.connect_failed, 1);
    let now = shared.now();
    shared.lock().refuse_tcp(key, now);
    shared.wake.notify_one();
}

struct Relay<'a> {
    shared: &'a Shared,
    handle: SocketHandle,
    host: TcpStream,
    /// The client completed the handshake.
    established: bool,
    /// Client to host still open (no FIN from the client yet).
    up_open: bool,
    /// Host to client still open (no EOF from the host yet).
    down_open: bool,
    /// The host's EOF is to be passed on once the send buffer drained.
    fin_pending: bool,
}

fn io_result(r: io::Result<usize>) -> (usize, io::Result<usize>) {
    match r {
        Ok(n) => (n, Ok(n)),
        Err(e) => (0, Err(e)),
    }
}

impl Relay<'_> {
    /// Moves what can be moved; `Pending` once nothing can, with every waker registered.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        loop {
            let mut to_host = 0;
            let mut from_host = 0;
            let step = self.step(cx, &mut to_host, &mut from_host);
            let c = &self.shared.counters;
            Counters::add(&c.bytes_to_host, to_host as u64);
            Counters::add(&c.bytes_from_host, from_host as u64);
            match step {
                Step::Progress => self.shared.wake.notify_one(),
                Step::Idle => return Poll::Pending,
                Step::End(o) => return Poll::Ready(o),
            }
        }
    }

    fn step(&mut self, cx: &mut Context<'_>, to_host: &mut usize, from_host: &mut usize) -> Step {
        let mut inner = self.shared.lock();
        if inner.stopped {
            return Step::End(Outcome::Stopped);
        }
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if !self.established {
            match s.state() {
                tcp::State::SynReceived => {
                    s.register_recv_waker(cx.waker());
                    return Step::Idle;
                }
                tcp::State::Closed | tcp::State::Listen => return Step::End(Outcome::ClientReset),
                _ => {
                    self.established = true;
                    let t = self.shared.cfg.limits.client_timeout;
                    s.set_timeout(t.map(Into::into));
                    s.set_keep_alive(t.map(|t| (t / 3).into()));
                }
            }
        }
        let mut progress = false;
        let host = &self.host;

        // Client to host.
        if self.up_open {
            if s.can_recv() {
                match host.poll_write_ready(cx) {
                    Poll::Ready(Ok(())) => match s.recv(|d| io_result(host.try_write(d))) {
                        Ok(Ok(n)) => {
                            *to_host += n;
                            progress = true;
                        }
                        // Readiness was stale; the next poll_write_ready registers the waker.
                        Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => progress = true,
                        Ok(Err(_)) => return Step::End(Outcome::HostFailed),
                        Err(_) => return Step::End(Outcome::ClientReset),
                    },
                    Poll::Ready(Err(_)) => return Step::End(Outcome::HostFailed),
                    Poll::Pending => {}
                }
            } else if !s.may_recv() {
                match s.recv(|_| (0, ())) {
                    Err(tcp::RecvError::Finished) => {
                        // The client's FIN: half-close towards the host (immediate for TCP).
                        let _ = Pin::new(&mut self.host).poll_shutdown(cx);
                        self.up_open = false;
                        progress = true;
                    }
                    Err(tcp::RecvError::InvalidState) => {
                        return Step::End(Outcome::ClientReset);
                    }
                    Ok(()) => {}
                }
            }
        }
        let host = &self.host;

        // Host to client.
        if self.down_open {
            if !s.may_send() {
                return Step::End(Outcome::ClientReset);
            }
            if s.send_queue() < s.send_capacity() {
                match host.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => match s.send(|buf| io_result(host.try_read(buf))) {
                        Ok(Ok(0)) => {
                            self.down_open = false;
                            self.fin_pending = true;
                            progress = true;
                        }
                        Ok(Ok(n)) => {
                            *from_host += n;
                            progress = true;
                        }
                        Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => progress = true,
                        Ok(Err(_)) => return Step::End(Outcome::HostFailed),
                        Err(_) => return Step::End(Outcome::ClientReset),
                    },
                    Poll::Ready(Err(_)) => return Step::End(Outcome::HostFailed),
                    Poll::Pending => {}
                }
            }
        }
        if self.fin_pending && close_when_drained(s) {
            self.fin_pending = false;
            progress = true;
        }
        if !self.up_open && !self.down_open && !self.fin_pending {
            return Step::End(Outcome::Done);
        }
        if progress {
            return Step::Progress;
        }
        // Data, FIN, RST and window changes from the client, acknowledgements that free room.
        s.register_recv_waker(cx.waker());
        s.register_send_waker(cx.waker());
        Step::Idle
    }
}

enum Step {
    Progress,
    Idle,
    End(Outcome),
}
