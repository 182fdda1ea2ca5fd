//! PHP's `fleet_lease_acquire()`, `fleet_lease_renew()` and `fleet_lease_release()`: the
//! cluster-wide leases of `fleet-core` for "do this once across every app server" code.
//!
//! A lease is taken in the store `fleet.lease_store` names (a save_path URL), or in
//! `session.save_path` when Fleet is the session handler. It outlives the request that took
//! it: it ends when released or when its TTL runs out, so a worker that dies holding it
//! blocks nobody for longer than the TTL. A worker keeps one lease-store connection,
//! separate from its session connection (a MySQL session's lock or transaction is never
//! mixed with a lease's).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use fleet_core::{
    open_lease_store, parse_save_path, LeaseStore, LeaseTicket, LeaseToken, Taken, Timeouts,
};

use crate::advice;
use crate::handler::Problem;

/// How often a waiting `fleet_lease_acquire()` tries again. Leases guard rare actions (a
/// mail, a queue item), so polling is cheap enough and needs no wake-up channel.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// The longest TTL accepted: a lease is for "once per period" or "one at a time"; a longer
/// hold is a bug (a forgotten release would lock the name out for that long).
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which lease store a call uses: its URL, the timeouts, and the `open_basedir` in force,
/// since the files the URL names passed that check when it was opened, and a kept store is
/// reused only under the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreAt {
    pub url: String,
    pub timeouts: Timeouts,
    pub open_basedir: String,
}

thread_local! {
    /// This worker's lease store and where it was opened.
    static LEASE_STORE: RefCell<Option<(StoreAt, Box<dyn LeaseStore>)>> =
        const { RefCell::new(None) };
}

/// Where leases live: `fleet.lease_store`, else `session.save_path` if Fleet handles sessions.
pub fn store_url(
    lease_store: &str,
    save_handler: &str,
    save_path: &str,
) -> Result<String, Problem> {
    if !lease_store.trim().is_empty() {
        return Ok(lease_store.trim().to_owned());
    }
    if save_handler == "fleet" && !save_path.trim().is_empty() {
        return Ok(save_path.trim().to_owned());
    }
    Err("no store for leases: set fleet.lease_store to a store URL written as session.save_path (e.g. \"redis://10.0.0.5:6379?prefix=app:\"), or use session.save_handler = fleet".into())
}

fn with_store<T>(
    at: &StoreAt,
    op: impl FnOnce(&mut dyn LeaseStore) -> Result<T, fleet_core::StoreError>,
) -> Result<T, Problem> {
    LEASE_STORE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let reuse = matches!(&*slot, Some((kept, _)) if kept == at);
        if !reuse {
            let config = parse_save_path(&at.url).map_err(|e| format!("fleet.lease_store: {e}"))?;
            let store = open_lease_store(&config, at.timeouts).map_err(|e| advice::describe(&e))?;
            *slot = Some((at.clone(), store));
        }
        match slot.as_mut() {
            Some((_, store)) => op(store.as_mut()).map_err(|e| advice::describe(&e)),
            None => Err("no lease store".into()),
        }
    })
}

/// A PHP caller's number of seconds. Any finite value past [`MAX_TTL`] is [`MAX_TTL`] (the
/// documented cap), converted without `Duration::from_secs_f64`, which panics past
/// `u64::MAX` seconds (`fleet_lease_acquire('j', 1e20)`).
fn seconds(what: &str, value: f64, allow_zero: bool) -> Result<Duration, Problem> {
    let in_range = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0));
    match fleet_core::lease::saturating_seconds(value, MAX_TTL).filter(|_| in_range) {
        Some(d) => Ok(d),
        None => {
            let least = if allow_zero {
                "0 or more"
            } else {
                "more than 0"
            };
            Err(format!(
                "{what} must be a number of {least} seconds (values above {} count as {}), {value} given",
                MAX_TTL.as_secs(),
                MAX_TTL.as_secs()
            ))
        }
    }
}

/// `fleet_lease_acquire($name, $ttl, $wait = 0)`: the ticket (`<fence>-<token>`), or `None`
/// when another holder has the lease (after waiting up to `wait`).
pub fn acquire(at: &StoreAt, name: &str, ttl: f64, wait: f64) -> Result<Option<String>, Problem> {
    let ttl = seconds("$ttl", ttl, false)?;
    let wait = seconds("$wait", wait, true)?;
    fleet_core::lease::check_name(name).map_err(|e| advice::describe(&e))?;
    let token = LeaseToken::generate().map_err(|e| advice::describe(&e))?;
    let give_up = fleet_core::lease::later(Instant::now(), wait);
    loop {
        match with_store(at, |s| s.take_lease(name, &token, ttl, None))? {
            Taken::Won { fence } => {
                return Ok(Some(LeaseTicket { fence, token }.to_string()));
            }
            _ if fleet_core::lease::later(Instant::now(), RETRY_EVERY) <= give_up => {
                std::thread::sleep(RETRY_EVERY)
            }
            _ => return Ok(None),
        }
    }
}

fn ticket(text: &str) -> Result<LeaseTicket, Problem> {
    LeaseTicket::parse(text).ok_or_else(|| {
        "$token is not a lease token (pass the string fleet_lease_acquire() returned)".to_owned()
    })
}

/// `fleet_lease_renew($name, $token, $ttl)`: whether the lease was still this holder's (and
/// now lasts `ttl` more).
pub fn renew(at: &StoreAt, name: &str, token: &str, ttl: f64) -> Result<bool, Problem> {
    let ttl = seconds("$ttl", ttl, false)?;
    let ticket = ticket(token)?;
    with_store(at, |s| s.renew_lease(name, &ticket.token, ttl))
}

/// `fleet_lease_release($name, $token)`: whether the lease was still this holder's.
pub fn release(at: &StoreAt, name: &str, token: &str) -> Result<bool, Problem> {
    let ticket = ticket(token)?;
    with_store(at, |s| s.release_lease(name, &ticket.token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_the_lease_setting_then_fleets_save_path() {
        assert_eq!(
            store_url("redis://a", "fleet", "redis://b"),
            Ok("redis://a".into())
        );
        assert_eq!(store_url("", "fleet", "redis://b"), Ok("redis://b".into()));
        assert!(store_url("", "files", "/var/lib/php/sessions").is_err());
    }

    fn nowhere(timeouts: Timeouts) -> StoreAt {
        StoreAt {
            url: "redis://127.0.0.1:1".into(),
            timeouts,
            open_basedir: String::new(),
        }
    }

    #[test]
    fn huge_durations_are_capped_not_a_panic() {
        // fleet_lease_acquire('j', 1e20): past u64::MAX seconds, from_secs_f64 would panic.
        for huge in [1e20, 1e300, f64::MAX] {
            assert_eq!(seconds("$ttl", huge, false), Ok(MAX_TTL), "{huge}");
            assert_eq!(seconds("$wait", huge, true), Ok(MAX_TTL), "{huge}");
        }
        assert_eq!(seconds("$ttl", 2.5, false), Ok(Duration::from_millis(2500)));
        assert_eq!(seconds("$wait", 0.0, true), Ok(Duration::ZERO));
        // A huge $ttl reaches the store (and its connect error) instead of panicking.
        let t = Timeouts::default();
        let outcome = acquire(&nowhere(t), "job", 1e20, 0.0);
        assert!(
            matches!(&outcome, Err(m) if m.contains("cannot connect")),
            "{outcome:?}"
        );
    }

    #[test]
    fn bad_durations_and_tokens_are_refused_before_any_io() {
        let t = Timeouts::default();
        for (ttl, wait) in [(0.0, 0.0), (-1.0, 0.0), (f64::NAN, 0.0), (1.0, -1.0)] {
            assert!(acquire(&nowhere(t), "job", ttl, wait).is_err());
        }
        assert!(acquire(&nowhere(t), "bad name", 1.0, 0.0).is_err());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e300] {
            let refused = seconds("$ttl", bad, false);
            assert!(
                matches!(&refused, Err(m) if m.contains("$ttl") && m.contains("more than 0")),
                "{bad}: {refused:?}"
            );
        }
        let refused = renew(&nowhere(t), "job", "not-a-token", 1.0);
        assert!(matches!(refused, Err(m) if m.contains("not a lease token")));
    }
}
