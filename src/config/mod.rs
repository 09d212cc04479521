//! Profile parsing: `.ovpn` text in, typed [`Profile`] out.

mod profile;

pub use profile::*;
