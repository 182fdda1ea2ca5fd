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

use crate::handler::Problem;

/// How often a waiting `fleet_lease_acquire()` tries again. Leases guard rare actions (a
/// mail, a queue item), so polling is cheap enough and needs no wake-up channel.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// The longest TTL accepted: a lease is for "once per period" or "one at a time"; a longer
/// hold is a bug (a forgotten release would lock the name out for that long).
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

thread_local! {
    /// This worker's lease store and the URL it was opened for.
    static LEASE_STORE: RefCell<Option<(String, Timeouts, Box<dyn LeaseStore>)>> =
        const { RefCell::new(None) };
}

/// Where leases live: `fleet.lease_store`, else `session.save_path` if Fleet handles sessions.
pub fn store_url(lease_store: &str, save_handler: &str, save_path: &str) -> Result<String, Problem> {
    if !lease_store.trim().is_empty() {
        return Ok(lease_store.trim().to_owned());
    }
    if save_handler == "fleet" && !save_path.trim().is_empty() {
        return Ok(save_path.trim().to_owned());
    }
    Err("Fleet: no store for leases: set fleet.lease_store to a store URL written as session.save_path (e.g. \"redis://10.0.0.5:6379?prefix=app:\"), or use session.save_handler = fleet".into())
}

fn with_store<T>(
    url: &str,
    timeouts: Timeouts,
    op: impl FnOnce(&mut dyn LeaseStore) -> Result<T, fleet_core::StoreError>,
) -> Result<T, Problem> {
    LEASE_STORE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let reuse = matches!(&*slot, Some((u, t, _)) if u == url && *t == timeouts);
        if !reuse {
            let config = parse_save_path(url).map_err(|e| format!("Fleet: fleet.lease_store: {e}"))?;
            let store = open_lease_store(&config, timeouts).map_err(|e| format!("Fleet: {e}"))?;
            *slot = Some((url.to_owned(), timeouts, store));
        }
        match slot.as_mut() {
            Some((_, _, store)) => op(store.as_mut()).map_err(|e| format!("Fleet: {e}")),
            None => Err("Fleet: no lease store".into()),
        }
    })
}

fn seconds(what: &str, value: f64, allow_zero: bool) -> Result<Duration, Problem> {
    let ok = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0));
    if !ok {
        let least = if allow_zero { "0 or more" } else { "more than 0" };
        return Err(format!("Fleet: {what} must be {least} seconds, {value} given"));
    }
    Ok(Duration::from_secs_f64(value).min(MAX_TTL))
}

/// `fleet_lease_acquire($name, $ttl, $wait = 0)`: the ticket (`<fence>-<token>`), or `None`
/// when another holder has the lease (after waiting up to `wait`).
pub fn acquire(
    url: &str,
    timeouts: Timeouts,
    name: &str,
    ttl: f64,
    wait: f64,
) -> Result<Option<String>, Problem> {
    let ttl = seconds("$ttl", ttl, false)?;
    let wait = seconds("$wait", wait, true)?;
    fleet_core::lease::check_name(name).map_err(|e| format!("Fleet: {e}"))?;
    let token = LeaseToken::generate().map_err(|e| format!("Fleet: {e}"))?;
    let give_up = Instant::now() + wait;
    loop {
        match with_store(url, timeouts, |s| s.take_lease(name, &token, ttl, None))? {
            Taken::Won { fence } => {
                return Ok(Some(LeaseTicket { fence, token }.to_string()));
            }
            _ if Instant::now() + RETRY_EVERY <= give_up => std::thread::sleep(RETRY_EVERY),
            _ => return Ok(None),
        }
    }
}

fn ticket(text: &str) -> Result<LeaseTicket, Problem> {
    LeaseTicket::parse(text).ok_or_else(|| {
        "Fleet: $token is not a lease token (pass the string fleet_lease_acquire() returned)".to_owned()
    })
}

/// `fleet_lease_renew($name, $token, $ttl)`: whether the lease was still this holder's (and
/// now lasts `ttl` more).
pub fn renew(url: &str, timeouts: Timeouts, name: &str, token: &str, ttl: f64) -> Result<bool, Problem> {
    let ttl = seconds("$ttl", ttl, false)?;
    let ticket = ticket(token)?;
    with_store(url, timeouts, |s| s.renew_lease(name, &ticket.token, ttl))
}

/// `fleet_lease_release($name, $token)`: whether the lease was still this holder's.
pub fn release(url: &str, timeouts: Timeouts, name: &str, token: &str) -> Result<bool, Problem> {
    let ticket = ticket(token)?;
    with_store(url, timeouts, |s| s.release_lease(name, &ticket.token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_the_lease_setting_then_fleets_save_path() {
        assert_eq!(store_url("redis://a", "fleet", "redis://b"), Ok("redis://a".into()));
        assert_eq!(store_url("", "fleet", "redis://b"), Ok("redis://b".into()));
        assert!(store_url("", "files", "/var/lib/php/sessions").is_err());
    }

    #[test]
    fn bad_durations_and_tokens_are_refused_before_any_io() {
        let t = Timeouts::default();
        for (ttl, wait) in [(0.0, 0.0), (-1.0, 0.0), (f64::NAN, 0.0), (1.0, -1.0)] {
            assert!(acquire("redis://127.0.0.1:1", t, "job", ttl, wait).is_err());
        }
        assert!(acquire("redis://127.0.0.1:1", t, "bad name", 1.0, 0.0).is_err());
        let refused = renew("redis://127.0.0.1:1", t, "job", "not-a-token", 1.0);
        assert!(matches!(refused, Err(m) if m.contains("not a lease token")));
    }
}
