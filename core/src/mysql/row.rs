//! `lock=row`: a transaction holding the session row's InnoDB lock (`SELECT … FOR
//! UPDATE`), waited for in `innodb_lock_wait_timeout` slices, and the client-side record
//! of whether that transaction can still be trusted to hold it.

use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Error as MySqlError};

use super::errors::{ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT};
use super::statements::Statements;
use super::{server_side_wait, MySqlStore};
use crate::error::{cause, LockLoss, StoreError};
use crate::id::SessionId;
use crate::keeper::Retry;
use crate::lease::LeaseTerms;
use crate::store::ReadOutcome;

/// Row-lock waits are sliced by `innodb_lock_wait_timeout`, which counts whole seconds.
pub(super) const ROW_WAIT_SLICE_SECS: u64 = 1;

impl MySqlStore {
    pub(super) fn lock_row(
        &mut self,
        id: &SessionId,
        terms: LeaseTerms,
    ) -> Result<ReadOutcome, StoreError> {
        let started = Instant::now();
        let deadline = started + terms.wait_timeout;
        self.run(Retry::Idempotent, |c, _| c.query_drop("START TRANSACTION"))?;
        let mut outcome = self.lock_row_in_transaction(id, terms, deadline);
        if let Ok(read) = &mut outcome {
            read.waited = server_side_wait(started.elapsed());
        }
        if outcome.is_err() {
            let _ = self.run(Retry::Never, |c, _| c.query_drop("ROLLBACK"));
        }
        outcome
    }

    fn lock_row_in_transaction(
        &mut self,
        id: &SessionId,
        terms: LeaseTerms,
        deadline: Instant,
    ) -> Result<ReadOutcome, StoreError> {
        let mut inserted = false;
        loop {
            let attempt = self.run_row_wait(|c, sql| {
                c.exec_first::<(Vec<u8>, i64), _, _>(&sql.read_for_update, (id.as_str(),))
            })?;
            if attempt.is_none() {
                // A new transaction now (see run_row_wait): a placeholder made in the old one
                // is gone with it.
                inserted = false;
            }
            match attempt {
                Some(Some((data, live))) => {
                    let data = (live == 1).then_some(data);
                    return Ok(ReadOutcome {
                        data,
                        lock: Some(self.held_here()?),
                        waited: Duration::ZERO,
                        holder: None,
                    });
                }
                Some(None) if !inserted => {
                    // No row yet: make one, which locks it, then read it back under the lock
                    // (a request that created it first may have written data meanwhile).
                    // After a timeout the transaction is a new one, without the row.
                    let made = self.run_row_wait(|c, sql| {
                        c.exec_drop(&sql.insert_placeholder, (id.as_str(),))
                    })?;
                    inserted = made.is_some();
                    if !inserted && Instant::now() >= deadline {
                        return Err(StoreError::lock_wait_timeout(
                            &id.abbreviated(),
                            None,
                            terms.wait_timeout,
                        ));
                    }
                }
                Some(None) => {
                    return Err(StoreError::server(
                        self.endpoint_name(),
                        cause("the session row vanished while locked"),
                    ))
                }
                None if Instant::now() < deadline => {}
                None => {
                    return Err(StoreError::lock_wait_timeout(
                        &id.abbreviated(),
                        None,
                        terms.wait_timeout,
                    ))
                }
            }
        }
    }

    /// Runs a statement that may wait on a row lock: `None` when the wait timed out (one
    /// `innodb_lock_wait_timeout` slice) or deadlocked, so the caller tries again, in a new
    /// transaction: whether the server rolled back the old one (a deadlock always does, a
    /// timeout does with `innodb_rollback_on_timeout`), it is ended and a new one begun, so
    /// the retry never runs in autocommit, where `FOR UPDATE` would lock nothing.
    fn run_row_wait<T>(
        &mut self,
        op: impl FnMut(&mut Conn, &Statements) -> Result<T, MySqlError>,
    ) -> Result<Option<T>, StoreError> {
        let mut op = op;
        let mut last_code = 0;
        let outcome = self.run(Retry::Never, |c, sql| match op(c, sql) {
            Err(MySqlError::MySqlError(e))
                if e.code == ER_LOCK_WAIT_TIMEOUT || e.code == ER_LOCK_DEADLOCK =>
            {
                last_code = e.code;
                Ok(None)
            }
            other => other.map(Some),
        })?;
        if last_code != 0 {
            self.run(Retry::Never, |c, _| c.query_drop("ROLLBACK"))?;
            self.run(Retry::Never, |c, _| c.query_drop("START TRANSACTION"))?;
        }
        Ok(outcome)
    }

    /// `lock=row`: whether the transaction that took `id`'s row lock is still the one open
    /// on the connection, as far as the client can tell: the server ends a transaction
    /// only with an error to one of its statements (or by closing the connection, which
    /// `run_holding` sees), and every such error is recorded in `locked`. Costs no round
    /// trip.
    pub(super) fn check_row_transaction(&self, id: &SessionId) -> Result<(), StoreError> {
        match &self.locked {
            Some(l) if l.session == id.as_str() && l.intact => Ok(()),
            Some(l) => Err(StoreError::lock_lost(
                l.taken.elapsed(),
                LockLoss::TransactionFailed,
            )),
            None => Err(StoreError::lock_lost(
                Duration::ZERO,
                LockLoss::NoTransaction,
            )),
        }
    }
}
