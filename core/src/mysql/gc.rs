//! Deleting expired rows: the automatic `gc_interval` run, which one worker per interval
//! claims through a marker row, and PHP's gc, which runs on a connection of its own while
//! the request holds its lock (see the parent module's doc for why).

use std::time::{Duration, Instant};

use ::mysql::prelude::{AsStatement, Queryable};
use ::mysql::{Conn, Error as MySqlError};

use super::errors::{ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT};
use super::MySqlStore;
use crate::error::StoreError;
use crate::keeper::Retry;

/// Expired rows looked up per `gc` batch.
pub(super) const GC_BATCH: u64 = 1000;
/// Ids per `gc` `DELETE` (the batch's rows are deleted in chunks of this many, by primary
/// key); small enough that one statement holds its locks only briefly.
pub(super) const GC_CHUNK: usize = 100;
/// How long one `gc` call may keep deleting before it leaves the rest for the next one, so
/// the request that PHP picked for gc is not stalled by a large backlog.
const GC_BUDGET: Duration = Duration::from_millis(200);
/// The id of the row that tells when expired rows were last deleted (its `expires` is when
/// the next run is due, its `data` how many runs there have been). Session ids cannot
/// contain `:`, so no session can have it.
pub const GC_MARKER_ID: &str = "fleet:gc";

impl MySqlStore {
    /// Deletes expired rows if this worker's clock says a run may be due and the database
    /// says no other worker has run one within `gc_interval`. Called after a request has
    /// released its session; only one worker per interval, on any app server, pays for a run
    /// (in bounded batches), and the others send one `UPDATE` per interval. A failure is a
    /// notice, never the request's failure.
    pub(super) fn maybe_gc(&mut self) {
        let Some(interval) = self.gc_interval else {
            return;
        };
        let now = Instant::now();
        if now < self.next_gc_check {
            return;
        }
        self.next_gc_check = now + interval;
        if let Err(e) = self.gc_if_due(interval) {
            self.notice = Some(format!(
                "the automatic deletion of expired sessions (gc_interval) failed: {e}"
            ));
        }
    }

    /// Claims this interval's run and does it; returns how many rows it deleted, or `None`
    /// if another worker has the interval.
    pub fn gc_if_due(&mut self, interval: Duration) -> Result<Option<u64>, StoreError> {
        let seconds = interval.as_secs_f64().ceil() as u64;
        let claim = |s: &mut MySqlStore| {
            s.run(Retry::Never, |c, sql| {
                c.exec_drop(&sql.gc_claim, (seconds,))
                    .map(|()| c.affected_rows() == 1)
            })
        };
        let mut won = claim(self)?;
        if !won && !self.gc_marker_made {
            self.run(Retry::Never, |c, sql| c.exec_drop(&sql.gc_marker, ()))?;
            won = claim(self)?;
        }
        self.gc_marker_made = true;
        if !won {
            return Ok(None);
        }
        let (deleted, more_left) = self.gc_batches()?;
        self.gc_events.gc_runs += 1;
        self.gc_events.gc_deleted += deleted;
        if more_left {
            // A backlog: let the next worker that checks go on at once rather than an
            // interval later.
            self.run(Retry::Never, |c, sql| c.exec_drop(&sql.gc_due_now, ()))?;
        }
        Ok(Some(deleted))
    }

    /// Deletes expired rows on this store's connection, which must hold no lock (see
    /// [`delete_expired`]).
    pub(super) fn gc_batches(&mut self) -> Result<(u64, bool), StoreError> {
        delete_expired(|| {
            self.run(Retry::Idempotent, |c, sql| {
                gc_batch(c, &sql.gc_find, &sql.gc_delete, "")
            })
        })
    }

    /// Deletes expired rows on a connection of their own, opened for this call and closed
    /// after it, for a request that holds `session`'s lock (see the module doc). Closed
    /// rather than kept: a second idle connection per worker would double what
    /// `max_connections` must allow for, and PHP's gc is rare (1 request in 100 by default).
    pub(super) fn gc_aside(&mut self, session: &str) -> Result<u64, StoreError> {
        let mut conn = self.gc_connector.open_first_writable()?;
        let connector = &self.gc_connector;
        let (find, delete) = (self.gc_sql.0.as_str(), self.gc_sql.1.as_str());
        delete_expired(|| {
            gc_batch(&mut conn, find, delete, session).map_err(|e| connector.classify(e, false))
        })
        .map(|(deleted, _)| deleted)
    }
}

/// Deletes expired rows, a batch at a time by `batch`, for at most `GC_BUDGET`. `batch`
/// says how many it deleted and whether there may be more. Returns how many were deleted,
/// and whether it stopped on its budget with rows left.
fn delete_expired(
    mut batch: impl FnMut() -> Result<(u64, bool), StoreError>,
) -> Result<(u64, bool), StoreError> {
    let started = Instant::now();
    let mut deleted = 0;
    loop {
        let (n, more) = batch()?;
        deleted += n;
        if !more {
            return Ok((deleted, false));
        }
        if started.elapsed() >= GC_BUDGET {
            return Ok((deleted, true));
        }
    }
}

/// One gc batch on `c`: up to `GC_BATCH` expired rows found by `find`, sparing the session
/// `except` (`""`: none), deleted `GC_CHUNK` at a time by `delete`. Returns how many were
/// deleted, and whether there may be more. A chunk that deadlocked with, or waited too long
/// on, a request's row lock ends the batch, with no more: the rows are already invisible,
/// and the next gc deletes them.
fn gc_batch<S: AsStatement + Copy>(
    c: &mut Conn,
    find: S,
    delete: S,
    except: &str,
) -> Result<(u64, bool), MySqlError> {
    let ids: Vec<Vec<u8>> = c.exec(find, (except,))?;
    let mut deleted = 0;
    for chunk in ids.chunks(GC_CHUNK) {
        // Unused places get the empty id, which no session has.
        let mut params: Vec<::mysql::Value> = chunk
            .iter()
            .map(|id| ::mysql::Value::Bytes(id.clone()))
            .collect();
        params.resize(GC_CHUNK, ::mysql::Value::Bytes(Vec::new()));
        match c.exec_drop(delete, params) {
            Ok(()) => deleted += c.affected_rows(),
            Err(MySqlError::MySqlError(e))
                if e.code == ER_LOCK_DEADLOCK || e.code == ER_LOCK_WAIT_TIMEOUT =>
            {
                return Ok((deleted, false))
            }
            Err(e) => return Err(e),
        }
    }
    Ok((deleted, ids.len() as u64 >= GC_BATCH))
}
