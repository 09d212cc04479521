//! Where a management interface listens: a TCP address, or a Unix-domain socket that only its
//! owner may use (mode 0600, set before the socket appears under its name).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Where the management interface listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagementListen {
    /// A TCP address, bound exactly as given (normally `127.0.0.1:port`).
    Tcp(SocketAddr),
    /// A Unix-domain socket path (`management /path unix`).
    Unix(PathBuf),
}

/// A bound management listener.
#[derive(Debug)]
pub struct ManagementListener {
    inner: Listener,
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// One accepted management connection.
pub(crate) enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl ManagementListener {
    /// Binds the configured address. A stale Unix socket file is removed first (anything else
    /// at that path is an error); the new socket has mode 0600.
    pub async fn bind(listen: &ManagementListen) -> io::Result<Self> {
        let inner = match listen {
            ManagementListen::Tcp(addr) => Listener::Tcp(TcpListener::bind(addr).await?),
            ManagementListen::Unix(path) => {
                use std::os::unix::fs::FileTypeExt as _;
                match std::fs::symlink_metadata(path) {
                    Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} exists and is not a socket", path.display()),
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Listener::Unix(bind_private_unix(path)?, path.clone())
            }
        };
        Ok(Self { inner })
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.inner {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    pub(crate) async fn accept(&self) -> io::Result<Accepted> {
        match &self.inner {
            Listener::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }

    /// Removes the Unix socket file (nothing for TCP).
    pub(crate) fn cleanup(&self) {
        if let Listener::Unix(_, path) = &self.inner {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `path` with mode 0600 without a window in which others could connect: the socket is
/// made in a fresh 0700 directory beside it, narrowed to 0600, then renamed into place.
fn bind_private_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = parent.join(format!(".ferrovpn-mgmt-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
    let staged = tmp.join("s");
    let result = (|| {
        let l = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[tokio::test]
    async fn unix_socket_is_private() {
        let dir = std::env::temp_dir().join(format!("fv-mgmt-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sock");
        let l = ManagementListener::bind(&ManagementListen::Unix(path.clone()))
            .await
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(UnixStream::connect(&path).await.is_ok());
        l.cleanup();
        assert!(!path.exists());
        // Only the socket is left behind in the directory: no staging directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
