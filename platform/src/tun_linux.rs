//! The Linux TUN backend (tun-rs over tokio's `AsyncFd`).

use std::io;

use crate::{PlatformError, Tun, TunConfig};

/// A Linux TUN device in layer-3 mode without packet-information header: every `recv` returns one
/// IPv4 or IPv6 packet, every `send` writes one (or, with [`TunConfig::layer2`], a TAP device
/// that carries one Ethernet frame per call). The device disappears (with its addresses and
/// routes) when this value is dropped.
pub struct LinuxTun {
    pub(crate) dev: tun_rs::AsyncDevice,
    name: String,
    pub(crate) mtu: u16,
    index: u32,
    pub(crate) offload: bool,
}

impl std::fmt::Debug for LinuxTun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxTun")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Create a TUN device, set its MTU and bring it up (no addresses yet).
///
/// Must be called inside a tokio runtime with IO enabled.
pub async fn open_tun(cfg: &TunConfig) -> Result<LinuxTun, PlatformError> {
    let bad_name = |n: &&str| n.is_empty() || n.len() > 15 || n.contains(['/', ' ', '\0']);
    if let Some(name) = cfg.name.as_deref().filter(bad_name) {
        return Err(PlatformError::InvalidArgument(format!(
            "TUN device name {name:?}: must be 1 to 15 bytes without '/', space or NUL"
        )));
    }
    if cfg.mtu < 68 {
        return Err(PlatformError::InvalidArgument(format!(
            "TUN MTU {} is below the IPv4 minimum of 68",
            cfg.mtu
        )));
    }
    let builder = |offload: bool| {
        let mut b = tun_rs::DeviceBuilder::new()
            .mtu(cfg.mtu)
            .packet_information(false)
            .enable(true)
            .offload(offload);
        if cfg.layer2 {
            b = b.layer(tun_rs::Layer::L2);
        }
        if let Some(name) = &cfg.name {
            b = b.name(name.clone());
        }
        b
    };
    let want_offload = cfg.offload && !cfg.layer2;
    let dev = match builder(want_offload).build_async() {
        Ok(d) => d,
        // An old kernel or a container may refuse the offload flags: plain packets then.
        Err(e) if want_offload => {
            tracing::debug!("TUN offload refused ({e}), using one packet per read");
            builder(false)
                .build_async()
                .map_err(|e| PlatformError::tun_open(cfg.name.as_deref(), e))?
        }
        Err(e) => return Err(PlatformError::tun_open(cfg.name.as_deref(), e)),
    };
    let offload = want_offload && (dev.tcp_gso() || dev.udp_gso());
    let name = dev
        .name()
        .map_err(|e| PlatformError::tun_open(cfg.name.as_deref(), e))?;
    let index = dev
        .if_index()
        .map_err(|e| PlatformError::tun_open(Some(&name), e))?;
    let mtu = dev.mtu().unwrap_or(cfg.mtu);
    tracing::debug!(%name, index, mtu, offload, "TUN device up");
    Ok(LinuxTun {
        dev,
        name,
        mtu,
        index,
        offload,
    })
}

impl LinuxTun {
    /// The kernel's interface index.
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl Tun for LinuxTun {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> u16 {
        self.mtu
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.offload {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this TUN device has the offload header: read it with recv_batch",
            ));
        }
        self.dev.recv(buf).await
    }

    async fn send(&self, packet: &[u8]) -> io::Result<()> {
        if self.offload {
            // Slow path: one packet with an empty offload header.
            let mut one = crate::SendBatch::new();
            one.push(packet);
            return self.send_batch(&mut one).await;
        }
        let n = self.dev.send(packet).await?;
        if n != packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("TUN accepted {n} of {} bytes", packet.len()),
            ));
        }
        Ok(())
    }
}
