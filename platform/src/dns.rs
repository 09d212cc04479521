//! Resolver configuration: systemd-resolved per link, or `/etc/resolv.conf` rewritten in place
//! with a crash-safe backup.
//!
//! File mode, step by step: the original content is written to
//! `STATE_DIR/resolv.conf.ferrovpn-backup` and fsynced *before* `/etc/resolv.conf` is touched;
//! `/etc/resolv.conf` is then truncated and rewritten in place (never renamed over: under
//! `ip netns exec` it is a bind mount, and a rename onto it fails with EBUSY). Restoring writes the
//! original back the same way and deletes the state file. After a crash, [`recover_dns`] at the
//! next start finds the state file and does the restoring.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PlatformError;

const RESOLV_CONF: &str = "/etc/resolv.conf";
const STATE_FILE: &str = "resolv.conf.ferrovpn-backup";
/// First line of the state file; the original content follows it byte for byte.
const STATE_PRESENT: &str = "ferrovpn resolv.conf backup v1: present\n";
/// First line of the state file when there was no resolv.conf at all (restore deletes it).
const STATE_ABSENT: &str = "ferrovpn resolv.conf backup v1: absent\n";
/// glibc reads at most this many `nameserver` lines (MAXNS).
const MAX_NAMESERVERS: usize = 3;

/// DNS settings pushed by the server (`dhcp-option DNS/DOMAIN/DOMAIN-SEARCH`, `dns server`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers, in order of preference.
    pub servers: Vec<IpAddr>,
    /// Search domains (`search` line, or resolved's routing+search domains).
    pub search_domains: Vec<String>,
    /// Split-DNS domains (`dns search-domains`/resolve-domains): only names under these go to
    /// `servers`. Only systemd-resolved can do this; `/etc/resolv.conf` mode ignores them.
    pub split_domains: Vec<String>,
}

impl DnsConfig {
    fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.search_domains.is_empty() && self.split_domains.is_empty()
    }
}

/// How DNS was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsBackend {
    /// Nothing to do (empty configuration).
    None,
    /// `resolvectl dns/domain IF ...`; undone with `resolvectl revert IF`.
    SystemdResolved,
    /// `/etc/resolv.conf` rewritten in place, original saved in the state directory.
    ResolvConf,
}

#[derive(Debug)]
enum Inner {
    None,
    Resolved {
        ifname: String,
    },
    File {
        resolv: PathBuf,
        state: PathBuf,
        original: Option<Vec<u8>>,
    },
}

/// Applied DNS settings; [`restore`](Self::restore) or drop puts the original back.
#[derive(Debug)]
#[must_use = "dropping the guard restores the original DNS configuration at once"]
pub struct DnsGuard {
    inner: Inner,
}

impl DnsGuard {
    /// Which mechanism was used.
    pub fn backend(&self) -> DnsBackend {
        match self.inner {
            Inner::None => DnsBackend::None,
            Inner::Resolved { .. } => DnsBackend::SystemdResolved,
            Inner::File { .. } => DnsBackend::ResolvConf,
        }
    }

    /// Put the original configuration back (and delete the state file).
    pub fn restore(mut self) -> Result<(), PlatformError> {
        self.restore_inner()
    }

    fn restore_inner(&mut self) -> Result<(), PlatformError> {
        match std::mem::replace(&mut self.inner, Inner::None) {
            Inner::None => Ok(()),
            Inner::Resolved { ifname } => resolvectl(&["revert", &ifname]),
            Inner::File {
                resolv,
                state,
                original,
            } => {
                put_back(&resolv, original.as_deref())?;
                remove_state(&state)
            }
        }
    }
}

impl Drop for DnsGuard {
    fn drop(&mut self) {
        if let Err(e) = self.restore_inner() {
            tracing::warn!("restoring DNS: {e}");
        }
    }
}

/// Apply `cfg` for interface `ifname`. See the module documentation for the two mechanisms; the
/// state file (file mode) lives in `state_dir`, which is created if missing.
///
/// A backup left by a crashed run is restored first, so the original is never lost.
pub fn apply_dns(
    ifname: &str,
    cfg: &DnsConfig,
    state_dir: &Path,
) -> Result<DnsGuard, PlatformError> {
    if cfg.is_empty() {
        return Ok(DnsGuard { inner: Inner::None });
    }
    if resolved_manages_resolv_conf() {
        return apply_resolved(ifname, cfg);
    }
    apply_file(ifname, cfg, Path::new(RESOLV_CONF), state_dir)
}

/// At startup: if a state file from a crashed run exists in `state_dir`, put its content back
/// into `/etc/resolv.conf` and delete it. Returns whether something was restored.
pub fn recover_dns(state_dir: &Path) -> Result<bool, PlatformError> {
    recover_file(Path::new(RESOLV_CONF), state_dir)
}

fn dns_err(op: &'static str, path: &Path, source: io::Error) -> PlatformError {
    let hint = if source.kind() == io::ErrorKind::PermissionDenied {
        " — changing DNS needs root (the `proxy` mode resolves through the tunnel without it)"
    } else if source.raw_os_error() == Some(16) {
        " — it is a mount point (rewrite it in place, never rename onto it)"
    } else {
        ""
    };
    PlatformError::DnsFile {
        op,
        path: path.to_owned(),
        source,
        hint,
    }
}

/// Is systemd-resolved in charge here? `resolvectl` on PATH, `/etc/resolv.conf` resolving to a
/// file under `/run/systemd/resolve/`, and we are in the init network namespace: inside another
/// namespace, resolved (the host's, reached over D-Bus) would apply the settings to the host's
/// interface that happens to have the same index — so a namespace always gets file mode.
fn resolved_manages_resolv_conf() -> bool {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("resolvectl").is_file()));
    let target_is_resolved =
        fs::canonicalize(RESOLV_CONF).is_ok_and(|p| p.starts_with("/run/systemd/resolve/"));
    let same_netns = match (
        fs::read_link("/proc/self/ns/net"),
        fs::read_link("/proc/1/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    on_path && target_is_resolved && same_netns
}

fn resolvectl(args: &[&str]) -> Result<(), PlatformError> {
    let command = format!("resolvectl {}", args.join(" "));
    let out = Command::new("resolvectl")
        .args(args)
        .output()
        .map_err(|e| PlatformError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        tracing::debug!("{command}");
        return Ok(());
    }
    Err(PlatformError::Command {
        command,
        detail: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

fn apply_resolved(ifname: &str, cfg: &DnsConfig) -> Result<DnsGuard, PlatformError> {
    // From here on, a failure must still revert what was set: the guard does it on drop.
    let guard = DnsGuard {
        inner: Inner::Resolved {
            ifname: ifname.to_owned(),
        },
    };
    if !cfg.servers.is_empty() {
        let servers: Vec<String> = cfg.servers.iter().map(IpAddr::to_string).collect();
        let mut args = vec!["dns", ifname];
        args.extend(servers.iter().map(String::as_str));
        resolvectl(&args)?;
    }
    let domains: Vec<String> = cfg
        .search_domains
        .iter()
        .cloned()
        .chain(
            cfg.split_domains
                .iter()
                .map(|d| format!("~{}", d.trim_start_matches('~'))),
        )
        .collect();
    if !domains.is_empty() {
        let mut args = vec!["domain", ifname];
        args.extend(domains.iter().map(String::as_str));
        resolvectl(&args)?;
    }
    // Split DNS: only the listed domains go to these servers, so this link must not become the
    // default route for all other names.
    let default_route = if cfg.split_domains.is_empty() {
        "yes"
    } else {
        "no"
    };
    resolvectl(&["default-route", ifname, default_route])?;
    Ok(guard)
}

/// The generated `/etc/resolv.conf`: a header, up to three `nameserver` lines, one `search` line,
/// and the `options` lines of the original (edns0, trust-ad, ... still apply).
fn render_resolv_conf(ifname: &str, cfg: &DnsConfig, original: &str) -> String {
    let mut out =
        format!("# Generated by ferrovpn for {ifname}; the original is restored on exit\n");
    if cfg.servers.len() > MAX_NAMESERVERS {
        tracing::warn!(
            "{} DNS servers pushed; /etc/resolv.conf uses only the first {MAX_NAMESERVERS}",
            cfg.servers.len()
        );
    }
    for s in cfg.servers.iter().take(MAX_NAMESERVERS) {
        out += &format!("nameserver {s}\n");
    }
    let search: Vec<&str> = cfg
        .search_domains
        .iter()
        .map(|d| d.trim().trim_end_matches('.'))
        .filter(|d| !d.is_empty() && !d.contains(char::is_whitespace))
        .collect();
    if !search.is_empty() {
        out += &format!("search {}\n", search.join(" "));
    }
    if !cfg.split_domains.is_empty() {
        tracing::info!(
            "split DNS domains ({}) need systemd-resolved; with /etc/resolv.conf all names go to the VPN's servers",
            cfg.split_domains.join(" ")
        );
    }
    for line in original.lines() {
        let t = line.trim_start();
        if t.starts_with("options ") || t.starts_with("options\t") {
            out += t;
            out.push('\n');
        }
    }
    out
}

/// Truncate and write in place, then fsync (no rename: see the module doc).
fn write_in_place(path: &Path, content: &[u8]) -> Result<(), PlatformError> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(true)
        .open(path)
        .map_err(|e| dns_err("open for writing", path, e))?;
    f.write_all(content)
        .map_err(|e| dns_err("write", path, e))?;
    f.sync_all().map_err(|e| dns_err("sync", path, e))
}

fn put_back(resolv: &Path, original: Option<&[u8]>) -> Result<(), PlatformError> {
    match original {
        Some(content) => write_in_place(resolv, content),
        None => match fs::remove_file(resolv) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(dns_err("remove", resolv, e)),
        },
    }
}

fn remove_state(state: &Path) -> Result<(), PlatformError> {
    match fs::remove_file(state) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(dns_err("remove", state, e)),
    }
}

fn apply_file(
    ifname: &str,
    cfg: &DnsConfig,
    resolv: &Path,
    state_dir: &Path,
) -> Result<DnsGuard, PlatformError> {
    if recover_file(resolv, state_dir)? {
        tracing::warn!("restored the resolver configuration a previous run left behind");
    }
    let original = match fs::read(resolv) {
        Ok(c) => Some(c),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(dns_err("read", resolv, e)),
    };
    fs::create_dir_all(state_dir).map_err(|e| dns_err("create", state_dir, e))?;
    let state = state_dir.join(STATE_FILE);
    let mut backup = Vec::new();
    match &original {
        Some(c) => {
            backup.extend_from_slice(STATE_PRESENT.as_bytes());
            backup.extend_from_slice(c);
        }
        None => backup.extend_from_slice(STATE_ABSENT.as_bytes()),
    }
    {
        let mut f = fs::File::create(&state).map_err(|e| dns_err("create", &state, e))?;
        f.write_all(&backup)
            .map_err(|e| dns_err("write", &state, e))?;
        f.sync_all().map_err(|e| dns_err("sync", &state, e))?;
    }
    if let Ok(d) = fs::File::open(state_dir) {
        let _ = d.sync_all();
    }
    // From here on the guard owns the undo, also when writing fails half-way.
    let guard = DnsGuard {
        inner: Inner::File {
            resolv: resolv.to_owned(),
            state,
            original: original.clone(),
        },
    };
    let text = render_resolv_conf(
        ifname,
        cfg,
        &String::from_utf8_lossy(original.as_deref().unwrap_or_default()),
    );
    write_in_place(resolv, text.as_bytes())?;
    tracing::debug!("wrote {}", resolv.display());
    Ok(guard)
}

fn recover_file(resolv: &Path, state_dir: &Path) -> Result<bool, PlatformError> {
    let state = state_dir.join(STATE_FILE);
    let backup = match fs::read(&state) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(dns_err("read", &state, e)),
    };
    let original = if let Some(rest) = backup.strip_prefix(STATE_PRESENT.as_bytes()) {
        Some(rest)
    } else if backup.starts_with(STATE_ABSENT.as_bytes()) {
        None
    } else {
        // Unknown header: the safest reading is that the whole file is the original.
        Some(&backup[..])
    };
    put_back(resolv, original)?;
    remove_state(&state)?;
    tracing::info!(
        "restored {} from {} (left by a previous run)",
        resolv.display(),
        state.display()
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "ferrovpn-platform-dns-{tag}-{}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn cfg() -> DnsConfig {
        DnsConfig {
            servers: vec![
                "198.18.0.53".parse().unwrap(),
                "2001:db8::53".parse().unwrap(),
                "198.18.0.54".parse().unwrap(),
                "198.18.0.55".parse().unwrap(),
            ],
            search_domains: vec!["corp.example".into(), "lab.example.".into()],
            split_domains: vec!["internal.example".into()],
        }
    }

    #[test]
    fn render_limits_servers_and_keeps_options() {
        let original = "nameserver 192.0.2.1\nsearch home.example\noptions edns0 trust-ad\n";
        let text = render_resolv_conf("tun0", &cfg(), original);
        assert_eq!(
            text,
            "# Generated by ferrovpn for tun0; the original is restored on exit\n\
             nameserver 198.18.0.53\n\
             nameserver 2001:db8::53\n\
             nameserver 198.18.0.54\n\
             search corp.example lab.example\n\
             options edns0 trust-ad\n"
        );
    }

    #[test]
    fn render_without_search() {
        let c = DnsConfig {
            servers: vec!["198.18.0.53".parse().unwrap()],
            ..DnsConfig::default()
        };
        assert_eq!(
            render_resolv_conf("tun1", &c, ""),
            "# Generated by ferrovpn for tun1; the original is restored on exit\n\
             nameserver 198.18.0.53\n"
        );
    }

    #[test]
    fn apply_restore_roundtrip() {
        let dir = TempDir::new("roundtrip");
        let resolv = dir.0.join("resolv.conf");
        let state_dir = dir.0.join("state");
        let original = b"nameserver 192.0.2.1\n";
        fs::write(&resolv, original).unwrap();
        let guard = apply_file("tun0", &cfg(), &resolv, &state_dir).unwrap();
        assert_eq!(guard.backend(), DnsBackend::ResolvConf);
        let now = fs::read_to_string(&resolv).unwrap();
        assert!(now.starts_with("# Generated by ferrovpn for tun0"));
        assert!(now.contains("nameserver 198.18.0.53\n"));
        let state = fs::read(state_dir.join(STATE_FILE)).unwrap();
        assert_eq!(&state[STATE_PRESENT.len()..], original);
        guard.restore().unwrap();
        assert_eq!(fs::read(&resolv).unwrap(), original);
        assert!(!state_dir.join(STATE_FILE).exists());
    }

    #[test]
    fn drop_restores() {
        let dir = TempDir::new("drop");
        let resolv = dir.0.join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.9\n").unwrap();
        {
            let _guard = apply_file("tun0", &cfg(), &resolv, &dir.0).unwrap();
            assert!(fs::read_to_string(&resolv).unwrap().contains("198.18.0.53"));
        }
        assert_eq!(
            fs::read_to_string(&resolv).unwrap(),
            "nameserver 192.0.2.9\n"
        );
        assert!(!dir.0.join(STATE_FILE).exists());
    }

    #[test]
    fn recover_after_crash() {
        let dir = TempDir::new("crash");
        let resolv = dir.0.join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.7\n").unwrap();
        let guard = apply_file("tun0", &cfg(), &resolv, &dir.0).unwrap();
        std::mem::forget(guard); // a crash: no restore
        assert!(fs::read_to_string(&resolv).unwrap().contains("ferrovpn"));
        assert!(recover_file(&resolv, &dir.0).unwrap());
        assert_eq!(
            fs::read_to_string(&resolv).unwrap(),
            "nameserver 192.0.2.7\n"
        );
        assert!(!dir.0.join(STATE_FILE).exists());
        assert!(!recover_file(&resolv, &dir.0).unwrap());
    }

    #[test]
    fn apply_after_crash_keeps_true_original() {
        let dir = TempDir::new("crash2");
        let resolv = dir.0.join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.7\n").unwrap();
        std::mem::forget(apply_file("tun0", &cfg(), &resolv, &dir.0).unwrap());
        // The next run applies again without calling recover first.
        let guard = apply_file("tun0", &cfg(), &resolv, &dir.0).unwrap();
        guard.restore().unwrap();
        assert_eq!(
            fs::read_to_string(&resolv).unwrap(),
            "nameserver 192.0.2.7\n"
        );
    }

    #[test]
    fn absent_original_is_removed_again() {
        let dir = TempDir::new("absent");
        let resolv = dir.0.join("resolv.conf");
        let guard = apply_file("tun0", &cfg(), &resolv, &dir.0).unwrap();
        assert!(resolv.exists());
        guard.restore().unwrap();
        assert!(!resolv.exists());
    }

    #[cfg(unix)]
    #[test]
    fn write_is_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = TempDir::new("inode");
        let resolv = dir.0.join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.1\n").unwrap();
        let ino = fs::metadata(&resolv).unwrap().ino();
        let guard = apply_file("tun0", &cfg(), &resolv, &dir.0).unwrap();
        assert_eq!(fs::metadata(&resolv).unwrap().ino(), ino);
        guard.restore().unwrap();
        assert_eq!(fs::metadata(&resolv).unwrap().ino(), ino);
    }

    #[test]
    fn empty_config_is_a_no_op() {
        let g = apply_dns("tun0", &DnsConfig::default(), Path::new("/nonexistent")).unwrap();
        assert_eq!(g.backend(), DnsBackend::None);
        g.restore().unwrap();
    }
}
