//! The crate's one error type: every message says what failed and, where there is one, what to do.

use std::io;
use std::path::PathBuf;

/// Hint appended to every "not permitted" error.
pub(crate) const PRIVILEGE_HINT: &str =
    "tunnel mode needs root or CAP_NET_ADMIN (the `proxy` mode does not)";

/// Errors of the OS layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The TUN device could not be created or configured.
    #[error("{message}")]
    TunOpen {
        /// Full, actionable description.
        message: String,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// No interface of that name exists (in this network namespace).
    #[error("network interface `{0}` does not exist")]
    NoSuchInterface(String),
    /// A netlink request (address, route, link) failed.
    #[error("{op}: {source}{hint}")]
    Netlink {
        /// What was attempted, e.g. "add route 198.18.78.0/24 dev tun0".
        op: String,
        /// The kernel's answer (an errno when the kernel sent one).
        #[source]
        source: io::Error,
        /// An explanation starting with " — ", or empty.
        hint: &'static str,
    },
    /// Reading or writing a resolver file or the DNS state file failed.
    #[error("DNS: cannot {op} {}: {source}{hint}", path.display())]
    DnsFile {
        /// "read", "write", "create", "remove", ...
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
        /// An explanation starting with " — ", or empty.
        hint: &'static str,
    },
    /// An external command (`resolvectl`) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        detail: String,
    },
    /// The caller passed something this layer cannot do.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl PlatformError {
    /// The OS error number behind this error, if there is one (e.g. `libc::EEXIST`).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::TunOpen { source, .. }
            | Self::Netlink { source, .. }
            | Self::DnsFile { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn tun_open(name: Option<&str>, source: io::Error) -> Self {
        let what = match name {
            Some(n) => format!("cannot create TUN device `{n}` (/dev/net/tun)"),
            None => "cannot create a TUN device (/dev/net/tun)".to_owned(),
        };
        let hint = match (source.kind(), source.raw_os_error()) {
            (io::ErrorKind::PermissionDenied, _) => {
                format!("permission denied — {PRIVILEGE_HINT}")
            }
            (io::ErrorKind::NotFound, _) | (_, Some(19 /* ENODEV */ | 6 /* ENXIO */)) => {
                "the kernel has no TUN driver (load the `tun` module), or this container was \
                 started without /dev/net/tun (e.g. docker `--device /dev/net/tun`); the `proxy` \
                 mode needs neither"
                    .to_owned()
            }
            (_, Some(16 /* EBUSY */)) => {
                "the device exists and is in use by another process; choose another `dev` name"
                    .to_owned()
            }
            (_, Some(22 /* EINVAL */)) if name.is_some() => {
                "the kernel rejected the name (at most 15 bytes; an existing interface of another \
                 type may have that name)"
                    .to_owned()
            }
            _ => source.to_string(),
        };
        Self::TunOpen {
            message: format!("{what}: {hint}"),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tun_permission_message_is_actionable() {
        let e = PlatformError::tun_open(Some("tun0"), io::Error::from_raw_os_error(1));
        assert_eq!(
            e.to_string(),
            "cannot create TUN device `tun0` (/dev/net/tun): permission denied — tunnel mode \
             needs root or CAP_NET_ADMIN (the `proxy` mode does not)"
        );
        assert_eq!(e.raw_os_error(), Some(1));
    }
}
