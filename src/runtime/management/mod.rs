//! OpenVPN's management interface (`management IP PORT [PWFILE]` / `management PATH unix`),
//! shared by the server and the client: the listener, the line-oriented session loop with its
//! password prompt, the log history, and the command helpers both command sets use. The
//! protocol follows OpenVPN 2.6's `management-notes.txt` (CRLF lines, `SUCCESS:`/`ERROR:`
//! replies, `END` after multi-line output, `>TYPE:` real-time notifications).
//!
//! - [`listen`]: where it listens (TCP or a Unix socket created with mode 0600).
//! - [`log_ring`]: the bounded log history behind `log`, and the tracing layer feeding it.
//! - [`session`]: the session loop and the commands common to both sides.
//! - [`client`]: the client's command set, states, hold and password queries ([`ClientEvents`]).
//! - [`client_state`]: the client's state lines and `status` text.
//! - [`query`]: the other end, a small management client (for `ferrovpn status`).
//!
//! The server's command set lives in `runtime::server::management`.

pub mod client;
pub mod client_state;
pub mod listen;
pub mod log_ring;
pub mod query;
pub mod session;

pub use client::{ClientEvents, ClientManagementConfig};
pub use listen::{ManagementListen, ManagementListener};
pub use log_ring::{LogEntry, LogRing, RingLayer};
