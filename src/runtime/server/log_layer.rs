//! Feeds log events into the management interface's history ([`RingLayer`], shared with the
//! client in [`crate::runtime::management::log_ring`]).

pub use crate::runtime::management::log_ring::RingLayer;
