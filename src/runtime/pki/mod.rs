//! The built-in PKI and the self-hosting helpers.
//!
//! - [`PkiDir`] (`store.rs`): a CA kept in a directory, with an index of what it issued.
//! - `issue.rs`: the certificates themselves (OpenVPN conventions; rcgen).
//! - `crl.rs`: the revocation list (`crl.pem`) OpenVPN's and ferrovpn's `crl-verify` read.
//! - [`init_server`] and [`add_client`] (`server_setup.rs`): a ready server.conf and
//!   inline `.ovpn` client profiles from that PKI.
//!
//! Directory layout of a [`PkiDir`]:
//!
//! ```text
//! ca.crt              the CA certificate (0644)
//! ca.key              the CA key (0600)
//! issued/NAME.crt     certificates
//! private/NAME.key    their keys (0600)
//! revoked/NAME-SERIAL.{crt,key}   moved here when revoked
//! index.txt           one line per certificate (see store.rs)
//! crl.pem             the CRL, rewritten by every revocation
//! ```
//!
//! Nothing here runs a command or changes the host's network: `init_server` only writes files
//! and returns the host steps as text.

mod crl;
mod issue;
mod server_setup;
mod store;

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use server_setup::{InitReport, ProtoChoice, add_client, init_server};
pub use store::PkiDir;

/// Default lifetime of a server or client certificate, in days.
pub const DEFAULT_CERT_DAYS: u32 = 825;
/// Lifetime of the CA certificate, in days.
pub const CA_DAYS: u32 = 3650;
/// How long a CRL stays valid: after this, OpenVPN refuses every client until it is regenerated.
pub const CRL_DAYS: u32 = 180;

/// What can go wrong with the PKI; every message names the file or the name involved.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `init` found a CA already there.
    #[error(
        "{} already holds a CA (ca.crt or ca.key exists): use another directory, or move it \
         away first if you really mean to replace the CA (every issued certificate would stop working)",
        dir.display()
    )]
    CaExists {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// `open` found no CA.
    #[error(
        "{} holds no CA ({} is missing): initialise the PKI there first",
        dir.display(),
        missing
    )]
    NoCa {
        /// The PKI directory.
        dir: PathBuf,
        /// The missing file.
        missing: &'static str,
    },
    /// A certificate name that cannot be used.
    #[error("invalid certificate name '{name}': {why}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The name is already used by a valid certificate.
    #[error(
        "a valid certificate named '{name}' already exists (serial {serial}): revoke it first, or \
         choose another name"
    )]
    Duplicate {
        /// The name.
        name: String,
        /// The existing certificate's serial (hex).
        serial: String,
    },
    /// No valid certificate of that name.
    #[error("no valid certificate named '{name}' in {} (see the list of issued certificates)", dir.display())]
    NotFound {
        /// The name.
        name: String,
        /// The PKI directory.
        dir: PathBuf,
    },
    /// `index.txt` could not be read.
    #[error(
        "{}: line {line}: {why} (was the index edited by hand? restore it from a backup)",
        path.display()
    )]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The CA certificate or key could not be used.
    #[error("{}: {why}", path.display())]
    BadCa {
        /// `ca.crt` or `ca.key`.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Certificate, key or CRL generation failed.
    #[error("{what}: {why}")]
    Generate {
        /// What was being made.
        what: String,
        /// The library's reason.
        why: String,
    },
    /// An unknown key algorithm or protocol name.
    #[error("unknown {what} '{given}': expected {expected}")]
    Unknown {
        /// "key algorithm" or "protocol".
        what: &'static str,
        /// As given.
        given: String,
        /// The accepted spellings.
        expected: &'static str,
    },
    /// `init_server` found a server configuration already there.
    #[error(
        "{} already exists: this directory already holds a server setup (add clients to it, or \
         choose an empty directory)",
        path.display()
    )]
    ServerExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The server setup file is missing or unreadable.
    #[error("{}: {why}", path.display())]
    BadSetup {
        /// `ferrovpn-server.toml`.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The server's public address is unknown, so a client profile would not know where to go.
    #[error(
        "no public address is recorded in {}: set `public_address = \"HOST\"` there (the name \
         or address clients connect to), then add the client again",
        path.display()
    )]
    NoPublicAddress {
        /// `ferrovpn-server.toml`.
        path: PathBuf,
    },
}

/// The key algorithm of a new key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyAlgo {
    /// ECDSA on P-256 with SHA-256 (the default: small, fast, accepted by OpenVPN 2.4+).
    #[default]
    EcdsaP256,
    /// RSA 2048 with SHA-256 signatures.
    Rsa2048,
    /// RSA 3072 with SHA-256 signatures.
    Rsa3072,
}

impl KeyAlgo {
    /// The name written in files (parses back with `FromStr`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa",
            Self::Rsa2048 => "rsa2048",
            Self::Rsa3072 => "rsa3072",
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072)
    }
}

impl FromStr for KeyAlgo {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, PkiError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "ecdsa" | "p256" | "ec" | "ecdsa-p256" => Self::EcdsaP256,
            "rsa" | "rsa2048" => Self::Rsa2048,
            "rsa3072" => Self::Rsa3072,
            _ => {
                return Err(PkiError::Unknown {
                    what: "key algorithm",
                    given: s.to_owned(),
                    expected: "ecdsa (or p256), rsa (or rsa2048), rsa3072",
                });
            }
        })
    }
}

impl fmt::Display for KeyAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// EKU serverAuth, SAN DNS=name.
    Server,
    /// EKU clientAuth.
    Client,
}

impl CertKind {
    /// `server` or `client`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a certificate is still good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Issued and not revoked (it may still have expired: see [`Entry::not_after`]).
    Valid,
    /// Revoked; listed in `crl.pem`.
    Revoked,
}

impl Status {
    /// `valid` or `revoked`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One certificate the CA issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Common name (and file name).
    pub name: String,
    /// Server or client.
    pub kind: CertKind,
    /// Serial number, upper-case hex (as `openssl x509 -serial` shows it).
    pub serial: String,
    /// Valid or revoked.
    pub status: Status,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: u64,
    /// When it was revoked, seconds since the Unix epoch.
    pub revoked_at: Option<u64>,
}

/// What [`PkiDir::issue`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// `issued/NAME.crt`.
    pub cert_path: PathBuf,
    /// `private/NAME.key` (0600).
    pub key_path: PathBuf,
    /// Serial number, upper-case hex.
    pub serial: String,
}

/// Checks a certificate name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), PkiError> {
    let bad = |why| {
        Err(PkiError::BadName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 64 {
        return bad("it is longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("it must not start with '.' or '-'");
    }
    Ok(())
}

/// Seconds since the Unix epoch, now.
fn now_unix() -> u64 {
    super::clock::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `path` (it must not exist) with `mode` and writes `text`. A partly written file is
/// removed again.
fn write_new(path: &Path, text: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    if let Err(e) = f.write_all(text).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(io_err(path)(e));
    }
    Ok(())
}

/// Replaces `path` atomically (a temporary file next to it, then rename), with `mode`.
fn write_replace(path: &Path, text: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, text, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

/// Creates directory `path` (and parents) with `mode`; an existing directory is left as it is.
fn make_dir(path: &Path, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io_err(path))?;
    // The umask may have taken bits away; 0700 stays 0700 either way.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

#[cfg(test)]
mod test_util {
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop.
    pub(super) struct TempDir(pub(super) PathBuf);

    impl TempDir {
        pub(super) fn new(tag: &str) -> Self {
            let mut rnd = [0u8; 8];
            (crate::runtime::rng::system_rng())(&mut rnd);
            let dir = std::env::temp_dir().join(format!(
                "ferrovpn-pki-test-{tag}-{}-{}",
                std::process::id(),
                hex::encode(rnd)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["server", "alice", "bob.laptop", "a_b-c.1", "x"] {
            check_name(ok).unwrap();
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "a b",
            "../x",
            "a/b",
            ".hidden",
            "-opt",
            "é",
            long.as_str(),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        check_name(&"a".repeat(64)).unwrap();
    }

    #[test]
    fn algo_names() {
        assert_eq!("ecdsa".parse::<KeyAlgo>().unwrap(), KeyAlgo::EcdsaP256);
        assert_eq!("p256".parse::<KeyAlgo>().unwrap(), KeyAlgo::EcdsaP256);
        assert_eq!("rsa".parse::<KeyAlgo>().unwrap(), KeyAlgo::Rsa2048);
        assert_eq!("rsa2048".parse::<KeyAlgo>().unwrap(), KeyAlgo::Rsa2048);
        assert_eq!("rsa3072".parse::<KeyAlgo>().unwrap(), KeyAlgo::Rsa3072);
        assert!("dsa".parse::<KeyAlgo>().is_err());
        for a in [KeyAlgo::EcdsaP256, KeyAlgo::Rsa2048, KeyAlgo::Rsa3072] {
            assert_eq!(a.name().parse::<KeyAlgo>().unwrap(), a);
        }
    }
}
