//! The OpenVPN management interface (`management IP port` / `management path unix`), server mode.
//!
//! Line-oriented text protocol, replies end with `\r\n`, wording as OpenVPN 2.6 (see its
//! `doc/management-notes.txt`). Several management clients may be connected at once (OpenVPN
//! allows one); each has its own `log`/`state`/`bytecount` settings. The listener, session loop,
//! password prompt, log history and the commands both sides share are in
//! [`crate::runtime::management`]; this file holds the server's own commands.
//!
//! Supported: `help`, `version`, `pid`, `status [n]`, `state [on|off] [N|all]`,
//! `log [on|off] [N|all]`, `echo …` (always empty), `kill cn`, `kill IP:port`,
//! `client-kill CID [msg]`, `bytecount n`, `load-stats`, `signal s`, `verb [n]`, `mute [n]`,
//! `hold [on|off|release]`, `quit`/`exit`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::watch;

use super::control::{KillTarget, ServerControl};
use super::status::{StatusVersion, render_status, unix_secs, wall_now};
use crate::runtime::management::session::{
    self, Ctx, Handler, Session, UNKNOWN, atoi, hold_command, need, push_line, state_command,
};
pub use crate::runtime::management::{LogEntry, LogRing, ManagementListen, ManagementListener};

/// Management interface settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementConfig {
    /// Listening address.
    pub listen: ManagementListen,
    /// Password clients must enter first (the management pw-file's first line).
    pub password: Option<String>,
    /// Initial `verb` level reported by `verb`.
    pub verb: u32,
    /// Addresses shown in the `state` line.
    pub state: StateInfo,
}

/// The addresses in the server's `CONNECTED` state line:
/// `time,CONNECTED,SUCCESS,tun_ip,,,local_ip,local_port,tun_ipv6`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateInfo {
    /// The server's tunnel IPv4 address.
    pub tun_ip: Option<Ipv4Addr>,
    /// The transport address the server listens on.
    pub local: Option<SocketAddr>,
    /// The server's tunnel IPv6 address.
    pub tun_ipv6: Option<Ipv6Addr>,
}

impl ManagementConfig {
    /// Settings with `verb 1` and no state addresses.
    pub fn new(listen: ManagementListen, password: Option<String>) -> Self {
        Self {
            listen,
            password,
            verb: 1,
            state: StateInfo::default(),
        }
    }
}

/// Binds `cfg.listen` and serves management clients until `stop` turns true (or its sender is
/// dropped). Open sessions are closed and a Unix socket file is removed at stop.
pub async fn serve_management(
    cfg: ManagementConfig,
    control: Arc<dyn ServerControl>,
    log: LogRing,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = ManagementListener::bind(&cfg.listen).await?;
    serve_management_on(listener, cfg, control, log, stop).await
}

/// Serves an already bound listener (see [`ManagementListener::bind`]); otherwise as
/// [`serve_management`].
pub async fn serve_management_on(
    listener: ManagementListener,
    cfg: ManagementConfig,
    control: Arc<dyn ServerControl>,
    log: LogRing,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let (password, verb) = (cfg.password.clone(), cfg.verb);
    let handler = Arc::new(ServerCommands { cfg, control });
    session::serve(listener, password, verb, handler, log, stop).await
}

struct ServerCommands {
    cfg: ManagementConfig,
    control: Arc<dyn ServerControl>,
}

impl Handler for ServerCommands {
    fn help(&self) -> &'static [&'static str] {
        HELP
    }

    fn command(
        &self,
        ctx: &Ctx<'_>,
        s: &mut Session,
        cmd: &str,
        args: &[String],
        out: &mut String,
    ) {
        let arg = |i: usize| args.get(i).map(String::as_str);
        match cmd {
            "status" => {
                let n = arg(0).map_or(1, atoi);
                let version = if n == 0 {
                    Some(StatusVersion::V1)
                } else {
                    u32::try_from(n).ok().and_then(StatusVersion::from_number)
                };
                let Some(version) = version else {
                    push_line(out, "ERROR: bad status format version number");
                    return;
                };
                let text = render_status(
                    version,
                    &self.control.clients(),
                    &self.control.routes(),
                    wall_now(),
                );
                for line in text.lines() {
                    push_line(out, line);
                }
            }
            "state" => state_command(s, ctx.log, args, &self.state_history(), out),
            "kill" => match arg(0) {
                Some(target) => self.kill(target, out),
                None => need(out, cmd, 1, false),
            },
            "client-kill" => {
                let Some(cid) = arg(0) else {
                    need(out, cmd, 1, true);
                    return;
                };
                let Ok(cid) = cid.parse::<u64>() else {
                    push_line(out, "ERROR: cannot parse CID");
                    return;
                };
                let message = arg(1).map(str::to_owned);
                if self.control.kill(KillTarget::ClientId(cid), message) > 0 {
                    push_line(out, "SUCCESS: client-kill command succeeded");
                } else {
                    push_line(out, "ERROR: client-kill command failed");
                }
            }
            "load-stats" => {
                let clients = self.control.clients();
                let bytes_in: u64 = clients.iter().map(|c| c.bytes_received).sum();
                let bytes_out: u64 = clients.iter().map(|c| c.bytes_sent).sum();
                push_line(
                    out,
                    &format!(
                        "SUCCESS: nclients={},bytesin={bytes_in},bytesout={bytes_out}",
                        clients.len()
                    ),
                );
            }
            "signal" => {
                let Some(name) = arg(0) else {
                    need(out, cmd, 1, false);
                    return;
                };
                if !SIGNALS.contains(&name) {
                    push_line(
                        out,
                        &format!("ERROR: signal '{name}' is not a known signal type"),
                    );
                } else if self.control.signal(name) {
                    push_line(out, &format!("SUCCESS: signal {name} thrown"));
                } else {
                    push_line(out, &format!("ERROR: signal '{name}' is currently ignored"));
                }
            }
            // The server never holds; accept the commands so GUIs do not stall.
            "hold" => hold_command(args, &mut false, || {}, out),
            _ => push_line(out, UNKNOWN),
        }
    }

    fn bytecount(&self, out: &mut String) {
        for c in self.control.clients() {
            push_line(
                out,
                &format!(
                    ">BYTECOUNT_CLI:{},{},{}",
                    c.client_id, c.bytes_received, c.bytes_sent
                ),
            );
        }
    }

    fn exiting_line(&self) -> Option<String> {
        let t = unix_secs(wall_now());
        Some(format!("{t},EXITING,SIGTERM,,,,,"))
    }
}

impl ServerCommands {
    fn state_history(&self) -> Vec<String> {
        let t = unix_secs(self.control.started());
        let st = &self.cfg.state;
        let tun_ip = st.tun_ip.map(|a| a.to_string()).unwrap_or_default();
        let tun_ipv6 = st.tun_ipv6.map(|a| a.to_string()).unwrap_or_default();
        let (local_ip, local_port) = match st.local {
            Some(a) => (a.ip().to_string(), a.port().to_string()),
            None => (String::new(), String::new()),
        };
        vec![
            format!("{t},CONNECTING,,,,,,"),
            format!("{t},ASSIGN_IP,,{tun_ip},,,,,{tun_ipv6}"),
            format!("{t},CONNECTED,SUCCESS,{tun_ip},,,{local_ip},{local_port},{tun_ipv6}"),
        ]
    }

    fn kill(&self, target: &str, out: &mut String) {
        let Some((host, port)) = target.rsplit_once(':') else {
            let n = self
                .control
                .kill(KillTarget::CommonName(target.to_owned()), None);
            if n > 0 {
                push_line(
                    out,
                    &format!("SUCCESS: common name '{target}' found, {n} client(s) killed"),
                );
            } else {
                push_line(out, &format!("ERROR: common name '{target}' not found"));
            }
            return;
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let Ok(ip) = host.parse::<IpAddr>() else {
            push_line(out, &format!("ERROR: error parsing IP address: {host}"));
            return;
        };
        let Ok(port) = port.parse::<u16>() else {
            push_line(out, &format!("ERROR: port number is out of range: {port}"));
            return;
        };
        let addr = SocketAddr::new(ip, port);
        let n = self.control.kill(KillTarget::Addr(addr), None);
        if n > 0 {
            push_line(
                out,
                &format!("SUCCESS: {n} client(s) at address {ip}:{port} killed"),
            );
        } else {
            push_line(
                out,
                &format!("ERROR: client at address {ip}:{port} not found"),
            );
        }
    }
}

const SIGNALS: [&str; 4] = ["SIGHUP", "SIGTERM", "SIGUSR1", "SIGUSR2"];
const HELP: &[&str] = &[
    "bytecount n            : Show bytes in/out, update every n secs (0=off).",
    "echo [on|off] [N|all]  : Like log, but only show messages in echo buffer.",
    "exit|quit              : Close management session.",
    "help                   : Print this message.",
    "hold [on|off|release]  : Set/show hold flag to on/off state, or",
    "                         release current hold and start tunnel.",
    "kill cn                : Kill the client instance(s) having common name cn.",
    "kill IP:port           : Kill the client instance connecting from IP:port.",
    "load-stats             : Show global server load stats.",
    "log [on|off] [N|all]   : Turn on/off realtime log display",
    "                         + show last N lines or 'all' for entire history.",
    "mute [n]               : Set log mute level to n, or show level if n is absent.",
    "pid                    : Show process ID of the current OpenVPN process.",
    "client-kill CID [M]    : Kill client instance CID with message M (def=RESTART)",
    "signal s               : Send signal s to daemon,",
    "                         s = SIGHUP|SIGTERM|SIGUSR1|SIGUSR2.",
    "state [on|off] [N|all] : Like log, but show state history.",
    "status [n]             : Show current daemon status info using format #n.",
    "verb [n]               : Set log verbosity level to n, or show if n is absent.",
    "version                : Show current version of daemon.",
];

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::UNIX_EPOCH;

    use std::sync::Mutex;
    use std::time::{Duration, SystemTime};

    use tokio::io::{
        AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    };
    use tokio::net::{TcpStream, UnixStream};

    use super::*;
    use crate::runtime::management::session::GREETING;
    use crate::runtime::server::control::{ClientSnapshot, RouteSnapshot, Transport};

    #[derive(Default)]
    struct FakeServer {
        clients: Mutex<Vec<ClientSnapshot>>,
        kills: Mutex<Vec<(KillTarget, Option<String>)>>,
        signals: Mutex<Vec<String>>,
    }

    impl FakeServer {
        fn with_two_clients() -> Arc<Self> {
            let c = |cid: u64, cn: &str, addr: &str, last: u8| ClientSnapshot {
                client_id: cid,
                peer_id: u32::try_from(cid).unwrap(),
                common_name: cn.into(),
                username: None,
                real_addr: addr.parse().unwrap(),
                proto: Transport::Udp,
                virtual_v4: Some(Ipv4Addr::new(198, 18, 50, last)),
                virtual_v6: None,
                bytes_received: 100 + cid,
                bytes_sent: 200 + cid,
                connected_since: UNIX_EPOCH + Duration::from_secs(1_795_321_701),
                cipher: "AES-256-GCM".into(),
            };
            Arc::new(Self {
                clients: Mutex::new(vec![
                    c(3, "client1", "198.18.0.1:49672", 2),
                    c(7, "client2", "198.18.0.1:49046", 3),
                ]),
                ..Self::default()
            })
        }
    }

    impl ServerControl for FakeServer {
        fn clients(&self) -> Vec<ClientSnapshot> {
            self.clients.lock().unwrap().clone()
        }

        fn routes(&self) -> Vec<RouteSnapshot> {
            self.clients()
                .iter()
                .map(|c| RouteSnapshot {
                    virtual_addr: c.virtual_v4.unwrap().to_string(),
                    common_name: c.common_name.clone(),
                    real_addr: c.real_addr,
                    last_ref: c.connected_since,
                })
                .collect()
        }

        fn kill(&self, target: KillTarget, message: Option<String>) -> usize {
            self.kills.lock().unwrap().push((target.clone(), message));
            let mut clients = self.clients.lock().unwrap();
            let before = clients.len();
            clients.retain(|c| match &target {
                KillTarget::ClientId(id) => c.client_id != *id,
                KillTarget::CommonName(cn) => c.common_name != *cn,
                KillTarget::Addr(a) => c.real_addr != *a,
            });
            before - clients.len()
        }

        fn signal(&self, name: &str) -> bool {
            self.signals.lock().unwrap().push(name.to_owned());
            name != "SIGUSR2"
        }

        fn started(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(1_795_321_699)
        }
    }

    struct Client<S> {
        io: BufReader<S>,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
        async fn line(&mut self) -> String {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read_line(&mut line))
                .await
                .expect("reply within 5 s")
                .unwrap();
            assert!(n > 0, "connection closed");
            assert!(line.ends_with("\r\n"), "line not CRLF-terminated: {line:?}");
            line.truncate(line.len() - 2);
            line
        }

        async fn send(&mut self, cmd: &str) {
            self.io
                .get_mut()
                .write_all(format!("{cmd}\n").as_bytes())
                .await
                .unwrap();
        }

        async fn ask(&mut self, cmd: &str) -> String {
            self.send(cmd).await;
            self.line().await
        }

        /// Sends `cmd` and collects lines up to and including `END`.
        async fn ask_block(&mut self, cmd: &str) -> Vec<String> {
            self.send(cmd).await;
            let mut lines = Vec::new();
            loop {
                let l = self.line().await;
                let end = l == "END";
                lines.push(l);
                if end {
                    return lines;
                }
            }
        }

        async fn expect_closed(&mut self) {
            let mut rest = Vec::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read_to_end(&mut rest))
                .await
                .expect("close within 5 s")
                .unwrap();
            assert_eq!(
                n,
                0,
                "unexpected data: {:?}",
                String::from_utf8_lossy(&rest)
            );
        }
    }

    struct Running {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(control: Arc<FakeServer>, log: LogRing, password: Option<&str>) -> Running {
        let listen = ManagementListen::Tcp("127.0.0.1:0".parse().unwrap());
        let listener = ManagementListener::bind(&listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut cfg = ManagementConfig::new(listen, password.map(str::to_owned));
        cfg.state = StateInfo {
            tun_ip: Some(Ipv4Addr::new(198, 18, 50, 1)),
            local: Some("198.18.0.1:1194".parse().unwrap()),
            tun_ipv6: None,
        };
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve_management_on(listener, cfg, control, log, rx));
        Running { addr, stop, task }
    }

    async fn connect(addr: SocketAddr) -> Client<TcpStream> {
        Client {
            io: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    #[tokio::test]
    async fn commands_over_tcp() {
        let control = FakeServer::with_two_clients();
        let log = LogRing::new(100);
        log.push(UNIX_EPOCH + Duration::from_secs(10), 'I', "first");
        log.push(UNIX_EPOCH + Duration::from_secs(11), ' ', "second\nline");
        let srv = start(control.clone(), log.clone(), None).await;
        let mut c = connect(srv.addr).await;

        assert_eq!(c.line().await, GREETING);
        let help = c.ask_block("help").await;
        assert!(
            help[0].starts_with("Management Interface for ferrovpn"),
            "{help:?}"
        );
        assert!(help.iter().any(|l| l.starts_with("kill cn ")), "{help:?}");
        let version = c.ask_block("version").await;
        assert!(
            version[0].starts_with("OpenVPN Version: ferrovpn "),
            "{version:?}"
        );
        assert_eq!(version[1..], ["Management Version: 5", "END"]);
        assert_eq!(
            c.ask("pid").await,
            format!("SUCCESS: pid={}", std::process::id())
        );

        let status = c.ask_block("status 2").await;
        assert!(status[0].starts_with("TITLE,ferrovpn "), "{status:?}");
        assert!(status[2].starts_with("HEADER,CLIENT_LIST,Common Name,Real Address,"));
        assert!(
            status[3].starts_with("CLIENT_LIST,client1,198.18.0.1:49672,198.18.50.2,,103,203,"),
            "{status:?}"
        );
        assert!(
            status[3].ends_with(",1795321701,UNDEF,3,3,AES-256-GCM"),
            "{status:?}"
        );
        assert_eq!(status.len(), 11, "{status:?}");
        let status1 = c.ask_block("status").await;
        assert_eq!(status1[0], "OpenVPN CLIENT LIST");
        assert_eq!(
            c.ask("status 9").await,
            "ERROR: bad status format version number"
        );

        assert_eq!(
            c.ask_block("state").await,
            [
                "1795321699,CONNECTED,SUCCESS,198.18.50.1,,,198.18.0.1,1194,",
                "END"
            ]
        );

        assert_eq!(
            c.ask("kill client1").await,
            "SUCCESS: common name 'client1' found, 1 client(s) killed"
        );
        assert_eq!(
            control.kills.lock().unwrap().last(),
            Some(&(KillTarget::CommonName("client1".into()), None))
        );
        assert_eq!(control.clients().len(), 1);
        assert_eq!(
            c.ask("kill nobody").await,
            "ERROR: common name 'nobody' not found"
        );
        assert_eq!(
            c.ask("kill 1.2.3.4:5").await,
            "ERROR: client at address 1.2.3.4:5 not found"
        );
        assert_eq!(
            c.ask("kill 999.1.1.1:5").await,
            "ERROR: error parsing IP address: 999.1.1.1"
        );
        assert_eq!(
            c.ask("kill").await,
            "ERROR: the 'kill' command requires 1 parameter"
        );
        assert_eq!(
            c.ask("client-kill 3").await,
            "ERROR: client-kill command failed"
        );
        assert_eq!(c.ask("client-kill x").await, "ERROR: cannot parse CID");

        assert_eq!(
            c.ask("bytecount 1").await,
            "SUCCESS: bytecount interval changed"
        );
        let started = tokio::time::Instant::now();
        assert_eq!(c.line().await, ">BYTECOUNT_CLI:7,107,207");
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert_eq!(c.line().await, ">BYTECOUNT_CLI:7,107,207");
        assert_eq!(
            c.ask("bytecount 0").await,
            "SUCCESS: bytecount interval changed"
        );

        assert_eq!(
            c.ask("frobnicate").await,
            "ERROR: unknown command, enter 'help' for more options"
        );
        assert_eq!(
            c.ask("signal SIGHUP").await,
            "SUCCESS: signal SIGHUP thrown"
        );
        assert_eq!(
            c.ask("signal SIGUSR2").await,
            "ERROR: signal 'SIGUSR2' is currently ignored"
        );
        assert_eq!(
            c.ask("signal SIGFOO").await,
            "ERROR: signal 'SIGFOO' is not a known signal type"
        );
        assert_eq!(*control.signals.lock().unwrap(), ["SIGHUP", "SIGUSR2"]);
        assert_eq!(c.ask("verb").await, "SUCCESS: verb=1");
        assert_eq!(c.ask("verb 4").await, "SUCCESS: verb level changed");
        assert_eq!(c.ask("verb").await, "SUCCESS: verb=4");
        assert_eq!(c.ask("mute").await, "SUCCESS: mute=0");
        assert_eq!(c.ask("hold").await, "SUCCESS: hold=0");
        assert_eq!(
            c.ask("load-stats").await,
            "SUCCESS: nclients=1,bytesin=107,bytesout=207"
        );

        assert_eq!(
            c.ask_block("log all").await,
            ["10,I,first", "11,,second line", "END"]
        );
        assert_eq!(c.ask_block("log 1").await, ["11,,second line", "END"]);
        assert_eq!(
            c.ask("log on").await,
            "SUCCESS: real-time log notification set to ON"
        );
        log.push(UNIX_EPOCH + Duration::from_secs(12), 'W', "live");
        assert_eq!(c.line().await, ">LOG:12,W,live");
        assert_eq!(
            c.ask("log off").await,
            "SUCCESS: real-time log notification set to OFF"
        );
        assert_eq!(
            c.ask("log bogus").await,
            "ERROR: log parameter must be 'on' or 'off' or some number n or 'all'"
        );

        c.send("client-kill 7 HALT").await;
        assert_eq!(c.line().await, "SUCCESS: client-kill command succeeded");
        assert_eq!(
            control.kills.lock().unwrap().last(),
            Some(&(KillTarget::ClientId(7), Some("HALT".into())))
        );

        c.send("quit").await;
        c.expect_closed().await;
        srv.stop.send(true).unwrap();
        srv.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn password_and_stop() {
        let srv = start(
            FakeServer::with_two_clients(),
            LogRing::new(4),
            Some("pw 1"),
        )
        .await;
        let mut c = connect(srv.addr).await;
        let mut prompt = [0u8; 15];
        c.io.read_exact(&mut prompt).await.unwrap();
        assert_eq!(&prompt, b"ENTER PASSWORD:");
        c.send("wrong").await;
        assert_eq!(c.line().await, "ERROR: bad password");
        c.io.read_exact(&mut prompt).await.unwrap();
        assert_eq!(&prompt, b"ENTER PASSWORD:");
        // Commands are not run before authentication.
        c.send("pid").await;
        assert_eq!(c.line().await, "ERROR: bad password");
        c.io.read_exact(&mut prompt).await.unwrap();
        c.send("pw 1").await;
        assert_eq!(c.line().await, "SUCCESS: password is correct");
        assert_eq!(c.line().await, GREETING);
        assert!(c.ask("pid").await.starts_with("SUCCESS: pid="));

        // A second client at the same time, failing three times, is dropped.
        let mut d = connect(srv.addr).await;
        d.io.read_exact(&mut prompt).await.unwrap();
        for _ in 0..2 {
            assert_eq!(d.ask("x").await, "ERROR: bad password");
            d.io.read_exact(&mut prompt).await.unwrap();
        }
        assert_eq!(d.ask("x").await, "ERROR: bad password");
        d.expect_closed().await;

        assert_eq!(
            c.ask("state on").await,
            "SUCCESS: real-time state notification set to ON"
        );
        srv.stop.send(true).unwrap();
        let exiting = c.line().await;
        assert!(exiting.starts_with(">STATE:") && exiting.ends_with(",EXITING,SIGTERM,,,,,"));
        c.expect_closed().await;
        srv.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn unix_socket_replaces_stale_file_and_cleans_up() {
        let path = std::env::temp_dir().join(format!("fv-mgmt-{}.sock", std::process::id()));
        // A stale socket from an earlier run.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let cfg = ManagementConfig::new(ManagementListen::Unix(path.clone()), None);
        let (stop, rx) = watch::channel(false);
        let control = FakeServer::with_two_clients();
        let task = tokio::spawn(serve_management(cfg, control, LogRing::new(4), rx));
        let stream = loop {
            if let Ok(s) = UnixStream::connect(&path).await {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut c = Client {
            io: BufReader::new(stream),
        };
        assert_eq!(c.line().await, GREETING);
        assert_eq!(
            c.ask("kill 198.18.0.1:49046").await,
            "SUCCESS: 1 client(s) at address 198.18.0.1:49046 killed"
        );
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
        assert!(!path.exists(), "socket file left behind");

        // A regular file at the path is not deleted.
        std::fs::write(&path, b"keep").unwrap();
        let err = ManagementListener::bind(&ManagementListen::Unix(path.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        std::fs::remove_file(&path).unwrap();
    }
}
