//! The `ferrovpn` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferrovpn::config::load_profile;
use ferrovpn::runtime::client_driver::{self, ConnectOptions, Outcome};
use ferrovpn::runtime::credentials;

/// An OpenVPN-compatible VPN.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect with an .ovpn profile in tunnel mode (TUN device; needs root or CAP_NET_ADMIN).
    Connect {
        /// The .ovpn profile.
        profile: PathBuf,
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
        /// TUN device name (default: the kernel picks tunN).
        #[arg(long)]
        dev: Option<String>,
        /// Directory for crash-recovery state (DNS backup).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Parse a profile and report what would be used, warnings included.
    Check {
        /// The .ovpn profile.
        profile: PathBuf,
    },
}

fn init_logging(verb: u8) {
    let level = match verb {
        0 => "error",
        1..=3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROVPN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "ferrovpn={level},ferrovpn_platform={level},warn"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Connect {
            profile,
            verb,
            no_server_eku_check,
            legacy_key_derivation,
            dev,
            state_dir,
        } => {
            let p = match load_profile(&profile) {
                Ok(p) => p,
                Err(e) => {
                    init_logging(verb.unwrap_or(1));
                    tracing::error!("{e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(verb.unwrap_or(p.verb.max(1)));
            for w in &p.warnings {
                tracing::warn!("{w}");
            }
            let creds = match credentials::resolve(&p) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = ConnectOptions {
                no_server_eku_check,
                legacy_key_derivation,
                dev,
                state_dir,
            };
            match rt.block_on(client_driver::run(p, creds, opts)) {
                Outcome::Stopped => ExitCode::SUCCESS,
                Outcome::Failed(msg) => {
                    tracing::error!("{msg}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { profile } => {
            init_logging(1);
            match load_profile(&profile) {
                Ok(p) => {
                    for w in &p.warnings {
                        println!("warning: {w}");
                    }
                    println!("{}: OK", profile.display());
                    for r in &p.remotes {
                        println!("  remote {} {} {:?}", r.host, r.port, r.proto);
                    }
                    println!(
                        "  data-ciphers {}",
                        p.data_ciphers
                            .iter()
                            .map(|c| c.name())
                            .collect::<Vec<_>>()
                            .join(":")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
