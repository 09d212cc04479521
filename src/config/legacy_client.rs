//! The client profile's legacy settings after all directives: `compat-mode` (2.6's default
//! changes; the peer-info that version would send is chosen in `proto::client::config`) and a
//! `cipher` naming a cipher ferrovpn cannot run.

use super::common::Common;
use super::directive::{Ctx, Dir, Res};
use super::profile::{AllowCompression, Profile};

/// Applies `compat-mode` and remembers an unusable `cipher` for the no-negotiation error.
pub(super) fn finish(cx: &Ctx<'_>, common: &Common, profile: &mut Profile) -> Res<()> {
    profile.compat_mode = common.compat;
    if let Some(v) = common.compat
        && v.below(2, 6)
        && !common.allow_compression_set
    {
        // 2.5.x and lower: `allow-compression asym` unless the profile says otherwise.
        profile.allow_compression = AllowCompression::Asym;
    }
    let Some((line, advice)) = &common.unusable_cipher else {
        return Ok(());
    };
    if profile.data_ciphers_fallback.is_some() {
        return Ok(());
    }
    let non_negotiating = common.compat.is_some_and(|v| v.below(2, 4));
    if non_negotiating {
        // The profile says the server cannot negotiate, so `cipher` is what it uses.
        return Err(cx.err(Dir::at(*line, "cipher"), advice.clone()));
    }
    profile.unusable_cipher = Some(format!("{}:{line}: 'cipher' {advice}", cx.file.display()));
    Ok(())
}
