//! `ferrovpn connect` for a static-key point-to-point profile (`secret`, `ifconfig LOCAL
//! REMOTE`): one UDP socket, the TUN/TAP device with the point-to-point address, and the
//! [`StaticKeyPeer`] in between. With a `remote` we send to it (and, with `float`, follow the peer
//! to a new address once its packets authenticate); without one we wait for the first authentic
//! packet and answer where it came from, as OpenVPN's listening side does.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

use super::client_driver::{ConnectOptions, Outcome};
use super::clock;
use super::device::Device;
use super::netcfg::NetPlan;
use crate::config::{Profile, Proto, StaticKeyMode};
use crate::proto::handshake::push::{PullPolicy, PushedOptions};
use crate::proto::p2p::{P2pConfig, Received, StaticKeyPeer, Timer, occ_options};

/// Runs a static-key tunnel until SIGINT/SIGTERM.
pub async fn run(profile: Profile, opts: ConnectOptions, state_dir: std::path::PathBuf) -> Outcome {
    let Some(mode) = profile.static_key.clone() else {
        return Outcome::Failed("not a static-key profile".into());
    };
    let stop = match super::signals::stop_on_signals() {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    if profile.remotes.iter().any(|r| r.proto.is_tcp()) {
        return Outcome::Failed(
            "static-key mode over TCP is not supported yet; use 'proto udp' on both peers".into(),
        );
    }
    let mut device = Device::tun(opts.dev.clone(), profile.layer2, false, state_dir);
    let outcome = match tunnel(&profile, &mode, &mut device, stop).await {
        Ok(()) => Outcome::Stopped,
        Err(e) => Outcome::Failed(e),
    };
    device.teardown().await;
    outcome
}

async fn resolve(profile: &Profile) -> Result<Option<SocketAddr>, String> {
    let Some(r) = profile.remotes.first() else {
        return Ok(None);
    };
    let want_v6 = matches!(r.proto, Proto::Udp6);
    let want_v4 = matches!(r.proto, Proto::Udp4);
    let addrs = tokio::net::lookup_host((r.host.as_str(), r.port))
        .await
        .map_err(|e| format!("cannot resolve '{}': {e}", r.host))?;
    addrs
        .into_iter()
        .find(|a| (!want_v4 || a.is_ipv4()) && (!want_v6 || a.is_ipv6()))
        .map(Some)
        .ok_or_else(|| format!("'{}' has no address of the requested family", r.host))
}

/// The device's plan: the point-to-point address pair and the profile's own routes.
fn plan(profile: &Profile, mode: &StaticKeyMode, peer: Option<SocketAddr>) -> NetPlan {
    let mut push = PushedOptions::default();
    if let Some((local, remote)) = mode.ifconfig {
        let chunk = if profile.layer2 {
            // On TAP the second argument is a netmask, as in OpenVPN.
            format!("topology subnet,ifconfig {local} {remote}")
        } else {
            format!("topology p2p,ifconfig {local} {remote}")
        };
        if let Err(e) = push.apply_chunk(&chunk, &PullPolicy::default()) {
            warn!("ifconfig {local} {remote}: {e}");
        }
    }
    let server = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    NetPlan::build(&push, profile, server)
}

async fn tunnel(
    profile: &Profile,
    mode: &StaticKeyMode,
    device: &mut Device,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let mut peer_addr = resolve(profile).await?;
    let v6 = peer_addr.is_some_and(|a| a.is_ipv6());
    let port = mode.local_port.unwrap_or(0);
    let bind: SocketAddr = if v6 {
        (std::net::Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, port).into()
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("binding UDP {bind}: {e}"))?;
    info!(
        "static-key mode: UDP {} {}, cipher {}, auth {}",
        sock.local_addr().map_or(bind, |a| a),
        peer_addr.map_or("waiting for the peer".to_owned(), |a| format!("peer {a}")),
        mode.cipher.name(),
        profile.auth.name()
    );
    device
        .configure(plan(profile, mode, peer_addr), profile.tun_mtu)
        .await?;
    info!("Initialization Sequence Completed");

    let now = clock::now();
    let rng = super::rng::system_rng();
    let mut peer = StaticKeyPeer::new(
        P2pConfig {
            mode,
            auth: profile.auth,
            ping: profile.ping,
            ping_restart: profile.ping_restart,
            occ_options: occ_options(mode, profile.auth, profile.tun_mtu, profile.layer2),
            unix_time: clock::unix_seconds(),
            rng: Box::new(move |b: &mut [u8]| rng(b)),
        },
        now,
    )
    .map_err(|e| format!("static key: {e}"))?;
    let (mut out, mut pkt, mut reply) = (Vec::new(), Vec::new(), Vec::new());
    let mut rbuf = vec![0u8; 65536];
    let mut tbuf = vec![0u8; 65536];
    let mut dropped_logged = 0u64;
    loop {
        let wake = peer
            .poll_timeout()
            .unwrap_or_else(|| clock::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = device.recv(&mut tbuf) => {
                let n = r.map_err(|e| format!("reading the device: {e}"))?;
                if let Some(to) = peer_addr
                    && peer.encapsulate(clock::now(), &tbuf[..n], &mut out)
                {
                    let _ = sock.send_to(&out, to).await;
                }
            }
            r = sock.recv_from(&mut rbuf) => {
                let (n, from) = match r {
                    Ok(x) => x,
                    // ICMP unreachable from an earlier send: the peer is not up yet.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(format!("receiving: {e}")),
                };
                if peer_addr.is_some_and(|a| a != from) && !mode.float {
                    debug!("datagram from {from}, not the peer: dropped (no 'float')");
                    continue;
                }
                let got = peer.handle_datagram(clock::now(), &rbuf[..n], &mut pkt, &mut reply);
                if let Received::Dropped(e) = &got {
                    let dropped = peer.stats().dropped;
                    // Logged for the first few and then every 1000th: a flood cannot fill the log.
                    if dropped <= 10 || dropped - dropped_logged >= 1000 {
                        dropped_logged = dropped;
                        warn!("dropped a packet from {from} ({e}); {dropped} dropped so far");
                    }
                    continue;
                }
                if peer_addr != Some(from) {
                    info!("peer at {from}");
                    peer_addr = Some(from);
                }
                match got {
                    Received::Packet => device.send(&pkt).await,
                    Received::Reply => {
                        let _ = sock.send_to(&reply, from).await;
                    }
                    Received::Nothing | Received::Dropped(_) => {}
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                match peer.handle_timeout(clock::now(), &mut out) {
                    Timer::SendPing => {
                        if let Some(to) = peer_addr {
                            let _ = sock.send_to(&out, to).await;
                        }
                    }
                    Timer::Restart => {
                        warn!("nothing received from the peer within ping-restart; resolving the remote again");
                        if let Ok(Some(a)) = resolve(profile).await {
                            peer_addr = Some(a);
                        }
                    }
                    Timer::Nothing => {}
                }
            }
        }
    }
    let s = peer.stats();
    info!(
        "static-key tunnel closed: {} packets ({} bytes) in, {} packets ({} bytes) out, {} dropped",
        s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes, s.dropped
    );
    Ok(())
}
