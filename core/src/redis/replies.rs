//! What the lock script's replies mean (the data, or who holds the lock and for how much
//! longer), and why a lock was gone when its holder wrote.

use std::time::Duration;

use ::redis::Value;

use crate::error::{LockLoss, StoreError};
use crate::lease::{Holder, RenewalReport, RenewalStop};
use crate::store::HeldLock;

/// The lock script's answer: the lock taken (with the data), or held by someone else.
pub(super) enum Acquire {
    /// Taken; the session's data, if it is stored.
    Held(Option<Vec<u8>>),
    /// Someone else holds it.
    Busy {
        /// How long the holder's lock lives unless renewed.
        holder_ttl_left: Option<Duration>,
        /// Who holds it, from the lock's value.
        holder: Option<Holder>,
    },
}

/// Reads the lock script's reply; `None` for one it never gives.
pub(super) fn parse_acquire(reply: Value) -> Option<Acquire> {
    let Value::Array(items) = reply else {
        return None;
    };
    let mut items = items.into_iter();
    let (Some(Value::Int(flag)), Some(second)) = (items.next(), items.next()) else {
        return None;
    };
    match (flag, second) {
        (1, Value::Nil) => Some(Acquire::Held(None)),
        (1, Value::BulkString(data)) => Some(Acquire::Held(Some(data))),
        (0, Value::Int(pttl)) => {
            let holder = match (items.next(), items.next()) {
                (Some(Value::BulkString(value)), Some(Value::Int(now_ms))) => {
                    parse_holder(&value, now_ms)
                }
                _ => None,
            };
            Some(Acquire::Busy {
                holder_ttl_left: u64::try_from(pttl).ok().map(Duration::from_millis),
                holder,
            })
        }
        _ => None,
    }
}

/// The holder recorded in a lock value `<token>|<since ms>|<holder>`; a value another
/// handler wrote (phpredis writes `<host>|<pid>`-like secrets) is shown as it is.
fn parse_holder(value: &[u8], now_ms: i64) -> Option<Holder> {
    if value.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(value);
    let mut parts = text.splitn(3, '|');
    let (token, since, who) = (parts.next(), parts.next(), parts.next());
    let ours = token.is_some_and(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    match (ours, since.and_then(|s| s.parse::<i64>().ok()), who) {
        (true, Some(since), Some(who)) => Some(Holder {
            who: if who.is_empty() {
                "another request".to_owned()
            } else {
                who.to_owned()
            },
            held_for: u64::try_from(now_ms - since)
                .ok()
                .map(Duration::from_millis),
        }),
        _ => {
            let shown: String = text.chars().take(80).collect();
            Some(Holder {
                who: format!("another session handler (lock value \"{shown}\")"),
                held_for: None,
            })
        }
    }
}

/// The refusal of a write whose lock was gone, saying why it was.
pub(super) fn lock_lost(lock: &HeldLock, renewal: Option<RenewalReport>) -> StoreError {
    let (ttl, held) = match lock {
        HeldLock::Lease { ttl, taken, .. } => (*ttl, taken.elapsed()),
        HeldLock::Connection { .. } => (Duration::ZERO, Duration::ZERO),
    };
    let loss = match renewal {
        None => LockLoss::NotRenewed { ttl },
        Some(RenewalReport {
            stopped: Some(RenewalStop::MaxHold(max)),
            ..
        }) => LockLoss::MaxHold { max, ttl },
        Some(RenewalReport {
            stopped: Some(RenewalStop::Failing(cause)),
            ..
        }) => LockLoss::RenewalFailing { cause, ttl },
        Some(RenewalReport { renewals, .. }) => LockLoss::Vanished {
            renewals: renewals.into(),
            ttl,
        },
    };
    StoreError::lock_lost(held, loss)
}
