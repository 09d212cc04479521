//! The sans-IO protocol core.
//!
//! Nothing here reads a clock, opens a socket, spawns, sleeps or touches the filesystem: time is
//! always an argument (`now`), randomness comes from an injected source.

pub(crate) mod channel;
pub mod client;
pub mod data;
pub mod handshake;
pub mod keys;
pub mod mssfix;
pub mod p2p;
pub mod reliable;
pub mod replay;
pub mod server;
#[cfg(test)]
pub(crate) mod sim;
pub mod tls;
pub mod upstream;
pub mod wire;
