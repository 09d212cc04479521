//! The async shell.
