//! The stateless handshake cookie (PROTOCOL.md A.2.5): the server's session id in its reply to a
//! hard reset is an HMAC over a time slot, the client's link and the client's session id, so no
//! state is kept until the client echoes it back.

use std::time::{Duration, Instant};

use aws_lc_rs::hmac;

use super::link::Link;
use crate::proto::wire::SessionId;

/// The per-process cookie key and its clock.
pub(crate) struct CookieKey {
    key: hmac::Key,
    base: Instant,
    slot_secs: u64,
}

impl CookieKey {
    /// A fresh key from `fill`; slots last half the handshake window (as OpenVPN 2.6).
    pub(crate) fn new(fill: &dyn Fn(&mut [u8]), base: Instant, hand_window: Duration) -> Self {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        fill(&mut secret[..]);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret[..]),
            base,
            slot_secs: hand_window.as_secs().div_ceil(2).max(1),
        }
    }

    fn slot(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_secs() / self.slot_secs
    }

    fn sid_for_slot(&self, slot: u64, link: &Link, client_sid: &SessionId) -> SessionId {
        let mut msg = Vec::with_capacity(8 + 16 + 10 + 8);
        msg.extend_from_slice(&slot.to_be_bytes());
        link.cookie_bytes(&mut msg);
        msg.extend_from_slice(client_sid);
        let tag = hmac::sign(&self.key, &msg);
        let mut sid = [0u8; 8];
        sid.copy_from_slice(&tag.as_ref()[..8]);
        sid
    }

    /// The session id to answer `client_sid` from `link` with.
    pub(crate) fn sid(&self, now: Instant, link: &Link, client_sid: &SessionId) -> SessionId {
        self.sid_for_slot(self.slot(now), link, client_sid)
    }

    /// Whether `sid` is a cookie this key issued for `link`/`client_sid` recently (the current
    /// slot, the two before it, or the next one: up to about one and a half hand-windows).
    pub(crate) fn verify(
        &self,
        now: Instant,
        link: &Link,
        client_sid: &SessionId,
        sid: &SessionId,
    ) -> bool {
        let slot = self.slot(now);
        (slot.saturating_sub(2)..=slot + 1).any(|s| {
            let expect = self.sid_for_slot(s, link, client_sid);
            aws_lc_rs::constant_time::verify_slices_are_equal(&expect, sid).is_ok()
        })
    }
}

/// `connect-freq-initial N SECS`: at most N stateless replies per window.
pub(crate) struct ReplyLimiter {
    max: u32,
    window: Duration,
    window_start: Option<Instant>,
    used: u32,
}

impl ReplyLimiter {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            window_start: None,
            used: 0,
        }
    }

    /// Whether one more reply may go out now.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(s) if now < s + self.window => {}
            _ => {
                self.window_start = Some(now);
                self.used = 0;
            }
        }
        if self.used >= self.max {
            return false;
        }
        self.used += 1;
        true
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests start from one real Instant
mod tests {
    use super::*;

    fn key(base: Instant) -> CookieKey {
        CookieKey::new(&|b: &mut [u8]| b.fill(7), base, Duration::from_secs(60))
    }

    #[test]
    fn cookie_verifies_for_its_link_and_window_only() {
        let t0 = Instant::now();
        let k = key(t0);
        let link = Link::udp("198.18.0.2:5000".parse().unwrap());
        let other = Link::udp("198.18.0.2:5001".parse().unwrap());
        let csid = [1u8; 8];
        let sid = k.sid(t0, &link, &csid);
        assert!(k.verify(t0, &link, &csid, &sid));
        assert!(k.verify(t0 + Duration::from_secs(80), &link, &csid, &sid));
        assert!(!k.verify(t0 + Duration::from_secs(100), &link, &csid, &sid));
        assert!(!k.verify(t0, &other, &csid, &sid));
        assert!(!k.verify(t0, &link, &[2u8; 8], &sid));
        let tcp = Link::tcp(link.addr, 1);
        assert!(!k.verify(t0, &tcp, &csid, &sid));
        // Another process (another key) does not accept it.
        let k2 = CookieKey::new(&|b: &mut [u8]| b.fill(8), t0, Duration::from_secs(60));
        assert!(!k2.verify(t0, &link, &csid, &sid));
    }

    #[test]
    fn limiter_allows_n_per_window() {
        let t0 = Instant::now();
        let mut l = ReplyLimiter::new(3, Duration::from_secs(10));
        assert!((0..3).all(|_| l.allow(t0)));
        assert!(!l.allow(t0 + Duration::from_secs(5)));
        assert!(l.allow(t0 + Duration::from_secs(10)));
    }
}
