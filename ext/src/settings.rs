//! The `fleet.*` INI entries: names, defaults, and validation of their values.

use std::time::Duration;

use fleet_core::{LeaseTerms, LockPolicy, Timeouts};

/// Lock TTL used when both `fleet.lock_ttl` and `max_execution_time` are 0 (PHP's CLI),
/// so a lock is never held forever.
pub const FALLBACK_LOCK_TTL: Duration = Duration::from_secs(300);

/// Settings in force for one request, read when the session is opened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub lock: LockPolicy,
    pub timeouts: Timeouts,
}

/// Raw INI values as PHP holds them.
pub struct RawIni<'a> {
    pub locking: &'a str,
    pub lock_ttl: &'a str,
    pub lock_wait_timeout: &'a str,
    pub connect_timeout: &'a str,
    pub read_timeout: &'a str,
    pub max_execution_time: i64,
}

impl Settings {
    /// Validates raw INI values. A bad value falls back to its default and yields a message
    /// naming the entry, so the request goes on.
    pub fn from_ini(raw: &RawIni<'_>) -> (Settings, Vec<String>) {
        let mut problems = Vec::new();
        let locking = match raw.locking.trim().to_ascii_lowercase().as_str() {
            "1" | "on" | "yes" | "true" => true,
            "0" | "off" | "no" | "false" | "" => false,
            other => {
                problems.push(format!(
                    "fleet.locking=\"{other}\" is not a boolean; using 1 (locking on)"
                ));
                true
            }
        };
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
        } else if raw.max_execution_time > 0 {
            Duration::from_secs(raw.max_execution_time.unsigned_abs())
        } else {
            FALLBACK_LOCK_TTL
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
        let settings = Settings {
            lock: LockPolicy {
                lease: locking.then_some(LeaseTerms {
                    ttl,
                    wait_timeout: wait,
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
            lock_ttl: ttl,
            lock_wait_timeout: wait,
            connect_timeout: "1",
            read_timeout: "1",
            max_execution_time,
        }
    }

    #[test]
    fn lock_ttl_follows_max_execution_time_then_fallback() {
        let (s, p) = Settings::from_ini(&raw("1", "0", "10", 30));
        assert!(p.is_empty());
        assert_eq!(s.lock.lease.map(|l| l.ttl), Some(Duration::from_secs(30)));
        let (s, _) = Settings::from_ini(&raw("1", "0", "10", 0));
        assert_eq!(s.lock.lease.map(|l| l.ttl), Some(FALLBACK_LOCK_TTL));
        let (s, _) = Settings::from_ini(&raw("1", "7", "10", 30));
        assert_eq!(s.lock.lease.map(|l| l.ttl), Some(Duration::from_secs(7)));
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
