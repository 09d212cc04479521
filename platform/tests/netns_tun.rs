//! TUN, addresses, routes and DNS for real — inside a network namespace this test creates and
//! deletes. Needs root and `ip`; skips with a reason otherwise, unless
//! `FERROVPN_REQUIRE_INTEROP=1` makes that a failure.
//!
//! The parent creates `/etc/netns/NS/resolv.conf` (so that `ip netns exec` bind-mounts it over
//! `/etc/resolv.conf`), then the namespace, and re-runs this test binary inside it with
//! `ip netns exec NS <exe> --exact <test>`; the child does the work (the TUN lives as long as the
//! child holds it) and checks the result with `ip -n NS ...`. The root namespace is never touched.
#![cfg(target_os = "linux")]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ferrovpn_platform::{
    DnsBackend, DnsConfig, NetConfigurator, PlatformError, Tun, TunConfig, apply_dns, open_tun,
    recover_dns,
};

const TEST_NAME: &str = "tun_addresses_routes_dns_in_netns";
const CHILD_ENV: &str = "FERROVPN_PLATFORM_NETNS_CHILD";
const STATE_ENV: &str = "FERROVPN_PLATFORM_STATE_DIR";
const PARENT_NS_ENV: &str = "FERROVPN_PLATFORM_PARENT_NETNS";

fn marker(ns: &str) -> String {
    format!("# resolv.conf of ferrovpn test namespace {ns}\nnameserver 198.18.0.1\noptions edns0\n")
}

fn skip_or_fail(reason: &str) {
    if std::env::var("FERROVPN_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("FERROVPN_REQUIRE_INTEROP=1 but: {reason}");
    }
    println!("skipping {TEST_NAME}: {reason}");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespace and its `/etc/netns/NS` folder; deleted on drop, also after a panic.
struct Netns {
    name: String,
    etc: PathBuf,
}

impl Netns {
    fn create(name: &str) -> Result<Self, String> {
        let etc = Path::new("/etc/netns").join(name);
        // The resolv.conf first: without it, DNS changes inside NS would hit the host's file.
        fs::create_dir_all(&etc).map_err(|e| format!("create {}: {e}", etc.display()))?;
        let guard = Self {
            name: name.to_owned(),
            etc,
        };
        fs::write(guard.etc.join("resolv.conf"), marker(name))
            .map_err(|e| format!("write resolv.conf: {e}"))?;
        run("ip", &["netns", "add", name])?;
        run("ip", &["-n", name, "link", "set", "lo", "up"])?;
        Ok(guard)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "delete", &self.name]) {
            eprintln!("cleanup: {e}");
        }
        if let Err(e) = fs::remove_dir_all(&self.etc) {
            eprintln!("cleanup: remove {}: {e}", self.etc.display());
        }
    }
}

#[test]
fn tun_addresses_routes_dns_in_netns() {
    if let Ok(ns) = std::env::var(CHILD_ENV) {
        let state_dir = PathBuf::from(std::env::var(STATE_ENV).expect("state dir"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(child(&ns, &state_dir));
        return;
    }
    if !is_root() {
        return skip_or_fail("not running as root");
    }
    if run("ip", &["-V"]).is_err() {
        return skip_or_fail("the `ip` command (iproute2) is not available");
    }
    let name = format!("fvpn-pt-{}", std::process::id());
    let ns = Netns::create(&name).expect("create the test namespace");
    let state_dir =
        std::env::temp_dir().join(format!("ferrovpn-platform-netns-{}", std::process::id()));
    let _ = fs::remove_dir_all(&state_dir);

    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &ns.name)
        .env(STATE_ENV, &state_dir)
        .env(PARENT_NS_ENV, fs::read_link("/proc/self/ns/net").unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the child inside the namespace");
    // `ip netns exec` execs the test binary: this pid is the child itself.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(s) => s.expect("wait for the child"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = waiter.join();
            let _ = fs::remove_dir_all(&state_dir);
            panic!("the child inside {} timed out", ns.name);
        }
    };
    let _ = waiter.join();
    let _ = fs::remove_dir_all(&state_dir);
    assert!(
        status.success(),
        "the child inside {} failed: {status}",
        ns.name
    );

    // The TUN devices went away with the child's file descriptors.
    let links = run("ip", &["-n", &ns.name, "link", "show"]).unwrap();
    assert!(
        !links.contains("fvpn0") && !links.contains("fvup0"),
        "{links}"
    );
    // And the namespace's resolv.conf is the original.
    assert_eq!(
        fs::read_to_string(ns.etc.join("resolv.conf")).unwrap(),
        marker(&ns.name)
    );
}

fn ipn(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all).unwrap()
}

fn assert_has(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

fn assert_lacks(haystack: &str, needle: &str) {
    assert!(
        !haystack.contains(needle),
        "did not expect {needle:?} in:\n{haystack}"
    );
}

async fn child(ns: &str, state_dir: &Path) {
    // Safety first: refuse to do anything unless this really is the test namespace with its own
    // resolv.conf bind-mounted over /etc/resolv.conf.
    assert_ne!(
        fs::read_link("/proc/self/ns/net").unwrap(),
        PathBuf::from(std::env::var(PARENT_NS_ENV).unwrap()),
        "the child is in its parent's network namespace"
    );
    assert_eq!(
        fs::read_to_string("/etc/resolv.conf").unwrap(),
        marker(ns),
        "/etc/resolv.conf is not the namespace's own file"
    );

    // An "uplink" with a default route, standing in for the machine's real network.
    let uplink = open_tun(&TunConfig {
        name: Some("fvup0".into()),
        mtu: 1500,
        layer2: false,
        offload: false,
    })
    .await
    .unwrap();
    let mut up = NetConfigurator::new("fvup0").await.unwrap();
    up.add_address_v4(Ipv4Addr::new(198, 18, 90, 1), 24, None)
        .await
        .unwrap();
    up.add_address_v6("2001:db8:90::1".parse().unwrap(), 64)
        .await
        .unwrap();
    up.add_route_v4(
        Ipv4Addr::UNSPECIFIED,
        0,
        Some(Ipv4Addr::new(198, 18, 90, 254)),
        true,
        None,
    )
    .await
    .unwrap();
    up.add_route_v6(
        Ipv6Addr::UNSPECIFIED,
        0,
        Some("2001:db8:90::ffff".parse().unwrap()),
        None,
    )
    .await
    .unwrap();

    // The tunnel.
    let tun = Arc::new(
        open_tun(&TunConfig {
            name: Some("fvpn0".into()),
            mtu: 1400,
            layer2: false,
            offload: false,
        })
        .await
        .unwrap(),
    );
    assert_eq!(tun.name(), "fvpn0");
    assert_eq!(tun.mtu(), 1400);
    let link = ipn(ns, &["link", "show", "dev", "fvpn0"]);
    assert_has(&link, "mtu 1400");
    assert_has(&link, ",UP");

    let mut net = NetConfigurator::new("fvpn0").await.unwrap();
    net.add_address_v4(Ipv4Addr::new(198, 18, 77, 1), 24, None)
        .await
        .unwrap();
    net.add_address_v6("2001:db8:77::1".parse().unwrap(), 64)
        .await
        .unwrap();
    net.add_route_v4(Ipv4Addr::new(198, 18, 78, 0), 24, None, true, Some(5))
        .await
        .unwrap();
    net.add_route_v4(
        Ipv4Addr::new(198, 18, 79, 0),
        24,
        Some(Ipv4Addr::new(198, 18, 77, 2)),
        true,
        None,
    )
    .await
    .unwrap();
    net.add_route_v6("2001:db8:78::".parse().unwrap(), 64, None, Some(7))
        .await
        .unwrap();

    let def4 = net
        .default_route_v4()
        .await
        .unwrap()
        .expect("a v4 default route");
    assert_eq!(
        def4.gateway,
        Some(IpAddr::V4(Ipv4Addr::new(198, 18, 90, 254)))
    );
    assert_eq!(def4.ifname.as_deref(), Some("fvup0"));
    let def6 = net
        .default_route_v6()
        .await
        .unwrap()
        .expect("a v6 default route");
    assert_eq!(def6.gateway, Some("2001:db8:90::ffff".parse().unwrap()));

    let via = net
        .route_to("198.18.78.5".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((via.ifname.as_deref(), via.gateway), (Some("fvpn0"), None));
    assert_eq!(
        net.route_to("198.18.77.1".parse().unwrap()).await.unwrap(),
        None
    ); // local

    // redirect-gateway's host routes.
    assert!(
        net.add_host_route_via_original_gateway("198.18.99.9".parse().unwrap())
            .await
            .unwrap()
    );
    assert!(
        net.add_host_route_via_original_gateway("198.18.90.7".parse().unwrap())
            .await
            .unwrap()
    );
    assert!(
        net.add_host_route_via_original_gateway("2001:db8:99::9".parse().unwrap())
            .await
            .unwrap()
    );
    // Local, or already through the tunnel: nothing to pin.
    assert!(
        !net.add_host_route_via_original_gateway("198.18.77.1".parse().unwrap())
            .await
            .unwrap()
    );
    assert!(
        !net.add_host_route_via_original_gateway("198.18.78.5".parse().unwrap())
            .await
            .unwrap()
    );
    // Twice: exists already, not ours to remove later.
    assert!(
        !net.add_host_route_via_original_gateway("198.18.99.9".parse().unwrap())
            .await
            .unwrap()
    );

    let addrs = ipn(ns, &["addr", "show", "dev", "fvpn0"]);
    assert_has(&addrs, "inet 198.18.77.1/24");
    assert_has(&addrs, "inet6 2001:db8:77::1/64");
    let routes = ipn(ns, &["route", "show"]);
    assert_has(
        &routes,
        "198.18.78.0/24 dev fvpn0 proto static scope link metric 5",
    );
    assert_has(
        &routes,
        "198.18.79.0/24 via 198.18.77.2 dev fvpn0 proto static",
    );
    assert_has(
        &routes,
        "198.18.99.9 via 198.18.90.254 dev fvup0 proto static",
    );
    assert_has(&routes, "198.18.90.7 dev fvup0 proto static scope link");
    let routes6 = ipn(ns, &["-6", "route", "show"]);
    assert_has(&routes6, "2001:db8:78::/64 dev fvpn0 proto static metric 7");
    assert_has(
        &routes6,
        "2001:db8:99::9 via 2001:db8:90::ffff dev fvup0 proto static",
    );

    // Packets both ways, one task reading and one writing on the same device.
    ping_through(tun.clone()).await;

    // Errors.
    assert!(matches!(
        NetConfigurator::new("nosuchif0").await,
        Err(PlatformError::NoSuchInterface(_))
    ));
    let e = net
        .add_route_v4(Ipv4Addr::new(198, 18, 78, 0), 24, None, true, Some(5))
        .await
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(17), "{e}");
    assert!(matches!(
        open_tun(&TunConfig {
            name: Some("a-name-far-too-long".into()),
            mtu: 1400,
            layer2: false,
            offload: false,
        })
        .await,
        Err(PlatformError::InvalidArgument(_))
    ));

    // DNS on the namespace's own resolv.conf (bind-mounted over /etc/resolv.conf).
    let ns_resolv = Path::new("/etc/netns").join(ns).join("resolv.conf");
    let dns = DnsConfig {
        servers: vec![
            "198.18.0.53".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
        ],
        search_domains: vec!["vpn.example".into()],
        split_domains: vec![],
    };
    let guard = apply_dns("fvpn0", &dns, state_dir).unwrap();
    assert_eq!(guard.backend(), DnsBackend::ResolvConf);
    assert_eq!(
        fs::read_to_string(&ns_resolv).unwrap(),
        "# Generated by ferrovpn for fvpn0; the original is restored on exit\n\
         nameserver 198.18.0.53\n\
         nameserver 2001:db8::53\n\
         search vpn.example\n\
         options edns0\n"
    );
    assert!(state_dir.join("resolv.conf.ferrovpn-backup").exists());
    guard.restore().unwrap();
    assert_eq!(fs::read_to_string(&ns_resolv).unwrap(), marker(ns));
    assert!(!state_dir.join("resolv.conf.ferrovpn-backup").exists());
    // A crash (no restore), then recovery at the next start.
    std::mem::forget(apply_dns("fvpn0", &dns, state_dir).unwrap());
    assert_ne!(fs::read_to_string(&ns_resolv).unwrap(), marker(ns));
    assert!(recover_dns(state_dir).unwrap());
    assert_eq!(fs::read_to_string(&ns_resolv).unwrap(), marker(ns));
    assert!(!recover_dns(state_dir).unwrap());

    // restore() removes everything, also the host routes on the other interface.
    net.restore().await;
    let addrs = ipn(ns, &["addr", "show", "dev", "fvpn0"]);
    assert_lacks(&addrs, "198.18.77.1");
    assert_lacks(&addrs, "2001:db8:77::1");
    let routes = ipn(ns, &["route", "show"]);
    for r in ["198.18.78.0", "198.18.79.0", "198.18.99.9", "198.18.90.7"] {
        assert_lacks(&routes, r);
    }
    assert_has(&routes, "default via 198.18.90.254 dev fvup0");
    assert_lacks(&ipn(ns, &["-6", "route", "show"]), "2001:db8:99::9");

    // Drop cleans up too (synchronously, from inside a runtime), and p2p addresses work.
    let mut net2 = NetConfigurator::new("fvpn0").await.unwrap();
    net2.add_address_v4(
        Ipv4Addr::new(198, 18, 81, 1),
        32,
        Some(Ipv4Addr::new(198, 18, 81, 2)),
    )
    .await
    .unwrap();
    net2.add_route_v4(Ipv4Addr::new(198, 18, 80, 0), 24, None, true, None)
        .await
        .unwrap();
    assert!(
        net2.add_host_route_via_original_gateway("198.18.99.10".parse().unwrap())
            .await
            .unwrap()
    );
    assert_has(
        &ipn(ns, &["addr", "show", "dev", "fvpn0"]),
        "inet 198.18.81.1 peer 198.18.81.2/32",
    );
    assert_has(
        &ipn(ns, &["route", "show"]),
        "198.18.99.10 via 198.18.90.254 dev fvup0",
    );
    drop(net2);
    assert_lacks(&ipn(ns, &["addr", "show", "dev", "fvpn0"]), "198.18.81.1");
    let routes = ipn(ns, &["route", "show"]);
    assert_lacks(&routes, "198.18.80.0");
    assert_lacks(&routes, "198.18.99.10");

    up.restore().await;
    assert_lacks(&ipn(ns, &["route", "show"]), "default");
    drop(uplink);
    println!("netns child: all checks passed");
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request from 198.18.77.2 (a "remote" tunnel peer) to our 198.18.77.1: the kernel
/// answers through the tunnel.
fn echo_request(id: u16) -> Vec<u8> {
    let payload = b"ferrovpn-platform test";
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&1u16.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&[198, 18, 77, 2]);
    ip.extend_from_slice(&[198, 18, 77, 1]);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

async fn ping_through<T: Tun + 'static>(tun: Arc<T>) {
    let id: u16 = 0x4f56;
    let reader_tun = tun.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = reader_tun.recv(&mut buf).await.unwrap();
            let p = &buf[..n];
            // IPv4, ICMP, from 198.18.77.1 to 198.18.77.2, echo reply with our id.
            if n >= 28
                && p[0] >> 4 == 4
                && p[9] == 1
                && p[12..16] == [198, 18, 77, 1]
                && p[16..20] == [198, 18, 77, 2]
            {
                let ihl = usize::from(p[0] & 0x0f) * 4;
                let icmp = &p[ihl..];
                if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() {
                    return n;
                }
            }
        }
    });
    let writer_tun = tun.clone();
    let writer = tokio::spawn(async move {
        let packet = echo_request(id);
        for _ in 0..3 {
            writer_tun.send(&packet).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let n = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("no echo reply through the TUN")
        .unwrap();
    assert_eq!(n, 20 + 8 + 22);
    writer.await.unwrap();
}
