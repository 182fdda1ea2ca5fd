//! The hooks in merge mode (`fleet.locking = merge`): a read takes no lock and remembers what
//! it read; a write lands only on the session as read, or merged with what other requests
//! stored meanwhile (see [`fleet_core::merge`]); a destroy leaves a tombstone that no request
//! still in flight can write over.

use std::time::{Duration, Instant};

use fleet_core::codec::SessionFormat;
use fleet_core::merge::{write_merged, MergeOutcome, MergeReport, MergeTerms, OnConflict};
use fleet_core::{LockPolicy, SessionId, Version, VersionedRead};

use super::{count, failed, problem, MemoryRoom, OpenSession, Problem, READ_AN_EXISTING_SESSION};
use crate::metrics::Counter;

/// Conditional writes a request tries before it takes the session's lock for its write. Each
/// refusal brings back what is stored now, so a try fails only if yet another request wrote
/// within the round trip; four in a row means the session is written faster than merges
/// land, and the lock then orders the writers.
const ATTEMPTS: u32 = 4;

/// How long a destroy waits between tries while a merge holds the session's lock (it writes
/// within a round trip or two).
const DESTROY_PAUSE: Duration = Duration::from_millis(2);

impl OpenSession {
    /// Whether this request's session is in merge mode.
    pub fn merging(&self) -> bool {
        self.settings.merge.is_some()
    }

    /// `read` in merge mode: the data and its version, no lock, no wait.
    pub(super) fn merge_read(
        &mut self,
        id: SessionId,
        room: MemoryRoom,
        maxlifetime: i64,
    ) -> Result<Vec<u8>, Problem> {
        let settings = self.settings;
        // What lazy_write would give a stored session that this request leaves unchanged:
        // set by the read itself where the backend can, so nothing is left to send.
        let lifetime = self.lifetimes.lifetime(
            super::lifetime(maxlifetime),
            false,
            self.user_agent.as_deref(),
        );
        let endpoint = self.store.endpoint().to_owned();
        let Some(store) = self.store.as_merge() else {
            return Err(no_merge(&endpoint));
        };
        let read = store
            .read_versioned_and_touch(&id, lifetime)
            .map_err(|e| super::read_failed(&settings, e, room))?;
        let (read, touched) = read;
        self.touched_at_read = (touched && read.data.is_some()).then(|| (id.clone(), lifetime));
        let size = read.data.as_ref().map_or(0, Vec::len);
        count(&self.settings, Counter::BytesRead, size as u64);
        match read.data {
            Some(_) => READ_AN_EXISTING_SESSION.with(|c| c.set(true)),
            None => self.new_id = Some(id.clone()),
        }
        let data = read.data.clone().unwrap_or_default();
        self.merge_base = Some((id, read));
        self.merge_read_at = Some(Instant::now());
        Ok(data)
    }

    /// `write` in merge mode. `format` is `session.serialize_handler`'s, when Fleet can cut
    /// its sessions into variables.
    pub(super) fn merge_write(
        &mut self,
        id: SessionId,
        data: &[u8],
        lifetime: Duration,
        format: Option<SessionFormat>,
    ) -> Result<(), Problem> {
        let base = match self.merge_base.take() {
            Some((read_id, read)) if read_id == id => read,
            other => {
                // Not read by this request (a new id it made): written only if still absent.
                self.merge_base = other;
                VersionedRead {
                    data: None,
                    version: Version::default(),
                }
            }
        };
        if base.data.as_deref() == Some(data) {
            // PHP writes unchanged data when lazy_write is off: only the lifetime is new.
            self.merge_base = Some((id.clone(), base));
            return self.merge_refresh(&id, lifetime);
        }
        let terms = MergeTerms {
            on_conflict: self.settings.merge.unwrap_or(OnConflict::Ours),
            format,
            attempts: ATTEMPTS,
            lock: self.store.lock_policy(LockPolicy {
                lease: Some(self.settings.lease_terms),
            }),
            read_outlived_tombstones: base.data.is_some()
                && self
                    .merge_read_at
                    .is_some_and(|at| at.elapsed() >= self.settings.tombstone_lifetime()),
        };
        let report = write_merged(self.store.as_mut(), &id, &base, data, lifetime, terms)
            .map_err(|e| failed(&self.settings, e))?;
        self.count_merge(&report);
        self.merge_notice = self.describe_merge(&id, &report);
        if report.sent > 0 {
            count(&self.settings, Counter::BytesWritten, report.sent as u64);
            if self.new_id.as_ref() == Some(&id) && base.data.is_none() {
                self.new_id = None;
                count(&self.settings, Counter::SessionsCreated, 1);
            }
        }
        Ok(())
    }

    /// lazy_write's refresh in merge mode: no lock, and an expired session stays expired.
    pub(super) fn merge_refresh(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
    ) -> Result<(), Problem> {
        let settings = self.settings;
        match self.store.as_merge() {
            Some(store) => store
                .refresh(id, lifetime)
                .map_err(|e| failed(&settings, e)),
            None => Ok(()),
        }
    }

    fn count_merge(&self, report: &MergeReport) {
        let s = &self.settings;
        match report.outcome {
            MergeOutcome::Written if report.sent > 0 => count(s, Counter::MergeWrites, 1),
            MergeOutcome::Written => {}
            MergeOutcome::Gone => count(s, Counter::MergeGone, 1),
        }
        count(s, Counter::MergeRetries, u64::from(report.retries));
        count(s, Counter::MergeConflicts, report.conflicts.len() as u64);
        if report.took_lock {
            count(s, Counter::MergeLockFallbacks, 1);
        }
    }

    /// The notice a merge gives: a conflict (with the session and its variables), or a
    /// write dropped because the session is gone.
    fn describe_merge(&self, id: &SessionId, report: &MergeReport) -> Option<Problem> {
        if report.outcome == MergeOutcome::Gone {
            return Some(format!(
                "session {} was destroyed or expired after this request read it (fleet.locking = merge: a logout wins), so this request's changes to it were not written",
                id.abbreviated()
            ));
        }
        if report.conflicts.is_empty() {
            return None;
        }
        let what = match report.whole {
            true => "the whole session (it cannot be merged per variable: another serialize handler, references between variables, a Serializable object, or a value Fleet's reader does not take, such as an enum)".to_owned(),
            false => {
                let names = &report.conflicts;
                let shown: Vec<String> = names
                    .iter()
                    .take(MAX_NAMES_SHOWN)
                    .map(|n| format!("'{}'", printable(n)))
                    .collect();
                let more = match names.len().saturating_sub(MAX_NAMES_SHOWN) {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                let noun = if names.len() == 1 { "variable" } else { "variables" };
                format!("{noun} {}{more}", shown.join(", "))
            }
        };
        let (kept, policy) = match self.settings.merge {
            Some(OnConflict::Theirs) => ("the value the other request stored", "theirs"),
            _ => ("this request's value", "ours"),
        };
        Some(format!(
            "session {}: another request changed {what} differently since this request read it; kept {kept} (fleet.merge_conflict = {policy})",
            id.abbreviated()
        ))
    }

    /// `destroy` in merge mode: deletes the session and leaves a tombstone, waiting (up to
    /// `fleet.lock_wait_timeout`) while a merge holds its lock.
    pub(super) fn merge_destroy(&mut self, id: &SessionId) -> Result<(), Problem> {
        if matches!(&self.merge_base, Some((read_id, _)) if read_id == id) {
            self.merge_base = None;
        }
        let remember = self.settings.tombstone_lifetime();
        let wait = self.settings.lease_terms.wait_timeout;
        let settings = self.settings;
        let endpoint = self.store.endpoint().to_owned();
        let Some(store) = self.store.as_merge() else {
            return Err(no_merge(&endpoint));
        };
        let started = Instant::now();
        while !store
            .destroy_for_good(id, remember)
            .map_err(|e| failed(&settings, e))?
        {
            if started.elapsed() >= wait {
                return Err(problem(format!(
                    "session {} was not destroyed: another request held its lock for longer than fleet.lock_wait_timeout ({:.1} s)",
                    id.abbreviated(),
                    wait.as_secs_f64()
                )));
            }
            std::thread::sleep(DESTROY_PAUSE);
        }
        count(&self.settings, Counter::SessionsDestroyed, 1);
        Ok(())
    }

    /// Whether the read of `id` already gave it the lifetime a refresh now would.
    pub(super) fn touched_at_read(&self, id: &SessionId, maxlifetime: i64) -> bool {
        matches!(&self.touched_at_read, Some((read, lifetime)) if read == id && *lifetime == self.lifetime_of(id, maxlifetime))
    }

    /// The notice of the last merge-mode write, once.
    pub fn take_merge_notice(&mut self) -> Option<Problem> {
        self.merge_notice.take()
    }
}

/// The conflicting variables a notice names; the rest are counted.
const MAX_NAMES_SHOWN: usize = 10;

/// A variable's name as a notice shows it: at most 64 characters, with control and
/// invisible formatting characters (bidirectional overrides, zero-width ones), quotes and
/// backslashes escaped, so a crafted name cannot make the notice say something else.
fn printable(name: &str) -> String {
    name.chars()
        .take(64)
        .flat_map(
            |c| match c.is_control() || c == '\'' || c == '\\' || formatting(c) {
                true => c.escape_unicode().collect::<Vec<_>>(),
                false => vec![c],
            },
        )
        .collect()
}

/// Unicode's invisible formatting characters (category Cf) that change how text around
/// them reads: bidirectional controls, zero-width characters, the byte order mark.
fn formatting(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A store without merge mode's steps (every backend Fleet has offers them: this is for a
/// store added without them).
fn no_merge(endpoint: &str) -> Problem {
    problem(format!(
        "{endpoint}: this store does not offer locking=merge; set fleet.locking (or the save_path's locking=) to 1 or 0"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_notices_cannot_fake_text() {
        assert_eq!(printable("cart"), "cart");
        assert_eq!(printable("a'b"), "a\\u{27}b");
        assert_eq!(printable("x\u{202E}y\n"), "x\\u{202e}y\\u{a}");
        assert_eq!(printable(&"n".repeat(100)).len(), 64);
    }
}
