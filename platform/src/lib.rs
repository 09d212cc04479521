//! ferrovpn's operating-system layer.
//!
//! - [`Tun`]: a layer-3 packet device (one IP packet per `recv`/`send`), usable from two tasks at
//!   once (one reading, one writing) through an `Arc`. [`LinuxTun`] is the Linux backend, created
//!   by [`open_tun`].
//! - [`NetConfigurator`]: addresses and routes (Linux: rtnetlink). Everything it adds is recorded
//!   and removed again by [`NetConfigurator::restore`] or, best effort, on drop.
//! - [`apply_dns`] / [`DnsGuard`] / [`recover_dns`]: the resolver configuration, through
//!   systemd-resolved when it manages `/etc/resolv.conf`, else by rewriting `/etc/resolv.conf` in
//!   place with a backup in a state directory, restored on exit or at the next start after a crash.
//!
//! Nothing here knows the OpenVPN protocol; the runtime of the `ferrovpn` crate adapts [`Tun`] to
//! its packet-device trait and calls the configurators with what the server pushed.
//!
//! `unsafe` code is allowed only in the `sys` module (privilege dropping): the rest of the crate
//! is safe Rust.
#![deny(unsafe_code)]

mod dns;
mod error;
#[cfg(target_os = "linux")]
mod net_linux;
pub mod sys;
#[cfg(target_os = "linux")]
mod tun_batch;
#[cfg(target_os = "linux")]
mod tun_linux;

use std::future::Future;
use std::io;

pub use dns::{DnsBackend, DnsConfig, DnsGuard, apply_dns, recover_dns};
pub use error::PlatformError;
#[cfg(target_os = "linux")]
pub use net_linux::{NetConfigurator, RouteInfo};
#[cfg(target_os = "linux")]
pub use tun_batch::{BATCH, RecvBatch, SEND_HEADROOM, SendBatch};
#[cfg(target_os = "linux")]
pub use tun_linux::{LinuxTun, open_tun};

/// What [`open_tun`] creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes on Linux); `None` lets the kernel choose (`tunN`).
    pub name: Option<String>,
    /// MTU the device is brought up with.
    pub mtu: u16,
    /// A TAP device (Ethernet frames) instead of TUN (IP packets).
    pub layer2: bool,
    /// Linux: ask for the offload header (`IFF_VNET_HDR`, TSO/USO), so one read can return a
    /// 64 KiB super-packet; use [`LinuxTun::recv_batch`]/[`LinuxTun::send_batch`] on such a device
    /// ([`Tun::recv`] then refuses). Ignored for TAP devices. Falls back to plain packets when the
    /// kernel refuses.
    pub offload: bool,
}

/// A layer-3 packet device.
///
/// Both methods take `&self`, so one task can wait in [`recv`](Tun::recv) while another calls
/// [`send`](Tun::send) on the same device (share it with `Arc`). The returned futures are `Send`,
/// so they can run in `tokio::spawn`ed tasks even through a generic `T: Tun`.
pub trait Tun: Send + Sync {
    /// Interface name, e.g. `tun0`.
    fn name(&self) -> &str;
    /// MTU the device was created with.
    fn mtu(&self) -> u16;
    /// Receive one IP packet into `buf`; returns its length. A packet longer than `buf` is
    /// truncated by the kernel, so pass a buffer of at least `mtu()` bytes.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Send one IP packet (it appears to the kernel as received on the interface).
    fn send(&self, packet: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

impl<T: Tun> Tun for std::sync::Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn mtu(&self) -> u16 {
        (**self).mtu()
    }
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        (**self).recv(buf)
    }
    fn send(&self, packet: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        (**self).send(packet)
    }
}
