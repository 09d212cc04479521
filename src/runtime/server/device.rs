//! The server's packet device: a TUN device with the server's tunnel addresses and `route`s
//! (tunnel mode, needs CAP_NET_ADMIN), or the userspace exit (`--userspace`: no device, no
//! root; clients' flows leave through host sockets).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use ferrovpn_netstack::exit::{AllowRule, ExitConfig, ExitHandle, spawn_exit};
use ferrovpn_netstack::{IpNet, PacketPipe};
use ferrovpn_platform::{
    LinuxTun, NetConfigurator, RecvBatch, SendBatch, Tun, TunConfig, open_tun,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::ServerProfile;

/// The server's device, split into a packet source (a task feeding `rx`) and a sink.
// One per process: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ServerDevice {
    /// Kernel TUN device, read by the core itself ([`ServerDevice::tun_reader`]).
    Tun {
        /// The device.
        tun: Arc<LinuxTun>,
        /// Addresses and routes to undo.
        net: Option<NetConfigurator>,
        /// Packets waiting for [`ServerDevice::flush`].
        tx: SendBatch,
    },
    /// Userspace exit.
    Exit {
        /// Its handle (stats).
        handle: ExitHandle,
        /// Packets into the exit.
        inbound: mpsc::Sender<BytesMut>,
    },
}

/// The server's own tunnel addresses with prefixes.
pub fn own_networks(p: &ServerProfile) -> Vec<IpNet> {
    let mut v = Vec::new();
    if let Some(t) = p.tunnel_v4
        && let Ok(n) = IpNet::new(IpAddr::V4(t.local), t.prefix_len)
    {
        v.push(n);
    }
    if let Some(t) = p.tunnel_v6
        && let Ok(n) = IpNet::new(IpAddr::V6(t.local), t.prefix_len)
    {
        v.push(n);
    }
    v
}

impl ServerDevice {
    /// Opens and configures the TUN device (with the offload header: batched reads and writes).
    pub async fn open_tun(p: &ServerProfile) -> Result<Self, String> {
        let name = match p.dev.as_str() {
            "tun" | "" => None,
            n => Some(n.to_string()),
        };
        let tun = open_tun(&TunConfig {
            name,
            mtu: p.tun_mtu,
            layer2: false,
            offload: true,
        })
        .await
        .map_err(|e| format!("cannot create the TUN device: {e} (tunnel mode needs root or CAP_NET_ADMIN; --userspace needs neither)"))?;
        let tun = Arc::new(tun);
        let ifname = tun.name().to_string();
        let mut net = NetConfigurator::new(&ifname)
            .await
            .map_err(|e| format!("{ifname}: {e}"))?;
        if let Some(t) = p.tunnel_v4 {
            net.add_address_v4(t.local, t.prefix_len, None)
                .await
                .map_err(|e| format!("{ifname}: adding {}/{}: {e}", t.local, t.prefix_len))?;
        }
        if let Some(t) = p.tunnel_v6 {
            net.add_address_v6(t.local, t.prefix_len)
                .await
                .map_err(|e| format!("{ifname}: adding {}/{}: {e}", t.local, t.prefix_len))?;
        }
        let own = own_networks(p);
        for r in &p.routes {
            let n = IpNet::new(IpAddr::V4(r.network), r.prefix_len).map(|n| n.trunc());
            if n.as_ref()
                .is_ok_and(|n| own.iter().any(|o| o.trunc() == *n))
            {
                continue; // the interface address already routes it
            }
            if let Err(e) = net
                .add_route_v4(r.network, r.prefix_len, None, true, r.metric)
                .await
            {
                warn!("{ifname}: route {}/{}: {e}", r.network, r.prefix_len);
            }
        }
        for r in &p.routes_ipv6 {
            if let Err(e) = net
                .add_route_v6(r.network, r.prefix_len, None, r.metric)
                .await
            {
                warn!("{ifname}: route {}/{}: {e}", r.network, r.prefix_len);
            }
        }
        info!(
            "{ifname} up: mtu {}, {} routes",
            p.tun_mtu,
            p.routes.len() + p.routes_ipv6.len()
        );
        Ok(Self::Tun {
            tun,
            net: Some(net),
            tx: SendBatch::new(),
        })
    }

    /// Starts the userspace exit; packets it emits go to `to_core`.
    pub fn open_exit(
        p: &ServerProfile,
        allow: Vec<AllowRule>,
        local_services: Vec<(u16, SocketAddr)>,
        to_core: mpsc::Sender<Vec<u8>>,
    ) -> Self {
        let (handle, pipe) = spawn_exit(ExitConfig {
            addresses: own_networks(p),
            mtu: usize::from(p.tun_mtu),
            allow,
            local_services,
            ..ExitConfig::default()
        });
        let PacketPipe {
            mut outbound,
            inbound,
        } = pipe;
        tokio::spawn(async move {
            while let Some(p) = outbound.recv().await {
                if to_core.send(p.to_vec()).await.is_err() {
                    return;
                }
            }
        });
        Self::Exit { handle, inbound }
    }

    /// The TUN device and a batch to read it into, for the core's loop (`None`: the userspace
    /// exit, whose packets come through the channel given to [`ServerDevice::open_exit`]).
    pub fn tun_reader(&self) -> Option<(Arc<LinuxTun>, RecvBatch)> {
        match self {
            Self::Tun { tun, .. } => Some((tun.clone(), RecvBatch::new(tun.mtu()))),
            Self::Exit { .. } => None,
        }
    }

    /// Writes the packets queued by [`ServerDevice::send`] (TUN; the exit takes them at once).
    pub async fn flush(&mut self) {
        if let Self::Tun { tun, tx, .. } = self
            && let Err(e) = tun.send_batch(tx).await
        {
            tracing::debug!("writing to {}: {e}", tun.name());
        }
    }

    /// Delivers a client's packet (TUN: queued until [`ServerDevice::flush`]).
    pub async fn send(&mut self, packet: &[u8]) {
        match self {
            Self::Tun { tun, tx, .. } => {
                if tx.is_full() {
                    let _ = tun.send_batch(tx).await;
                }
                tx.push(packet);
            }
            Self::Exit { inbound, .. } => {
                let _ = inbound.send(BytesMut::from(packet)).await;
            }
        }
    }

    /// Removes addresses and routes; the device goes with the last reference.
    pub async fn teardown(self) {
        if let Self::Tun { net: Some(net), .. } = self {
            net.restore().await;
        }
    }
}
