//! The client's management options on `connect`/`proxy`/`exec`, and `ferrovpn status`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::Args;
use ferrovpn::config::{ManagementListen as ConfListen, Profile};
use ferrovpn::runtime::management::query::{self, ClientReport, human_bytes, join_addr};
use ferrovpn::runtime::management::{ClientManagementConfig, LogRing, ManagementListen, RingLayer};

/// Management interface options (as OpenVPN's; the profile's directives work too).
#[derive(Args, Debug, Clone, Default)]
pub struct ManagementArgs {
    /// Management interface: `IP PORT [PWFILE]` or `PATH unix [PWFILE]` (a non-loopback IP
    /// needs a password file).
    #[arg(long, num_args = 2..=3, value_names = ["IP|PATH", "PORT|unix", "PWFILE"])]
    management: Option<Vec<String>>,
    /// Wait for `hold release` on the management interface before connecting and reconnecting.
    #[arg(long)]
    management_hold: bool,
    /// Ask for auth-user-pass credentials over the management interface instead of the terminal.
    #[arg(long)]
    management_query_passwords: bool,
    /// Restart the connection (SIGUSR1) when a management client disconnects.
    #[arg(long)]
    management_signal: bool,
}

static CONFIG: OnceLock<Option<ClientManagementConfig>> = OnceLock::new();

/// Merges the command line into the profile's management settings and prepares the interface's
/// configuration (read later by [`take_config`]); call before logging starts.
pub fn prepare(args: &ManagementArgs, p: &mut Profile) -> Result<(), String> {
    let m = &mut p.management;
    if let Some(a) = &args.management {
        m.set_listen(a).map_err(|e| format!("--management: {e}"))?;
    }
    m.hold |= args.management_hold;
    m.query_passwords |= args.management_query_passwords;
    m.signal |= args.management_signal;
    let cfg = match &m.listen {
        None => None,
        Some(listen) => {
            let listen = match listen {
                ConfListen::Unix(p) => ManagementListen::Unix(p.clone()),
                ConfListen::Tcp { host, port } => {
                    let ip: IpAddr = if host == "localhost" {
                        Ipv4Addr::LOCALHOST.into()
                    } else {
                        host.parse().map_err(|_| {
                            format!("management address '{host}' is not an IP address")
                        })?
                    };
                    ManagementListen::Tcp(SocketAddr::new(ip, *port))
                }
            };
            let password = match &m.password_file {
                Some(f) => Some(read_password(f)?),
                None => None,
            };
            Some(ClientManagementConfig {
                listen,
                password,
                hold: m.hold,
                query_passwords: m.query_passwords,
                signal_on_disconnect: m.signal,
                forget_on_disconnect: m.forget_disconnect,
                log: LogRing::new(m.log_cache.unwrap_or(1000)),
                verb: u32::from(p.verb),
            })
        }
    };
    let _ = CONFIG.set(cfg);
    Ok(())
}

fn read_password(f: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(f)
        .map_err(|e| format!("management password file {}: {e}", f.display()))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// Warnings to log once logging is up.
pub fn warnings(p: &Profile) -> Vec<String> {
    let m = &p.management;
    let mut w = Vec::new();
    if m.orphan_options() {
        w.push("management-hold/-query-passwords/-signal without 'management': ignored".to_owned());
    }
    if matches!(m.listen, Some(ConfListen::Tcp { .. })) && m.password_file.is_none() {
        // OpenVPN's own warning.
        w.push(
            "WARNING: Using --management on a TCP port WITHOUT passwords is STRONGLY discouraged \
             and considered insecure"
                .to_owned(),
        );
    }
    w
}

/// Whether credentials are to be asked over the interface rather than on the terminal.
pub fn queries_passwords() -> bool {
    CONFIG
        .get()
        .and_then(Option::as_ref)
        .is_some_and(|c| c.query_passwords)
}

/// The prepared interface configuration.
pub fn take_config() -> Option<ClientManagementConfig> {
    CONFIG.get().cloned().flatten()
}

/// The tracing layer feeding the interface's `log` history, when there is an interface.
pub fn ring_layer() -> Option<RingLayer> {
    CONFIG
        .get()
        .and_then(Option::as_ref)
        .map(|c| RingLayer::new(c.log.clone()))
}

/// `ferrovpn status` arguments.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The client's management interface: `IP PORT` or `PATH unix`.
    #[arg(long, num_args = 2, required = true, value_names = ["IP|PATH", "PORT|unix"])]
    management: Vec<String>,
    /// File whose first line is the management password.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `ferrovpn status`: exit 0 with the report, 1 when the interface cannot be asked, 2 for usage.
pub fn status(args: StatusArgs) -> ExitCode {
    let listen = if args.management[1] == "unix" {
        ManagementListen::Unix(PathBuf::from(&args.management[0]))
    } else {
        let ip = match args.management[0].as_str() {
            "localhost" => Ok(IpAddr::from(Ipv4Addr::LOCALHOST)),
            h => h.parse::<IpAddr>(),
        };
        match (ip, args.management[1].parse::<u16>()) {
            (Ok(ip), Ok(port)) => ManagementListen::Tcp(SocketAddr::new(ip, port)),
            _ => {
                eprintln!("status: --management expects IP PORT or PATH unix");
                return ExitCode::from(2);
            }
        }
    };
    let password = match args.password_file.as_deref().map(read_password).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("status: {e}");
            return ExitCode::from(2);
        }
    };
    match query::query(&listen, password.as_deref()) {
        Ok(r) => {
            if args.json {
                println!("{}", json(&r));
            } else {
                print!("{}", human(&r));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("status: {e}");
            ExitCode::FAILURE
        }
    }
}

fn human(r: &ClientReport) -> String {
    let dash = || "-".to_owned();
    let mut state = r.state.clone();
    if !r.description.is_empty() {
        state = format!("{state} ({})", r.description);
    }
    if let Some(t) = r.since {
        let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
        state = format!(
            "{state} since {}",
            ferrovpn::runtime::server::status::format_local_time(since)
        );
    }
    let addr = |a: &Option<(String, u16)>| a.as_ref().map_or_else(dash, |(h, p)| join_addr(h, *p));
    let bytes = |n: Option<u64>| n.map_or_else(dash, |n| format!("{} ({n} bytes)", human_bytes(n)));
    format!(
        "state:       {state}\n\
         tunnel IPv4: {}\n\
         tunnel IPv6: {}\n\
         remote:      {}\n\
         local:       {}\n\
         bytes in:    {}\n\
         bytes out:   {}\n\
         pid:         {}\n",
        r.tun_v4.clone().unwrap_or_else(dash),
        r.tun_v6.clone().unwrap_or_else(dash),
        addr(&r.remote),
        addr(&r.local),
        bytes(r.bytes_in),
        bytes(r.bytes_out),
        r.pid.map_or_else(dash, |p| p.to_string()),
    )
}

fn json(r: &ClientReport) -> String {
    let s = |v: &Option<String>| {
        v.as_deref()
            .map_or("null".to_owned(), crate::check::json_str)
    };
    let n = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
    let a = |v: &Option<(String, u16)>| {
        v.as_ref().map_or("null".to_owned(), |(h, p)| {
            format!("{{\"address\":{},\"port\":{p}}}", crate::check::json_str(h))
        })
    };
    format!(
        "{{\"state\":{},\"description\":{},\"since\":{},\"tunnel_ipv4\":{},\"tunnel_ipv6\":{},\
         \"remote\":{},\"local\":{},\"bytes_in\":{},\"bytes_out\":{},\"tun_read_bytes\":{},\
         \"tun_write_bytes\":{},\"pid\":{}}}",
        crate::check::json_str(&r.state),
        crate::check::json_str(&r.description),
        n(r.since),
        s(&r.tun_v4),
        s(&r.tun_v6),
        a(&r.remote),
        a(&r.local),
        n(r.bytes_in),
        n(r.bytes_out),
        n(r.tun_read),
        n(r.tun_write),
        n(r.pid.map(u64::from)),
    )
}
