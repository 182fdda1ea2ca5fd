//! The MySQL store's [`Inventory`]: pages by primary key (`WHERE id > ? ORDER BY id LIMIT n`),
//! so each page is one short index range scan however large the table is.

use std::time::Duration;

use ::mysql::prelude::Queryable;

use super::MySqlStore;
use crate::config::MySqlLockMode;
use crate::error::StoreError;
use crate::id::SessionId;
use crate::inventory::{Cursor, Inventory, Listed, LockState, StoredSession};
use crate::keeper::Retry;
use crate::store::SessionStore;

fn secs(left: i64) -> Option<Duration> {
    Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
}

impl Inventory for MySqlStore {
    fn endpoint(&self) -> &str {
        SessionStore::endpoint(self)
    }

    fn page(
        &mut self,
        cursor: Option<&Cursor>,
        limit: usize,
        with_data: bool,
    ) -> Result<(Vec<Listed>, Option<Cursor>), StoreError> {
        let after = cursor.map(|c| c.0.clone()).unwrap_or_default();
        let data = if with_data { "`data`" } else { "''" };
        let sql = format!(
            "SELECT `id`, LENGTH(`data`), `expires` - UNIX_TIMESTAMP(), {data} FROM `{}` \
             WHERE `id` > ? AND `expires` > UNIX_TIMESTAMP() ORDER BY `id` LIMIT ?",
            self.table
        );
        let limit = limit.max(1);
        let rows: Vec<(String, u64, i64, Vec<u8>)> = self.run(Retry::Idempotent, |c, _| {
            c.exec(&sql, (after.as_str(), limit as u64))
        })?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| Cursor(r.0.clone())))
            .flatten();
        let page = rows
            .into_iter()
            // The gc marker row and anything else that is not a session id.
            .filter(|(id, ..)| SessionId::parse(id.as_bytes()).is_ok())
            .map(|(id, size, left, data)| Listed {
                id,
                size,
                ttl: secs(left),
                data: with_data.then_some(data),
            })
            .collect();
        Ok((page, next))
    }

    fn fetch(&mut self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        let sql = format!(
            "SELECT `data`, `expires` - UNIX_TIMESTAMP() FROM `{}` WHERE `id` = ? AND `expires` > UNIX_TIMESTAMP()",
            self.table
        );
        let row: Option<(Vec<u8>, i64)> =
            self.run(Retry::Idempotent, |c, _| c.exec_first(&sql, (id.as_str(),)))?;
        Ok(row.map(|(data, left)| StoredSession {
            data,
            ttl: secs(left),
        }))
    }

    fn lock_state(&mut self, id: &SessionId) -> Result<LockState, StoreError> {
        match self.mode {
            MySqlLockMode::None => Ok(LockState::Free),
            MySqlLockMode::Row => Ok(LockState::Unknown),
            _ => {
                let key = self.lock_key(id);
                let holder: Option<Option<u64>> = self.run(Retry::Idempotent, |c, _| {
                    c.exec_first(
                        "SELECT IS_USED_LOCK(CONCAT('fleet:', SHA1(?)))",
                        (key.as_str(),),
                    )
                })?;
                Ok(match holder.flatten() {
                    Some(connection_id) => LockState::HeldByConnection { connection_id },
                    None => LockState::Free,
                })
            }
        }
    }

    fn insert_if_absent(
        &mut self,
        id: &SessionId,
        data: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // A row that is there but expired (or a lock placeholder) is replaced; a live one kept.
        let sql = format!(
            "INSERT INTO `{}` (`id`, `data`, `expires`) VALUES (?, ?, UNIX_TIMESTAMP() + ?) \
             ON DUPLICATE KEY UPDATE `data` = IF(`expires` > UNIX_TIMESTAMP(), `data`, VALUES(`data`)), \
             `expires` = IF(`expires` > UNIX_TIMESTAMP(), `expires`, VALUES(`expires`))",
            self.table
        );
        let ttl_secs = ttl.as_secs().max(1);
        self.run(Retry::Idempotent, |c, _| {
            c.exec_drop(&sql, (id.as_str(), data, ttl_secs))?;
            Ok(c.affected_rows() > 0)
        })
    }

    fn remove(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM `{}` WHERE `id` = ?", self.table);
        self.run(Retry::IfRefused, |c, _| {
            c.exec_drop(&sql, (id.as_str(),))?;
            Ok(c.affected_rows() == 1)
        })
    }
}
