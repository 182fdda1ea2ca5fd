//! What a PHP admin can do about a store error: the advice naming PHP's settings, which
//! fleet-core (no PHP in it) leaves out of its messages. Added here, once, for every hook
//! and function; fleetctl has its own, naming its flags.

use fleet_core::{ErrorKind, InvalidId, LockLoss, StoreError};

/// `e`'s message followed by the advice for its kind.
pub fn describe(e: &StoreError) -> String {
    format!("{e}{}", advice(e))
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
const TOO_LARGE: &str = " and this request has no session";
const NOT_RENEWED: &str =
    ". Turn fleet.lock_renewal on, or raise fleet.lock_ttl above your slowest request";
const MAX_HOLD: &str = ". Raise fleet.lock_max_hold if requests really hold a session that long";
const RENEWAL_FAILING: &str = ". Check the connection from this app server to the session store";
const VANISHED: &str = ". If workers or the network stall that long, raise fleet.lock_ttl";
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
        ErrorKind::LockLost => match e.lock_loss() {
            Some(LockLoss::NotRenewed { .. }) => NOT_RENEWED,
            Some(LockLoss::MaxHold { .. }) => MAX_HOLD,
            Some(LockLoss::RenewalFailing { .. }) => RENEWAL_FAILING,
            Some(LockLoss::Vanished { .. }) => VANISHED,
            _ => "",
        },
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
            NOT_RENEWED,
            MAX_HOLD,
            RENEWAL_FAILING,
            VANISHED,
            BAD_ID_BYTE,
        ];
        let mut named = 0;
        for text in all {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')) {
                let word = word.trim_end_matches('.');
                if word.starts_with("fleet.") {
                    assert!(registered.contains(&word), "{word} in {text:?}");
                    named += 1;
                }
            }
        }
        assert!(named >= 8, "the advice names the settings: {named}");
    }
}
