//! Types shared between the server driver and the management, status and script modules.
//!
//! The driver implements [`ServerControl`]; the other modules only read snapshots through it and
//! ask for actions (kill, signal). Nothing here does I/O.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::SystemTime;

/// One connected client, as seen by status output and the management interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSnapshot {
    /// Management client id (`CID`), unique for the process lifetime.
    pub client_id: u64,
    /// Data-channel peer id.
    pub peer_id: u32,
    /// Common name of the client certificate (or the username with `username-as-common-name`).
    pub common_name: String,
    /// Authenticated username, if any (`UNDEF` in status output otherwise).
    pub username: Option<String>,
    /// The client's transport address.
    pub real_addr: SocketAddr,
    /// The transport the client uses.
    pub proto: Transport,
    /// Assigned virtual IPv4 address.
    pub virtual_v4: Option<Ipv4Addr>,
    /// Assigned virtual IPv6 address.
    pub virtual_v6: Option<Ipv6Addr>,
    /// Transport bytes received from the client.
    pub bytes_received: u64,
    /// Transport bytes sent to the client.
    pub bytes_sent: u64,
    /// When the client instance was created.
    pub connected_since: SystemTime,
    /// Data-channel cipher in OpenVPN spelling (`AES-256-GCM`).
    pub cipher: String,
}

/// One entry of the server's virtual-address routing table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSnapshot {
    /// `198.18.0.6`, or `198.18.50.0/24` for an `iroute`.
    pub virtual_addr: String,
    /// Common name of the owning client.
    pub common_name: String,
    /// Transport address of the owning client.
    pub real_addr: SocketAddr,
    /// Last time a packet was routed through this entry.
    pub last_ref: SystemTime,
}

/// The transport a client is connected over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP (`tcp-server`).
    Tcp,
    /// UDP.
    Udp,
}

/// Which clients a kill request selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillTarget {
    /// Management client id (`client-kill CID`).
    ClientId(u64),
    /// Every client with this common name (`kill cn`).
    CommonName(String),
    /// The client at this transport address (`kill IP:port`).
    Addr(SocketAddr),
}

/// What the server driver offers to the management interface and the status writer.
pub trait ServerControl: Send + Sync + 'static {
    /// Snapshot of the connected clients.
    fn clients(&self) -> Vec<ClientSnapshot>;
    /// Snapshot of the routing table.
    fn routes(&self) -> Vec<RouteSnapshot>;
    /// Disconnects matching clients (sending them RESTART or the given message first); returns how
    /// many.
    fn kill(&self, target: KillTarget, message: Option<String>) -> usize;
    /// SIGHUP/SIGUSR1/SIGUSR2/SIGTERM requested via management `signal`. Returns whether the
    /// signal was accepted.
    fn signal(&self, name: &str) -> bool;
    /// When the server finished initialising (used for the `state` line).
    fn started(&self) -> SystemTime;
}
