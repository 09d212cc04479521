//! Server side of the protocol: [`Server`] holds many client sessions behind one set of
//! sockets, with a stateless cookie handshake, peer-id routing (float), an internal routing
//! table (tunnel addresses and `iroute`s) and client-to-client forwarding.

pub mod auth_token;
mod config;
mod cookie;
mod link;
mod multi;
mod peer;
mod routes;
pub mod tls_crypt_v2;

pub use config::{AuthRequest, PeerSetup, ServerConfig, ServerWrap};
pub use link::Link;
pub use multi::{PeerStatus, Received, Server, ServerEvent, ServerStats};
pub use tls_crypt_v2::TlsCryptV2ServerKey;

use crate::proto::keys::KeyDirection;

/// The server's side of `tls-auth` is the opposite direction of the client's.
pub fn server_key_direction(client: KeyDirection) -> KeyDirection {
    match client {
        KeyDirection::Inverse => KeyDirection::Normal,
        KeyDirection::Normal => KeyDirection::Inverse,
        KeyDirection::Bidirectional => KeyDirection::Bidirectional,
    }
}

#[cfg(test)]
mod tests;
