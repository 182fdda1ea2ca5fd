//! What a PHP admin can do about a store error: the advice naming PHP's settings, which
//! fleet-core (no PHP in it) leaves out of its messages. Added here, once, for every hook
//! and function; fleetctl has its own, naming its flags.

use fleet_core::{ErrorKind, InvalidId, LockLoss, StoreError};

/// `e`'s message followed by the advice for its kind.
pub fn describe(e: &StoreError) -> String {
    if let (Some(loss), Some(held)) = (e.lock_loss(), e.lock_held()) {
        return lock_lost(loss, held);
    }
    if e.kind() == ErrorKind::Schema {
        // Core's fix for a missing object or privilege says "the store URL"; in PHP that is
        // session.save_path, as these messages have always said.
        return e
            .to_string()
            .replace("the store URL's user", "the session.save_path user")
            .replace("the store URL", "session.save_path");
    }
    format!("{e}{}", advice(e))
}

/// A lost lock, worded with the settings that govern it where core says "the TTL": the
/// message PHP has always shown for it.
fn lock_lost(loss: &LockLoss, held: std::time::Duration) -> String {
    let secs = |d: &std::time::Duration| d.as_secs_f64();
    let why = match loss {
        LockLoss::NotRenewed { ttl } => format!(
            "it was not renewed (fleet.lock_renewal=0), so it ended when its TTL of {:.1} s (fleet.lock_ttl) ran out. Turn renewal on, or raise fleet.lock_ttl above your slowest request",
            secs(ttl)
        ),
        LockLoss::MaxHold { max, ttl } => format!(
            "renewal stopped at the maximum hold of {:.1} s (fleet.lock_max_hold), and it ended {:.1} s later. Raise fleet.lock_max_hold if requests really hold a session that long",
            secs(max),
            secs(ttl)
        ),
        LockLoss::RenewalFailing { cause, ttl } => format!(
            "renewing it failed ({cause}) until its TTL of {:.1} s (fleet.lock_ttl) ran out. Check the connection from this app server to the session store",
            secs(ttl)
        ),
        LockLoss::Vanished { renewals, ttl } => format!(
            "it was renewed {renewals} times but was gone at the write: it was deleted or expired on the server (a failover to a replica that had not received it, a flush, or a stall of the worker or the network longer than fleet.lock_ttl of {:.1} s)",
            secs(ttl)
        ),
        other => other.to_string(),
    };
    fleet_core::lock_lost_text(held, &why)
}

const CONNECT: &str = ". Check that the server runs and session.save_path points at it; raise fleet.connect_timeout (or connect_timeout= in session.save_path) if it is only slow to accept";
const TLS: &str = ". Set tls_ca_file= in session.save_path to the CA that signed the server certificate (tls_verify=0 skips verification)";
const TIMED_OUT: &str =
    ". Raise fleet.read_timeout (or timeout= in session.save_path) if the server is only slow";
const AUTH: &str = ". Check the user and password given in session.save_path (user=, password_file=, password_env=)";
const NOT_PRIMARY: &str = "; if this persists, point session.save_path at the primary (its managed endpoint name, the sentinels, or a host list)";
const LOCK_WAIT_TIMEOUT: &str = " (fleet.lock_wait_timeout), so this request has no session. Raise fleet.lock_wait_timeout if requests on one session really take that long";
const DAMAGED: &str =
    " and this request has no session. Delete it (fleetctl sessions destroy) if it stays unreadable";
const OVERTAKEN: &str = ". With fleet.locking = merge a write falls back to the session's lock after repeated conflicts; the save_path's lock=none leaves it none. Use lock=advisory or lock=row, or fleet.locking = 1 for pages that write one session this often";
const TOO_LARGE: &str = " and this request has no session";
const BAD_ID_BYTE: &str = " (check session.sid_bits_per_character and any session_id() call)";

/// The advice for `e`, written to follow its message.
fn advice(e: &StoreError) -> &'static str {
    match e.kind() {
        ErrorKind::Connect => CONNECT,
        ErrorKind::Tls => TLS,
        ErrorKind::TimedOut => TIMED_OUT,
        ErrorKind::Auth => AUTH,
        ErrorKind::NotPrimary => NOT_PRIMARY,
        ErrorKind::LockWaitTimeout => LOCK_WAIT_TIMEOUT,
        ErrorKind::DamagedData => DAMAGED,
        ErrorKind::TooLarge => TOO_LARGE,
        ErrorKind::Overtaken => OVERTAKEN,
        ErrorKind::InvalidId => match e.invalid_id() {
            Some(InvalidId::BadByte { .. }) => BAD_ID_BYTE,
            _ => "",
        },
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `fleet.*` setting the advice names is one the extension registers.
    #[test]
    fn advice_names_only_registered_settings() {
        let registered: Vec<&str> = crate::settings::ENTRIES
            .iter()
            .map(|e| e.name.to_str().unwrap_or_default())
            .collect();
        let all = [
            CONNECT,
            TLS,
            TIMED_OUT,
            AUTH,
            NOT_PRIMARY,
            LOCK_WAIT_TIMEOUT,
            DAMAGED,
            TOO_LARGE,
            OVERTAKEN,
            BAD_ID_BYTE,
        ];
        let ttl = std::time::Duration::from_secs(5);
        let held = std::time::Duration::from_secs(6);
        let lost: Vec<String> = [
            LockLoss::NotRenewed { ttl },
            LockLoss::MaxHold { max: held, ttl },
            LockLoss::RenewalFailing {
                cause: "timed out".into(),
                ttl,
            },
            LockLoss::Vanished { renewals: 2, ttl },
        ]
        .iter()
        .map(|loss| lock_lost(loss, held))
        .collect();
        let mut named = 0;
        for text in all.iter().copied().chain(lost.iter().map(String::as_str)) {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')) {
                let word = word.trim_end_matches('.');
                if word.starts_with("fleet.") {
                    assert!(registered.contains(&word), "{word} in {text:?}");
                    named += 1;
                }
            }
        }
        assert!(named >= 10, "the advice names the settings: {named}");
    }
}
