//! The process's randomness source for the core: the OS generator through aws-lc-rs.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::proto::client::Rng;

/// A fill function backed by the system CSPRNG.
pub fn system_rng() -> Rng {
    let rng = SystemRandom::new();
    Arc::new(move |buf: &mut [u8]| {
        // The system generator does not fail on Linux once seeded; if it ever did, refusing
        // to continue is the only safe answer.
        rng.fill(buf).expect("system random generator failed");
    })
}
