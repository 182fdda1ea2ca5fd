//! Merge mode's steps on MySQL/MariaDB: a read that returns the data with its SHA-1 as the
//! version (computed by the server, so nothing is stored beside the data), a write made
//! only if the stored bytes still have that digest, and a destroy that leaves a tombstone:
//! a row `fleet:gone:<SHA1(id)>` (no session id has a `:`) holding the destroy's stamp,
//! which expires and is deleted by gc like any other row.
//!
//! A write against the session as read is one round trip, as on Redis. One that is refused
//! takes a second (a read of what is stored now): the binary protocol carries one statement
//! per round trip, and a procedure returning the row would have to be created and granted
//! like the locking ones, for a step that only a conflict takes.
//!
//! The lock a merge falls back to is respected: with `lock=advisory`, writes and destroys
//! check `IS_FREE_LOCK` in the statement that makes them (or that this connection holds
//! it), and with `lock=row` InnoDB's row lock orders them. The holder's own write is
//! conditional too: the server may check `IS_FREE_LOCK` before it locks the row, so a write
//! that passed that check just before the lock was taken may land after the holder's read
//! (e2e showed 1 increment in 1 600 lost that way while the holder wrote unconditionally).

use std::time::Duration;

use ::mysql::prelude::Queryable;

use super::{lifetime_secs, MySqlStore};
use crate::error::StoreError;
use crate::id::SessionId;
use crate::keeper::Retry;
use crate::store::{ConditionalWrite, HeldLock, MergeStore, Version, VersionedRead};

/// What a tombstone's version starts with; a data version is a bare SHA-1.
const GONE: &str = "gone:";

/// The statements' texts for `table`.
pub(super) struct MergeTexts {
    pub(super) read: String,
    pub(super) read_locked: String,
    pub(super) update: String,
    pub(super) insert: String,
    pub(super) tombstone: String,
    pub(super) refresh: String,
}

impl MergeTexts {
    pub(super) fn new(table: &str) -> MergeTexts {
        // The tombstone's id is computed here (see `tombstone_id`) and bound: an expression
        // in SQL has the connection's character set, not the ascii `id` column's, and then
        // the primary key cannot be used (each write scanned the table).
        let tombstone_id = "?";
        // Free, or held by this connection (a merge's last resort writes holding it).
        let lock_free = "(IS_FREE_LOCK(CONCAT('fleet:', SHA1(?))) \
             OR IS_USED_LOCK(CONCAT('fleet:', SHA1(?))) = CONNECTION_ID())";
        let read = format!(
            "SELECT `id` = ?, `data`, SHA1(`data`) FROM `{table}` \
             WHERE `id` IN (?, {tombstone_id}) AND `expires` > UNIX_TIMESTAMP()"
        );
        // A write to a stored session is refused when its bytes changed, and a refused write
        // reads the tombstone: a logout since the read then drops it. The UPDATE itself does
        // not read the tombstone (reading its own table more than doubled its cost, 467
        // against 215 µs a write in MariaDB, as a join or a subquery alike), so one case
        // differs from Redis: a session created again after a logout with exactly the bytes
        // the request read takes that request's write (Redis refuses it). README: limits.
        MergeTexts {
            read_locked: format!("{read} FOR UPDATE"),
            read,
            update: format!(
                "UPDATE `{table}` SET `data` = ?, `expires` = UNIX_TIMESTAMP() + ? \
                 WHERE `id` = ? AND `expires` > UNIX_TIMESTAMP() AND SHA1(`data`) = ? AND {lock_free}"
            ),
            // A session that was absent when read: inserted if it still is (or only an
            // expired row is left), and if the tombstone is still the one read (none, or
            // the same stamp).
            insert: format!(
                "INSERT INTO `{table}` (`id`, `data`, `expires`) \
                 SELECT ?, ?, UNIX_TIMESTAMP() + ? FROM DUAL \
                 WHERE COALESCE((SELECT g.`data` FROM `{table}` AS g WHERE g.`id` = {tombstone_id} \
                 AND g.`expires` > UNIX_TIMESTAMP()), ?) <=> ? AND {lock_free} \
                 ON DUPLICATE KEY UPDATE \
                 `data` = IF(`expires` <= UNIX_TIMESTAMP(), VALUES(`data`), `data`), \
                 `expires` = IF(`expires` <= UNIX_TIMESTAMP(), VALUES(`expires`), `expires`)"
            ),
            // Unlike `touch` (which a lock holder sends, on a row it may have just inserted
            // expired as a placeholder), only a live session's lifetime is extended.
            refresh: format!(
                "UPDATE `{table}` SET `expires` = UNIX_TIMESTAMP() + ? WHERE `id` = ? AND `expires` > UNIX_TIMESTAMP()"
            ),
            tombstone: format!(
                "INSERT INTO `{table}` (`id`, `data`, `expires`) \
                 SELECT {tombstone_id}, CONCAT(UNIX_TIMESTAMP(NOW(6)), '.', CONNECTION_ID()), UNIX_TIMESTAMP() + ? \
                 FROM DUAL WHERE {lock_free} \
                 ON DUPLICATE KEY UPDATE `data` = VALUES(`data`), `expires` = VALUES(`expires`)"
            ),
        }
    }
}

/// The id of session `id`'s tombstone row: `fleet:gone:` and the SHA-1 of the id (a colon
/// never appears in a session id, and the hash keeps any id within the column).
fn tombstone_id(id: &SessionId) -> String {
    format!("fleet:gone:{}", sha1_smol::Sha1::from(id.as_str()).digest())
}

/// One row of a merge read: whether it is the session's (else its tombstone), its bytes
/// and their digest.
type MergeRow = (bool, Vec<u8>, String);

impl MySqlStore {
    fn read_rows(&mut self, id: &SessionId, locked: bool) -> Result<VersionedRead, StoreError> {
        let tomb = tombstone_id(id);
        let rows: Vec<MergeRow> = self.run(Retry::Idempotent, |c, sql| {
            let statement = match locked {
                true => &sql.merge.read_locked,
                false => &sql.merge.read,
            };
            c.exec(statement, (id.as_str(), id.as_str(), tomb.as_str()))
        })?;
        let (mut session, mut tombstone) = (None, None);
        for (is_session, data, digest) in rows {
            match is_session {
                true => session = Some((data, digest)),
                false => tombstone = Some(String::from_utf8_lossy(&data).into_owned()),
            }
        }
        // As Redis's scripts write it (see `version_lua!` there).
        Ok(match (session, tombstone) {
            (Some((data, digest)), Some(stamp)) => VersionedRead {
                data: Some(data),
                version: Version(Some(format!("{digest}@{stamp}"))),
            },
            (Some((data, digest)), None) => VersionedRead {
                data: Some(data),
                version: Version(Some(digest)),
            },
            (None, stamp) => VersionedRead {
                data: None,
                version: Version(stamp.map(|s| format!("{GONE}{s}"))),
            },
        })
    }
}

impl MySqlStore {
    /// The conditional write, on the connection holding `holding` if given.
    fn conditional_write(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
        holding: Option<&HeldLock>,
    ) -> Result<ConditionalWrite, StoreError> {
        let seconds = lifetime_secs(lifetime);
        let key = self.lock_key(id);
        let key = key.as_str();
        let (digest, stamp) = (base.digest(), base.tombstone());
        let tomb = tombstone_id(id);
        let tomb = tomb.as_str();
        let op = |c: &mut ::mysql::Conn, sql: &super::statements::Statements| {
            match digest {
                Some(digest) => c.exec_drop(
                    &sql.merge.update,
                    (data, seconds, id.as_str(), digest, key, key),
                )?,
                None => c.exec_drop(
                    &sql.merge.insert,
                    (id.as_str(), data, seconds, tomb, stamp, stamp, key, key),
                )?,
            }
            Ok(c.affected_rows())
        };
        let written = match holding {
            Some(lock) => self.run_holding(lock, op)?,
            None => self.run(Retry::IfRefused, op)?,
        };
        if written > 0 {
            return Ok(ConditionalWrite::Written);
        }
        let now = self.read_rows(id, false)?;
        if now.version.logged_out_since(base) {
            return Ok(ConditionalWrite::Gone);
        }
        Ok(match (&now.version == base, &now.data) {
            // Stored as read, yet not written: the lock's holder is writing it.
            (true, _) => ConditionalWrite::Locked,
            // Absent when read and still absent (the tombstone read has expired since, which
            // is no logout): the insert met the lock.
            (false, None) if base.digest().is_none() => ConditionalWrite::Locked,
            (false, None) => ConditionalWrite::Gone,
            (false, Some(_)) => ConditionalWrite::Changed(now),
        })
    }
}

impl MergeStore for MySqlStore {
    fn read_versioned(&mut self, id: &SessionId) -> Result<VersionedRead, StoreError> {
        self.read_rows(id, false)
    }

    fn read_versioned_under_lock(
        &mut self,
        id: &SessionId,
        _lifetime: Duration,
    ) -> Result<VersionedRead, StoreError> {
        self.read_rows(id, true)
    }

    fn write_if_unchanged(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
    ) -> Result<ConditionalWrite, StoreError> {
        self.conditional_write(id, base, data, lifetime, None)
    }

    fn write_holding(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
        lock: &HeldLock,
    ) -> Result<ConditionalWrite, StoreError> {
        let outcome = self.conditional_write(id, base, data, lifetime, Some(lock))?;
        if outcome == ConditionalWrite::Written {
            // Commits the row lock's transaction, or releases the named lock.
            let released = self.release(id, lock);
            self.locked = None;
            released?;
        }
        Ok(outcome)
    }

    fn refresh(&mut self, id: &SessionId, lifetime: Duration) -> Result<(), StoreError> {
        let seconds = lifetime_secs(lifetime);
        self.run(Retry::IfRefused, |c, sql| {
            c.exec_drop(&sql.merge.refresh, (seconds, id.as_str()))
        })
    }

    fn destroy_for_good(&mut self, id: &SessionId, remember: Duration) -> Result<bool, StoreError> {
        let seconds = lifetime_secs(remember);
        let lock_key = self.lock_key(id);
        // The tombstone first: a write between the two statements lands on the row the
        // second deletes, and a new session's insert sees the tombstone.
        let marked = self.run(Retry::IfRefused, |c, sql| {
            c.exec_drop(
                &sql.merge.tombstone,
                (
                    tombstone_id(id),
                    seconds,
                    lock_key.as_str(),
                    lock_key.as_str(),
                ),
            )?;
            Ok(c.affected_rows())
        })?;
        if marked == 0 {
            return Ok(false);
        }
        self.run(Retry::IfRefused, |c, sql| {
            c.exec_drop(&sql.delete, (id.as_str(),))
        })?;
        Ok(true)
    }
}
