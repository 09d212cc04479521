//! Key exchange: the key-method-2 message, peer-info, data-key derivation (TLS-EKM and the
//! legacy PRF), and PUSH_REPLY parsing.

pub mod key_method2;
pub mod peer_info;
pub mod prf;
pub mod push;
