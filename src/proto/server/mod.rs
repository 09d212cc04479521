//! Server side of the protocol. For now one [`ServerSession`] per client; the multi-client
//! `Server` (address pool, peer-id routing, stateless cookies) builds on it.

mod session;

pub use session::{ServerSession, ServerSessionConfig, VerifyFn, server_key_direction};
