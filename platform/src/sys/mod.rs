//! The only place with `unsafe` code: thin wrappers around system calls the safe crates do not
//! offer. Every `unsafe` block carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod privileges;

/// Restores the default SIGPIPE action (Rust ignores it), so a CLI whose output goes into a
/// closed pipe (`ferrovpn completions bash | head`) ends quietly instead of panicking on the
/// failed write. Call it first thing in `main`, before any thread or socket exists.
#[cfg(unix)]
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL for SIGPIPE has no preconditions; it runs before other threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
