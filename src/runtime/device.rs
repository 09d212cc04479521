//! The packet device a client session feeds: a kernel TUN device (tunnel mode) or the embedded
//! userspace stack (proxy mode). One enum, so the session loop does not care which.

use std::path::PathBuf;
use std::sync::Arc;

use std::net::SocketAddr;
use std::sync::RwLock;

use bytes::BytesMut;
use ferrovpn_netstack::{PacketPipe, Stack, StackConfig};
use ferrovpn_platform::{LinuxTun, RecvBatch, SendBatch, Tun, TunConfig, open_tun};
use tracing::{info, warn};

use super::netcfg::{Applied, NetPlan, apply};

/// Where decrypted packets go and where packets to encrypt come from.
// One per process: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Device {
    /// A TUN device, created on the first connect and kept across reconnects.
    Tun(TunDevice),
    /// The embedded userspace stack (proxy mode).
    Stack(StackDevice),
}

/// Proxy mode's state.
pub struct StackDevice {
    /// The stack.
    pub stack: Stack,
    pipe: PacketPipe,
    routing: Arc<RwLock<super::proxy_driver::Routing>>,
    dns_override: Vec<SocketAddr>,
}

/// Tunnel mode's state.
pub struct TunDevice {
    name: Option<String>,
    layer2: bool,
    /// Open the device with the offload header (batched reads and writes only).
    offload: bool,
    /// Packets waiting for [`Device::flush`].
    tx: SendBatch,
    state_dir: PathBuf,
    tun: Option<Arc<LinuxTun>>,
    applied: Option<Applied>,
    plan: Option<NetPlan>,
}

impl Device {
    /// A TUN device named `name` (or the kernel's choice), created when the tunnel comes up; a
    /// TAP device (Ethernet frames) with `layer2`.
    ///
    /// With `offload` (Linux, TUN only) the device carries the kernel's offload header: use
    /// [`Device::recv_batch`], [`Device::push`] and [`Device::flush`], not `recv`/`send`.
    pub fn tun(name: Option<String>, layer2: bool, offload: bool, state_dir: PathBuf) -> Self {
        Self::Tun(TunDevice {
            name,
            layer2,
            offload,
            tx: SendBatch::new(),
            state_dir,
            tun: None,
            applied: None,
            plan: None,
        })
    }

    /// The userspace stack.
    pub fn stack(
        stack: Stack,
        pipe: PacketPipe,
        routing: Arc<RwLock<super::proxy_driver::Routing>>,
        dns_override: Vec<SocketAddr>,
    ) -> Self {
        Self::Stack(StackDevice {
            stack,
            pipe,
            routing,
            dns_override,
        })
    }

    /// The TUN device's name, once it exists (tunnel mode).
    pub fn tun_name(&self) -> Option<String> {
        match self {
            Self::Tun(t) => t.tun.as_ref().map(|d| d.name().to_owned()),
            Self::Stack(_) => None,
        }
    }

    /// Applies the pushed configuration; true when a new TUN device was created for it.
    pub async fn configure(&mut self, plan: NetPlan, mtu: u16) -> Result<bool, String> {
        for w in &plan.warnings {
            warn!("{w}");
        }
        match self {
            Self::Tun(t) => t.configure(plan, mtu).await,
            Self::Stack(s) => {
                let dns_servers = if s.dns_override.is_empty() {
                    plan.dns
                        .servers
                        .iter()
                        .map(|ip| SocketAddr::new(*ip, 53))
                        .collect()
                } else {
                    s.dns_override.clone()
                };
                let cfg = StackConfig {
                    ipv4: plan.v4.map(|(a, p, _)| (a, p)),
                    ipv6: plan.v6,
                    mtu,
                    dns_servers,
                    ..StackConfig::default()
                };
                info!(
                    "userspace stack up: mtu {mtu}, {}{}, DNS {:?}",
                    plan.v4
                        .map(|(a, p, _)| format!("{a}/{p}"))
                        .unwrap_or_else(|| "no IPv4".into()),
                    plan.v6
                        .map(|(a, p)| format!(", {a}/{p}"))
                        .unwrap_or_default(),
                    cfg.dns_servers
                );
                super::proxy_driver::update_routing(&s.routing, &plan);
                s.stack.reconfigure(cfg).await;
                Ok(false)
            }
        }
    }

    /// The tunnel went down (reconnecting).
    pub fn on_down(&mut self) {}

    /// Next packet to send into the tunnel. Cancel-safe.
    pub async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Tun(t) => match &t.tun {
                Some(tun) => tun.recv(buf).await,
                None => std::future::pending().await,
            },
            Self::Stack(s) => match s.pipe.outbound.recv().await {
                Some(p) => {
                    let n = p.len().min(buf.len());
                    buf[..n].copy_from_slice(&p[..n]);
                    Ok(n)
                }
                None => Err(std::io::Error::other("the userspace stack stopped")),
            },
        }
    }

    /// Waits for the next packets to send into the tunnel and takes what else is ready (up to
    /// [`ferrovpn_platform::BATCH`]); returns how many `batch` holds. Cancel-safe.
    pub async fn recv_batch(&mut self, batch: &mut RecvBatch) -> std::io::Result<usize> {
        batch.clear();
        match self {
            Self::Tun(t) => match &t.tun {
                Some(tun) if t.offload => tun.recv_batch(batch).await,
                Some(tun) => {
                    let mut one = [0u8; 65536];
                    let n = tun.recv(&mut one).await?;
                    batch.push(&one[..n]);
                    Ok(batch.len())
                }
                None => std::future::pending().await,
            },
            Self::Stack(s) => match s.pipe.outbound.recv().await {
                Some(p) => {
                    batch.push(&p);
                    while batch.len() < ferrovpn_platform::BATCH {
                        match s.pipe.outbound.try_recv() {
                            Ok(p) => {
                                batch.push(&p);
                            }
                            Err(_) => break,
                        }
                    }
                    Ok(batch.len())
                }
                None => Err(std::io::Error::other("the userspace stack stopped")),
            },
        }
    }

    /// Queues a packet from the tunnel for [`Device::flush`], which must follow (a full queue is
    /// written first).
    pub async fn push(&mut self, packet: &[u8]) {
        match self {
            Self::Tun(t) => {
                if t.tx.is_full() {
                    Self::flush_tun(t).await;
                }
                t.tx.push(packet);
            }
            Self::Stack(s) => {
                let _ = s.pipe.inbound.send(BytesMut::from(packet)).await;
            }
        }
    }

    /// Writes the packets queued by [`Device::push`].
    pub async fn flush(&mut self) {
        if let Self::Tun(t) = self {
            Self::flush_tun(t).await;
        }
    }

    async fn flush_tun(t: &mut TunDevice) {
        match &t.tun {
            Some(tun) => {
                if let Err(e) = tun.send_batch(&mut t.tx).await {
                    tracing::debug!("writing to {}: {e}", tun.name());
                }
            }
            None => t.tx.clear(),
        }
    }

    /// Delivers a packet from the tunnel.
    pub async fn send(&mut self, packet: &[u8]) {
        match self {
            Self::Tun(t) => {
                if let Some(tun) = &t.tun {
                    let _ = tun.send(packet).await;
                }
            }
            // Waiting here when the stack is busy is the back-pressure towards the tunnel.
            Self::Stack(s) => {
                let _ = s.pipe.inbound.send(BytesMut::from(packet)).await;
            }
        }
    }

    /// Undoes everything (routes, addresses, DNS, the device).
    pub async fn teardown(self) {
        match self {
            Self::Tun(mut t) => {
                if let Some(a) = t.applied.take() {
                    a.restore().await;
                }
                drop(t.tun);
            }
            Self::Stack(_) => {}
        }
    }
}

impl TunDevice {
    async fn configure(&mut self, plan: NetPlan, mtu: u16) -> Result<bool, String> {
        if self.tun.is_some() && self.plan.as_ref() == Some(&plan) {
            info!("pushed configuration unchanged, keeping the TUN device as it is");
            return Ok(false);
        }
        if let Some(a) = self.applied.take() {
            a.restore().await;
        }
        self.tun = None;
        let tun = open_tun(&TunConfig {
            name: self.name.clone(),
            mtu,
            layer2: self.layer2,
            offload: self.offload,
        })
        .await
        .map_err(|e| e.to_string())?;
        let name = tun.name().to_owned();
        let applied = apply(&plan, &name, &self.state_dir)
            .await
            .map_err(|e| format!("configuring {name}: {e}"))?;
        info!(
            "{name} up: mtu {mtu}, {}{}, {} IPv4 and {} IPv6 routes, DNS {:?}{}",
            plan.v4
                .map(|(a, p, _)| format!("{a}/{p}"))
                .unwrap_or_else(|| "no IPv4".into()),
            plan.v6
                .map(|(a, p)| format!(", {a}/{p}"))
                .unwrap_or_default(),
            plan.routes_v4.len(),
            plan.routes_v6.len(),
            plan.dns.servers,
            if tun.offload() {
                ", offload on (batched reads and writes)"
            } else {
                ""
            }
        );
        self.tun = Some(Arc::new(tun));
        self.applied = Some(applied);
        self.plan = Some(plan);
        Ok(true)
    }
}
