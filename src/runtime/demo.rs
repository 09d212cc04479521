//! `ferrovpn demo`: a server and a client in one process, no root, no device, no files outside a
//! temporary directory. A fresh PKI and tls-crypt key, a userspace server on 127.0.0.1 with a web
//! page at its tunnel address, and a proxy-mode client whose SOCKS5 and HTTP proxies reach it.

use std::io::IsTerminal as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tracing::info;

use super::client_driver::{ConnectOptions, Outcome, TunnelState, run_with};
use super::device::Device;
use super::proxy_driver::{ProxyOptions, start};
use super::server::driver::{ServeOptions, run as serve};
use super::server::management::LogRing;
use crate::config::{FsLoader, parse_profile};

/// The tunnel network of the demo (TEST-NET range for benchmarks, never routed).
const NET: &str = "198.18.77.0";
/// The server's tunnel address, where the page lives.
pub const PAGE_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 77, 1);
/// A line the page contains (checked by `--check`).
pub const PAGE_MARKER: &str = "You reached this page through a ferrovpn tunnel";

/// What `demo` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Fetch the page once through the tunnel and exit 0 (fetched) or 1.
    pub check: bool,
    /// SOCKS5 listener (default 127.0.0.1:1080; port 0 picks one).
    pub socks5: Option<SocketAddr>,
    /// HTTP proxy listener (default 127.0.0.1:8080; port 0 picks one).
    pub http: Option<SocketAddr>,
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, String> {
        let mut rnd = [0u8; 8];
        (super::rng::system_rng())(&mut rnd);
        let dir = std::env::temp_dir().join(format!(
            "ferrovpn-demo-{}-{}",
            std::process::id(),
            hex::encode(rnd)
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// A CA, a server certificate (serverAuth) and a client certificate (clientAuth), ECDSA P-256.
fn make_pki(dir: &Path) -> Result<(), String> {
    let e = |e: rcgen::Error| format!("generating the demo certificates: {e}");
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(vec![]).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ferrovpn demo CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    write(dir, "ca.crt", &ca_cert.pem())?;
    for (name, eku) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let key = KeyPair::generate().map_err(e)?;
        let mut p = CertificateParams::new(vec![]).map_err(e)?;
        p.distinguished_name
            .push(DnType::CommonName, format!("demo-{name}"));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![eku];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;
        write(dir, &format!("{name}.crt"), &cert.pem())?;
        write(dir, &format!("{name}.key"), &key.serialize_pem())?;
    }
    Ok(())
}

const PAGE: &str = "<!doctype html>\n<html><head><title>ferrovpn demo</title></head><body>\n\
<h1>Hello from inside the tunnel</h1>\n<p>You reached this page through a ferrovpn tunnel: \
a proxy-mode client and a userspace server in one process, no root and no network device.</p>\n\
</body></html>\n";

/// The demo's web page: HTTP/1.1, one response per connection.
async fn serve_page(listener: TcpListener) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut have = 0;
            while have < buf.len() {
                match conn.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

fn free_udp_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

/// Fetches the page through the SOCKS5 proxy at `socks` (RFC 1928 CONNECT, no auth).
pub async fn fetch_through_socks(socks: SocketAddr) -> Result<String, String> {
    let io = |e: std::io::Error| format!("SOCKS5 proxy {socks}: {e}");
    let mut s = TcpStream::connect(socks).await.map_err(io)?;
    s.write_all(&[5, 1, 0]).await.map_err(io)?;
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.map_err(io)?;
    if r != [5, 0] {
        return Err(format!(
            "SOCKS5 proxy {socks}: unexpected greeting reply {r:?}"
        ));
    }
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&PAGE_ADDR.octets());
    req.extend_from_slice(&80u16.to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).await.map_err(io)?;
    if rep[1] != 0 {
        return Err(format!(
            "SOCKS5 proxy {socks}: CONNECT to {PAGE_ADDR}:80 refused (reply code {})",
            rep[1]
        ));
    }
    s.write_all(
        format!("GET / HTTP/1.1\r\nHost: {PAGE_ADDR}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(io)?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.map_err(io)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Runs the demo; returns the process exit code.
pub async fn run(opts: DemoOptions, mut signals: watch::Receiver<bool>) -> Result<u8, String> {
    // Our own stop flag: Ctrl-C sets it, and so does the end of `--check`.
    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        if signals.changed().await.is_ok() {
            let _ = on_signal.send(true);
        }
    });
    let tmp = TempDir::new()?;
    let dir = &tmp.0;
    make_pki(dir)?;
    let tc = crate::config::generate_key(
        crate::config::KeyKind::Secret,
        &*super::rng::system_rng(),
        None,
        None,
        0,
    )?;
    write(dir, "tc.key", &tc)?;
    let port = free_udp_port()?;
    let server_conf = write(
        dir,
        "server.conf",
        &format!(
            "# ferrovpn demo server\nlocal 127.0.0.1\nport {port}\nproto udp4\ndev tun\n\
             topology subnet\nserver {NET} 255.255.255.0\nca ca.crt\ncert server.crt\n\
             key server.key\ndh none\ntls-crypt tc.key\nkeepalive 10 60\nverb 1\n"
        ),
    )?;
    let client_text = format!(
        "# ferrovpn demo client\nclient\ndev tun\nproto udp4\nremote 127.0.0.1 {port}\nnobind\n\
         ca ca.crt\ncert client.crt\nkey client.key\nremote-cert-tls server\ntls-crypt tc.key\n\
         verb 1\n"
    );
    let client_path = write(dir, "client.ovpn", &client_text)?;

    let web = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("demo web page: {e}"))?;
    let web_addr = web.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(serve_page(web));

    let (ready_tx, ready_rx) = oneshot::channel();
    let serve_opts = ServeOptions {
        config: server_conf,
        userspace: true,
        allow: vec![format!("{PAGE_ADDR}/32:80")],
        local_services: vec![(80, web_addr)],
    };
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        serve(&serve_opts, LogRing::new(100), server_stop, Some(ready_tx)).await
    });
    if ready_rx.await.is_err() {
        return Err(match server.await {
            Ok(Err(e)) => format!("the demo server did not start: {e}"),
            _ => "the demo server did not start".into(),
        });
    }

    let profile = parse_profile(&client_text, &client_path, &FsLoader::new(dir))
        .map_err(|e| e.to_string())?;
    let popts = ProxyOptions {
        socks5: vec![
            opts.socks5
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1080))),
        ],
        http: vec![
            opts.http
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
        ],
        wait_timeout: Duration::from_secs(15),
        ..ProxyOptions::default()
    };
    let (state_tx, state_rx) = watch::channel(TunnelState::Down);
    let (device, listening) = start(&popts, state_rx.clone()).await?;
    let stack = match &device {
        Device::Stack(s) => Some(s.stack.clone()),
        Device::Tun(_) => None,
    };
    let client = run_with(
        profile,
        None,
        ConnectOptions::default(),
        device,
        stop.clone(),
        Some(state_tx),
    );
    tokio::pin!(client);
    let main = demo_main(opts, listening, stack, state_rx, stop, dir.clone());
    let code = tokio::select! {
        outcome = &mut client => match outcome {
            Outcome::Failed(e) => Err(format!("the demo client stopped: {e}")),
            Outcome::Stopped => Ok(0),
        },
        r = main => r,
    };
    // Let the client say goodbye (exit notification) and the server stop.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), &mut client).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    code
}

async fn demo_main(
    opts: DemoOptions,
    listening: super::proxy_driver::Listening,
    stack: Option<ferrovpn_netstack::Stack>,
    mut state_rx: watch::Receiver<TunnelState>,
    mut stop: watch::Receiver<bool>,
    dir: PathBuf,
) -> Result<u8, String> {
    let up = tokio::time::timeout(Duration::from_secs(20), async {
        while *state_rx.borrow_and_update() != TunnelState::Up {
            if state_rx.changed().await.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    if !up {
        return Err("the demo client did not connect to the demo server within 20 s".into());
    }
    let socks = listening.socks5[0];
    let http = listening.http[0];
    if opts.check {
        let result = fetch_through_socks(socks).await;
        return Ok(match result {
            Ok(body) if body.contains(PAGE_MARKER) => {
                println!(
                    "demo check passed: fetched http://{PAGE_ADDR}/ through SOCKS5 {socks} and the tunnel"
                );
                0
            }
            Ok(body) => {
                println!("demo check failed: unexpected answer from http://{PAGE_ADDR}/:\n{body}");
                1
            }
            Err(e) => {
                println!("demo check failed: {e}");
                1
            }
        });
    }
    println!(
        "\nferrovpn demo: a VPN server and a client in this process (no root, no network device).\n\
         The server's tunnel network is {NET}/24; a web page lives at its address {PAGE_ADDR}.\n\n\
         \x20 SOCKS5 proxy: {socks}\n\x20 HTTP proxy:   {http}\n\n\
         Try:\n\x20 curl --socks5-hostname {socks} http://{PAGE_ADDR}/\n\
         \x20 curl --proxy http://{http} http://{PAGE_ADDR}/\n\n\
         Files (removed at exit): {}\nCtrl-C stops.\n",
        dir.display()
    );
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 10 }));
    let mut last = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let Some(stack) = &stack else { continue };
                let st = stack.stats();
                let secs = if tty { 1.0 } else { 10.0 };
                let rate_in = (st.bytes_in.saturating_sub(last.0)) as f64 / secs / 1000.0;
                let rate_out = (st.bytes_out.saturating_sub(last.1)) as f64 / secs / 1000.0;
                last = (st.bytes_in, st.bytes_out);
                let up = *state_rx.borrow() == TunnelState::Up;
                let line = format!(
                    "tunnel {}  peers 1  in {} B ({rate_in:.1} kB/s)  out {} B ({rate_out:.1} kB/s)  tcp {}",
                    if up { "up" } else { "down" },
                    st.bytes_in,
                    st.bytes_out,
                    st.tcp_connections
                );
                if tty {
                    print!("\r{line}\x1b[K");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                } else {
                    println!("{line}");
                }
            }
        }
    }
    if tty {
        println!();
    }
    info!("demo stopping");
    Ok(0)
}
