//! The client's hook scripts (`up`, `route-up`, `down`) with OpenVPN's arguments and
//! environment, so existing scripts (`update-resolv-conf`, firewall hooks) keep working.
//!
//! Arguments of `up`/`down` as in OpenVPN: `DEV TUN_MTU LINK_MTU IFCONFIG_LOCAL
//! IFCONFIG_NETMASK_OR_REMOTE init|restart`. Environment: `script_type`, `dev`, `dev_type`,
//! `tun_mtu`, `link_mtu`, `ifconfig_local`, `ifconfig_netmask` (subnet) or `ifconfig_remote`,
//! `ifconfig_ipv6_local`/`_netbits`, `route_vpn_gateway`, `route_network_N`/`_netmask_N`/
//! `_gateway_N`, `route_ipv6_network_N`, `foreign_option_N` (pushed `dhcp-option` lines, what
//! resolver scripts read), `trusted_ip`/`trusted_port`, `config`, `verb`, `daemon`,
//! `script_context`, and the profile's `setenv UV_*` variables when they are sent as peer-info.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::server::scripts::{ScriptCmd, ScriptEnv, ScriptRunner};
use crate::config::{DhcpOption, Profile};
use crate::proto::handshake::push::PushedOptions;

/// The hooks a profile configured.
#[derive(Debug, Clone)]
pub struct ClientScripts {
    runner: ScriptRunner,
    up: Option<ScriptCmd>,
    route_up: Option<ScriptCmd>,
    down: Option<ScriptCmd>,
    config: String,
    verb: u8,
    user_vars: Vec<(String, String)>,
}

/// What the scripts are told about the tunnel.
#[derive(Debug, Clone)]
pub struct TunnelFacts {
    /// Device name.
    pub dev: String,
    /// `tun` or `tap`.
    pub dev_type: &'static str,
    /// Device MTU.
    pub tun_mtu: u16,
    /// The server's address.
    pub trusted: SocketAddr,
    /// What the server pushed.
    pub push: PushedOptions,
    /// `init` the first time, `restart` after a reconnect.
    pub restart: bool,
}

impl ClientScripts {
    /// The profile's hooks; `None` when it has none. A malformed command line is an error
    /// naming the directive.
    pub fn from_profile(p: &Profile) -> Result<Option<Self>, String> {
        let parse = |name: &str, c: &Option<String>| {
            c.as_deref()
                .map(|c| ScriptCmd::parse(c).map_err(|e| format!("'{name}': {e}")))
                .transpose()
        };
        let up = parse("up", &p.up)?;
        let route_up = parse("route-up", &p.route_up)?;
        let down = parse("down", &p.down)?;
        if up.is_none() && route_up.is_none() && down.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            runner: ScriptRunner::new(p.script_security, Duration::from_secs(30)),
            up,
            route_up,
            down,
            config: p.source.display().to_string(),
            verb: p.verb,
            user_vars: p.peer_info_extra.clone(),
        }))
    }

    /// Runs `up` (if configured); an error ends the run, as in OpenVPN.
    pub async fn up(&self, f: &TunnelFacts) -> Result<(), String> {
        self.run("up", self.up.as_ref(), f, true).await
    }

    /// Runs `route-up` (if configured).
    pub async fn route_up(&self, f: &TunnelFacts) -> Result<(), String> {
        self.run("route-up", self.route_up.as_ref(), f, false).await
    }

    /// Runs `down` (if configured).
    pub async fn down(&self, f: &TunnelFacts) -> Result<(), String> {
        self.run("down", self.down.as_ref(), f, true).await
    }

    async fn run(
        &self,
        kind: &str,
        cmd: Option<&ScriptCmd>,
        f: &TunnelFacts,
        with_args: bool,
    ) -> Result<(), String> {
        let Some(cmd) = cmd else {
            return Ok(());
        };
        let env = self.env(kind, f);
        let args = if with_args { up_args(f) } else { Vec::new() };
        tracing::info!("running {kind} script: {cmd}");
        self.runner
            .hook(cmd, &args, &env)
            .await
            .map_err(|e| format!("'{kind}': {e}"))
    }

    /// The environment for `kind` (`up`, `route-up`, `down`).
    pub fn env(&self, kind: &str, f: &TunnelFacts) -> ScriptEnv {
        let mut env = ScriptEnv::new();
        env.set("script_type", kind);
        env.set("script_context", if f.restart { "restart" } else { "init" });
        env.set("config", &self.config);
        env.set("verb", self.verb.to_string());
        env.set("daemon", "0");
        env.set("daemon_log_redirect", "0");
        env.set("dev", &f.dev);
        env.set("dev_type", f.dev_type);
        env.set("tun_mtu", f.tun_mtu.to_string());
        env.set("link_mtu", link_mtu(f.tun_mtu).to_string());
        env.set("trusted_ip", f.trusted.ip().to_string());
        env.set("trusted_port", f.trusted.port().to_string());
        env.set("untrusted_ip", f.trusted.ip().to_string());
        env.set("untrusted_port", f.trusted.port().to_string());
        env.set("remote_1", f.trusted.ip().to_string());
        env.set("remote_port_1", f.trusted.port().to_string());
        let p = &f.push;
        if let Some((local, other)) = p.ifconfig {
            env.set("ifconfig_local", local.to_string());
            if is_netmask(other) {
                env.set("ifconfig_netmask", other.to_string());
            } else {
                env.set("ifconfig_remote", other.to_string());
            }
        }
        if let Some(v6) = &p.ifconfig_ipv6 {
            env.set("ifconfig_ipv6_local", v6.0.to_string());
            env.set("ifconfig_ipv6_netbits", v6.1.to_string());
            if let Some(gw) = v6.2 {
                env.set("ifconfig_ipv6_remote", gw.to_string());
            }
        }
        let gateway = p
            .route_gateway
            .or_else(|| p.ifconfig.map(|(_, r)| r).filter(|r| !is_netmask(*r)));
        if let Some(gw) = gateway {
            env.set("route_vpn_gateway", gw.to_string());
        }
        for (i, r) in p.routes.iter().enumerate() {
            let n = i + 1;
            env.set(format!("route_network_{n}"), &r.network);
            env.set(
                format!("route_netmask_{n}"),
                r.netmask.as_deref().unwrap_or("255.255.255.255"),
            );
            let gw = r
                .gateway
                .as_deref()
                .and_then(|g| g.parse::<Ipv4Addr>().ok())
                .or(gateway);
            if let Some(gw) = gw {
                env.set(format!("route_gateway_{n}"), gw.to_string());
            }
            if let Some(m) = r.metric {
                env.set(format!("route_metric_{n}"), m.to_string());
            }
        }
        for (i, r) in p.routes_ipv6.iter().enumerate() {
            env.set(format!("route_ipv6_network_{}", i + 1), &r.network);
        }
        for (i, o) in p.dhcp_options.iter().enumerate() {
            env.set(format!("foreign_option_{}", i + 1), foreign_option(o));
        }
        for (k, v) in &self.user_vars {
            env.set(k, v);
        }
        env
    }
}

/// `up`/`down` arguments: `DEV TUN_MTU LINK_MTU IFCONFIG_LOCAL IFCONFIG_NETMASK_OR_REMOTE
/// init|restart`.
fn up_args(f: &TunnelFacts) -> Vec<String> {
    let (local, other) = f
        .push
        .ifconfig
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or_default();
    vec![
        f.dev.clone(),
        f.tun_mtu.to_string(),
        link_mtu(f.tun_mtu).to_string(),
        local,
        other,
        if f.restart { "restart" } else { "init" }.into(),
    ]
}

/// What OpenVPN reports as `link_mtu` for AEAD over UDP: the tunnel MTU plus its overhead.
fn link_mtu(tun_mtu: u16) -> u32 {
    u32::from(tun_mtu) + 53
}

fn is_netmask(a: Ipv4Addr) -> bool {
    let m = u32::from(a);
    m.leading_ones() + m.trailing_zeros() == 32 && m != 0
}

/// A pushed `dhcp-option` as OpenVPN puts it in `foreign_option_N`.
fn foreign_option(o: &DhcpOption) -> String {
    match o {
        DhcpOption::Dns(IpAddr::V4(a)) => format!("dhcp-option DNS {a}"),
        DhcpOption::Dns(IpAddr::V6(a)) => format!("dhcp-option DNS6 {a}"),
        DhcpOption::Domain(d) => format!("dhcp-option DOMAIN {d}"),
        DhcpOption::DomainSearch(d) => format!("dhcp-option DOMAIN-SEARCH {d}"),
        DhcpOption::Other(k, v) if v.is_empty() => format!("dhcp-option {k}"),
        DhcpOption::Other(k, v) => format!("dhcp-option {k} {v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> TunnelFacts {
        let mut push = PushedOptions::default();
        push.apply_chunk(
            "ifconfig 198.19.10.2 255.255.255.0,route-gateway 198.19.10.1,\
             route 198.19.255.1 255.255.255.255,dhcp-option DNS 198.19.10.53,\
             dhcp-option DOMAIN test.internal",
            &crate::proto::handshake::push::PullPolicy::default(),
        )
        .unwrap();
        TunnelFacts {
            dev: "tun0".into(),
            dev_type: "tun",
            tun_mtu: 1500,
            trusted: "198.18.10.1:1194".parse().unwrap(),
            push,
            restart: false,
        }
    }

    fn scripts() -> ClientScripts {
        let p = crate::config::parse_profile(
            &format!(
                "client\nremote x\nauth-user-pass\npeer-fingerprint {}\nscript-security 2\n\
                 up \"/etc/openvpn/up.sh arg\"\nsetenv UV_SITE lab\n",
                ["ab"; 32].join(":")
            ),
            std::path::Path::new("p.ovpn"),
            &crate::config::FsLoader::new("/nonexistent"),
        )
        .unwrap();
        ClientScripts::from_profile(&p).unwrap().unwrap()
    }

    #[test]
    fn environment_has_what_resolver_scripts_read() {
        let env = scripts().env("up", &facts());
        for (k, v) in [
            ("script_type", "up"),
            ("dev", "tun0"),
            ("ifconfig_local", "198.19.10.2"),
            ("ifconfig_netmask", "255.255.255.0"),
            ("route_vpn_gateway", "198.19.10.1"),
            ("route_network_1", "198.19.255.1"),
            ("route_netmask_1", "255.255.255.255"),
            ("route_gateway_1", "198.19.10.1"),
            ("foreign_option_1", "dhcp-option DNS 198.19.10.53"),
            ("foreign_option_2", "dhcp-option DOMAIN test.internal"),
            ("trusted_ip", "198.18.10.1"),
            ("trusted_port", "1194"),
            ("script_context", "init"),
        ] {
            assert_eq!(env.get(k), Some(v), "{k}");
        }
        assert_eq!(env.get("ifconfig_remote"), None);
    }

    #[test]
    fn up_arguments_follow_openvpn() {
        let mut f = facts();
        f.restart = true;
        assert_eq!(
            up_args(&f),
            [
                "tun0",
                "1500",
                "1553",
                "198.19.10.2",
                "255.255.255.0",
                "restart"
            ]
        );
    }

    #[test]
    fn netmask_or_remote() {
        assert!(is_netmask("255.255.255.0".parse().unwrap()));
        assert!(is_netmask("255.255.255.255".parse().unwrap()));
        assert!(!is_netmask("10.8.0.5".parse().unwrap()));
    }
}
