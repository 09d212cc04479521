//! Letting a client in: `tls-crypt-v2-verify`, `auth-user-pass-verify`, the client's CCD file,
//! `client-connect` (its dynamic config), then the per-client push (addresses, iroutes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

use super::control::Transport;
use super::pool::Lease;
use super::scripts::{
    CertInfo, ClientScriptInfo, ScriptCmd, ScriptEnv, ScriptRunner, ServerScriptInfo, Via,
};
use crate::config::{CcdEntry, CredentialsVia, ServerProfile, Topology, parse_ccd};
use crate::proto::server::auth_token::{TOKEN_PREFIX, TokenError, TokenKey, TokenPolicy};
use crate::proto::server::{AuthRequest, PeerSetup};
use crate::runtime::clock;

/// What the server knows to decide on clients.
pub struct SetupContext {
    /// `auth-gen-token` key (None without `auth-gen-token`).
    pub tokens: Option<TokenKey>,
    /// The configuration.
    pub profile: Arc<ServerProfile>,
    /// Script runner (`script-security`).
    pub scripts: ScriptRunner,
    /// Process facts for the scripts' environment.
    pub info: ServerScriptInfo,
}

/// The outcome of the checks: the client's name and its per-client configuration.
#[derive(Debug, Default)]
pub struct Decision {
    /// Name the client is known by (CN, or user name with `username-as-common-name`).
    pub common_name: String,
    /// CCD file and `client-connect` output, merged.
    pub ccd: CcdEntry,
    /// `auth-gen-token`: the token to push (None without).
    pub auth_token: Option<String>,
}

/// How long tokens live: `auth-gen-token LIFETIME RENEWAL` (an issued token is good for two
/// renewal periods, the renewal period defaulting to `reneg-sec`).
fn token_policy(p: &ServerProfile) -> Option<TokenPolicy> {
    let g = p.auth_gen_token?;
    let renewal = g
        .renewal
        .filter(|r| !r.is_zero())
        .unwrap_or(p.reneg_sec)
        .as_secs();
    let validity = if renewal == 0 { 86_400 } else { renewal * 2 };
    Some(TokenPolicy {
        lifetime: g.lifetime.filter(|l| !l.is_zero()).map(|l| l.as_secs()),
        validity,
    })
}

/// A client's name for CCD lookups and logs.
pub fn client_name(profile: &ServerProfile, req: &AuthRequest) -> String {
    if profile.username_as_common_name && !req.username.is_empty() {
        return req.username.clone();
    }
    req.common_name.clone().unwrap_or_else(|| "UNDEF".into())
}

/// The script environment for `req`.
pub fn client_env(
    ctx: &SetupContext,
    req: &AuthRequest,
    name: &str,
    lease: Option<&Lease>,
) -> ScriptEnv {
    let certs = req
        .common_name
        .as_ref()
        .map(|cn| {
            vec![CertInfo {
                subject: format!("CN={cn}"),
                serial: req.cert_serial.clone().unwrap_or_default(),
                fields: vec![("CN".into(), cn.clone())],
                ..Default::default()
            }]
        })
        .unwrap_or_default();
    let peer_info = req
        .peer_info
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let client = ClientScriptInfo {
        common_name: name.to_string(),
        username: (!req.username.is_empty()).then(|| req.username.clone()),
        real_addr: req.link.addr,
        authenticated: lease.is_some(),
        pool_remote_ip: lease.and_then(|l| l.v4).map(|(a, _)| a),
        pool_netmask: lease
            .and_then(|l| l.v4)
            .filter(|_| {
                ctx.profile
                    .tunnel_v4
                    .is_some_and(|t| t.topology == Topology::Subnet)
            })
            .map(|(_, m)| m),
        pool_remote_ip6: lease.and_then(|l| l.v6),
        pool_local_ip6: ctx.profile.tunnel_v6.map(|t| (t.local, t.prefix_len)),
        certs,
        peer_info,
    };
    let mut info = ctx.info.clone();
    info.proto = if req.link.is_tcp() {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    ScriptEnv::for_server(&info).with_client(&client)
}

/// Runs the checks of a client asking to connect. `Err` holds the reason sent with
/// `AUTH_FAILED` (empty: none, as OpenVPN by default).
pub async fn decide(
    ctx: Arc<SetupContext>,
    req: Arc<AuthRequest>,
) -> Result<Decision, (String, String)> {
    let p = &ctx.profile;
    let name = client_name(p, &req);
    let env = client_env(&ctx, &req, &name, None);
    let refuse = |log: String| Err((String::new(), log));
    if let (Some(v2), Some(meta)) = (&p.tls_crypt_v2, &req.tls_crypt_v2_metadata)
        && let Some(cmd) = &v2.verify
    {
        let cmd = ScriptCmd::parse(cmd).map_err(|e| (String::new(), e.to_string()))?;
        let (ty, data) = meta.split_first().map_or((0, &[][..]), |(t, d)| (*t, d));
        match ctx.scripts.tls_crypt_v2_verify(&cmd, ty, data).await {
            Ok(true) => {}
            Ok(false) => return refuse("tls-crypt-v2-verify refused the client key".into()),
            Err(e) => return refuse(e.to_string()),
        }
    }
    let now_unix = u64::from(clock::unix_seconds());
    let mut token_initial = None;
    if let (Some(policy), Some(key)) = (token_policy(p), &ctx.tokens)
        && req.password.starts_with(TOKEN_PREFIX)
    {
        match key.verify(&req.password, &req.username, now_unix, policy) {
            Ok(initial) => token_initial = Some(initial),
            Err(TokenError::Expired) => {
                return Err((
                    "SESSION: session token expired".into(),
                    format!("user '{}': session token expired", req.username),
                ));
            }
            Err(e) => {
                return Err((
                    "SESSION: session token not valid".into(),
                    format!("user '{}': {e}", req.username),
                ));
            }
        }
    }
    if let Some(v) = p
        .auth_user_pass_verify
        .as_ref()
        .filter(|_| token_initial.is_none())
    {
        let cmd = ScriptCmd::parse(&v.command).map_err(|e| (String::new(), e.to_string()))?;
        let via = match v.method {
            CredentialsVia::Env => Via::Env,
            CredentialsVia::File => Via::File,
        };
        match ctx
            .scripts
            .auth_user_pass_verify(&cmd, via, &env, &req.username, &req.password)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return refuse(format!(
                    "auth-user-pass-verify refused user '{}'",
                    req.username
                ));
            }
            Err(e) => return refuse(e.to_string()),
        }
    }
    let mut ccd = CcdEntry::default();
    if let Some(dir) = &p.client_config_dir {
        match read_ccd(dir, &name).await {
            Ok(Some(entry)) => ccd = entry,
            Ok(None) if p.ccd_exclusive => {
                return refuse(format!(
                    "no file for '{name}' in client-config-dir (ccd-exclusive)"
                ));
            }
            Ok(None) => {}
            Err(e) => return refuse(e),
        }
        if ccd.disable {
            return refuse(format!(
                "'{name}' is disabled by its client-config-dir file"
            ));
        }
    }
    if let Some(cmd) = &p.client_connect {
        let cmd = ScriptCmd::parse(cmd).map_err(|e| (String::new(), e.to_string()))?;
        match ctx.scripts.client_connect(&cmd, &env).await {
            Ok(Some(text)) if !text.trim().is_empty() => {
                match parse_ccd(&text, Path::new("client-connect output")) {
                    Ok(dynamic) => merge_ccd(&mut ccd, dynamic),
                    Err(e) => return refuse(format!("client-connect output: {e}")),
                }
            }
            Ok(_) => {}
            Err(e) => return refuse(format!("client-connect: {e}")),
        }
        if ccd.disable {
            return refuse(format!("client-connect disabled '{name}'"));
        }
    }
    let auth_token = match (&ctx.tokens, token_policy(p)) {
        (Some(key), Some(_)) if !req.username.is_empty() => {
            Some(key.issue(&req.username, token_initial.unwrap_or(now_unix), now_unix))
        }
        _ => None,
    };
    Ok(Decision {
        common_name: name,
        ccd,
        auth_token,
    })
}

async fn read_ccd(dir: &Path, name: &str) -> Result<Option<CcdEntry>, String> {
    // As OpenVPN: names that could leave the directory are never looked up.
    if name.is_empty() || name.contains('/') || name.starts_with('.') || name == "UNDEF" {
        return Ok(None);
    }
    let path = dir.join(name);
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => parse_ccd(&text, &path).map(Some).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let default = dir.join("DEFAULT");
            match tokio::fs::read_to_string(&default).await {
                Ok(text) => parse_ccd(&text, &default)
                    .map(Some)
                    .map_err(|e| e.to_string()),
                Err(_) => Ok(None),
            }
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn merge_ccd(base: &mut CcdEntry, more: CcdEntry) {
    if more.ifconfig_push.is_some() {
        base.ifconfig_push = more.ifconfig_push;
    }
    if more.ifconfig_ipv6_push.is_some() {
        base.ifconfig_ipv6_push = more.ifconfig_ipv6_push;
    }
    base.iroutes.extend(more.iroutes);
    base.iroutes_ipv6.extend(more.iroutes_ipv6);
    base.push_reset |= more.push_reset;
    base.push_remove.extend(more.push_remove);
    base.push.extend(more.push);
    base.disable |= more.disable;
}

/// The client's addresses: from `ifconfig-push` or the pool lease.
pub fn addresses(
    ccd: &CcdEntry,
    lease: Option<&Lease>,
) -> (Option<(Ipv4Addr, Ipv4Addr)>, Option<Ipv6Addr>) {
    let v4 = ccd
        .ifconfig_push
        .map(|p| (p.local, p.remote_netmask))
        .or_else(|| lease.and_then(|l| l.v4));
    let v6 = ccd
        .ifconfig_ipv6_push
        .map(|p| p.local)
        .or_else(|| lease.and_then(|l| l.v6));
    (v4, v6)
}

/// The per-client push and routing entries.
pub fn peer_setup(
    profile: &ServerProfile,
    decision: &Decision,
    v4: Option<(Ipv4Addr, Ipv4Addr)>,
    v6: Option<Ipv6Addr>,
) -> PeerSetup {
    let ccd = &decision.ccd;
    let mut push: Vec<String> = if ccd.push_reset {
        Vec::new()
    } else {
        profile.push.clone()
    };
    push.extend(ccd.push.iter().cloned());
    for r in &ccd.push_remove {
        push.retain(|o| {
            o.split_whitespace().next().is_none_or(|w| w != r)
                && !o.starts_with(&format!("{r} "))
                && o != r
        });
    }
    if let Some((addr, second)) = v4 {
        push.push(format!("ifconfig {addr} {second}"));
    }
    if let Some(t) = &decision.auth_token {
        push.push(format!("auth-token {t}"));
    }
    if let (Some(a), Some(t)) = (v6, profile.tunnel_v6) {
        let bits = ccd
            .ifconfig_ipv6_push
            .map_or(t.prefix_len, |p| p.prefix_len);
        push.push(format!("ifconfig-ipv6 {a}/{bits} {}", t.local));
    }
    let mut iroutes: Vec<IpNet> = ccd
        .iroutes
        .iter()
        .filter_map(|(n, p)| IpNet::new(IpAddr::V4(*n), *p).ok())
        .collect();
    iroutes.extend(
        ccd.iroutes_ipv6
            .iter()
            .filter_map(|(n, p)| IpNet::new(IpAddr::V6(*n), *p).ok()),
    );
    PeerSetup {
        push,
        v4: v4.map(|(a, _)| a),
        v6,
        iroutes,
        common_name: Some(decision.common_name.clone()),
    }
}
