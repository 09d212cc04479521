//! Turns the pushed options (and the profile's own routes) into a plan of addresses, routes and
//! DNS, and applies it through the platform crate. The plan is pure and unit-tested; applying
//! it is the only part that touches the system.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ferrovpn_platform::{DnsConfig, DnsGuard, NetConfigurator, apply_dns};

use crate::config::{Profile, RedirectGateway};
use crate::proto::handshake::push::{PushedOptions, Topology};

/// What to configure on the device and the system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPlan {
    /// IPv4 address, prefix and point-to-point peer.
    pub v4: Option<(Ipv4Addr, u8, Option<Ipv4Addr>)>,
    /// IPv6 address and prefix.
    pub v6: Option<(Ipv6Addr, u8)>,
    /// IPv4 routes through the tunnel.
    pub routes_v4: Vec<(Ipv4Addr, u8, Option<u32>)>,
    /// Next hop of the IPv4 routes on a TAP device (`route-gateway`): on an Ethernet segment a
    /// route needs a neighbour to send to.
    pub route_via: Option<Ipv4Addr>,
    /// IPv6 routes through the tunnel.
    pub routes_v6: Vec<(Ipv6Addr, u8, Option<u32>)>,
    /// Host routes to the server via the original gateway (redirect-gateway).
    pub bypass: Vec<IpAddr>,
    /// DNS.
    pub dns: DnsConfig,
    /// Problems worth a warning.
    pub warnings: Vec<String>,
}

fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let p = m.leading_ones();
    (m.checked_shl(p).unwrap_or(0) == 0).then_some(p as u8)
}

impl NetPlan {
    /// Builds the plan. `server` is the address of the remote we are connected to.
    pub fn build(push: &PushedOptions, profile: &Profile, server: IpAddr) -> Self {
        let mut plan = Self::default();
        let mut vpn_gateway = push.route_gateway;
        // On a TAP device the second `ifconfig` argument is always a netmask.
        let topology = if profile.layer2 {
            Topology::Subnet
        } else {
            push.topology
        };
        if profile.layer2 {
            plan.route_via = push.route_gateway;
        }
        if let Some((a, b)) = push.ifconfig {
            match topology {
                Topology::Subnet => match prefix_of(b) {
                    Some(p) => plan.v4 = Some((a, p, None)),
                    None => plan
                        .warnings
                        .push(format!("pushed netmask {b} is not contiguous")),
                },
                Topology::Net30 | Topology::P2p => {
                    plan.v4 = Some((a, 32, Some(b)));
                    vpn_gateway = vpn_gateway.or(Some(b));
                }
            }
        }
        if let Some((a, bits, _)) = push.ifconfig_ipv6 {
            plan.v6 = Some((a, bits));
        }
        let metric = push.route_metric.or(profile.route_metric);
        let routes = profile.routes.iter().chain(push.routes.iter());
        for r in routes {
            let Ok(net) = r.network.parse::<Ipv4Addr>() else {
                plan.warnings.push(format!(
                    "route {}: only literal addresses are supported",
                    r.network
                ));
                continue;
            };
            if r.gateway.as_deref() == Some("net_gateway") {
                plan.warnings.push(format!(
                    "route {} net_gateway: not supported, skipped",
                    r.network
                ));
                continue;
            }
            let mask = r
                .netmask
                .as_deref()
                .map(|m| m.parse::<Ipv4Addr>())
                .transpose()
                .ok()
                .flatten()
                .unwrap_or(Ipv4Addr::BROADCAST);
            let Some(prefix) = prefix_of(mask) else {
                plan.warnings
                    .push(format!("route {} {mask}: bad netmask", r.network));
                continue;
            };
            let net = Ipv4Addr::from(u32::from(net) & u32::from(mask));
            plan.routes_v4.push((net, prefix, r.metric.or(metric)));
        }
        for r in profile.routes_ipv6.iter().chain(push.routes_ipv6.iter()) {
            let (a, bits) = r
                .network
                .split_once('/')
                .unwrap_or((r.network.as_str(), "128"));
            match (a.parse::<Ipv6Addr>(), bits.parse::<u8>()) {
                (Ok(a), Ok(bits)) if bits <= 128 => {
                    plan.routes_v6.push((a, bits, r.metric.or(metric)))
                }
                _ => plan
                    .warnings
                    .push(format!("route-ipv6 {}: malformed", r.network)),
            }
        }
        let rg: Option<RedirectGateway> = push.redirect_gateway.or(profile.redirect_gateway);
        if let Some(rg) = rg {
            if !rg.no_ipv4 {
                plan.routes_v4.push((Ipv4Addr::new(0, 0, 0, 0), 1, metric));
                plan.routes_v4
                    .push((Ipv4Addr::new(128, 0, 0, 0), 1, metric));
                if !rg.local && server.is_ipv4() {
                    plan.bypass.push(server);
                }
                if vpn_gateway.is_none() && plan.v4.is_none() {
                    plan.warnings
                        .push("redirect-gateway without an IPv4 address on the tunnel".into());
                }
            }
            if rg.ipv6 {
                plan.routes_v6.push((Ipv6Addr::UNSPECIFIED, 1, metric));
                plan.routes_v6
                    .push((Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0), 1, metric));
                if !rg.local && server.is_ipv6() {
                    plan.bypass.push(server);
                }
            }
        }
        // DNS: the 2.6 `dns` option wins over dhcp-option, as in OpenVPN.
        let mut servers = push.dns_addresses();
        let mut search = push.search_domains();
        if servers.is_empty() {
            for o in &profile.dhcp_options {
                match o {
                    crate::config::DhcpOption::Dns(ip) => servers.push(*ip),
                    crate::config::DhcpOption::Domain(d)
                    | crate::config::DhcpOption::DomainSearch(d) => search.push(d.clone()),
                    _ => {}
                }
            }
        }
        plan.dns = DnsConfig {
            servers,
            search_domains: search,
            split_domains: push.split_domains(),
        };
        plan
    }
}

/// What was applied, undone by [`Applied::restore`] (or on drop, best effort).
pub struct Applied {
    net: Option<NetConfigurator>,
    dns: Option<DnsGuard>,
}

impl Applied {
    /// Removes routes and addresses we added and restores DNS.
    pub async fn restore(mut self) {
        if let Some(dns) = self.dns.take()
            && let Err(e) = dns.restore()
        {
            tracing::warn!("restoring DNS: {e}");
        }
        if let Some(net) = self.net.take() {
            net.restore().await;
        }
    }
}

/// Applies a plan to the device `ifname`.
pub async fn apply(
    plan: &NetPlan,
    ifname: &str,
    state_dir: &Path,
) -> Result<Applied, ferrovpn_platform::PlatformError> {
    let mut net = NetConfigurator::new(ifname).await?;
    let mut applied = Applied {
        net: None,
        dns: None,
    };
    if let Some((a, p, peer)) = plan.v4 {
        net.add_address_v4(a, p, peer).await?;
    }
    if let Some((a, p)) = plan.v6 {
        net.add_address_v6(a, p).await?;
    }
    for ip in &plan.bypass {
        match net.add_host_route_via_original_gateway(*ip).await {
            Ok(_) => {}
            Err(e) => tracing::warn!("host route to the server {ip}: {e}"),
        }
    }
    for (n, p, m) in &plan.routes_v4 {
        net.add_route_v4(*n, *p, plan.route_via, true, *m).await?;
    }
    for (n, p, m) in &plan.routes_v6 {
        net.add_route_v6(*n, *p, None, *m).await?;
    }
    applied.net = Some(net);
    if !plan.dns.servers.is_empty() || !plan.dns.search_domains.is_empty() {
        applied.dns = Some(apply_dns(ifname, &plan.dns, state_dir)?);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::push::PullPolicy;

    fn profile() -> Profile {
        crate::config::parse_profile(
            "client\nremote 198.18.0.1\nauth-user-pass [inline]\n<auth-user-pass>\nu\np\n</auth-user-pass>\nca [inline]\n<ca>\n-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n</ca>\n",
            Path::new("t.ovpn"),
            &crate::config::FsLoader::new("/nonexistent"),
        )
        .expect("profile")
    }

    #[test]
    fn subnet_net30_redirect_and_dns() {
        let mut push = PushedOptions::default();
        push.apply_chunk(
            "topology subnet,ifconfig 198.19.1.2 255.255.255.0,route-gateway 198.19.1.1,route 198.19.50.7 255.255.255.0,redirect-gateway def1 ipv6,ifconfig-ipv6 2001:db8:1::2/64 2001:db8:1::1,dhcp-option DNS 198.19.1.53,dhcp-option DOMAIN test.internal",
            &PullPolicy::default(),
        )
        .unwrap();
        let plan = NetPlan::build(&push, &profile(), "198.18.0.1".parse().unwrap());
        assert_eq!(plan.v4, Some(("198.19.1.2".parse().unwrap(), 24, None)));
        assert!(
            plan.routes_v4
                .contains(&("198.19.50.0".parse().unwrap(), 24, None))
        );
        assert!(
            plan.routes_v4
                .contains(&("0.0.0.0".parse().unwrap(), 1, None))
        );
        assert!(
            plan.routes_v4
                .contains(&("128.0.0.0".parse().unwrap(), 1, None))
        );
        assert_eq!(plan.bypass, vec!["198.18.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(plan.routes_v6.len(), 2);
        assert_eq!(plan.v6, Some(("2001:db8:1::2".parse().unwrap(), 64)));
        assert_eq!(
            plan.dns.servers,
            vec!["198.19.1.53".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(plan.dns.search_domains, vec!["test.internal".to_owned()]);

        let mut push = PushedOptions::default();
        push.apply_chunk(
            "topology net30,ifconfig 198.19.2.6 198.19.2.5",
            &PullPolicy::default(),
        )
        .unwrap();
        let plan = NetPlan::build(&push, &profile(), "198.18.0.1".parse().unwrap());
        assert_eq!(
            plan.v4,
            Some((
                "198.19.2.6".parse().unwrap(),
                32,
                Some("198.19.2.5".parse().unwrap())
            ))
        );
        assert!(plan.bypass.is_empty());
    }

    #[test]
    fn tap_ifconfig_is_a_netmask_and_routes_go_via_the_gateway() {
        let mut profile = profile();
        profile.layer2 = true;
        let mut push = PushedOptions::default();
        push.apply_chunk(
            "route-gateway 198.19.3.1,ifconfig 198.19.3.2 255.255.255.0,route 198.19.60.0 255.255.255.0",
            &PullPolicy::default(),
        )
        .unwrap();
        let plan = NetPlan::build(&push, &profile, "198.18.0.1".parse().unwrap());
        assert_eq!(plan.v4, Some(("198.19.3.2".parse().unwrap(), 24, None)));
        assert_eq!(plan.route_via, Some("198.19.3.1".parse().unwrap()));
        assert_eq!(
            plan.routes_v4,
            vec![("198.19.60.0".parse().unwrap(), 24, None)]
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_of("255.255.255.252".parse().unwrap()), Some(30));
        assert_eq!(prefix_of("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(prefix_of("255.0.255.0".parse().unwrap()), None);
    }
}
