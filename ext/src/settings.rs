//! The `fleet.*` INI entries: names, defaults, and validation of their values.

use std::ffi::CStr;
use std::time::Duration;

use fleet_core::merge::OnConflict;
use fleet_core::{LeaseTerms, LockPolicy, Locking, Timeouts};

use crate::busy::MaxWaiters;

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

/// Settings in force for one request, read when the session is opened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The lock a request takes (`None` with locking off and in merge mode).
    pub lock: LockPolicy,
    /// `fleet.locking = merge`: how a conflict is settled (`None`: not merge mode).
    pub merge: Option<OnConflict>,
    /// The lock's terms whatever the mode: merge mode's last resort takes the lock.
    pub lease_terms: LeaseTerms,
    /// `fleet.merge_conflict`, for a save_path that turns merge mode on itself.
    pub on_conflict: OnConflict,
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

/// One `fleet.*` INI entry as PHP registers it: its name and its default.
pub struct Entry {
    pub name: &'static CStr,
    pub default: &'static CStr,
}

/// The one table of `fleet.*` entries: each line gives an entry's field in [`RawIni`] (its
/// name is `fleet.` and the field's name) and its default. It generates [`RawIni`], the
/// [`ENTRIES`] PHP registers (and phpinfo() and `ini_get_all()` show), the names code reads
/// one entry by ([`names`]), and the defaults a bad value falls back to. ext/fleet.ini and
/// docs/configuration.md list the same names and defaults (the install test checks both).
macro_rules! ini_entries {
    ($( $(#[doc = $doc:literal])+ $field:ident = $default:literal, )+) => {
        /// The `fleet.*` entries' values as PHP holds them, and `max_execution_time`, which
        /// lock lifetimes follow.
        // `lease_store` is read on its own, by the `fleet_lease_*()` functions.
        #[allow(dead_code)]
        #[derive(Clone, Debug)]
        pub struct RawIni {
            $( $(#[doc = $doc])+ pub $field: String, )+
            pub max_execution_time: i64,
        }

        /// Every `fleet.*` entry, in the order PHP registers (and phpinfo() lists) them.
        pub const ENTRIES: &[Entry] = &[
            $( Entry { name: names::$field, default: c_text(concat!($default, "\0")) }, )+
        ];

        /// Each entry's name, for code that reads one entry alone.
        #[allow(non_upper_case_globals)]
        pub mod names {
            use std::ffi::CStr;
            $( pub const $field: &CStr = super::c_text(concat!("fleet.", stringify!($field), "\0")); )+
        }

        /// Each entry's default, what a bad value falls back to.
        #[allow(non_upper_case_globals, dead_code)]
        mod defaults {
            $( pub const $field: &str = $default; )+
        }

        impl RawIni {
            /// Every entry's current value, through `value_of` (PHP's value of the named
            /// entry, "" when unset).
            pub fn read(mut value_of: impl FnMut(&CStr) -> String, max_execution_time: i64) -> RawIni {
                RawIni { $( $field: value_of(names::$field), )+ max_execution_time }
            }

            /// Every entry at its default.
            #[cfg(test)]
            pub fn defaults(max_execution_time: i64) -> RawIni {
                RawIni { $( $field: defaults::$field.to_owned(), )+ max_execution_time }
            }
        }
    };
}

ini_entries! {
    /// Count into the shared metrics.
    metrics = "1",
    /// E_NOTICE for a lock wait longer than this many seconds (0: off).
    slow_lock_wait = "0",
    /// Where `fleet_lease_*()` keep leases ("": the session store).
    lease_store = "",
    /// Requests of this server that may wait for one session (`auto`: [`MaxWaiters::Auto`]).
    max_waiters = "auto",
    /// The cap applies while another visitor was served within this many seconds
    /// (see [`MaxWaiters`]' notes on the window).
    max_waiters_window = "1",
    /// The HTTP status of a request refused as busy (0: leave it to the page).
    busy_status = "0",
    /// Lock sessions: 1, 0, or merge.
    locking = "1",
    /// Which side a session variable two requests changed takes in merge mode.
    merge_conflict = "ours",
    /// Lock TTL in seconds (0: automatic).
    lock_ttl = "0",
    /// Renew a held lock while the request runs.
    lock_renewal = "1",
    /// Longest hold that renewal keeps a lock for, in seconds (0: automatic).
    lock_max_hold = "0",
    /// Longest wait for a lock, in seconds.
    lock_wait_timeout = "10",
    /// Connect timeout, in seconds.
    connect_timeout = "1",
    /// Read (command) timeout, in seconds.
    read_timeout = "1",
}

/// `text`, which must end in its only NUL, as a C string. The table's texts are literals
/// that do: a NUL inside one would give an empty string (no panic can reach PHP), which
/// `every_entry_is_named_after_its_field_and_registered_once` and the install test's
/// check of the defaults against the docs would catch.
const fn c_text(text: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(text.as_bytes()) {
        Ok(c) => c,
        Err(_) => c"",
    }
}

impl Settings {
    /// Validates raw INI values. A bad value falls back to its default and yields a message
    /// naming the entry, so the request goes on.
    pub fn from_ini(raw: &RawIni) -> (Settings, Vec<String>) {
        let mut problems = Vec::new();
        let locking = Locking::parse(&raw.locking).unwrap_or_else(|| {
            problems.push(format!(
                "fleet.locking=\"{}\" is not 1, 0 or merge; using {} (locking on)",
                raw.locking.trim().to_ascii_lowercase(),
                defaults::locking
            ));
            Locking::parse(defaults::locking).unwrap_or(Locking::On)
        });
        let on_conflict = match raw.merge_conflict.trim().to_ascii_lowercase().as_str() {
            "ours" => OnConflict::Ours,
            "theirs" => OnConflict::Theirs,
            other => {
                problems.push(format!(
                    "fleet.merge_conflict=\"{other}\" is not ours or theirs; using {}",
                    defaults::merge_conflict
                ));
                OnConflict::Ours
            }
        };
        let renewal = boolean(
            &mut problems,
            "fleet.lock_renewal",
            &raw.lock_renewal,
            defaults::lock_renewal,
            "renewal on",
        );
        let max_execution_time = Duration::from_secs(raw.max_execution_time.max(0).unsigned_abs());
        let ttl = seconds(
            &mut problems,
            "fleet.lock_ttl",
            &raw.lock_ttl,
            0.0,
            86_400.0,
            defaults::lock_ttl,
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
            &raw.lock_max_hold,
            0.0,
            86_400.0,
            defaults::lock_max_hold,
        );
        let max_hold = if max_hold > Duration::ZERO {
            max_hold
        } else {
            MIN_AUTO_MAX_HOLD.max(max_execution_time * 2)
        };
        let wait = seconds(
            &mut problems,
            "fleet.lock_wait_timeout",
            &raw.lock_wait_timeout,
            0.0,
            3_600.0,
            defaults::lock_wait_timeout,
        );
        let connect = seconds(
            &mut problems,
            "fleet.connect_timeout",
            &raw.connect_timeout,
            0.001,
            3_600.0,
            defaults::connect_timeout,
        );
        let read = seconds(
            &mut problems,
            "fleet.read_timeout",
            &raw.read_timeout,
            0.001,
            3_600.0,
            defaults::read_timeout,
        );
        let metrics = boolean(
            &mut problems,
            "fleet.metrics",
            &raw.metrics,
            defaults::metrics,
            "counting on",
        );
        let slow_lock_wait = seconds(
            &mut problems,
            "fleet.slow_lock_wait",
            &raw.slow_lock_wait,
            0.0,
            3_600.0,
            defaults::slow_lock_wait,
        );
        let max_waiters = MaxWaiters::parse(&raw.max_waiters).unwrap_or_else(|| {
            problems.push(format!(
                "fleet.max_waiters=\"{}\" is not auto, 0 or a number up to 10000; using {}",
                raw.max_waiters,
                defaults::max_waiters
            ));
            MaxWaiters::parse(defaults::max_waiters).unwrap_or(MaxWaiters::Auto)
        });
        let max_waiters_window = seconds(
            &mut problems,
            "fleet.max_waiters_window",
            &raw.max_waiters_window,
            0.0,
            3_600.0,
            defaults::max_waiters_window,
        );
        let busy_status = busy_status(&raw.busy_status).unwrap_or_else(|| {
            problems.push(format!(
                "fleet.busy_status=\"{}\" is not 0 or an HTTP error status such as 429 or 503; using {}",
                raw.busy_status,
                defaults::busy_status
            ));
            busy_status(defaults::busy_status).unwrap_or(0)
        });
        let lease_terms = LeaseTerms {
            ttl,
            wait_timeout: wait,
            renew_for: renewal.then_some(max_hold),
        };
        let settings = Settings {
            lock: LockPolicy::default(),
            merge: None,
            lease_terms,
            on_conflict,
            max_waiters,
            max_waiters_window: (max_waiters_window > Duration::ZERO).then_some(max_waiters_window),
            busy_status,
            slow_lock_wait: (slow_lock_wait > Duration::ZERO).then_some(slow_lock_wait),
            metrics,
            timeouts: Timeouts {
                connect,
                command: read,
            },
        };
        (settings.with_locking(locking), problems)
    }

    /// These settings with `locking` in force (`fleet.locking`, or a save_path's `locking=`).
    pub fn with_locking(self, locking: Locking) -> Settings {
        Settings {
            lock: LockPolicy {
                lease: (locking == Locking::On).then_some(self.lease_terms),
            },
            merge: (locking == Locking::Merge).then_some(self.on_conflict),
            ..self
        }
    }

    /// How long a destroyed session's tombstone is kept in merge mode: as long as a request
    /// that read it before the logout may still be running and write.
    pub fn tombstone_lifetime(&self) -> Duration {
        self.lease_terms
            .renew_for
            .unwrap_or(self.lease_terms.ttl)
            .max(self.lease_terms.ttl)
    }
}

/// `fleet.busy_status`: 0, or an HTTP error status.
fn busy_status(text: &str) -> Option<u16> {
    match text.trim().parse::<u16>() {
        Ok(0) => Some(0),
        Ok(code) if (400..=599).contains(&code) => Some(code),
        _ => None,
    }
}

fn boolean(problems: &mut Vec<String>, name: &str, raw: &str, default: &str, on: &str) -> bool {
    let parse = |text: &str| match text.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" | "" => Some(false),
        _ => None,
    };
    parse(raw).unwrap_or_else(|| {
        let default_on = parse(default).unwrap_or(false);
        let meaning = if default_on { on } else { "off" };
        problems.push(format!(
            "{name}=\"{}\" is not a boolean; using {default} ({meaning})",
            raw.trim().to_ascii_lowercase()
        ));
        default_on
    })
}

fn seconds(
    problems: &mut Vec<String>,
    name: &str,
    raw: &str,
    min: f64,
    max: f64,
    default: &str,
) -> Duration {
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v <= max => Duration::from_secs_f64(v),
        _ => {
            problems.push(format!(
                "{name}=\"{raw}\" is not a number of seconds from {min} to {max}; using {default}"
            ));
            Duration::from_secs_f64(default.parse().unwrap_or(0.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(locking: &str, ttl: &str, wait: &str, max_execution_time: i64) -> RawIni {
        let mut raw = RawIni::defaults(max_execution_time);
        raw.locking = locking.into();
        raw.lock_ttl = ttl.into();
        raw.lock_wait_timeout = wait.into();
        raw
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
        r.lock_max_hold = "40".into();
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
        r.lock_renewal = "0".into();
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
        r.max_waiters = "2".into();
        r.max_waiters_window = "0".into();
        r.busy_status = "429".into();
        let (s, _) = Settings::from_ini(&r);
        assert_eq!(
            (s.max_waiters, s.max_waiters_window, s.busy_status),
            (MaxWaiters::Fixed(2), None, 429),
            "a window of 0 applies the cap always"
        );
        r.max_waiters = "0".into();
        assert_eq!(Settings::from_ini(&r).0.max_waiters, MaxWaiters::Off);
        r.max_waiters = "-1".into();
        r.max_waiters_window = "soon".into();
        r.busy_status = "200".into();
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

    #[test]
    fn the_defaults_of_the_table_are_valid_and_are_what_the_docs_say() {
        let (s, problems) = Settings::from_ini(&RawIni::defaults(30));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.max_waiters, MaxWaiters::Auto);
        assert_eq!(s.max_waiters_window, Some(Duration::from_secs(1)));
        assert_eq!(
            (s.busy_status, s.slow_lock_wait, s.metrics),
            (0, None, true)
        );
        // Locking is on, with these terms.
        assert_eq!(
            s.lock.lease.map(|l| (l.wait_timeout, l.ttl)),
            Some((Duration::from_secs(10), RENEWED_LOCK_TTL))
        );
        // fleetctl and the core's own callers use Timeouts::default(); PHP gets the same.
        assert_eq!(s.timeouts, Timeouts::default());
    }

    #[test]
    fn merge_mode_takes_no_lock_but_keeps_the_lock_terms_for_its_last_resort() {
        let mut r = RawIni::defaults(30);
        r.locking = "Merge".into();
        let (s, problems) = Settings::from_ini(&r);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((s.lock.lease, s.merge), (None, Some(OnConflict::Ours)));
        assert_eq!(s.lease_terms.ttl, RENEWED_LOCK_TTL);
        r.merge_conflict = "theirs".into();
        assert_eq!(Settings::from_ini(&r).0.merge, Some(OnConflict::Theirs));
        r.merge_conflict = "mine".into();
        let (s, problems) = Settings::from_ini(&r);
        assert_eq!(s.merge, Some(OnConflict::Ours));
        assert_eq!(
            problems,
            ["fleet.merge_conflict=\"mine\" is not ours or theirs; using ours"]
        );
        // A save_path's locking= overrides the entry either way.
        let locked = s.with_locking(Locking::On);
        assert_eq!((locked.lock.lease.is_some(), locked.merge), (true, None));
        // A tombstone outlives the longest request that may still write.
        assert!(s.tombstone_lifetime() >= MIN_AUTO_MAX_HOLD);
    }

    #[test]
    fn every_entry_is_named_after_its_field_and_registered_once() {
        let names: Vec<&str> = ENTRIES
            .iter()
            .map(|e| e.name.to_str().unwrap_or_default())
            .collect();
        assert_eq!(names.len(), 14);
        assert!(names.iter().all(|n| n.starts_with("fleet.")), "{names:?}");
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(names::lock_wait_timeout, c"fleet.lock_wait_timeout");
    }
}
