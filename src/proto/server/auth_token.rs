//! `auth-gen-token`: after a client authenticated, the server gives it a token
//! (`push "auth-token ..."`) that replaces its password on reconnects, so one-time passwords and
//! slow checks are not asked for again. The format is this server's own (clients treat it as
//! opaque): `SESS_ID_AT_` + base64(initial time || issue time || HMAC-SHA256 over the user name
//! and both times), both times as big-endian u64 unix seconds.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Prefix of every token (as OpenVPN's, so logs and scripts recognise them).
pub const TOKEN_PREFIX: &str = "SESS_ID_AT_";

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("not a session token")]
    NotAToken,
    /// Made with another key or for another user.
    #[error("session token does not verify (another server key or another user)")]
    Invalid,
    /// Too old.
    #[error("session token expired")]
    Expired,
}

/// Token lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    /// Total lifetime since the first authentication (None: unlimited).
    pub lifetime: Option<u64>,
    /// How long one issued token stays valid.
    pub validity: u64,
}

/// Issues and checks tokens with one HMAC key.
pub struct TokenKey {
    key: hmac::Key,
}

impl TokenKey {
    /// A key from secret bytes (`auth-gen-token-secret`, or random per start).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, user: &str, initial: u64, issued: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"ferrovpn-auth-token\0");
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(&initial.to_be_bytes());
        ctx.update(&issued.to_be_bytes());
        ctx.sign()
    }

    /// A token for `user`, first authenticated at `initial`, issued `now` (unix seconds).
    pub fn issue(&self, user: &str, initial: u64, now: u64) -> String {
        let mut raw = Vec::with_capacity(48);
        raw.extend_from_slice(&initial.to_be_bytes());
        raw.extend_from_slice(&now.to_be_bytes());
        raw.extend_from_slice(self.mac(user, initial, now).as_ref());
        format!("{TOKEN_PREFIX}{}", STANDARD.encode(raw))
    }

    /// Checks `token` for `user` at `now`; returns the initial authentication time.
    pub fn verify(
        &self,
        token: &str,
        user: &str,
        now: u64,
        policy: TokenPolicy,
    ) -> Result<u64, TokenError> {
        let body = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::NotAToken)?;
        let raw = STANDARD.decode(body).map_err(|_| TokenError::NotAToken)?;
        if raw.len() != 48 {
            return Err(TokenError::NotAToken);
        }
        let initial = u64::from_be_bytes(raw[..8].try_into().map_err(|_| TokenError::NotAToken)?);
        let issued = u64::from_be_bytes(raw[8..16].try_into().map_err(|_| TokenError::NotAToken)?);
        verify_slices_are_equal(self.mac(user, initial, issued).as_ref(), &raw[16..])
            .map_err(|_| TokenError::Invalid)?;
        if issued > now.saturating_add(60) || now > issued.saturating_add(policy.validity) {
            return Err(TokenError::Expired);
        }
        if policy
            .lifetime
            .is_some_and(|l| now > initial.saturating_add(l))
        {
            return Err(TokenError::Expired);
        }
        Ok(initial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: TokenPolicy = TokenPolicy {
        lifetime: Some(3600),
        validity: 600,
    };

    #[test]
    fn tokens_verify_for_their_user_and_time_only() {
        let k = TokenKey::new(b"secret");
        let t = k.issue("alice", 1000, 1100);
        assert!(t.starts_with(TOKEN_PREFIX));
        assert_eq!(k.verify(&t, "alice", 1200, P), Ok(1000));
        assert_eq!(k.verify(&t, "bob", 1200, P), Err(TokenError::Invalid));
        assert_eq!(k.verify(&t, "alice", 1701, P), Err(TokenError::Expired));
        let late = k.issue("alice", 1000, 4500);
        assert_eq!(k.verify(&late, "alice", 4700, P), Err(TokenError::Expired));
        assert_eq!(
            TokenKey::new(b"other").verify(&t, "alice", 1200, P),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            k.verify("hunter2", "alice", 1200, P),
            Err(TokenError::NotAToken)
        );
        let mut bad = t.clone();
        bad.push('A');
        assert!(k.verify(&bad, "alice", 1200, P).is_err());
    }
}
