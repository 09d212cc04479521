//! Addresses and routes on Linux, through rtnetlink. Everything added is recorded and removed
//! again by [`NetConfigurator::restore`] or, best effort, on drop.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope, RouteType, RouteVia,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::PlatformError;

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;
const ENETUNREACH: i32 = 101;

/// One route as the kernel reports it (a default route or the route to one destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Next hop, `None` for an on-link route.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub ifindex: u32,
    /// Output interface name, when it could be looked up.
    pub ifname: Option<String>,
    /// Route metric (priority), when the kernel reported one.
    pub metric: Option<u32>,
    /// Preferred source address, when the kernel reported one.
    pub pref_source: Option<IpAddr>,
}

/// Something this configurator added and must remove again.
#[derive(Debug, Clone)]
enum Added {
    Address(String, AddressMessage),
    Route(String, RouteMessage),
}

/// Adds addresses and routes for one interface (the tunnel) and undoes them.
///
/// Undo happens in reverse order, in [`restore`](Self::restore) (the runtime calls it on a clean
/// exit) or in `Drop` (best effort, synchronous: a fresh current-thread runtime on a helper
/// thread opens its own netlink socket, so it works even after the caller's runtime is gone).
/// Entries that are already gone (for instance because the TUN device was closed first, which
/// takes its addresses and routes with it) are skipped silently.
pub struct NetConfigurator {
    handle: Handle,
    conn_task: tokio::task::JoinHandle<()>,
    ifname: String,
    ifindex: u32,
    added: Vec<Added>,
}

impl std::fmt::Debug for NetConfigurator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfigurator")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("added", &self.added.len())
            .finish_non_exhaustive()
    }
}

fn nl_err(op: String, e: rtnetlink::Error) -> PlatformError {
    let source = match &e {
        rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => {
            io::Error::from_raw_os_error(m.raw_code().abs())
        }
        _ => io::Error::other(e.to_string()),
    };
    let hint = match source.raw_os_error() {
        Some(EPERM) => {
            " — changing addresses and routes: tunnel mode needs root or CAP_NET_ADMIN (the `proxy` mode does not)"
        }
        Some(EEXIST) => {
            " — it already exists (a leftover from another VPN, or a conflicting route)"
        }
        Some(ENETUNREACH) => " — the gateway is not reachable through that interface",
        Some(ENODEV) => " — the interface is gone",
        _ => "",
    };
    PlatformError::Netlink { op, source, hint }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => Some(m.raw_code().abs()),
        _ => None,
    }
}

fn socket_err(e: io::Error) -> PlatformError {
    let hint = if e.raw_os_error() == Some(EPERM) {
        " — tunnel mode needs root or CAP_NET_ADMIN (the `proxy` mode does not)"
    } else {
        ""
    };
    PlatformError::Netlink {
        op: "open a netlink socket".to_owned(),
        source: e,
        hint,
    }
}

fn connect() -> Result<(Handle, tokio::task::JoinHandle<()>), PlatformError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(socket_err)?;
    Ok((handle, tokio::spawn(conn)))
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

async fn link_name(handle: &Handle, index: u32) -> Option<String> {
    let msg = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .ok()??;
    msg.attributes.into_iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n),
        _ => None,
    })
}

fn route_info(msg: &RouteMessage) -> Option<RouteInfo> {
    let mut info = RouteInfo {
        gateway: None,
        ifindex: 0,
        ifname: None,
        metric: None,
        pref_source: None,
    };
    for a in &msg.attributes {
        match a {
            RouteAttribute::Gateway(g) => info.gateway = route_addr(g),
            RouteAttribute::Via(RouteVia::Inet(g)) => info.gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Via(RouteVia::Inet6(g)) => info.gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::Oif(i) => info.ifindex = *i,
            RouteAttribute::Priority(p) => info.metric = Some(*p),
            RouteAttribute::PrefSource(s) => info.pref_source = route_addr(s),
            _ => {}
        }
    }
    (info.ifindex != 0).then_some(info)
}

/// Undo `items` in reverse order; "already gone" is not an error. Returns the failures.
async fn undo(handle: &Handle, items: Vec<Added>) -> Vec<PlatformError> {
    let mut failures = Vec::new();
    for item in items.into_iter().rev() {
        let (what, res) = match item {
            Added::Address(what, msg) => (what, handle.address().del(msg).execute().await),
            Added::Route(what, msg) => (what, handle.route().del(msg).execute().await),
        };
        match res {
            Ok(()) => tracing::debug!("removed {what}"),
            Err(e) if matches!(errno(&e), Some(ENOENT | ESRCH | ENODEV | EADDRNOTAVAIL)) => {
                tracing::debug!("{what}: already gone");
            }
            Err(e) => failures.push(nl_err(format!("remove {what}"), e)),
        }
    }
    failures
}

impl NetConfigurator {
    /// Configurator for interface `ifname` (which must exist). Must be called inside a tokio
    /// runtime with IO enabled.
    pub async fn new(ifname: &str) -> Result<Self, PlatformError> {
        let (handle, conn_task) = connect()?;
        let link = handle
            .link()
            .get()
            .match_name(ifname.to_owned())
            .execute()
            .try_next()
            .await;
        let ifindex = match link {
            Ok(Some(msg)) => msg.header.index,
            Ok(None) => {
                conn_task.abort();
                return Err(PlatformError::NoSuchInterface(ifname.to_owned()));
            }
            Err(e) if errno(&e) == Some(ENODEV) => {
                conn_task.abort();
                return Err(PlatformError::NoSuchInterface(ifname.to_owned()));
            }
            Err(e) => {
                conn_task.abort();
                return Err(nl_err(format!("look up interface {ifname}"), e));
            }
        };
        Ok(Self {
            handle,
            conn_task,
            ifname: ifname.to_owned(),
            ifindex,
            added: Vec::new(),
        })
    }

    /// The interface's name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    async fn add_address(
        &mut self,
        what: String,
        msg: AddressMessage,
    ) -> Result<(), PlatformError> {
        // The request builds its own message from these; we then replace it with ours.
        let mut req = self
            .handle
            .address()
            .add(self.ifindex, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        *req.message_mut() = msg.clone();
        req.execute()
            .await
            .map_err(|e| nl_err(format!("add {what}"), e))?;
        tracing::debug!("added {what}");
        self.added.push(Added::Address(what, msg));
        Ok(())
    }

    /// Add an IPv4 address. With `peer`, a point-to-point pair (`ip addr add LOCAL peer PEER/prefix`,
    /// OpenVPN's net30/p2p `ifconfig local remote`; pass prefix 32 for a plain pair).
    pub async fn add_address_v4(
        &mut self,
        addr: Ipv4Addr,
        prefix: u8,
        peer: Option<Ipv4Addr>,
    ) -> Result<(), PlatformError> {
        if prefix > 32 {
            return Err(PlatformError::InvalidArgument(format!(
                "IPv4 prefix length {prefix} > 32"
            )));
        }
        let msg = match peer {
            None => rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
                .index(self.ifindex)
                .address(addr, prefix)
                .build(),
            Some(peer) => {
                let mut msg = AddressMessage::default();
                msg.header.family = AddressFamily::Inet;
                msg.header.prefix_len = prefix;
                msg.header.index = self.ifindex;
                msg.attributes.push(AddressAttribute::Local(addr.into()));
                msg.attributes.push(AddressAttribute::Address(peer.into()));
                msg
            }
        };
        let what = match peer {
            None => format!("address {addr}/{prefix} on {}", self.ifname),
            Some(p) => format!("address {addr} peer {p}/{prefix} on {}", self.ifname),
        };
        self.add_address(what, msg).await
    }

    /// Add an IPv6 address.
    pub async fn add_address_v6(
        &mut self,
        addr: Ipv6Addr,
        prefix: u8,
    ) -> Result<(), PlatformError> {
        if prefix > 128 {
            return Err(PlatformError::InvalidArgument(format!(
                "IPv6 prefix length {prefix} > 128"
            )));
        }
        let msg = rtnetlink::AddressMessageBuilder::<Ipv6Addr>::new()
            .index(self.ifindex)
            .address(addr, prefix)
            .build();
        let what = format!("address {addr}/{prefix} on {}", self.ifname);
        self.add_address(what, msg).await
    }

    async fn add_route(&mut self, what: String, msg: RouteMessage) -> Result<(), PlatformError> {
        self.handle
            .route()
            .add(msg.clone())
            .execute()
            .await
            .map_err(|e| nl_err(format!("add {what}"), e))?;
        tracing::debug!("added {what}");
        self.added.push(Added::Route(what, msg));
        Ok(())
    }

    /// Add an IPv4 route to `net/prefix`: through the tunnel interface when `via_device` (with
    /// `gateway` as next hop if given), else via `gateway` on whatever interface the kernel picks
    /// (OpenVPN's `net_gateway` routes). One of the two is required.
    pub async fn add_route_v4(
        &mut self,
        net: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        via_device: bool,
        metric: Option<u32>,
    ) -> Result<(), PlatformError> {
        if prefix > 32 {
            return Err(PlatformError::InvalidArgument(format!(
                "IPv4 prefix length {prefix} > 32"
            )));
        }
        if gateway.is_none() && !via_device {
            return Err(PlatformError::InvalidArgument(format!(
                "route {net}/{prefix}: neither a gateway nor the device"
            )));
        }
        let net = mask_v4(net, prefix);
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(net, prefix);
        let mut what = format!("route {net}/{prefix}");
        if let Some(g) = gateway {
            b = b.gateway(g);
            what += &format!(" via {g}");
        }
        if via_device {
            b = b.output_interface(self.ifindex);
            what += &format!(" dev {}", self.ifname);
            if gateway.is_none() {
                b = b.scope(RouteScope::Link);
            }
        }
        if let Some(m) = metric {
            b = b.priority(m);
            what += &format!(" metric {m}");
        }
        self.add_route(what, b.build()).await
    }

    /// Add an IPv6 route to `net/prefix` through the tunnel interface (with `gateway` as next
    /// hop if given).
    pub async fn add_route_v6(
        &mut self,
        net: Ipv6Addr,
        prefix: u8,
        gateway: Option<Ipv6Addr>,
        metric: Option<u32>,
    ) -> Result<(), PlatformError> {
        if prefix > 128 {
            return Err(PlatformError::InvalidArgument(format!(
                "IPv6 prefix length {prefix} > 128"
            )));
        }
        let net = mask_v6(net, prefix);
        let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(net, prefix)
            .output_interface(self.ifindex);
        let mut what = format!("route {net}/{prefix}");
        if let Some(g) = gateway {
            b = b.gateway(g);
            what += &format!(" via {g}");
        }
        what += &format!(" dev {}", self.ifname);
        if let Some(m) = metric {
            b = b.priority(m);
            what += &format!(" metric {m}");
        }
        self.add_route(what, b.build()).await
    }

    /// The route the kernel uses now for `dest` (`ip route get DEST`), or `None` when `dest`
    /// is unreachable or local (a route of another type than unicast).
    pub async fn route_to(&self, dest: IpAddr) -> Result<Option<RouteInfo>, PlatformError> {
        let msg = match dest {
            IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(a, 32)
                .build(),
            IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(a, 128)
                .build(),
        };
        let Some(mut info) = self.lookup(dest, msg).await?.as_ref().and_then(route_info) else {
            return Ok(None);
        };
        info.ifname = link_name(&self.handle, info.ifindex).await;
        Ok(Some(info))
    }

    async fn lookup(
        &self,
        dest: IpAddr,
        msg: RouteMessage,
    ) -> Result<Option<RouteMessage>, PlatformError> {
        match self.handle.route().get(msg).execute().try_next().await {
            Ok(Some(m)) if m.header.kind == RouteType::Unicast => Ok(Some(m)),
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    errno(&e),
                    Some(ENETUNREACH | ESRCH | 113 /* EHOSTUNREACH */)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(nl_err(format!("look up the route to {dest}"), e)),
        }
    }

    /// For `redirect-gateway`: pin the route to `dest` (the VPN server) that the kernel uses now,
    /// as a host route (/32 or /128) with the same gateway, output interface and table, so the
    /// tunnel's own packets keep leaving by the original path.
    ///
    /// Returns whether a route was added. Nothing is added (`Ok(false)`) when `dest` is local or
    /// unreachable, when its current route already goes through the tunnel interface, or when an
    /// identical host route exists already (it is not ours to remove). When `dest` is on-link
    /// (no gateway), the host route is added on the same interface with link scope.
    pub async fn add_host_route_via_original_gateway(
        &mut self,
        dest: IpAddr,
    ) -> Result<bool, PlatformError> {
        let (query, mut b, prefix) = match dest {
            IpAddr::V4(a) => (
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(a, 32)
                    .build(),
                RouteMessageBuilder::<IpAddr>::new()
                    .destination_prefix(dest, 32)
                    .map_err(|e| PlatformError::InvalidArgument(e.to_string()))?,
                32,
            ),
            IpAddr::V6(a) => (
                RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(a, 128)
                    .build(),
                RouteMessageBuilder::<IpAddr>::new()
                    .destination_prefix(dest, 128)
                    .map_err(|e| PlatformError::InvalidArgument(e.to_string()))?,
                128,
            ),
        };
        let Some(current) = self.lookup(dest, query).await? else {
            tracing::debug!("no unicast route to {dest} (local or unreachable): no host route");
            return Ok(false);
        };
        let Some(info) = route_info(&current) else {
            return Ok(false);
        };
        if info.ifindex == self.ifindex {
            tracing::warn!(
                "the route to {dest} already goes through {}: no host route to the original gateway",
                self.ifname
            );
            return Ok(false);
        }
        let ifname = link_name(&self.handle, info.ifindex)
            .await
            .unwrap_or_else(|| format!("#{}", info.ifindex));
        b = b.output_interface(info.ifindex);
        let mut what = format!("host route {dest}/{prefix}");
        match info.gateway {
            Some(g) => {
                b = b
                    .gateway(g)
                    .map_err(|e| PlatformError::InvalidArgument(e.to_string()))?;
                what += &format!(" via {g}");
            }
            None => b = b.scope(RouteScope::Link),
        }
        what += &format!(" dev {ifname}");
        let table = route_table(&current);
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) && table != 0 {
            b = b.table_id(table);
            what += &format!(" table {table}");
        }
        match self.add_route(what.clone(), b.build()).await {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(EEXIST) => {
                tracing::debug!("{what}: exists already, left alone");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn default_route(
        &self,
        family: AddressFamily,
    ) -> Result<Option<RouteInfo>, PlatformError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(msg)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_err("list routes".to_owned(), e))?;
        let best = routes
            .iter()
            .filter(|m| {
                m.header.destination_prefix_length == 0
                    && m.header.kind == RouteType::Unicast
                    && m.header.address_family == family
                    && route_table(m) == u32::from(RouteHeader::RT_TABLE_MAIN)
            })
            .filter_map(route_info)
            .min_by_key(|i| i.metric.unwrap_or(0));
        let Some(mut info) = best else {
            return Ok(None);
        };
        info.ifname = link_name(&self.handle, info.ifindex).await;
        Ok(Some(info))
    }

    /// The IPv4 default route of the main table with the lowest metric, if any.
    pub async fn default_route_v4(&self) -> Result<Option<RouteInfo>, PlatformError> {
        self.default_route(AddressFamily::Inet).await
    }

    /// The IPv6 default route of the main table with the lowest metric, if any.
    pub async fn default_route_v6(&self) -> Result<Option<RouteInfo>, PlatformError> {
        self.default_route(AddressFamily::Inet6).await
    }

    /// Remove everything this configurator added, newest first. Failures are logged (there is
    /// nothing better to do with them at exit).
    pub async fn restore(mut self) {
        let items = std::mem::take(&mut self.added);
        for e in undo(&self.handle, items).await {
            tracing::warn!("{e}");
        }
    }
}

impl Drop for NetConfigurator {
    fn drop(&mut self) {
        self.conn_task.abort();
        let items = std::mem::take(&mut self.added);
        if items.is_empty() {
            return;
        }
        let ifname = self.ifname.clone();
        let cleanup = std::thread::Builder::new()
            .name("ferrovpn-net-restore".to_owned())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!("cannot restore routes and addresses of {ifname}: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let (handle, task) = match connect() {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!("cannot restore routes and addresses of {ifname}: {e}");
                            return;
                        }
                    };
                    for e in undo(&handle, items).await {
                        tracing::warn!("{e}");
                    }
                    task.abort();
                });
            });
        match cleanup {
            Ok(t) => {
                let _ = t.join();
            }
            Err(e) => tracing::warn!("cannot restore routes and addresses: {e}"),
        }
    }
}

fn mask_v4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let m = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from(u32::from(a) & m)
}

fn mask_v6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let m = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    };
    Ipv6Addr::from(u128::from(a) & m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(
            mask_v4(Ipv4Addr::new(198, 18, 78, 9), 24),
            Ipv4Addr::new(198, 18, 78, 0)
        );
        assert_eq!(
            mask_v4(Ipv4Addr::new(198, 18, 78, 9), 0),
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            mask_v4(Ipv4Addr::new(198, 18, 78, 9), 32),
            Ipv4Addr::new(198, 18, 78, 9)
        );
        assert_eq!(
            mask_v6("2001:db8:77::1".parse().unwrap(), 64),
            "2001:db8:77::".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            mask_v6("2001:db8::1".parse().unwrap(), 0),
            Ipv6Addr::UNSPECIFIED
        );
    }
}
