//! `pki`, `init-server` and `add-client`: the built-in CA and self-hosting set-up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use ferrovpn::runtime::pki::{self, CertKind, KeyAlgo, PkiDir, ProtoChoice};

#[derive(Subcommand, Debug)]
pub enum PkiCmd {
    /// Create a CA.
    Init {
        /// The CA's name (certificate subject CN).
        #[arg(long, default_value = "ferrovpn CA")]
        name: String,
        /// Key algorithm: ecdsa (P-256, default) or rsa / rsa3072.
        #[arg(long, default_value = "ecdsa")]
        algo: String,
    },
    /// Issue a certificate: `issue server NAME` or `issue client NAME`.
    Issue {
        /// server or client.
        kind: String,
        /// Certificate name (CN).
        name: String,
        /// Key algorithm: ecdsa (default) or rsa / rsa3072.
        #[arg(long, default_value = "ecdsa")]
        algo: String,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Revoke a certificate and write the CRL again.
    Revoke {
        /// Certificate name.
        name: String,
    },
    /// Write the CRL (crl.pem) and print its path.
    Crl,
    /// List issued certificates.
    List,
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(1)
}

/// `ferrovpn pki [--dir DIR] ...`.
pub fn pki(dir: Option<PathBuf>, cmd: PkiCmd) -> ExitCode {
    let dir = dir.unwrap_or_else(PkiDir::default_dir);
    let r = match cmd {
        PkiCmd::Init { name, algo } => algo
            .parse::<KeyAlgo>()
            .and_then(|a| PkiDir::init(&dir, &name, a))
            .map(|p| println!("CA created in {}", p.dir().display())),
        PkiCmd::Issue {
            kind,
            name,
            algo,
            days,
        } => {
            let kind = match kind.as_str() {
                "server" => CertKind::Server,
                "client" => CertKind::Client,
                other => {
                    return fail(format!(
                        "pki issue: '{other}': expected 'server' or 'client'"
                    ));
                }
            };
            algo.parse::<KeyAlgo>().and_then(|a| {
                let mut p = PkiDir::open(&dir)?;
                let i = p.issue(kind, &name, a, days)?;
                println!(
                    "issued {} (serial {}):\n  {}\n  {}",
                    name,
                    i.serial,
                    i.cert_path.display(),
                    i.key_path.display()
                );
                Ok(())
            })
        }
        PkiCmd::Revoke { name } => PkiDir::open(&dir).and_then(|mut p| {
            p.revoke(&name)?;
            println!("revoked {name}; CRL: {}", p.crl_path().display());
            Ok(())
        }),
        PkiCmd::Crl => PkiDir::open(&dir)
            .and_then(|p| p.crl())
            .map(|path| println!("{}", path.display())),
        PkiCmd::List => PkiDir::open(&dir).map(|p| {
            for e in p.list() {
                println!(
                    "{}\t{}\t{}\t{}",
                    e.name,
                    e.kind.name(),
                    e.status.name(),
                    e.serial
                );
            }
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `ferrovpn init-server --dir DIR [--public-address HOST] [--proto udp|tcp|both]`.
pub fn init_server(
    dir: PathBuf,
    public_address: Option<String>,
    proto: String,
    algo: String,
) -> ExitCode {
    let r = proto.parse::<ProtoChoice>().and_then(|proto| {
        let algo = algo.parse::<KeyAlgo>()?;
        pki::init_server(&dir, public_address.as_deref(), proto, algo)
    });
    match r {
        Ok(report) => {
            println!("wrote {}", report.server_conf.display());
            println!("{}", report.next_steps);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `ferrovpn add-client NAME --dir DIR`.
pub fn add_client(dir: PathBuf, name: String) -> ExitCode {
    match pki::add_client(&dir, &name) {
        Ok(p) => {
            println!("wrote {}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
