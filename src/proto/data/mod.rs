//! Data channel: AEAD and CBC+HMAC, replay window, compression framing, ping/OCC.
