//! The `ferrovpn` command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod check;
mod mgmt_cmd;
mod pki_cmd;
use ferrovpn::config::{Profile, load_profile};
use ferrovpn::proto::client::Credentials;
use ferrovpn::runtime::client_driver::{self, ConnectOptions, Outcome};
use ferrovpn::runtime::credentials;
use ferrovpn::runtime::proxy_driver::{self, ProxyOptions};

/// An OpenVPN-compatible VPN.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every connecting command shares.
#[derive(Args, Debug, Clone)]
struct Common {
    /// Log verbosity like OpenVPN's --verb (0 errors only, 1-3 normal, 4 debug, 5+ trace).
    #[arg(long)]
    verb: Option<u8>,
    /// Accept a server certificate without the serverAuth extended key usage when the
    /// profile has no check of its own (remote-cert-tls, verify-x509-name). Less safe.
    #[arg(long)]
    no_server_eku_check: bool,
    /// Do not offer TLS-EKM key derivation: the server then derives the data keys with the
    /// pre-2.6 TLS 1.0 PRF (for servers whose EKM support is broken).
    #[arg(long)]
    legacy_key_derivation: bool,
    #[command(flatten)]
    management: mgmt_cmd::ManagementArgs,
}

/// Proxy-mode options.
#[derive(Args, Debug, Clone)]
struct ProxyArgs {
    /// Forward a local port to HOST:HOSTPORT through the tunnel: [bind:]port:host:hostport.
    #[arg(short = 'L', value_name = "SPEC")]
    local: Vec<String>,
    /// Listen on PORT inside the tunnel (on the VPN address) and hand connections to a local
    /// service: [vpnaddr:]port:host:hostport.
    #[arg(short = 'R', value_name = "SPEC")]
    remote: Vec<String>,
    /// Forward local UDP to HOST:HOSTPORT through the tunnel: [bind:]port:host:hostport.
    #[arg(long = "udp-forward", value_name = "SPEC")]
    udp_forward: Vec<String>,
    /// DNS server inside the tunnel to use instead of the pushed ones: IP[:PORT].
    #[arg(long, value_name = "IP[:PORT]")]
    dns: Vec<String>,
    /// Send every destination through the tunnel, not only those the pushed routes cover.
    #[arg(long)]
    all_through_tunnel: bool,
    /// Require USER:PASS from SOCKS5 (RFC 1929) and HTTP proxy (Basic) clients.
    #[arg(long, value_name = "USER:PASS")]
    proxy_user: Option<String>,
    /// Serve /readyz and /metrics (Prometheus) on ADDR.
    #[arg(long, value_name = "ADDR")]
    health: Option<SocketAddr>,
    /// Seconds a connection to a tunnel destination waits while the tunnel is down.
    #[arg(long, default_value_t = 30)]
    wait_timeout: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect with an .ovpn profile in tunnel mode (TUN device; needs root or CAP_NET_ADMIN).
    Connect {
        /// The .ovpn profile, or the name of a stored profile.
        profile: PathBuf,
        #[command(flatten)]
        common: Common,
        /// TUN device name (default: the kernel picks tunN).
        #[arg(long)]
        dev: Option<String>,
        /// Directory for crash-recovery state (DNS backup).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Connect without a TUN device or privileges and offer the tunnel as SOCKS5 and HTTP
    /// proxies and port forwards (default: SOCKS5 on 127.0.0.1:1080 and HTTP on 127.0.0.1:8080).
    Proxy {
        /// The .ovpn profile.
        profile: PathBuf,
        #[command(flatten)]
        common: Common,
        /// SOCKS5 listener address (repeatable).
        #[arg(long, value_name = "ADDR")]
        socks5: Vec<SocketAddr>,
        /// HTTP proxy listener address (repeatable).
        #[arg(long, value_name = "ADDR")]
        http: Vec<SocketAddr>,
        #[command(flatten)]
        proxy: ProxyArgs,
    },
    /// Run COMMAND with ALL_PROXY/HTTP_PROXY/HTTPS_PROXY pointing at a private proxy over the
    /// tunnel; the tunnel stops when the command exits (its exit status is returned).
    Exec {
        /// The .ovpn profile.
        profile: PathBuf,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        proxy: ProxyArgs,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// A server and a client in this process, no root and no device: prints proxy addresses
    /// and a curl command that fetches a page through the tunnel; Ctrl-C stops.
    Demo {
        /// Fetch the page through the tunnel once, print the result and exit 0 (ok) or 1.
        #[arg(long)]
        check: bool,
        /// SOCKS5 listener (default 127.0.0.1:1080; port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        socks5: Option<SocketAddr>,
        /// HTTP proxy listener (default 127.0.0.1:8080; port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
        /// Log level like OpenVPN's --verb (default 0: errors only).
        #[arg(long)]
        verb: Option<u8>,
    },
    /// The profile store: imported profiles (files inlined) that connect/proxy/exec accept by
    /// name.
    Profiles {
        #[command(subcommand)]
        cmd: ProfilesCmd,
    },
    /// The built-in CA (per-user data directory, or --dir): init, issue server|client NAME,
    /// revoke NAME, crl, list.
    Pki {
        /// The CA directory.
        #[arg(long, global = true)]
        dir: Option<PathBuf>,
        #[command(subcommand)]
        cmd: pki_cmd::PkiCmd,
    },
    /// Write a complete self-hosted server set-up into DIR: server.conf, a CA and server
    /// certificate, a tls-crypt-v2 server key; prints what the host still needs.
    InitServer {
        /// Directory to write into.
        #[arg(long)]
        dir: PathBuf,
        /// Host name or address clients connect to (written into their profiles).
        #[arg(long)]
        public_address: Option<String>,
        /// udp, tcp or both.
        #[arg(long, default_value = "udp")]
        proto: String,
        /// Key algorithm: ecdsa (default) or rsa / rsa3072.
        #[arg(long, default_value = "ecdsa")]
        algo: String,
    },
    /// Issue a client certificate and tls-crypt-v2 key for a server made by init-server and write
    /// DIR/clients/NAME.ovpn (inline; works in OpenVPN 2.6 and ferrovpn).
    AddClient {
        /// Client name.
        name: String,
        /// The init-server directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    Manpage,
    /// Make a key file in OpenVPN's format: secret (tls-auth/tls-crypt), tls-crypt-v2-server,
    /// tls-crypt-v2-client (with --server-key), auth-token. FILE `-` writes to standard output.
    Genkey {
        /// secret | tls-crypt-v2-server | tls-crypt-v2-client | auth-token
        kind: String,
        /// Output file (created with mode 0600; never overwritten), or `-`.
        file: String,
        /// tls-crypt-v2-client: the server key that wraps it.
        #[arg(long, value_name = "FILE")]
        server_key: Option<PathBuf>,
        /// tls-crypt-v2-client: user metadata the server sees (default: the creation time).
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Run an OpenVPN-compatible server from an OpenVPN server configuration (TUN device, or
    /// --userspace without device or privileges).
    Serve {
        /// The server configuration (OpenVPN syntax).
        config: PathBuf,
        /// Log level like OpenVPN's --verb (default: the configuration's `verb`).
        #[arg(long)]
        verb: Option<u8>,
        /// No TUN device and no root: clients' TCP/UDP flows leave through this host's sockets.
        #[arg(long)]
        userspace: bool,
        /// --userspace: destinations clients may reach, CIDR[:PORT[-PORT]] (repeatable). Without
        /// any rule everything but loopback is allowed.
        #[arg(long, value_name = "CIDR[:PORTS]")]
        allow: Vec<String>,
    },
    /// Ask a running client (ferrovpn or OpenVPN) for its state, addresses and byte counts over
    /// its management interface (exit 1 when it cannot be reached).
    Status(mgmt_cmd::StatusArgs),
    /// Parse a client profile or a server configuration and report the resolved settings,
    /// warnings and errors with file and line (exit 0: no errors, 1: errors).
    Check {
        /// The .ovpn profile or server configuration.
        file: PathBuf,
        /// Read FILE as a server configuration (otherwise told apart by its directives).
        #[arg(long)]
        server: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ProfilesCmd {
    /// Store FILE (checked, with the files it refers to inlined) as NAME.
    Import {
        /// The .ovpn profile.
        file: PathBuf,
        /// Name to store it under (default: the file name without .ovpn).
        #[arg(long)]
        name: Option<String>,
        /// Replace a stored profile of that name.
        #[arg(long)]
        replace: bool,
    },
    /// List stored profiles and their remotes.
    List,
    /// Print a stored profile.
    Show {
        /// Its name.
        name: String,
    },
    /// Remove a stored profile.
    Remove {
        /// Its name.
        name: String,
    },
}

fn profiles_cmd(cmd: ProfilesCmd) -> ExitCode {
    use ferrovpn::runtime::profiles;
    let dir = profiles::store_dir();
    let r = match cmd {
        ProfilesCmd::Import {
            file,
            name,
            replace,
        } => profiles::import(&dir, &file, name.as_deref(), replace)
            .map(|p| println!("stored as {}", p.display())),
        ProfilesCmd::List => {
            for (name, remotes) in profiles::list(&dir) {
                println!("{name}\t{}", remotes.join(", "));
            }
            Ok(())
        }
        ProfilesCmd::Show { name } => match profiles::find(&dir, &name) {
            Some(p) => std::fs::read_to_string(&p)
                .map(|t| print!("{t}"))
                .map_err(|e| format!("{}: {e}", p.display())),
            None => Err(format!(
                "no stored profile named '{name}' (in {})",
                dir.display()
            )),
        },
        ProfilesCmd::Remove { name } => profiles::remove(&dir, &name),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("profiles: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(verb: u8) {
    init_logging_to(verb, None);
}

/// Logging to stderr, or to the profile's `log FILE` / `log-append FILE`.
fn init_logging_to(verb: u8, file: Option<std::fs::File>) {
    let level = match verb {
        0 => "error",
        1..=3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROVPN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "ferrovpn={level},ferrovpn_platform={level},ferrovpn_netstack={level},warn"
        ))
    });
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(mgmt_cmd::ring_layer());
    match file {
        Some(f) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(f))
                    .with_ansi(false)
                    .with_target(false),
            )
            .init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            )
            .init(),
    }
}

/// Loads the profile, sets up logging, reads credentials.
fn prepare(
    profile: &std::path::Path,
    common: &Common,
) -> Result<(Profile, Option<Credentials>), ExitCode> {
    let verb = common.verb;
    let profile = &ferrovpn::runtime::profiles::resolve(profile);
    let mut p = match load_profile(profile) {
        Ok(p) => p,
        Err(e) => {
            init_logging(verb.unwrap_or(1));
            tracing::error!("{e}");
            return Err(ExitCode::from(2));
        }
    };
    if let Err(e) = mgmt_cmd::prepare(&common.management, &mut p) {
        init_logging(verb.unwrap_or(1));
        tracing::error!("{}: {e}", profile.display());
        return Err(ExitCode::from(2));
    }
    let log_file = match &p.log {
        Some((path, append)) => match std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(*append)
            .truncate(!*append)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                init_logging(1);
                tracing::error!(
                    "{}: 'log{}': cannot open {}: {e}",
                    profile.display(),
                    if *append { "-append" } else { "" },
                    path.display()
                );
                return Err(ExitCode::from(2));
            }
        },
        None => None,
    };
    init_logging_to(verb.unwrap_or(p.verb.max(1)), log_file);
    for w in &p.warnings {
        tracing::warn!("{w}");
    }
    for w in mgmt_cmd::warnings(&p) {
        tracing::warn!("{w}");
    }
    if let Err(e) =
        credentials::unlock_pkcs12(&mut p).and_then(|()| credentials::unlock_key(&mut p))
    {
        tracing::error!("{e}");
        return Err(ExitCode::from(2));
    }
    if mgmt_cmd::queries_passwords() && !credentials::complete(&p) {
        return Ok((p, None));
    }
    match credentials::resolve(&p) {
        Ok(c) => Ok((p, c)),
        Err(e) => {
            tracing::error!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            tracing::error!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

fn exit(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Stopped => ExitCode::SUCCESS,
        Outcome::Failed(msg) => {
            tracing::error!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn connect_options(common: &Common) -> ConnectOptions {
    ConnectOptions {
        no_server_eku_check: common.no_server_eku_check,
        legacy_key_derivation: common.legacy_key_derivation,
        management: mgmt_cmd::take_config(),
        ..ConnectOptions::default()
    }
}

fn proxy_options(common: &Common, args: &ProxyArgs) -> Result<ProxyOptions, String> {
    let mut dns = Vec::new();
    for d in &args.dns {
        let addr = d
            .parse::<SocketAddr>()
            .or_else(|_| d.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map_err(|_| format!("--dns {d}: expected IP or IP:PORT ([v6]:PORT for IPv6)"))?;
        dns.push(addr);
    }
    let auth = match &args.proxy_user {
        None => None,
        Some(s) => {
            let (u, p) = s
                .split_once(':')
                .ok_or("--proxy-user: expected USER:PASS")?;
            Some((u.to_owned(), p.to_owned()))
        }
    };
    Ok(ProxyOptions {
        local_forwards: args.local.clone(),
        remote_forwards: args.remote.clone(),
        udp_forwards: args.udp_forward.clone(),
        dns,
        all_through_tunnel: args.all_through_tunnel,
        auth,
        health: args.health,
        wait_timeout: Duration::from_secs(args.wait_timeout),
        connect: connect_options(common),
        ..ProxyOptions::default()
    })
}

fn genkey(
    kind: &str,
    file: &str,
    server_key: Option<PathBuf>,
    metadata: Option<String>,
) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let kind: ferrovpn::config::KeyKind = kind.parse()?;
    let server = match &server_key {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let text = ferrovpn::config::generate_key(
        kind,
        &*ferrovpn::runtime::rng::system_rng(),
        server.as_deref(),
        metadata.as_deref().map(str::as_bytes),
        u64::from(ferrovpn::runtime::clock::unix_seconds()),
    )?;
    if file == "-" {
        print!("{text}");
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("{file}: {e}"))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{file}: {e}"))
}

fn demo(
    check: bool,
    socks5: Option<SocketAddr>,
    http: Option<SocketAddr>,
    verb: Option<u8>,
) -> ExitCode {
    use ferrovpn::runtime::demo::{self, DemoOptions};
    init_logging(verb.unwrap_or(0));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = DemoOptions {
        check,
        socks5,
        http,
    };
    rt.block_on(async move {
        let stop = match ferrovpn::runtime::signals::stop_on_signals() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        match demo::run(opts, stop).await {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("demo: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn serve(config: PathBuf, verb: Option<u8>, userspace: bool, allow: Vec<String>) -> ExitCode {
    use ferrovpn::runtime::server::driver::{self, ServeExit, ServeOptions};
    use ferrovpn::runtime::server::management::LogRing;
    let profile = match ferrovpn::config::load_server_profile(&config) {
        Ok(p) => p,
        Err(e) => {
            init_logging(verb.unwrap_or(1));
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let log_ring = LogRing::new(1000);
    init_server_logging(
        verb.unwrap_or(profile.verb.max(1)),
        &profile,
        log_ring.clone(),
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = ServeOptions {
        config,
        userspace,
        allow,
        local_services: Vec::new(),
    };
    rt.block_on(async move {
        let stop = match ferrovpn::runtime::signals::stop_on_signals() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        loop {
            match driver::run(&opts, log_ring.clone(), stop.clone(), None).await {
                Ok(ServeExit::Stopped) => return ExitCode::SUCCESS,
                Ok(ServeExit::Restart) => {
                    tracing::info!("restarting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    })
}

/// Logging for `serve`: standard error or the `log`/`log-append` file, and the management
/// interface's log history.
fn init_server_logging(
    verb: u8,
    profile: &ferrovpn::config::ServerProfile,
    ring: ferrovpn::runtime::server::management::LogRing,
) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = match verb {
        0 => "error",
        1..=3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROVPN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "ferrovpn={level},ferrovpn_platform={level},ferrovpn_netstack={level},warn"
        ))
    });
    let file = match &profile.log {
        Some(ferrovpn::config::LogTarget::File { path, append }) => std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(*append)
            .truncate(!*append)
            .open(path)
            .ok(),
        _ => None,
    };
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(ferrovpn::runtime::server::log_layer::RingLayer::new(ring));
    match file {
        Some(f) => registry
            .with(fmt.with_ansi(false).with_writer(std::sync::Mutex::new(f)))
            .init(),
        None => registry
            .with(
                fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

fn main() -> ExitCode {
    ferrovpn_platform::sys::default_sigpipe();
    let cli = Cli::parse();
    match cli.command {
        Command::Connect {
            profile,
            common,
            dev,
            state_dir,
        } => {
            let (p, creds) = match prepare(&profile, &common) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let opts = ConnectOptions {
                dev,
                state_dir,
                ..connect_options(&common)
            };
            exit(rt.block_on(client_driver::run(p, creds, opts)))
        }
        Command::Proxy {
            profile,
            common,
            socks5,
            http,
            proxy,
        } => {
            let (p, creds) = match prepare(&profile, &common) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let mut opts = match proxy_options(&common, &proxy) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::from(2);
                }
            };
            opts.socks5 = socks5;
            opts.http = http;
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            exit(rt.block_on(proxy_driver::run(p, creds, opts)))
        }
        Command::Exec {
            profile,
            common,
            proxy,
            command,
        } => {
            let (p, creds) = match prepare(&profile, &common) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let opts = match proxy_options(&common, &proxy) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::from(2);
                }
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(proxy_driver::exec(p, creds, opts, command)) {
                Ok(code) => ExitCode::from(code),
                Err(msg) => {
                    tracing::error!("{msg}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Profiles { cmd } => profiles_cmd(cmd),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ferrovpn", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Manpage => {
            use clap::CommandFactory as _;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("manpage: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Pki { dir, cmd } => pki_cmd::pki(dir, cmd),
        Command::InitServer {
            dir,
            public_address,
            proto,
            algo,
        } => pki_cmd::init_server(dir, public_address, proto, algo),
        Command::AddClient { name, dir } => pki_cmd::add_client(dir, name),
        Command::Genkey {
            kind,
            file,
            server_key,
            metadata,
        } => match genkey(&kind, &file, server_key, metadata) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("genkey: {e}");
                ExitCode::from(2)
            }
        },
        Command::Demo {
            check,
            socks5,
            http,
            verb,
        } => demo(check, socks5, http, verb),
        Command::Serve {
            config,
            verb,
            userspace,
            allow,
        } => serve(config, verb, userspace, allow),
        Command::Check { file, server, json } => check::run(&file, server, json),
        Command::Status(args) => mgmt_cmd::status(args),
    }
}
