//! Wire views: opcodes, control packets, tls-auth/tls-crypt/tls-crypt-v2 wrapping, TCP framing.
