//! The SQL of every statement a store runs, built once per store with the table name in
//! it, and prepared once per connection.

use super::gc::{GC_BATCH, GC_CHUNK, GC_MARKER_ID};
use super::schema::procedure_name;
use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Error as MySqlError, Statement};

/// The SQL of every statement, with the table name in it, built once per store.
pub(super) struct StatementTexts {
    pub(super) get_lock: String,
    pub(super) release_lock: String,
    pub(super) read: String,
    pub(super) read_for_update: String,
    pub(super) insert_placeholder: String,
    pub(super) write: String,
    pub(super) touch: String,
    pub(super) delete: String,
    pub(super) exists: String,
    pub(super) gc_find: String,
    pub(super) gc_delete: String,
    pub(super) gc_claim: String,
    pub(super) gc_marker: String,
    pub(super) gc_due_now: String,
    pub(super) call_read: String,
    pub(super) call_write: String,
    pub(super) call_touch: String,
    pub(super) merge: super::merge::MergeTexts,
}

impl StatementTexts {
    pub(super) fn new(table: &str) -> StatementTexts {
        StatementTexts {
            merge: super::merge::MergeTexts::new(table),
            call_read: format!("CALL `{}`(?, ?, ?)", procedure_name(table, "read")),
            call_write: format!("CALL `{}`(?, ?, ?, ?)", procedure_name(table, "write")),
            call_touch: format!("CALL `{}`(?, ?, ?)", procedure_name(table, "touch")),
            // Lock names are limited to 64 characters; a hash of database, table and id fits
            // any id.
            get_lock: "SELECT GET_LOCK(CONCAT('fleet:', SHA1(?)), ?)".to_owned(),
            release_lock: "SELECT RELEASE_LOCK(CONCAT('fleet:', SHA1(?)))".to_owned(),
            read: format!("SELECT `data` FROM `{table}` WHERE `id` = ? AND `expires` > UNIX_TIMESTAMP()"),
            read_for_update: format!(
                "SELECT `data`, `expires` > UNIX_TIMESTAMP() FROM `{table}` WHERE `id` = ? FOR UPDATE"
            ),
            // A new session has no row to lock; this makes one (already expired, so it reads as
            // empty) and locks it. A concurrent request inserting the same id waits here.
            insert_placeholder: format!(
                "INSERT INTO `{table}` (`id`, `data`, `expires`) VALUES (?, '', 0) ON DUPLICATE KEY UPDATE `id` = `id`"
            ),
            write: format!(
                "INSERT INTO `{table}` (`id`, `data`, `expires`) VALUES (?, ?, UNIX_TIMESTAMP() + ?) \
                 ON DUPLICATE KEY UPDATE `data` = VALUES(`data`), `expires` = VALUES(`expires`)"
            ),
            touch: format!("UPDATE `{table}` SET `expires` = UNIX_TIMESTAMP() + ? WHERE `id` = ?"),
            delete: format!("DELETE FROM `{table}` WHERE `id` = ?"),
            exists: format!("SELECT 1 FROM `{table}` WHERE `id` = ? AND `expires` > UNIX_TIMESTAMP()"),
            // gc finds expired rows with a plain (non-locking) read, then deletes them by
            // primary key, checking the expiry again under the row lock. One
            // `DELETE … WHERE expires <= …` would lock every row it reads, and the optimizer
            // reads the whole table when much of it is expired: it then waited for the row
            // lock of every request in flight (and deadlocked with them inside a
            // transaction).
            //
            // `expires > 0` leaves out `lock=row`'s placeholder rows (expires 0), which exist
            // only inside the transaction of the request that made them; their rollback
            // removes them. The parameter is the session the calling request holds, whose
            // row lock gc would otherwise wait for on its own connection.
            gc_find: format!(
                "SELECT `id` FROM `{table}` WHERE `expires` > 0 AND `expires` <= UNIX_TIMESTAMP() \
                 AND `id` <> '{GC_MARKER_ID}' AND `id` <> ? LIMIT {GC_BATCH}"
            ),
            // FORCE INDEX (PRIMARY): on a small or mostly expired table the optimizer would
            // rather scan it all, and so lock (and wait for) every row, than look up a hundred
            // ids. Index hints need the multi-table form of DELETE.
            gc_delete: format!(
                "DELETE t FROM `{table}` AS t FORCE INDEX (PRIMARY) WHERE t.`id` IN ({}) \
                 AND t.`expires` > 0 AND t.`expires` <= UNIX_TIMESTAMP()",
                vec!["?"; GC_CHUNK].join(", ")
            ),
            // Only one worker's UPDATE can find the marker due: InnoDB's row lock orders
            // them, and the winner moves `expires` on.
            gc_claim: format!(
                "UPDATE `{table}` SET `expires` = UNIX_TIMESTAMP() + ?, `data` = CAST(CAST(`data` AS UNSIGNED) + 1 AS CHAR) \
                 WHERE `id` = '{GC_MARKER_ID}' AND `expires` <= UNIX_TIMESTAMP()"
            ),
            gc_marker: format!(
                "INSERT IGNORE INTO `{table}` (`id`, `data`, `expires`) VALUES ('{GC_MARKER_ID}', '0', 0)"
            ),
            gc_due_now: format!("UPDATE `{table}` SET `expires` = 0 WHERE `id` = '{GC_MARKER_ID}'"),
        }
    }
}

/// The statements prepared on one connection. Executing a prepared handle skips the
/// driver's per-call work on SQL text (it scans every query string for named parameters,
/// which callgrind showed to be an eighth of a request's instructions).
pub(super) struct Statements {
    pub(super) get_lock: Statement,
    pub(super) release_lock: Statement,
    pub(super) read: Statement,
    pub(super) read_for_update: Statement,
    pub(super) insert_placeholder: Statement,
    pub(super) write: Statement,
    pub(super) touch: Statement,
    pub(super) delete: Statement,
    pub(super) exists: Statement,
    pub(super) gc_find: Statement,
    pub(super) gc_delete: Statement,
    pub(super) gc_claim: Statement,
    pub(super) gc_marker: Statement,
    pub(super) gc_due_now: Statement,
    pub(super) calls: Option<ProcedureCalls>,
    pub(super) merge: MergeStatements,
}

/// Merge mode's statements (see `merge`).
pub(super) struct MergeStatements {
    pub(super) read: Statement,
    pub(super) read_locked: Statement,
    pub(super) update: Statement,
    pub(super) insert: Statement,
    pub(super) tombstone: Statement,
    pub(super) refresh: Statement,
}

/// The prepared `CALL`s of the stored procedures. Preparing a `CALL` does not check that
/// the procedure exists; the first execution does.
pub(super) struct ProcedureCalls {
    pub(super) read: Statement,
    pub(super) write: Statement,
    pub(super) touch: Statement,
}

impl Statements {
    /// Prepares every statement: once per connection, so once per worker normally.
    pub(super) fn prepare(
        conn: &mut Conn,
        t: &StatementTexts,
        with_calls: bool,
    ) -> Result<Statements, MySqlError> {
        let calls = match with_calls {
            true => Some(ProcedureCalls {
                read: conn.prep(&t.call_read)?,
                write: conn.prep(&t.call_write)?,
                touch: conn.prep(&t.call_touch)?,
            }),
            false => None,
        };
        Ok(Statements {
            calls,
            merge: MergeStatements {
                read: conn.prep(&t.merge.read)?,
                read_locked: conn.prep(&t.merge.read_locked)?,
                update: conn.prep(&t.merge.update)?,
                insert: conn.prep(&t.merge.insert)?,
                tombstone: conn.prep(&t.merge.tombstone)?,
                refresh: conn.prep(&t.merge.refresh)?,
            },
            get_lock: conn.prep(&t.get_lock)?,
            release_lock: conn.prep(&t.release_lock)?,
            read: conn.prep(&t.read)?,
            read_for_update: conn.prep(&t.read_for_update)?,
            insert_placeholder: conn.prep(&t.insert_placeholder)?,
            write: conn.prep(&t.write)?,
            touch: conn.prep(&t.touch)?,
            delete: conn.prep(&t.delete)?,
            exists: conn.prep(&t.exists)?,
            gc_find: conn.prep(&t.gc_find)?,
            gc_delete: conn.prep(&t.gc_delete)?,
            gc_claim: conn.prep(&t.gc_claim)?,
            gc_marker: conn.prep(&t.gc_marker)?,
            gc_due_now: conn.prep(&t.gc_due_now)?,
        })
    }
}
