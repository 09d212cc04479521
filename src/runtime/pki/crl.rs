//! The certificate revocation list: every revoked serial of the index, signed by the CA.
//!
//! OpenVPN (`crl-verify`) re-reads the file when it changes and refuses every client once the
//! list's `nextUpdate` has passed, so it must be regenerated at least every [`CRL_DAYS`] days
//! (each revocation does it too).

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use super::issue::{Ca, time_at};
use super::{CRL_DAYS, Entry, PkiError};

/// The CRL in PEM, listing the revoked entries of `entries`. `now` (Unix seconds) is its
/// `thisUpdate` and its number (so numbers increase from one list to the next).
pub(super) fn make_crl(ca: &Ca, entries: &[Entry], now: u64) -> Result<String, PkiError> {
    let mut revoked = Vec::new();
    for e in entries {
        let Some(at) = e.revoked_at else { continue };
        let serial = hex::decode(&e.serial).map_err(|err| PkiError::Generate {
            what: format!("the CRL entry of '{}'", e.name),
            why: format!("serial {}: {err}", e.serial),
        })?;
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from(serial),
            revocation_time: time_at!(at),
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: time_at!(now),
        next_update: time_at!(now + u64::from(CRL_DAYS) * 86_400),
        crl_number: SerialNumber::from(crl_number(now)),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let gen_err = |e: rcgen::Error| PkiError::Generate {
        what: "signing the CRL".into(),
        why: e.to_string(),
    };
    let crl = params.signed_by(&ca.cert, &ca.key).map_err(gen_err)?;
    crl.pem().map_err(gen_err)
}

/// `now` as a positive INTEGER's bytes (no leading zero bytes).
fn crl_number(now: u64) -> Vec<u8> {
    let b = now.max(1).to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len() - 1);
    b[first..].to_vec()
}
