//! Profile parsing: `.ovpn` text in, typed [`Profile`] out.
//!
//! [`parse_profile`] is pure except for reading the files a profile refers to, which goes through
//! a [`FileLoader`]; [`load_profile`] reads a profile from disk with an [`FsLoader`]. Every error
//! names the file, the line and the directive; every ignored directive leaves a [`Warning`].
//!
//! The server side is the same: [`parse_server_profile`] / [`load_server_profile`] turn a
//! `server.conf` into a [`ServerProfile`] (helpers like `server` already expanded), and
//! [`parse_ccd`] reads client-config-dir files and `client-connect` output into a [`CcdEntry`].

mod client_management;
mod common;
mod compression;
mod directive;
mod inline;
mod keyfile;
mod legacy_client;
mod lexer;
mod material;
mod parser;
mod profile;
mod server_parser;
mod server_profile;
mod tls_options;
mod upstream_proxy;

pub use client_management::ClientManagement;
pub use inline::inline_profile;
pub use keyfile::{KeyKind, generate as generate_key, pem as pem_block, static_key_file};
pub(crate) use lexer::tokenize;
pub use parser::{FileLoader, FsLoader, ProfileError, load_profile, parse_profile};
pub use profile::*;
pub use server_parser::{load_server_profile, parse_ccd, parse_server_profile};
pub use server_profile::*;
pub use upstream_proxy::{HttpProxy, SocksProxy, UpstreamProxy};

#[cfg(test)]
mod legacy_tests;
#[cfg(test)]
mod mem_loader;
#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
