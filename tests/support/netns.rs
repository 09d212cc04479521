//! Network-namespace labs and the processes that run inside them.
//!
//! A [`Lab`] is two fresh namespaces, server `fvS-<pid>-<n>` and client `fvC-<pid>-<n>`, joined by
//! a veth pair (`vS` in S, `vC` in C) on 198.18.X.0/24 and 2001:db8:X::/64, where X is unique per
//! lab inside this test process. Before anything runs in a namespace, `/etc/netns/NS/resolv.conf`
//! exists (with a marker line), so `ip netns exec` bind-mounts it over `/etc/resolv.conf` and a
//! client that rewrites its resolver touches only that file.
//!
//! Dropping the lab (also while unwinding from a panic) stops every process still running in its
//! namespaces (SIGTERM, ~3 s, SIGKILL, by pid), deletes the namespaces and `/etc/netns/NS`, and
//! removes its scratch directory. A lab left behind by a test process that was killed outright is
//! swept by the next lab this harness creates (only names of our pattern whose creator pid is gone).

use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

const NS_PREFIXES: [&str; 2] = ["fvS-", "fvC-"];
const SCRATCH_PREFIX: &str = "ferrovpn-interop-";

/// First line of every namespace's resolv.conf; a client must leave the file as it found it.
pub const RESOLV_MARKER: &str = "# ferrovpn interop test: namespace resolver (must be restored)";

/// Runs `argv` to completion in the root namespace and returns its output (no shell).
pub fn run(argv: &[&str]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
}

/// Like [`run`] but panics with the command's stderr unless it succeeds.
pub fn run_ok(argv: &[&str]) -> String {
    let out = run(argv);
    assert!(
        out.status.success(),
        "{argv:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `argv` inside namespace `ns` (`ip netns exec`) to completion.
pub fn exec_in(ns: &str, argv: &[&str]) -> Output {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run(&full)
}

/// Like [`exec_in`] but panics unless the command succeeds; returns its stdout.
pub fn exec_in_ok(ns: &str, argv: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run_ok(&full)
}

fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// A child process started by this harness in its own process group (its pid is the group id).
/// Dropping it stops the whole group unless it has already been reaped.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `argv` inside namespace `ns` (via `ip netns exec`, which execs, so the pid is the
    /// program's own) in a new process group, stdout and stderr appended to `log`.
    pub fn spawn_in(name: &str, ns: &str, argv: &[&str], cwd: &Path, log: &Path) -> Proc {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(argv);
        Proc::spawn_here(name, &full, cwd, log)
    }

    /// Spawns `argv` in the current namespace (no `ip netns exec`: for tests that need neither
    /// root nor kernel networking) in a new process group, stdout and stderr appended to `log`.
    pub fn spawn_here(name: &str, argv: &[&str], cwd: &Path, log: &Path) -> Proc {
        Proc::spawn_here_stdin(name, argv, cwd, log, Stdio::null())
    }

    /// [`Proc::spawn_here`] with `stdin` as standard input (answers to prompts).
    pub fn spawn_here_stdin(
        name: &str,
        argv: &[&str],
        cwd: &Path,
        log: &Path,
        stdin: Stdio,
    ) -> Proc {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = file.try_clone().expect("dup log fd");
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .current_dir(cwd)
            // Plain logs: tracing-subscriber colours its output even into a file otherwise.
            .env("NO_COLOR", "1")
            .stdin(stdin)
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} {argv:?}: {e}"));
        Proc {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig` to the process itself (not its group), if it has not been reaped yet.
    pub fn signal(&mut self, sig: i32) {
        if self.try_status().is_none() {
            signal(self.pid(), sig);
        }
    }

    /// The exit status if the process has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the group (none if `grace` is zero), up to `grace` to exit, then SIGKILL to the
    /// group. `None` if even that did not end it within 5 s. Never panics.
    fn end_group(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        // The leader is unreaped, so its pid (= the group id) cannot have been reused.
        if !grace.is_zero() {
            signal(-self.pid(), libc::SIGTERM);
            if let Some(s) = self.wait_timeout(grace) {
                return Some(s);
            }
        }
        signal(-self.pid(), libc::SIGKILL);
        self.wait_timeout(Duration::from_secs(5))
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL. Returns the exit status.
    pub fn stop_with(&mut self, grace: Duration) -> ExitStatus {
        self.end_group(grace)
            .unwrap_or_else(|| panic!("{} (pid {}) survived SIGKILL", self.name, self.pid()))
    }

    /// SIGTERM, ~3 s, SIGKILL.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(Duration::from_secs(3))
    }

    /// SIGKILL to the group at once (no chance to say goodbye).
    pub fn kill(&mut self) -> ExitStatus {
        self.stop_with(Duration::ZERO)
    }

    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Number of log lines containing `needle`.
    pub fn count_in_log(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until `needle` occurs on at least `count` log lines. Fails early if the process exits
    /// first (after one last look at the log) and after `timeout`. Returns the time it took.
    pub fn wait_for_log(
        &mut self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let exited = self.try_status();
            if self.count_in_log(needle) >= count {
                return Ok(start.elapsed());
            }
            if let Some(s) = exited {
                return Err(format!(
                    "{} exited ({s}) before logging {needle:?} (x{count}); log {}",
                    self.name,
                    self.log.display()
                ));
            }
            if start.elapsed() >= timeout {
                return Err(format!(
                    "{} did not log {needle:?} (x{count}) within {timeout:?}; log {}",
                    self.name,
                    self.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.end_group(Duration::from_secs(3)).is_none() {
            eprintln!(
                "warning: {} (pid {}) survived SIGKILL",
                self.name,
                self.pid()
            );
        }
    }
}

/// Two namespaces joined by a veth pair, torn down on drop. See the module doc.
pub struct Lab {
    /// Per-lab number: underlay 198.18.X.0/24 and 2001:db8:X::/64, tunnel 198.19.X.0/24.
    pub x: u8,
    pub server_ns: String,
    pub client_ns: String,
    /// Scratch directory for keys, configs and logs (removed on drop).
    pub dir: PathBuf,
    created: Vec<String>,
    logs: Mutex<Vec<(String, PathBuf)>>,
}

impl Lab {
    /// Creates the lab; `tag` names the scratch directory (for humans reading leftover logs).
    pub fn new(tag: &str) -> Lab {
        SWEEP.call_once(sweep_stale);
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        assert!(n < 240, "too many labs in one test process");
        let pid = std::process::id();
        let x = (10 + n) as u8;
        let dir = std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{pid}-{n}-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create lab dir");
        let mut lab = Lab {
            x,
            server_ns: format!("fvS-{pid}-{n}"),
            client_ns: format!("fvC-{pid}-{n}"),
            dir,
            created: Vec::new(),
            logs: Mutex::new(Vec::new()),
        };
        // From here on, a panic drops `lab`, which undoes whatever was done so far.
        for ns in [lab.server_ns.clone(), lab.client_ns.clone()] {
            lab.add_namespace(&ns);
        }
        let (s, c) = (lab.server_ns.clone(), lab.client_ns.clone());
        run_ok(&[
            "ip", "link", "add", "vS", "netns", &s, "type", "veth", "peer", "name", "vC", "netns",
            &c,
        ]);
        for (ns, dev, host) in [(&s, "vS", 1), (&c, "vC", 2)] {
            run_ok(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("198.18.{x}.{host}/24"),
                "dev",
                dev,
            ]);
            run_ok(&[
                "ip",
                "-n",
                ns,
                "-6",
                "addr",
                "add",
                &format!("2001:db8:{x}::{host}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            run_ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    /// Adds one more namespace, `<client_ns>-SUFFIX` (its own resolv.conf, `lo` up), deleted
    /// with the lab (and swept like the others if the test process dies). Not linked to anything.
    pub fn add_extra_namespace(&mut self, suffix: &str) -> String {
        let ns = format!("{}-{suffix}", self.client_ns);
        self.add_namespace(&ns);
        ns
    }

    fn add_namespace(&mut self, ns: &str) {
        // The resolver file first: `ip netns exec` only bind-mounts it if it exists.
        // Registered first so that a failure below still removes /etc/netns/NS.
        self.created.push(ns.to_owned());
        let etc = Path::new("/etc/netns").join(ns);
        fs::create_dir_all(&etc).expect("mkdir /etc/netns/NS");
        fs::write(etc.join("resolv.conf"), self.resolv_original()).expect("write resolv.conf");
        run_ok(&["ip", "netns", "add", ns]);
        run_ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        // No duplicate address detection: addresses (veth and later tun) are usable at once.
        exec_in_ok(
            ns,
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.disable_ipv6=0",
            ],
        );
    }

    /// What each namespace's resolv.conf holds before any client runs.
    pub fn resolv_original(&self) -> String {
        format!(
            "{RESOLV_MARKER}\nnameserver 198.18.{}.253\noptions timeout:1\n",
            self.x
        )
    }

    /// The client namespace's resolver file, as processes inside C see it.
    pub fn client_resolv_path(&self) -> PathBuf {
        Path::new("/etc/netns")
            .join(&self.client_ns)
            .join("resolv.conf")
    }

    pub fn client_resolv(&self) -> String {
        fs::read_to_string(self.client_resolv_path()).unwrap_or_default()
    }

    pub fn server_underlay_v4(&self) -> String {
        format!("198.18.{}.1", self.x)
    }

    pub fn server_underlay_v6(&self) -> String {
        format!("2001:db8:{}::1", self.x)
    }

    /// Enables IPv4/IPv6 forwarding inside the server namespace (for traffic that must pass it).
    pub fn enable_server_forwarding(&self) {
        exec_in_ok(
            &self.server_ns,
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        );
    }

    /// Starts `argv` in namespace `ns` as its own process group; its log is dumped if the test fails.
    pub fn spawn(&self, name: &str, ns: &str, argv: &[&str], log_name: &str) -> Proc {
        let log = self.dir.join(log_name);
        self.logs
            .lock()
            .unwrap()
            .push((name.to_owned(), log.clone()));
        Proc::spawn_in(name, ns, argv, &self.dir, &log)
    }

    /// [`Lab::spawn`] with standard input read from `stdin_file`.
    pub fn spawn_with_stdin(
        &self,
        name: &str,
        ns: &str,
        argv: &[&str],
        log_name: &str,
        stdin_file: &Path,
    ) -> Proc {
        let log = self.dir.join(log_name);
        self.logs
            .lock()
            .unwrap()
            .push((name.to_owned(), log.clone()));
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(argv);
        let input = fs::File::open(stdin_file)
            .unwrap_or_else(|e| panic!("open {}: {e}", stdin_file.display()));
        Proc::spawn_here_stdin(name, &full, &self.dir, &log, Stdio::from(input))
    }

    /// Registers an extra file to dump on failure.
    pub fn watch_log(&self, name: &str, path: &Path) {
        self.logs
            .lock()
            .unwrap()
            .push((name.to_owned(), path.to_owned()));
    }

    /// Routes of the client namespace (v4 and v6), for before/after comparisons.
    pub fn client_routes(&self) -> String {
        let v4 = run_ok(&[
            "ip",
            "-n",
            &self.client_ns,
            "-4",
            "route",
            "show",
            "table",
            "all",
        ]);
        let v6 = run_ok(&[
            "ip",
            "-n",
            &self.client_ns,
            "-6",
            "route",
            "show",
            "table",
            "all",
        ]);
        // The kernel adds the veth's own IPv6 link-local route (`local fe80::...`) whenever its
        // duplicate address detection ends, which may be during a test: not the client's doing.
        let v6: String = v6
            .lines()
            .filter(|l| !l.starts_with("local fe80::"))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{v4}{v6}")
    }

    /// Names of TUN devices in the client namespace.
    pub fn client_tun_devices(&self) -> Vec<String> {
        let out = run_ok(&[
            "ip",
            "-n",
            &self.client_ns,
            "-o",
            "link",
            "show",
            "type",
            "tun",
        ]);
        out.lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|s| s.trim().split('@').next().unwrap_or("").to_owned())
            .collect()
    }

    /// Prints the tail of every registered log to stderr (the test harness shows it on failure).
    pub fn dump_logs(&self) {
        let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        for (name, path) in logs {
            let text = fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned());
            let text = text.unwrap_or_else(|e| format!("<unreadable: {e}>"));
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(200);
            let _ = writeln!(
                err,
                "===== {name}: {} ({} lines{}) =====",
                path.display(),
                lines.len(),
                if skip > 0 {
                    format!(", last {}", lines.len() - skip)
                } else {
                    String::new()
                }
            );
            for l in &lines[skip..] {
                let _ = writeln!(err, "{l}");
            }
        }
        let _ = writeln!(err, "===== end of logs =====");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            self.dump_logs();
        }
        for ns in self.created.iter().rev() {
            destroy_namespace(ns);
        }
        let keep = match std::env::var("FERROVPN_INTEROP_KEEP").as_deref() {
            Ok("all") => true,
            Ok(_) => failed,
            Err(_) => false,
        };
        if keep {
            // Renamed out of the pattern the stale-lab sweep removes.
            let name = self.dir.file_name().unwrap_or_default().to_string_lossy();
            let kept = name.replacen(SCRATCH_PREFIX, &format!("{SCRATCH_PREFIX}kept-"), 1);
            let kept = self.dir.with_file_name(kept);
            let _ = fs::remove_dir_all(&kept);
            let dir = if fs::rename(&self.dir, &kept).is_ok() {
                &kept
            } else {
                &self.dir
            };
            eprintln!("kept {} (FERROVPN_INTEROP_KEEP)", dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills what still runs inside `ns` (processes this harness started there), then deletes the
/// namespace and its /etc/netns folder. Never panics.
fn destroy_namespace(ns: &str) {
    let pids = |ns: &str| -> Vec<i32> {
        let out = run(&["ip", "netns", "pids", ns]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let left = pids(ns);
    if !left.is_empty() {
        for &p in &left {
            signal(p, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !pids(ns).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in pids(ns) {
            signal(p, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !pids(ns).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let out = run(&["ip", "netns", "del", ns]);
    if !out.status.success() {
        eprintln!(
            "warning: ip netns del {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
}

/// The pid in `NAME<pid>-...` if that process is gone (and it is not us).
fn dead_creator(name: &str, prefix: &str) -> Option<u32> {
    let pid = name
        .strip_prefix(prefix)?
        .split('-')
        .next()?
        .parse::<u32>()
        .ok()?;
    let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
    (!alive).then_some(pid)
}

/// Deletes namespaces (and scratch directories) of our naming pattern whose creating test
/// process no longer exists: what a test process killed outright (SIGKILL, timeout) left behind.
fn sweep_stale() {
    if let Ok(rd) = fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead_creator(&name, SCRATCH_PREFIX).is_some() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for dir in ["/run/netns", "/etc/netns"] {
        if let Ok(rd) = fs::read_dir(dir) {
            names.extend(
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    names.sort();
    names.dedup();
    for name in names {
        let Some(pid) = NS_PREFIXES.iter().find_map(|p| dead_creator(&name, p)) else {
            continue;
        };
        eprintln!("removing stale test namespace {name} (creator pid {pid} is gone)");
        if Path::new("/run/netns").join(&name).exists() {
            destroy_namespace(&name);
        } else {
            let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&name));
        }
    }
}
