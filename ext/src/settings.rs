//! The `fleet.*` INI entries: names, defaults, and validation of their values.

use std::time::Duration;

use fleet_core::{LeaseTerms, LockPolicy, Timeouts};

/// Lock TTL of a renewed lock when `fleet.lock_ttl` is 0: a SIGKILLed worker's lock ends
/// within this, and renewal (every third of it) keeps it alive under a live request.
pub const RENEWED_LOCK_TTL: Duration = Duration::from_secs(5);

/// Without renewal, a lock must outlive the request: `fleet.lock_ttl` 0 then means
/// `max_execution_time`, or this when that is 0 too (PHP's CLI), so a lock is never held
/// forever.
pub const FALLBACK_LOCK_TTL: Duration = Duration::from_secs(300);

/// The least maximum hold when `fleet.lock_max_hold` is 0. `max_execution_time` counts CPU
/// time on Linux, so a request waiting on I/O runs far longer in wall time, and FPM's
/// `request_terminate_timeout` (the wall-clock bound) cannot be read from PHP: five
/// minutes, or twice `max_execution_time` if that is more, lets any such request finish
/// and its shutdown write land, while a hung one frees its session after that.
pub const MIN_AUTO_MAX_HOLD: Duration = Duration::from_secs(300);

/// `fleet.max_waiters` by default: no cap. A cap turns requests that would have waited into
/// refusals, so it changes what an application sees under legitimate concurrency (every one
/// of N concurrent requests on a session is served, in turn, without it); it is one line to
/// turn on, and the README says how to size it (2 for pools of 4 workers, 3 for 8).
pub const DEFAULT_MAX_WAITERS: u32 = 0;

/// Settings in force for one request, read when the session is opened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub lock: LockPolicy,
    pub timeouts: Timeouts,
    /// Refuse a request at once when this many requests of this server already wait for its
    /// session (0: no cap).
    pub max_waiters: u32,
    /// The HTTP status of a refused request (0: leave it to the page).
    pub busy_status: u16,
    /// A request that waited longer than this for its lock gets an E_NOTICE naming the
    /// holder (`fleet.slow_lock_wait`; `None`: off).
    pub slow_lock_wait: Option<Duration>,
    /// Count into the shared metrics (`fleet.metrics`).
    pub metrics: bool,
}

/// Raw INI values as PHP holds them.
pub struct RawIni<'a> {
    pub locking: &'a str,
    pub max_waiters: &'a str,
    pub busy_status: &'a str,
    pub lock_ttl: &'a str,
    pub lock_renewal: &'a str,
    pub lock_max_hold: &'a str,
    pub lock_wait_timeout: &'a str,
    pub connect_timeout: &'a str,
    pub read_timeout: &'a str,
    pub slow_lock_wait: &'a str,
    pub metrics: &'a str,
    pub max_execution_time: i64,
}

impl Settings {
    /// Validates raw INI values. A bad value falls back to its default and yields a message
    /// naming the entry, so the request goes on.
    pub fn from_ini(raw: &RawIni<'_>) -> (Settings, Vec<String>) {
        let mut problems = Vec::new();
        let locking = boolean(&mut problems, "fleet.locking", raw.locking, "locking on");
        let renewal = boolean(
            &mut problems,
            "fleet.lock_renewal",
            raw.lock_renewal,
            "renewal on",
        );
        let max_execution_time = Duration::from_secs(raw.max_execution_time.max(0).unsigned_abs());
        let ttl = seconds(
            &mut problems,
            "fleet.lock_ttl",
            raw.lock_ttl,
            0.0,
            86_400.0,
            0.0,
        );
        let ttl = if ttl > Duration::ZERO {
            ttl
        } else if renewal {
            RENEWED_LOCK_TTL
        } else if max_execution_time > Duration::ZERO {
            max_execution_time
        } else {
            FALLBACK_LOCK_TTL
        };
        let max_hold = seconds(
            &mut problems,
            "fleet.lock_max_hold",
            raw.lock_max_hold,
            0.0,
            86_400.0,
            0.0,
        );
        let max_hold = if max_hold > Duration::ZERO {
            max_hold
        } else {
            MIN_AUTO_MAX_HOLD.max(max_execution_time * 2)
        };
        let wait = seconds(
            &mut problems,
            "fleet.lock_wait_timeout",
            raw.lock_wait_timeout,
            0.0,
            3_600.0,
            10.0,
        );
        let connect = seconds(
            &mut problems,
            "fleet.connect_timeout",
            raw.connect_timeout,
            0.001,
            3_600.0,
            1.0,
        );
        let read = seconds(
            &mut problems,
            "fleet.read_timeout",
            raw.read_timeout,
            0.001,
            3_600.0,
            1.0,
        );
        let metrics = boolean(&mut problems, "fleet.metrics", raw.metrics, "counting on");
        let slow_lock_wait = seconds(
            &mut problems,
            "fleet.slow_lock_wait",
            raw.slow_lock_wait,
            0.0,
            3_600.0,
            0.0,
        );
        let max_waiters = match raw.max_waiters.trim().parse::<u32>() {
            Ok(n) if n <= 10_000 => n,
            _ => {
                problems.push(format!(
                    "fleet.max_waiters=\"{}\" is not a number from 0 to 10000; using {DEFAULT_MAX_WAITERS}",
                    raw.max_waiters
                ));
                DEFAULT_MAX_WAITERS
            }
        };
        let busy_status = match raw.busy_status.trim().parse::<u16>() {
            Ok(0) => 0,
            Ok(code) if (400..=599).contains(&code) => code,
            _ => {
                problems.push(format!(
                    "fleet.busy_status=\"{}\" is not 0 or an HTTP error status such as 429 or 503; using 0",
                    raw.busy_status
                ));
                0
            }
        };
        let settings = Settings {
            max_waiters,
            busy_status,
            slow_lock_wait: (slow_lock_wait > Duration::ZERO).then_some(slow_lock_wait),
            metrics,
            lock: LockPolicy {
                lease: locking.then_some(LeaseTerms {
                    ttl,
                    wait_timeout: wait,
                    renew_for: renewal.then_some(max_hold),
                }),
            },
            timeouts: Timeouts {
                connect,
                command: read,
            },
        };
        (settings, problems)
    }
}

fn boolean(problems: &mut Vec<String>, name: &str, raw: &str, on: &str) -> bool {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => true,
        "0" | "off" | "no" | "false" | "" => false,
        other => {
            problems.push(format!(
                "{name}=\"{other}\" is not a boolean; using 1 ({on})"
            ));
            true
        }
    }
}

fn seconds(
    problems: &mut Vec<String>,
    name: &str,
    raw: &str,
    min: f64,
    max: f64,
    default: f64,
) -> Duration {
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v <= max => Duration::from_secs_f64(v),
        _ => {
            problems.push(format!(
                "{name}=\"{raw}\" is not a number of seconds from {min} to {max}; using {default}"
            ));
            Duration::from_secs_f64(default)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(
        locking: &'a str,
        ttl: &'a str,
        wait: &'a str,
        max_execution_time: i64,
    ) -> RawIni<'a> {
        RawIni {
            locking,
            max_waiters: "0",
            busy_status: "0",
            lock_ttl: ttl,
            lock_renewal: "1",
            lock_max_hold: "0",
            lock_wait_timeout: wait,
            connect_timeout: "1",
            read_timeout: "1",
            slow_lock_wait: "0",
            metrics: "1",
            max_execution_time,
        }
    }

    #[test]
    fn a_renewed_lock_is_short_and_renewed_for_a_bounded_hold() {
        let (s, p) = Settings::from_ini(&raw("1", "0", "10", 30));
        assert!(p.is_empty());
        assert_eq!(s.lock.lease.map(|l| l.ttl), Some(RENEWED_LOCK_TTL));
        assert_eq!(
            s.lock.lease.and_then(|l| l.renew_for),
            Some(MIN_AUTO_MAX_HOLD)
        );
        let (s, _) = Settings::from_ini(&raw("1", "0", "10", 600));
        assert_eq!(
            s.lock.lease.and_then(|l| l.renew_for),
            Some(Duration::from_secs(1200)),
            "twice a long max_execution_time"
        );
        let (s, _) = Settings::from_ini(&raw("1", "7", "10", 30));
        assert_eq!(s.lock.lease.map(|l| l.ttl), Some(Duration::from_secs(7)));
        let mut r = raw("1", "0", "10", 30);
        r.lock_max_hold = "40";
        assert_eq!(
            Settings::from_ini(&r)
                .0
                .lock
                .lease
                .and_then(|l| l.renew_for),
            Some(Duration::from_secs(40))
        );
    }

    #[test]
    fn without_renewal_lock_ttl_follows_max_execution_time_then_fallback() {
        let mut r = raw("1", "0", "10", 30);
        r.lock_renewal = "0";
        let lease = Settings::from_ini(&r).0.lock.lease;
        assert_eq!(
            lease.map(|l| (l.ttl, l.renew_for)),
            Some((Duration::from_secs(30), None))
        );
        r.max_execution_time = 0;
        assert_eq!(
            Settings::from_ini(&r).0.lock.lease.map(|l| l.ttl),
            Some(FALLBACK_LOCK_TTL)
        );
    }

    #[test]
    fn the_busy_cap_and_its_status() {
        let mut r = raw("1", "0", "10", 30);
        let (s, p) = Settings::from_ini(&r);
        assert!(p.is_empty());
        assert_eq!((s.max_waiters, s.busy_status), (DEFAULT_MAX_WAITERS, 0));
        r.max_waiters = "3";
        r.busy_status = "429";
        let (s, _) = Settings::from_ini(&r);
        assert_eq!((s.max_waiters, s.busy_status), (3, 429));
        r.max_waiters = "-1";
        r.busy_status = "200";
        let (s, p) = Settings::from_ini(&r);
        assert_eq!((s.max_waiters, s.busy_status), (DEFAULT_MAX_WAITERS, 0));
        assert!(p[0].contains("fleet.max_waiters=\"-1\"") && p[1].contains("fleet.busy_status"));
    }

    #[test]
    fn bad_values_fall_back_with_a_message() {
        let (s, p) = Settings::from_ini(&raw("maybe", "-3", "abc", 30));
        assert_eq!(p.len(), 3);
        assert!(p[1].contains("fleet.lock_ttl"));
        assert_eq!(
            s.lock.lease.map(|l| l.wait_timeout),
            Some(Duration::from_secs(10))
        );
        let (s, _) = Settings::from_ini(&raw("0", "0", "10", 30));
        assert_eq!(s.lock.lease, None);
    }
}
