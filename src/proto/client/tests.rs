//! Simulated-pair tests live here.
