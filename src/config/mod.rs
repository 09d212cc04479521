//! Profile parsing: `.ovpn` text in, typed [`Profile`] out.
//!
//! [`parse_profile`] is pure except for reading the files a profile refers to, which goes through
//! a [`FileLoader`]; [`load_profile`] reads a profile from disk with an [`FsLoader`]. Every error
//! names the file, the line and the directive; every ignored directive leaves a [`Warning`].

mod lexer;
mod material;
mod parser;
mod profile;

pub(crate) use lexer::tokenize;
pub use parser::{FileLoader, FsLoader, ProfileError, load_profile, parse_profile};
pub use profile::*;

#[cfg(test)]
mod tests;
