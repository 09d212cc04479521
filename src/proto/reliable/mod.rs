//! Control-channel reliability layer (ARQ).
