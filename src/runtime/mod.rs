//! The async shell (tokio): owns sockets, the TUN device and the clock, and drives the sans-IO
//! core. `clock` is the only module that reads the time.

pub mod backoff;
pub mod client_driver;
pub mod client_scripts;
pub mod clock;
pub mod credentials;
pub mod datagram_batch;
pub mod demo;
pub mod device;
pub mod drop_report;
pub mod health;
pub mod management;
pub mod netcfg;
pub mod p2p_driver;
pub mod pki;
pub mod profiles;
pub mod proxy_driver;
pub mod rng;
pub mod server;
pub mod signals;
pub mod transport;
pub mod upstream;
