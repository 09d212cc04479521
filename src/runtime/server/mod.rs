//! The multi-client server's async shell: sockets, device, client checks, management
//! interface, status file and hook scripts around [`crate::proto::server::Server`].
pub mod control;
pub mod device;
pub mod driver;
pub mod drop_log;
pub mod listen;
pub mod log_layer;
pub mod management;
pub mod pool;
pub mod scripts;
pub mod setup;
pub mod status;
