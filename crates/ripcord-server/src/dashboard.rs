//! What the dashboard (`http::ui`) keeps between requests: login
//! sessions, the live-update streams open per session, and the audit
//! log's last verification.
//!
//! A session is a random id in an HttpOnly cookie, standing for an API
//! token's digest, with a CSRF token for its forms.
//!
//! Only the digest is kept, and the token is looked up again on every
//! request (`Tokens::authenticate_digest`), so a revoked or expired token
//! ends its sessions at once. Sessions live in memory: a restart (or a
//! take-over by another replica) asks people to log in again, which costs
//! them a paste and keeps no credential on disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ripcord_core::{Dur, Time};
use subtle::ConstantTimeEq;

/// How long a session lasts from login (one working day plus slack).
pub const LIFETIME: Dur = Dur(12 * 3600 * 1000);
/// Sessions kept at once, across all tokens: the map's memory is bounded.
const MAX_SESSIONS: usize = 4096;
/// Sessions one token may hold: logging in again and again with one token
/// replaces its oldest session instead of crowding out other people's.
const PER_TOKEN: usize = 8;

#[derive(Clone, Debug)]
pub struct Session {
    /// SHA-256 of the API token the person logged in with.
    pub digest: [u8; 32],
    /// The value every form of this session carries.
    pub csrf: String,
    pub created: Time,
    pub expires: Time,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// Everything the dashboard keeps.
#[derive(Default)]
pub struct Dashboard {
    pub sessions: Sessions,
    pub live: LiveSlots,
    /// The audit log's verification at the last head seen.
    pub audit: Mutex<Option<AuditCheck>>,
    /// A post-incident report being drawn (one at a time: its what-if
    /// replays a week of releases).
    report: Arc<std::sync::atomic::AtomicBool>,
}

/// The turn to draw a report; dropping it lets the next one in.
pub struct ReportTurn(Arc<std::sync::atomic::AtomicBool>);

impl Dashboard {
    /// The turn to draw a report, unless one is being drawn.
    pub fn report_turn(&self) -> Option<ReportTurn> {
        use std::sync::atomic::Ordering;
        self.report
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| ReportTurn(self.report.clone()))
    }
}

impl Drop for ReportTurn {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The result of verifying the audit log up to `head` (its last record).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditCheck {
    pub head: i64,
    pub outcome: Result<ripcord_core::audit::Verified, ripcord_core::audit::Broken>,
    /// Whether the log was longer than one page view verifies.
    pub partial: bool,
}

/// Live-update streams open at once: a cap per session and in all, so
/// one person's tabs (or one client's loop) cannot hold the server's
/// connections.
pub const LIVE_TOTAL: usize = 256;
pub const LIVE_PER_SESSION: usize = 4;

#[derive(Default, Clone)]
pub struct LiveSlots {
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream; dropping it frees the slot.
pub struct LiveSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    session: String,
}

impl LiveSlots {
    /// A slot for a stream of `session`, if under both caps.
    pub fn take(&self, session: &str) -> Option<LiveSlot> {
        let mut open = self.open.lock().ok()?;
        let total: usize = open.values().sum();
        let mine = open.get(session).copied().unwrap_or(0);
        if total >= LIVE_TOTAL || mine >= LIVE_PER_SESSION {
            return None;
        }
        open.insert(session.to_string(), mine + 1);
        Some(LiveSlot {
            open: self.open.clone(),
            session: session.to_string(),
        })
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock()
            && let Some(n) = open.get_mut(&self.session)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.session);
            }
        }
    }
}

/// What a new session is known by: the cookie's value and the forms'.
pub struct Issued {
    pub id: String,
    pub csrf: String,
    /// Whether the token had no other live session (a login worth an
    /// audit record; logging in again and again adds none).
    pub first: bool,
}

impl Sessions {
    /// Opens a session for a token's digest at `now`.
    pub fn open(&self, digest: [u8; 32], now: Time) -> std::io::Result<Issued> {
        let mut issued = Issued {
            id: crate::auth::new_token()?,
            csrf: crate::auth::new_token()?,
            first: false,
        };
        let session = Session {
            digest,
            csrf: issued.csrf.clone(),
            created: now,
            expires: now + LIFETIME,
        };
        let Ok(mut map) = self.map.lock() else {
            return Err(std::io::Error::other("the session table is poisoned"));
        };
        map.retain(|_, s| s.expires > now);
        let held = map.values().filter(|s| s.digest == digest).count();
        issued.first = held == 0;
        if held >= PER_TOKEN {
            evict_oldest(&mut map, |s| s.digest == digest);
        }
        if map.len() >= MAX_SESSIONS {
            evict_oldest(&mut map, |_| true);
        }
        map.insert(issued.id.clone(), session);
        Ok(issued)
    }

    /// The live session with this id at `now`.
    pub fn get(&self, id: &str, now: Time) -> Option<Session> {
        let map = self.map.lock().ok()?;
        map.get(id).filter(|s| s.expires > now).cloned()
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Session {
    /// Whether a form's CSRF value is this session's (constant time).
    pub fn accepts(&self, presented: &str) -> bool {
        same_secret(&self.csrf, presented)
    }
}

/// Constant-time equality of two secrets (lengths are not secret).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn evict_oldest(map: &mut HashMap<String, Session>, which: impl Fn(&Session) -> bool) {
    let oldest = map
        .iter()
        .filter(|(_, s)| which(s))
        .min_by_key(|(_, s)| s.created)
        .map(|(id, _)| id.clone());
    if let Some(id) = oldest {
        map.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_expires_and_one_token_holds_at_most_eight() {
        let sessions = Sessions::default();
        let t0 = Time(1_000);
        let first = sessions.open([1; 32], t0).unwrap();
        assert!(first.first);
        // A second login of the same token while the first session lives.
        assert!(!sessions.open([1; 32], t0 + Dur(1)).unwrap().first);
        assert!(sessions.get(&first.id, t0 + Dur(1)).is_some());
        assert!(sessions.get(&first.id, t0 + LIFETIME).is_none());
        // Logins 3 to 9, a millisecond apart: the ninth replaces the oldest.
        for i in 2..=PER_TOKEN as i64 {
            sessions.open([1; 32], t0 + Dur(i)).unwrap();
        }
        // The ninth login of the same token replaced the first.
        assert!(sessions.get(&first.id, t0 + Dur(100)).is_none());
        assert_eq!(sessions.len(), PER_TOKEN);
        let other = sessions.open([2; 32], t0 + Dur(200)).unwrap();
        assert_eq!(sessions.len(), PER_TOKEN + 1);
        sessions.close(&other.id);
        assert!(sessions.get(&other.id, t0 + Dur(300)).is_none());
    }

    #[test]
    fn live_streams_are_capped_per_session_and_freed_on_drop() {
        let slots = LiveSlots::default();
        let held: Vec<LiveSlot> = (0..LIVE_PER_SESSION)
            .map(|_| slots.take("a").unwrap())
            .collect();
        assert!(slots.take("a").is_none());
        assert!(slots.take("b").is_some());
        drop(held);
        assert!(slots.take("a").is_some());
    }

    #[test]
    fn csrf_values_are_compared_whole() {
        let sessions = Sessions::default();
        let issued = sessions.open([1; 32], Time(0)).unwrap();
        let s = sessions.get(&issued.id, Time(1)).unwrap();
        assert!(s.accepts(&issued.csrf));
        assert!(!s.accepts(&issued.csrf[..issued.csrf.len() - 1]));
        assert!(!s.accepts(""));
        assert_ne!(issued.id, issued.csrf);
    }
}
