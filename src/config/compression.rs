//! Client-side `comp-lzo`, `compress`, `comp-noadapt` and the `allow-compression` default, as
//! OpenVPN 2.6 has them: compression is refused unless allowed, except that a profile which
//! itself asks for compression (`comp-lzo [yes|adaptive]`, `compress lz4|lz4-v2|lzo`) without
//! any `allow-compression` line gets `asym` (decompress what the server sends, send
//! uncompressed), with a warning; an explicit `allow-compression no` with such a line is an
//! error.

use super::profile::{AllowCompression, Compression};

/// `comp-lzo [yes|no|adaptive]` → the compression it asks for.
pub(super) fn comp_lzo(arg: Option<&str>) -> Result<Compression, String> {
    match arg {
        None | Some("yes" | "adaptive") => Ok(Compression::Lzo),
        Some("no") => Ok(Compression::LzoFraming),
        Some(x) => Err(format!("unknown mode '{x}' (yes, no or adaptive)")),
    }
}

/// `compress [ALG]` → the compression it asks for; `None` for `migrate`, which only a server
/// acts on.
pub(super) fn compress(arg: Option<&str>) -> Result<Option<Compression>, String> {
    Ok(Some(match arg {
        None | Some("stub") => Compression::Stub,
        Some("stub-v2") => Compression::StubV2,
        Some("lz4") => Compression::Lz4,
        Some("lz4-v2") => Compression::Lz4V2,
        Some("lzo") => Compression::Lzo,
        Some("migrate") => return Ok(None),
        Some(x) => {
            return Err(format!(
                "unknown algorithm '{x}' (stub, stub-v2, lz4, lz4-v2, lzo, migrate)"
            ));
        }
    }))
}

/// What the profile's compression lines and `allow-compression` add up to, once the whole
/// profile is read: the effective `allow-compression`, or an error text, plus a warning.
pub(super) fn settle(
    compression: Compression,
    allow: AllowCompression,
    allow_set: bool,
) -> Result<(AllowCompression, Option<String>), String> {
    if !compression.compresses() {
        return Ok((allow, None));
    }
    match (allow, allow_set) {
        (AllowCompression::No, true) => Err(
            "asks for compression, but 'allow-compression no' refuses it: remove one of the two \
             (compression leaks plaintext through packet sizes, VORACLE; better ask the server \
             for 'compress stub-v2' or 'compress migrate')"
                .into(),
        ),
        (AllowCompression::No, false) => Ok((
            AllowCompression::Asym,
            Some(
                "compression for receiving enabled (as OpenVPN 2.6 does without \
                 'allow-compression'): packets from the server are decompressed, ours are sent \
                 uncompressed. Compression leaks plaintext through packet sizes (VORACLE); ask \
                 the server for 'compress stub-v2' or 'compress migrate'"
                    .into(),
            ),
        )),
        (AllowCompression::Asym, _) => Ok((allow, None)),
        (AllowCompression::Yes, _) => Ok((
            allow,
            Some(
                "'allow-compression yes': packets are compressed in both directions, which \
                 leaks plaintext through packet sizes (VORACLE); 'allow-compression asym' \
                 receives compressed packets without sending any"
                    .into(),
            ),
        )),
    }
}
