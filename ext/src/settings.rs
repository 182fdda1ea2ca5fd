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

/// How many requests of this server may wait for one session (`fleet.max_waiters`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxWaiters {
    /// `0`: no cap.
    Off,
    /// `auto` (the default): half this server's workers less the holder, at least
    /// [`MIN_AUTO_WAITERS`] ([`MaxWaiters::for_workers`]).
    Auto,
    /// A number of waiters.
    Fixed(u32),
}

/// The least cap `auto` sets: a holder and 2 waiters, so 4 parallel requests of one page,
/// which the balancer splits across the app servers, are not refused on small pools.
pub const MIN_AUTO_WAITERS: u32 = 2;

impl MaxWaiters {
    /// The cap for a server of `workers` workers (`None`: no cap). `auto` lets one session
    /// take at most half the pool: a holder and `workers / 2 - 1` waiters, at least
    /// [`MIN_AUTO_WAITERS`]. So 4 workers: 2 waiters (3 of 4 workers on one session);
    /// 8 workers: 3 (4 of 8, and 4 parallel requests on one server are never refused);
    /// 16: 7. A browser opens at most 6 connections to a host, so one tab's parallel
    /// requests are a holder and a few waiters, split across the app servers.
    pub fn for_workers(self, workers: u32) -> Option<u32> {
        match self {
            MaxWaiters::Off => None,
            MaxWaiters::Fixed(n) => Some(n),
            MaxWaiters::Auto => Some((workers / 2).saturating_sub(1).max(MIN_AUTO_WAITERS)),
        }
    }

    /// The smallest cap this setting can come to, whatever the pool: below this many
    /// waiters nothing needs counting.
    pub fn floor(self) -> Option<u32> {
        match self {
            MaxWaiters::Off => None,
            MaxWaiters::Fixed(n) => Some(n),
            MaxWaiters::Auto => Some(MIN_AUTO_WAITERS),
        }
    }
}

impl std::fmt::Display for MaxWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxWaiters::Off => f.write_str("0"),
            MaxWaiters::Auto => f.write_str("auto"),
            MaxWaiters::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// `fleet.max_waiters_window` by default: the cap applies while this server has finished a
/// request for another session, or a page without one, within the last second. The cap
/// only protects other visitors; with nobody else to serve, a burst on one session (a load
/// test, a job firing requests) is served in full, in turn, as without a cap. Under a
/// hammered session the other visitors keep being served, so it stays in force; a second
/// is longer than the pauses between their requests under load and short enough that an
/// earlier, finished visit does not turn a later burst into refusals.
pub const DEFAULT_MAX_WAITERS_WINDOW: f64 = 1.0;

/// Settings in force for one request, read when the session is opened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub lock: LockPolicy,
    pub timeouts: Timeouts,
    /// Refuse a request at once when this many requests of this server already wait for its
    /// session.
    pub max_waiters: MaxWaiters,
    /// The cap applies only while another visitor was served within this (`None`: always,
    /// `fleet.max_waiters_window = 0`).
    pub max_waiters_window: Option<Duration>,
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
    pub max_waiters_window: &'a str,
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
        let max_waiters = match raw.max_waiters.trim() {
            "auto" | "" => MaxWaiters::Auto,
            "0" => MaxWaiters::Off,
            n => match n.parse::<u32>() {
                Ok(n) if n <= 10_000 => MaxWaiters::Fixed(n),
                _ => {
                    problems.push(format!(
                        "fleet.max_waiters=\"{}\" is not auto, 0 or a number up to 10000; using auto",
                        raw.max_waiters
                    ));
                    MaxWaiters::Auto
                }
            },
        };
        let max_waiters_window = seconds(
            &mut problems,
            "fleet.max_waiters_window",
            raw.max_waiters_window,
            0.0,
            3_600.0,
            DEFAULT_MAX_WAITERS_WINDOW,
        );
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
            max_waiters_window: (max_waiters_window > Duration::ZERO).then_some(max_waiters_window),
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
            max_waiters: "auto",
            max_waiters_window: "1",
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
        assert_eq!(
            (s.max_waiters, s.max_waiters_window, s.busy_status),
            (MaxWaiters::Auto, Some(Duration::from_secs(1)), 0)
        );
        r.max_waiters = "2";
        r.max_waiters_window = "0";
        r.busy_status = "429";
        let (s, _) = Settings::from_ini(&r);
        assert_eq!(
            (s.max_waiters, s.max_waiters_window, s.busy_status),
            (MaxWaiters::Fixed(2), None, 429),
            "a window of 0 applies the cap always"
        );
        r.max_waiters = "0";
        assert_eq!(Settings::from_ini(&r).0.max_waiters, MaxWaiters::Off);
        r.max_waiters = "-1";
        r.max_waiters_window = "soon";
        r.busy_status = "200";
        let (s, p) = Settings::from_ini(&r);
        assert_eq!(
            (s.max_waiters, s.max_waiters_window, s.busy_status),
            (MaxWaiters::Auto, Some(Duration::from_secs(1)), 0)
        );
        assert!(p[0].contains("fleet.max_waiters=\"-1\""), "{p:?}");
        assert!(p[1].contains("fleet.max_waiters_window"), "{p:?}");
        assert!(p[2].contains("fleet.busy_status"), "{p:?}");
    }

    #[test]
    fn auto_lets_one_session_take_at_most_half_the_pool() {
        let auto = |workers| MaxWaiters::Auto.for_workers(workers);
        // (workers, waiters): with the holder, one session takes at most half the pool,
        // and never fewer than a holder and 2 waiters.
        for (workers, waiters) in [(1, 2), (4, 2), (5, 2), (8, 3), (10, 4), (16, 7), (64, 31)] {
            assert_eq!(auto(workers), Some(waiters), "{workers} workers");
        }
        assert_eq!(MaxWaiters::Off.for_workers(8), None);
        assert_eq!(MaxWaiters::Fixed(5).for_workers(4), Some(5));
        assert_eq!(MaxWaiters::Auto.floor(), Some(MIN_AUTO_WAITERS));
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
