//! `lock=advisory`: the session's named lock (`GET_LOCK`), taken in slices no longer than
//! the read timeout, through Fleet's stored procedures where they are usable (one round
//! trip to lock and read) or plain statements.

use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Error as MySqlError};

use super::errors::{ER_PROCACCESS_DENIED, ER_SP_DOES_NOT_EXIST};
use super::statements::{ProcedureCalls, Statements};
use super::{retry_first, server_side_wait, MySqlStore};
use crate::config::MySqlProcedures;
use crate::error::{cause, StoreError};
use crate::id::SessionId;
use crate::keeper::Retry;
use crate::lease::{LeaseTerms, MAX_WAIT_SLICE};
use crate::store::{HeldLock, ReadOutcome};

impl MySqlStore {
    pub(super) fn lock_advisory(
        &mut self,
        id: &SessionId,
        terms: LeaseTerms,
    ) -> Result<ReadOutcome, StoreError> {
        let key = self.lock_key(id);
        let started = Instant::now();
        let deadline = started + terms.wait_timeout;
        // Each GET_LOCK must answer within the read timeout; waits longer than that are
        // made of several, each of which waits in the server's queue.
        let slice_cap = MAX_WAIT_SLICE
            .min(self.keeper.connector.timeouts.command / 2)
            .max(Duration::from_millis(1));
        let mut first = true;
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(slice_cap);
            let seconds = slice.as_secs_f64();
            // The data comes with the lock when the procedure took it.
            let mut data_if_locked = None;
            let got = match self.keeper.connector.calls_usable {
                true => {
                    let called = self.call(None, first, |c, calls| {
                        c.exec_first::<(Option<i64>, Option<Vec<u8>>), _, _>(
                            &calls.read,
                            (id.as_str(), key.as_str(), seconds),
                        )
                    })?;
                    match called {
                        // Locked, and no live session: the procedure's SELECT found no row.
                        Some(None) => {
                            data_if_locked = Some(None);
                            Some(1)
                        }
                        Some(Some((got, data))) => {
                            data_if_locked = Some(data);
                            got
                        }
                        None => continue,
                    }
                }
                false => self
                    .run(retry_first(first), |c, sql| {
                        c.exec_first::<Option<i64>, _, _>(&sql.get_lock, (key.as_str(), seconds))
                    })?
                    .flatten(),
            };
            first = false;
            match got {
                Some(1) => {
                    let lock = self.held_here()?;
                    let waited = server_side_wait(started.elapsed());
                    if let Some(data) = data_if_locked {
                        return Ok(ReadOutcome {
                            data,
                            lock: Some(lock),
                            waited,
                            holder: None,
                        });
                    }
                    return match self.run(Retry::Never, |c, sql| {
                        c.exec_first::<Vec<u8>, _, _>(&sql.read, (id.as_str(),))
                    }) {
                        Ok(data) => Ok(ReadOutcome {
                            data,
                            lock: Some(lock),
                            waited,
                            holder: None,
                        }),
                        Err(e) => {
                            let _ = self.release(id, &lock);
                            Err(e)
                        }
                    };
                }
                Some(_) if Instant::now() < deadline => continue,
                Some(_) => {
                    return Err(StoreError::lock_wait_timeout(
                        &id.abbreviated(),
                        self.named_lock_holder(&key).as_ref(),
                        terms.wait_timeout,
                    ))
                }
                None => {
                    return Err(StoreError::server(
                        self.endpoint_name(),
                        cause("GET_LOCK returned NULL (the wait was interrupted)"),
                    ))
                }
            }
        }
    }

    /// Runs `op` with the procedures' prepared `CALL`s, on the connection holding `lock` if
    /// given; `Ok(None)` when `procedures=auto` finds the procedures missing or not
    /// executable, after which this store uses the plain statements.
    pub(super) fn call<T>(
        &mut self,
        lock: Option<&HeldLock>,
        retry: bool,
        mut op: impl FnMut(&mut Conn, &ProcedureCalls) -> Result<T, MySqlError>,
    ) -> Result<Option<T>, StoreError> {
        let fall_back = self.keeper.connector.procedures == MySqlProcedures::Auto;
        let wrapped = |c: &mut Conn, sql: &Statements| {
            let Some(calls) = &sql.calls else {
                return Ok(None);
            };
            match op(c, calls) {
                Ok(v) => Ok(Some(v)),
                Err(MySqlError::MySqlError(e))
                    if fall_back
                        && (e.code == ER_SP_DOES_NOT_EXIST || e.code == ER_PROCACCESS_DENIED) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        let answer = match lock {
            Some(lock) => self.run_holding(lock, wrapped)?,
            None => self.run(retry_first(retry), wrapped)?,
        };
        if answer.is_none() {
            self.keeper.connector.calls_usable = false;
        }
        Ok(answer)
    }

    /// Who holds the named lock `key`, as the server shows it: the connection, its client
    /// address and how long its current statement has run. Asked only when a wait timed out
    /// (one more query then, none on the way to a free lock); `None` if it cannot be told.
    fn named_lock_holder(&mut self, key: &str) -> Option<crate::lease::Holder> {
        let row: Option<(u64, Option<String>)> = self
            .run(Retry::Never, |c, _| {
                c.exec_first(
                    "SELECT l.id, p.HOST FROM (SELECT IS_USED_LOCK(CONCAT('fleet:', SHA1(?))) AS id) l \
                     LEFT JOIN information_schema.PROCESSLIST p ON p.ID = l.id WHERE l.id IS NOT NULL",
                    (key,),
                )
            })
            .ok()
            .flatten();
        row.map(|(id, host)| crate::lease::Holder {
            who: match host {
                Some(host) => format!(
                    "MySQL connection {id} from {host} (SHOW PROCESSLIST shows what it runs)"
                ),
                None => format!("MySQL connection {id}"),
            },
            held_for: None,
        })
    }
}
