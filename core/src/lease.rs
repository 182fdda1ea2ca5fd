//! Leases: exclusive, time-bounded ownership of a named resource.
//!
//! A session lock is a lease on one session for one request; a cron lock (fleetctl) is a
//! lease on a job name. Both need the same three properties: only the holder can release
//! it (a random token compared atomically on release), it ends by itself if the holder
//! dies (a TTL), and a waiter learns of a release without polling.

use std::fmt;
use std::time::Duration;

use crate::error::StoreError;

/// Proof of holding a lease: 128 random bits, hex-encoded. Only the holder knows it, so only
/// the holder can release or extend the lease.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseToken(String);

impl LeaseToken {
    pub fn generate() -> Result<LeaseToken, StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hex = bytes
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            .map(char::from)
            .collect();
        Ok(LeaseToken(hex))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({}…)", &self.0[..8.min(self.0.len())])
    }
}

/// How a lease is taken: how long it lives if never released, and how long to wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTerms {
    pub ttl: Duration,
    pub wait_timeout: Duration,
}

/// Longest single blocking wait. A waiter is woken when the holder releases; this bound
/// only matters when a wake-up is lost (a woken waiter killed before it took the lease, or
/// a phpredis worker releasing its lock, which wakes nobody), so every waiter re-checks at
/// least this often.
pub const MAX_WAIT_SLICE: Duration = Duration::from_secs(1);

/// How long a blocking wait should last before trying again: until the holder's lease
/// would expire, but never past `remaining` nor longer than [`MAX_WAIT_SLICE`].
pub fn wait_slice(holder_ttl_left: Option<Duration>, remaining: Duration) -> Duration {
    let mut slice = remaining.min(MAX_WAIT_SLICE);
    if let Some(left) = holder_ttl_left {
        // One extra millisecond so the lease has surely expired when we look again.
        slice = slice.min(left + Duration::from_millis(1));
    }
    slice.max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hex() {
        let a = LeaseToken::generate().unwrap();
        let b = LeaseToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn wait_slice_is_bounded() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(wait_slice(None, s(10)), MAX_WAIT_SLICE);
        assert_eq!(wait_slice(Some(ms(20)), s(10)), ms(21));
        assert_eq!(wait_slice(Some(s(30)), ms(300)), ms(300));
        assert_eq!(wait_slice(Some(ms(0)), ms(0)), ms(1));
    }
}
