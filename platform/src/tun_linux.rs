//! The Linux TUN backend (tun-rs over tokio's `AsyncFd`).

use std::io;

use crate::{PlatformError, Tun, TunConfig};

/// A Linux TUN device in layer-3 mode without packet-information header: every `recv` returns one
/// IPv4 or IPv6 packet, every `send` writes one (or, with [`TunConfig::layer2`], a TAP device
/// that carries one Ethernet frame per call). The device disappears (with its addresses and
/// routes) when this value is dropped.
pub struct LinuxTun {
    dev: tun_rs::AsyncDevice,
    name: String,
    mtu: u16,
    index: u32,
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
    let mut builder = tun_rs::DeviceBuilder::new()
        .mtu(cfg.mtu)
        .packet_information(false)
        .enable(true);
    if cfg.layer2 {
        builder = builder.layer(tun_rs::Layer::L2);
    }
    if let Some(name) = &cfg.name {
        builder = builder.name(name.clone());
    }
    let dev = builder
        .build_async()
        .map_err(|e| PlatformError::tun_open(cfg.name.as_deref(), e))?;
    let name = dev
        .name()
        .map_err(|e| PlatformError::tun_open(cfg.name.as_deref(), e))?;
    let index = dev
        .if_index()
        .map_err(|e| PlatformError::tun_open(Some(&name), e))?;
    let mtu = dev.mtu().unwrap_or(cfg.mtu);
    tracing::debug!(%name, index, mtu, "TUN device up");
    Ok(LinuxTun {
        dev,
        name,
        mtu,
        index,
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
        self.dev.recv(buf).await
    }

    async fn send(&self, packet: &[u8]) -> io::Result<()> {
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
