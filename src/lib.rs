//! ferrovpn: an OpenVPN-protocol VPN.
//!
//! Layers, from the bottom:
//! - [`proto`]: the sans-IO protocol core. No sockets, no clock, no threads, no files: every input
//!   comes through a `handle_*` call with `now` passed in, every output leaves through a `poll_*`.
//! - [`config`]: the `.ovpn` parser (bytes in, typed [`config::Profile`] out, with file and line
//!   in every error and a warning for every ignored directive).
//! - `runtime` (feature `runtime`): the tokio shell that owns sockets, the TUN device and the clock.
#![forbid(unsafe_code)]

pub mod config;
pub mod proto;
#[cfg(feature = "runtime")]
pub mod runtime;
