//! The only place with `unsafe` code: thin wrappers around system calls the safe crates do not
//! offer. Every `unsafe` block carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod privileges;
