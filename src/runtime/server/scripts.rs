//! OpenVPN hook scripts on the server: `auth-user-pass-verify`, `client-connect`,
//! `client-disconnect`, `learn-address` and `tls-crypt-v2-verify`.
//!
//! Scripts get a cleared environment holding only `PATH` and the OpenVPN variables of
//! [`ScriptEnv`] (the set OpenVPN 2.6 exports, as observed from a 2.6.14 server), run with a
//! timeout after which they are killed, and only when `script-security` allows it (2 for any
//! external program, 3 to pass a password through the environment).
//!
//! A command string is split the way OpenVPN splits it (shell-like words with `"…"`, `'…'` and
//! `\` escapes); the first word is the program, run without a `PATH` search (like `execve`), so a
//! bare name is relative to the working directory. Arguments OpenVPN adds (a file name, the
//! learn-address operation) come after the configured ones.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::process::Command;

use super::control::Transport;
use super::status::{format_local_time, unix_secs};

/// Runs hook scripts under a `script-security` level and a timeout.
#[derive(Clone, Debug)]
pub struct ScriptRunner {
    security: u8,
    timeout: Duration,
}

/// A parsed script command line: the program and its configured arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptCmd {
    program: String,
    args: Vec<String>,
}

/// How `auth-user-pass-verify` receives the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `username` / `password` environment variables (needs `script-security 3`).
    Env,
    /// A 0600 temporary file holding `username\npassword\n`, passed as the last argument.
    File,
}

/// The OpenVPN variables handed to a script, in insertion order; setting a name again replaces it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptEnv(Vec<(String, String)>);

/// Process-wide facts OpenVPN exports to every client script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerScriptInfo {
    /// The first `--config` file (`config`).
    pub config: String,
    /// `verb` level.
    pub verb: u32,
    /// TUN/TAP device name (`dev`).
    pub dev: String,
    /// `tun` or `tap` (`dev_type`).
    pub dev_type: String,
    /// Server tunnel address (`ifconfig_local`).
    pub ifconfig_local: Option<Ipv4Addr>,
    /// Tunnel netmask (`ifconfig_netmask`).
    pub ifconfig_netmask: Option<Ipv4Addr>,
    /// Server tunnel IPv6 address and prefix length (`ifconfig_ipv6_local`/`_netbits`).
    pub ifconfig_ipv6_local: Option<(Ipv6Addr, u8)>,
    /// Transport (`proto_1`: `udp` or `tcp-server`).
    pub proto: Transport,
    /// `--local` address (`local_1`), if configured.
    pub local: Option<IpAddr>,
    /// Listening port (`local_port_1`, `remote_port_1`).
    pub port: u16,
    /// `tun_mtu`.
    pub tun_mtu: u16,
    /// When the daemon started (`daemon_start_time`).
    pub start_time: SystemTime,
}

/// What OpenVPN exports about one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientScriptInfo {
    /// `common_name`.
    pub common_name: String,
    /// `username` (from auth-user-pass), if any.
    pub username: Option<String>,
    /// The client's transport address (`untrusted_*`, and `trusted_*` once authenticated).
    pub real_addr: SocketAddr,
    /// Whether the client passed authentication (then `trusted_ip`/`trusted_port` are set).
    pub authenticated: bool,
    /// Assigned IPv4 address (`ifconfig_pool_remote_ip`).
    pub pool_remote_ip: Option<Ipv4Addr>,
    /// Pool netmask (`ifconfig_pool_netmask`).
    pub pool_netmask: Option<Ipv4Addr>,
    /// Assigned IPv6 address (`ifconfig_pool_remote_ip6`).
    pub pool_remote_ip6: Option<Ipv6Addr>,
    /// Server side of the IPv6 pool and its prefix length (`ifconfig_pool_local_ip6`,
    /// `ifconfig_pool_ip6_netbits`).
    pub pool_local_ip6: Option<(Ipv6Addr, u8)>,
    /// The peer certificate chain, leaf first (depth 0).
    pub certs: Vec<CertInfo>,
    /// Peer-info variables (`IV_VER`, `IV_PLAT`, …, and `UV_*`) as the client sent them.
    pub peer_info: Vec<(String, String)>,
}

/// One certificate of the peer's chain, for the `tls_*_{n}` and `X509_{n}_*` variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject in OpenVPN's form (`CN=client1`), `tls_id_{n}`.
    pub subject: String,
    /// Serial as a decimal string, `tls_serial_{n}`.
    pub serial: String,
    /// Serial as colon-separated hex, `tls_serial_hex_{n}`.
    pub serial_hex: String,
    /// SHA-1 fingerprint, colon-separated hex, `tls_digest_{n}`.
    pub digest_sha1: String,
    /// SHA-256 fingerprint, colon-separated hex, `tls_digest_sha256_{n}`.
    pub digest_sha256: String,
    /// Subject fields (`CN`, `O`, `emailAddress`, …), exported as `X509_{n}_{field}`.
    pub fields: Vec<(String, String)>,
}

/// Why a script did not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// `script-security` is too low for this script.
    #[error("script '{script}' not run: script-security {required} or higher is required")]
    NotAllowed {
        /// The script's program.
        script: String,
        /// The level that would allow it.
        required: u8,
    },
    /// The program could not be started.
    #[error("script '{script}' could not be started: {source}")]
    Spawn {
        /// The script's program.
        script: String,
        /// The OS error.
        source: io::Error,
    },
    /// The script ran longer than the timeout and was killed.
    #[error("script '{script}' killed after running for {timeout:?}")]
    Timeout {
        /// The script's program.
        script: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The script exited unsuccessfully.
    #[error("script '{script}' failed with {status}{}", StderrTail(.stderr))]
    Failed {
        /// The script's program.
        script: String,
        /// Exit status.
        status: ExitStatus,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// A client-connect script asked for deferred handling, which is not supported.
    #[error("script '{script}' requested deferred client-connect, which is not supported")]
    DeferredUnsupported {
        /// The script's program.
        script: String,
    },
    /// A temporary file for the script could not be written or read.
    #[error("script '{script}': temporary file {}: {source}", path.display())]
    TempFile {
        /// The script's program.
        script: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A script command line that could not be split into words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandLineError {
    /// Nothing but white space.
    #[error("empty command")]
    Empty,
    /// A `"` or `'` was not closed.
    #[error("unterminated quote in command: {0}")]
    UnterminatedQuote(String),
}

impl ScriptRunner {
    /// A runner for `script-security` level `security`, killing scripts after `timeout`.
    pub fn new(security: u8, timeout: Duration) -> Self {
        Self { security, timeout }
    }

    /// The `script-security` level.
    pub fn security(&self) -> u8 {
        self.security
    }

    /// `auth-user-pass-verify`: `Ok(true)` if the script exits 0.
    pub async fn auth_user_pass_verify(
        &self,
        cmd: &ScriptCmd,
        via: Via,
        env: &ScriptEnv,
        user: &str,
        pass: &str,
    ) -> Result<bool, ScriptError> {
        let mut env = env.clone();
        env.set("script_type", "user-pass-verify");
        env.set("username", user);
        match via {
            Via::Env => {
                self.check_security(cmd, 3)?;
                env.set("password", pass);
                Ok(self.run(cmd, &[], &env).await?.status.success())
            }
            Via::File => {
                self.check_security(cmd, 2)?;
                let file = TempFile::create(cmd, "up", format!("{user}\n{pass}\n").as_bytes())?;
                let arg = file.path_string();
                Ok(self.run(cmd, &[arg], &env).await?.status.success())
            }
        }
    }

    /// A client hook (`up`, `route-up`, `down`): needs `script-security 2`; the extra arguments
    /// follow the configured ones; a non-zero exit is [`ScriptError::Failed`].
    pub async fn hook(
        &self,
        cmd: &ScriptCmd,
        extra: &[String],
        env: &ScriptEnv,
    ) -> Result<(), ScriptError> {
        self.check_security(cmd, 2)?;
        let out = self.run(cmd, extra, env).await?;
        check_exit(cmd, &out)
    }

    /// `client-connect`: runs the script with a fresh file name as its last argument (also in
    /// `client_connect_config_file`) and returns what the script wrote there (per-client config in
    /// CCD syntax), or `None` if it wrote nothing. A non-zero exit refuses the client
    /// ([`ScriptError::Failed`]).
    pub async fn client_connect(
        &self,
        cmd: &ScriptCmd,
        env: &ScriptEnv,
    ) -> Result<Option<String>, ScriptError> {
        self.check_security(cmd, 2)?;
        let config = TempFile::create(cmd, "cc", b"")?;
        let deferred = TempFile::create(cmd, "ccr", b"")?;
        let mut env = env.clone();
        env.set("script_type", "client-connect");
        env.set("client_connect_config_file", config.path_string());
        env.set("client_connect_deferred_file", deferred.path_string());
        let out = self.run(cmd, &[config.path_string()], &env).await?;
        check_exit(cmd, &out)?;
        match deferred.read(cmd)?.trim_start().chars().next() {
            Some('0') => {
                return Err(ScriptError::Failed {
                    script: cmd.program.clone(),
                    status: out.status,
                    stderr: "client_connect_deferred_file reports failure".to_owned(),
                });
            }
            Some('2') => {
                return Err(ScriptError::DeferredUnsupported {
                    script: cmd.program.clone(),
                });
            }
            _ => {}
        }
        let text = config.read(cmd)?;
        Ok((!text.trim().is_empty()).then_some(text))
    }

    /// `client-disconnect` (the env should carry `bytes_*` and `time_duration`, see
    /// [`ScriptEnv::with_disconnect_stats`]).
    pub async fn client_disconnect(
        &self,
        cmd: &ScriptCmd,
        env: &ScriptEnv,
    ) -> Result<(), ScriptError> {
        self.check_security(cmd, 2)?;
        let mut env = env.clone();
        env.set("script_type", "client-disconnect");
        let out = self.run(cmd, &[], &env).await?;
        check_exit(cmd, &out)
    }

    /// `learn-address op addr [cn]`, `op` being `add`, `update` or `delete` (OpenVPN passes no
    /// common name for `delete`).
    pub async fn learn_address(
        &self,
        cmd: &ScriptCmd,
        op: &str,
        addr: &str,
        cn: Option<&str>,
        env: &ScriptEnv,
    ) -> Result<(), ScriptError> {
        self.check_security(cmd, 2)?;
        let mut env = env.clone();
        env.set("script_type", "learn-address");
        let mut extra = vec![op.to_owned(), addr.to_owned()];
        extra.extend(cn.map(str::to_owned));
        let out = self.run(cmd, &extra, &env).await?;
        check_exit(cmd, &out)
    }

    /// `tls-crypt-v2-verify`: the script sees only `script_type`, `metadata_type` (0 user data,
    /// 1 timestamp) and `metadata_file` (a temporary file with the metadata); `Ok(true)` if it
    /// exits 0.
    pub async fn tls_crypt_v2_verify(
        &self,
        cmd: &ScriptCmd,
        metadata_type: u8,
        metadata: &[u8],
    ) -> Result<bool, ScriptError> {
        self.check_security(cmd, 2)?;
        let file = TempFile::create(cmd, "tc2", metadata)?;
        let mut env = ScriptEnv::new();
        env.set("script_type", "tls-crypt-v2-verify");
        env.set("metadata_type", metadata_type.to_string());
        env.set("metadata_file", file.path_string());
        Ok(self.run(cmd, &[], &env).await?.status.success())
    }

    fn check_security(&self, cmd: &ScriptCmd, required: u8) -> Result<(), ScriptError> {
        if self.security >= required {
            return Ok(());
        }
        Err(ScriptError::NotAllowed {
            script: cmd.program.clone(),
            required,
        })
    }

    async fn run(
        &self,
        cmd: &ScriptCmd,
        extra: &[String],
        env: &ScriptEnv,
    ) -> Result<std::process::Output, ScriptError> {
        let mut command = Command::new(cmd.program_path());
        command
            .args(&cmd.args)
            .args(extra)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the wait future on timeout drops the child, which kills it.
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(env.0.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = command.spawn().map_err(|source| ScriptError::Spawn {
            script: cmd.program.clone(),
            source,
        })?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(source)) => {
                return Err(ScriptError::Spawn {
                    script: cmd.program.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(ScriptError::Timeout {
                    script: cmd.program.clone(),
                    timeout: self.timeout,
                });
            }
        };
        for line in String::from_utf8_lossy(&out.stdout).lines().take(64) {
            tracing::info!("{}: {line}", cmd.program);
        }
        Ok(out)
    }
}

impl ScriptCmd {
    /// Splits a configured command (`client-connect "/etc/openvpn/cc.sh arg"`) into program and
    /// arguments.
    pub fn parse(command: &str) -> Result<Self, CommandLineError> {
        let mut words = split_words(command)?.into_iter();
        let program = words.next().ok_or(CommandLineError::Empty)?;
        Ok(Self {
            program,
            args: words.collect(),
        })
    }

    /// The program as configured.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The configured arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The path to execute: like `execve`, a name without `/` is relative to the working
    /// directory, never searched in `PATH`.
    fn program_path(&self) -> PathBuf {
        if self.program.contains('/') {
            PathBuf::from(&self.program)
        } else {
            Path::new(".").join(&self.program)
        }
    }
}

impl fmt::Display for ScriptCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ScriptCmd {
    type Err = CommandLineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl ScriptEnv {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The daemon-level variables (`config`, `daemon`, `dev`, `ifconfig_*`, `proto_1`, …).
    pub fn for_server(s: &ServerScriptInfo) -> Self {
        let mut env = Self::new();
        env.set("config", &s.config);
        env.set("daemon", "0");
        env.set("daemon_log_redirect", "0");
        env.set("daemon_pid", std::process::id().to_string());
        env.set("daemon_start_time", unix_secs(s.start_time).to_string());
        env.set("dev", &s.dev);
        env.set("dev_type", &s.dev_type);
        if let Some(a) = s.ifconfig_local {
            env.set("ifconfig_local", a.to_string());
        }
        if let Some(m) = s.ifconfig_netmask {
            env.set("ifconfig_netmask", m.to_string());
        }
        if let Some((a, bits)) = s.ifconfig_ipv6_local {
            env.set("ifconfig_ipv6_local", a.to_string());
            env.set("ifconfig_ipv6_netbits", bits.to_string());
        }
        if let Some(l) = s.local {
            env.set("local_1", l.to_string());
        }
        env.set("local_port_1", s.port.to_string());
        let proto = match s.proto {
            Transport::Tcp => "tcp-server",
            Transport::Udp => "udp",
        };
        env.set("proto_1", proto);
        env.set("remote_port_1", s.port.to_string());
        env.set("script_context", "init");
        env.set("tun_mtu", s.tun_mtu.to_string());
        env.set("verb", s.verb.to_string());
        env
    }

    /// Adds the per-client variables (`common_name`, `username`, `untrusted_*`/`trusted_*`,
    /// `ifconfig_pool_*`, `tls_*_{n}`, `X509_{n}_*`, peer info).
    pub fn with_client(mut self, c: &ClientScriptInfo) -> Self {
        self.set("common_name", &c.common_name);
        if let Some(u) = &c.username {
            self.set("username", u);
        }
        let (ip, port) = (
            canonical_ip(c.real_addr.ip()),
            c.real_addr.port().to_string(),
        );
        let suffix = if ip.is_ipv6() { "ip6" } else { "ip" };
        self.set(format!("untrusted_{suffix}"), ip.to_string());
        self.set("untrusted_port", &port);
        if c.authenticated {
            self.set(format!("trusted_{suffix}"), ip.to_string());
            self.set("trusted_port", &port);
        }
        if let Some(a) = c.pool_remote_ip {
            self.set("ifconfig_pool_remote_ip", a.to_string());
        }
        if let Some(m) = c.pool_netmask {
            self.set("ifconfig_pool_netmask", m.to_string());
        }
        if let Some(a) = c.pool_remote_ip6 {
            self.set("ifconfig_pool_remote_ip6", a.to_string());
        }
        if let Some((a, bits)) = c.pool_local_ip6 {
            self.set("ifconfig_pool_local_ip6", a.to_string());
            self.set("ifconfig_pool_ip6_netbits", bits.to_string());
        }
        for (depth, cert) in c.certs.iter().enumerate() {
            let fields = [
                ("tls_id", &cert.subject),
                ("tls_serial", &cert.serial),
                ("tls_serial_hex", &cert.serial_hex),
                ("tls_digest", &cert.digest_sha1),
                ("tls_digest_sha256", &cert.digest_sha256),
            ];
            for (name, value) in fields {
                if !value.is_empty() {
                    self.set(format!("{name}_{depth}"), value);
                }
            }
            for (field, value) in &cert.fields {
                self.set(format!("X509_{depth}_{field}"), value);
            }
        }
        for (k, v) in &c.peer_info {
            // Only well-formed names: a peer controls these.
            if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.set(k, v);
            }
        }
        self
    }

    /// Adds `time_unix` and `time_ascii` (the client's connection time), as set for
    /// client-connect and later scripts.
    pub fn with_connect_time(mut self, connected: SystemTime) -> Self {
        self.set("time_unix", unix_secs(connected).to_string());
        self.set("time_ascii", format_local_time(connected));
        self
    }

    /// Adds `bytes_received`, `bytes_sent` and `time_duration` (seconds) for client-disconnect.
    pub fn with_disconnect_stats(
        mut self,
        bytes_received: u64,
        bytes_sent: u64,
        duration: Duration,
    ) -> Self {
        self.set("bytes_received", bytes_received.to_string());
        self.set("bytes_sent", bytes_sent.to_string());
        self.set("time_duration", duration.as_secs().to_string());
        self
    }

    /// Sets `name`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let (name, value) = (name.into(), value.into());
        // The OS rejects NULs; `=` in a name would be misparsed by the script.
        if name.contains(['=', '\0']) || value.contains('\0') {
            return self;
        }
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
        self
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.0.retain(|(k, _)| k != name);
        self
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All variables in insertion order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Splits a line into words like OpenVPN's `parse_line`: white space separates, `"…"` groups with
/// `\` escapes inside, `'…'` groups literally, and `\` outside quotes escapes the next character.
pub fn split_words(line: &str) -> Result<Vec<String>, CommandLineError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Quote {
        None,
        Double,
        Single,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::Single, c) => word.push(c),
            (Quote::None | Quote::Double, '\\') => {
                in_word = true;
                word.extend(chars.next());
            }
            (Quote::Double, c) => word.push(c),
            (Quote::None, '"') => (quote, in_word) = (Quote::Double, true),
            (Quote::None, '\'') => (quote, in_word) = (Quote::Single, true),
            (Quote::None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (Quote::None, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if quote != Quote::None {
        return Err(CommandLineError::UnterminatedQuote(line.to_owned()));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn check_exit(cmd: &ScriptCmd, out: &std::process::Output) -> Result<(), ScriptError> {
    if out.status.success() {
        return Ok(());
    }
    Err(ScriptError::Failed {
        script: cmd.program.clone(),
        status: out.status,
        stderr: stderr_tail(&out.stderr),
    })
}

fn stderr_tail(stderr: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    match text.char_indices().rev().nth(MAX - 1) {
        Some((i, _)) => format!("…{}", &text[i..]),
        None => text.to_owned(),
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

struct StderrTail<'a>(&'a str);

impl fmt::Display for StderrTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, ": {}", self.0)
        }
    }
}

/// A 0600 file under the temp directory, removed on drop.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn create(cmd: &ScriptCmd, kind: &str, contents: &[u8]) -> Result<Self, ScriptError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "ferrovpn_{kind}_{}_{n}_{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        );
        let path = std::env::temp_dir().join(name);
        let write = || -> io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(contents)
        };
        match write() {
            Ok(()) => Ok(Self { path }),
            Err(source) => {
                let _ = std::fs::remove_file(&path);
                Err(ScriptError::TempFile {
                    script: cmd.program.clone(),
                    path,
                    source,
                })
            }
        }
    }

    fn path_string(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    fn read(&self, cmd: &ScriptCmd) -> Result<String, ScriptError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            // The script may delete the file; that means "nothing written".
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(ScriptError::TempFile {
                script: cmd.program.clone(),
                path: self.path.clone(),
                source,
            }),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("fv-scripts-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        /// Writes an executable `#!/bin/sh` script and returns its command.
        fn script(&self, name: &str, body: &str) -> ScriptCmd {
            let path = self.0.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            ScriptCmd::parse(&format!("\"{}\"", path.display())).unwrap()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn runner(level: u8) -> ScriptRunner {
        ScriptRunner::new(level, Duration::from_secs(10))
    }

    fn client_env() -> ScriptEnv {
        ScriptEnv::new().with_client(&ClientScriptInfo {
            common_name: "client1".into(),
            username: None,
            real_addr: "198.18.0.1:53552".parse().unwrap(),
            authenticated: true,
            pool_remote_ip: Some(Ipv4Addr::new(198, 18, 50, 2)),
            pool_netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            pool_remote_ip6: None,
            pool_local_ip6: None,
            certs: vec![CertInfo {
                subject: "CN=client1".into(),
                serial: "42".into(),
                fields: vec![("CN".into(), "client1".into())],
                ..CertInfo::default()
            }],
            peer_info: vec![
                ("IV_VER".into(), "2.6.14".into()),
                ("bad name".into(), "x".into()),
            ],
        })
    }

    #[tokio::test]
    async fn via_env_accepts_and_refuses() {
        let dir = Dir::new("env");
        let cmd = dir.script(
            "auth.sh",
            r#"[ "$script_type" = user-pass-verify ] || exit 3
[ "$common_name" = client1 ] || exit 4
[ "$username" = alice ] && [ "$password" = 's3cr3t x' ] && exit 0
exit 1"#,
        );
        let env = client_env();
        let r = runner(3);
        assert!(
            r.auth_user_pass_verify(&cmd, Via::Env, &env, "alice", "s3cr3t x")
                .await
                .unwrap()
        );
        assert!(
            !r.auth_user_pass_verify(&cmd, Via::Env, &env, "alice", "wrong")
                .await
                .unwrap()
        );
        // Passwords in the environment need level 3.
        let err = runner(2)
            .auth_user_pass_verify(&cmd, Via::Env, &env, "alice", "s3cr3t x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScriptError::NotAllowed { required: 3, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn via_file_passes_credentials_in_a_private_file() {
        let dir = Dir::new("file");
        let seen = dir.0.join("seen");
        let cmd = dir.script(
            "auth.sh",
            &format!(
                r#"f="$1"
[ -z "$password" ] || exit 5
stat -c %a "$f" > "{0}"
[ "$(sed -n 1p "$f")" = bob ] && [ "$(sed -n 2p "$f")" = pw ] && echo "$f" >> "{0}" && exit 0
exit 1"#,
                seen.display()
            ),
        );
        let r = runner(2);
        assert!(
            r.auth_user_pass_verify(&cmd, Via::File, &client_env(), "bob", "pw")
                .await
                .unwrap()
        );
        let seen_text = std::fs::read_to_string(&seen).unwrap();
        let mut lines = seen_text.lines();
        assert_eq!(lines.next(), Some("600"));
        let file = lines.next().expect("script accepted the file");
        assert!(!Path::new(file).exists(), "credentials file not deleted");
        assert!(
            !r.auth_user_pass_verify(&cmd, Via::File, &client_env(), "bob", "no")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn client_connect_returns_dynamic_config_and_sees_env() {
        let dir = Dir::new("cc");
        let cmd = dir.script(
            "cc.sh",
            r##"[ "$script_type" = client-connect ] || exit 3
[ "$1" = "$client_connect_config_file" ] || exit 4
[ -z "$HOME" ] || exit 5
[ -n "$PATH" ] || exit 6
echo "ifconfig-push 198.18.50.9 255.255.255.0" > "$1"
echo "push \"route 198.18.70.0 255.255.255.0\"" >> "$1"
echo "# $trusted_ip:$trusted_port $ifconfig_pool_remote_ip $tls_id_0 $X509_0_CN $IV_VER $time_unix" >> "$1""##,
        );
        let env = client_env().with_connect_time(SystemTime::UNIX_EPOCH + Duration::from_secs(5));
        let got = runner(2).client_connect(&cmd, &env).await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(
                "ifconfig-push 198.18.50.9 255.255.255.0\n\
push \"route 198.18.70.0 255.255.255.0\"\n\
# 198.18.0.1:53552 198.18.50.2 CN=client1 client1 2.6.14 5\n"
            )
        );

        let quiet = dir.script("quiet.sh", "exit 0");
        assert_eq!(runner(2).client_connect(&quiet, &env).await.unwrap(), None);

        let refuse = dir.script("refuse.sh", "echo 'no such user' >&2; exit 7");
        let err = runner(2).client_connect(&refuse, &env).await.unwrap_err();
        let ScriptError::Failed {
            status,
            stderr,
            script,
        } = &err
        else {
            panic!("unexpected {err}");
        };
        assert_eq!(status.code(), Some(7));
        assert_eq!(stderr, "no such user");
        assert!(script.ends_with("refuse.sh"));
        assert!(err.to_string().contains("no such user"), "{err}");
    }

    #[tokio::test]
    async fn disconnect_learn_address_and_tls_crypt_v2() {
        let dir = Dir::new("misc");
        let log = dir.0.join("log");
        let cmd = dir.script(
            "la.sh",
            &format!(
                r#"echo "$script_type $* $bytes_sent $time_duration" >> "{}""#,
                log.display()
            ),
        );
        let cmd = ScriptCmd {
            args: vec!["extra1".into()],
            ..cmd
        };
        let r = runner(2);
        let env = client_env().with_disconnect_stats(1, 2800, Duration::from_secs(120));
        r.client_disconnect(&cmd, &env).await.unwrap();
        r.learn_address(
            &cmd,
            "add",
            "198.18.50.2",
            Some("client1"),
            &ScriptEnv::new(),
        )
        .await
        .unwrap();
        r.learn_address(&cmd, "delete", "198.18.50.2", None, &ScriptEnv::new())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "client-disconnect extra1 2800 120\n\
learn-address extra1 add 198.18.50.2 client1  \n\
learn-address extra1 delete 198.18.50.2  \n"
        );

        let tc = dir.script(
            "tc.sh",
            r#"[ "$script_type" = tls-crypt-v2-verify ] && [ "$metadata_type" = 0 ] && [ -z "$common_name" ] && grep -q ok "$metadata_file""#,
        );
        assert!(r.tls_crypt_v2_verify(&tc, 0, b"ok").await.unwrap());
        assert!(!r.tls_crypt_v2_verify(&tc, 0, b"nope").await.unwrap());
    }

    #[tokio::test]
    async fn script_security_1_refuses_to_run() {
        let dir = Dir::new("sec");
        let marker = dir.0.join("ran");
        let cmd = dir.script("cc.sh", &format!("touch \"{}\"", marker.display()));
        let err = runner(1)
            .client_connect(&cmd, &ScriptEnv::new())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "script '{}' not run: script-security 2 or higher is required",
                cmd.program()
            )
        );
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn timeout_kills_the_script() {
        let dir = Dir::new("slow");
        let marker = dir.0.join("finished");
        let cmd = dir.script(
            "slow.sh",
            &format!("sleep 3\ntouch \"{}\"", marker.display()),
        );
        let r = ScriptRunner::new(2, Duration::from_millis(300));
        let started = tokio::time::Instant::now();
        let err = r
            .client_disconnect(&cmd, &ScriptEnv::new())
            .await
            .unwrap_err();
        assert!(matches!(err, ScriptError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!marker.exists(), "script kept running after the timeout");
    }

    #[test]
    fn command_lines_split_like_openvpn() {
        let c = ScriptCmd::parse(r#"/usr/bin/my\ script "a b" 'c "d"' e\"f"#).unwrap();
        assert_eq!(c.program(), "/usr/bin/my script");
        assert_eq!(c.args(), ["a b", "c \"d\"", "e\"f"]);
        assert_eq!(ScriptCmd::parse("  "), Err(CommandLineError::Empty));
        assert!(matches!(
            ScriptCmd::parse("x \"y"),
            Err(CommandLineError::UnterminatedQuote(_))
        ));
        assert_eq!(
            ScriptCmd::parse("cc.sh").unwrap().program_path(),
            Path::new("./cc.sh")
        );
        assert_eq!(split_words(r#"kill "a b""#).unwrap(), ["kill", "a b"]);
        assert_eq!(split_words(r#"x """#).unwrap(), ["x", ""]);
    }

    #[test]
    fn env_builder_sets_openvpn_names() {
        let env = client_env();
        assert_eq!(env.get("untrusted_ip"), Some("198.18.0.1"));
        assert_eq!(env.get("trusted_port"), Some("53552"));
        assert_eq!(env.get("tls_serial_0"), Some("42"));
        assert_eq!(env.get("tls_digest_0"), None);
        assert_eq!(env.get("IV_VER"), Some("2.6.14"));
        assert_eq!(env.get("bad name"), None);
        let v6 = ScriptEnv::new().with_client(&ClientScriptInfo {
            real_addr: "[2001:db8::1]:7".parse().unwrap(),
            authenticated: false,
            ..client_info_empty()
        });
        assert_eq!(v6.get("untrusted_ip6"), Some("2001:db8::1"));
        assert_eq!(v6.get("trusted_ip6"), None);
        let mut e = ScriptEnv::new();
        e.set("a", "1").set("a", "2").set("b=c", "x");
        assert_eq!(e.vars(), [("a".to_owned(), "2".to_owned())]);
    }

    fn client_info_empty() -> ClientScriptInfo {
        ClientScriptInfo {
            common_name: String::new(),
            username: None,
            real_addr: "0.0.0.0:0".parse().unwrap(),
            authenticated: false,
            pool_remote_ip: None,
            pool_netmask: None,
            pool_remote_ip6: None,
            pool_local_ip6: None,
            certs: Vec::new(),
            peer_info: Vec::new(),
        }
    }
}
