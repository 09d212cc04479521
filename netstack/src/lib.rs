//! `ferrovpn-netstack`: the rootless proxy mode's TCP/IP stack.
//!
//! smoltcp runs over an in-memory device: the tunnel hands decrypted IP packets to
//! [`PacketPipe::inbound`] and encrypts what comes out of [`PacketPipe::outbound`]; no kernel
//! device and no privileges are involved. On top of the [`Stack`] handle (TCP connect/listen,
//! UDP, DNS through the tunnel) the [`proxy`] module offers SOCKS5, an HTTP proxy and port
//! forwards, generic over a [`proxy::Dialer`] that decides what goes through the tunnel.
//! The [`exit`] module is the server side's counterpart: clients' packets in, host sockets out.
//!
//! Layering: [`dns`], [`proxy::socks5`] and [`proxy::http`] hold sans-IO parsers and encoders
//! (bytes in, values out, never a panic on bad input); the stack task and the proxy servers are
//! the async shell around them. This crate depends on neither the root crate nor `platform`.
#![forbid(unsafe_code)]

mod device;
pub mod dns;
pub mod exit;
pub mod proxy;
mod stack;
mod tcp;
mod udp;

pub use exit::{AllowRule, ExitConfig, ExitHandle, ExitLimits, ExitStats, spawn_exit};
pub use ipnet::IpNet;
pub use stack::{Limits, PacketPipe, Stack, StackConfig, StackStats, spawn};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
