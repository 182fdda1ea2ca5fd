//! Named leases on MySQL/MariaDB (`fleetctl run-once`, PHP's `fleet_lease_*`): a row of
//! `fleet_leases` per name holds the holder's token and when the lease ends, by the
//! server's clock. A lease outlives the request or connection that took it (a PHP "do this
//! once per hour" lease must), and ends by its TTL when its holder dies or stops renewing.
//!
//! Taking is one transaction that locks the name's row (`SELECT … FOR UPDATE`), so of many
//! takers exactly one finds the lease free; releasing and renewing are single `UPDATE`s
//! that match the holder's token.

use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::TxOpts;

use super::{MySqlStore, LEASES_TABLE_SQL};
use crate::error::StoreError;
use crate::keeper::Retry;
use crate::lease::{LeaseStore, LeaseToken, Slot, Taken};

/// The server's time in ms.
const NOW_MS: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl MySqlStore {
    fn ensure_leases_table(&mut self) -> Result<(), StoreError> {
        if self.keeper.connector.creates_tables() && !self.leases_table_made {
            self.run(Retry::Idempotent, |c, _| c.query_drop(LEASES_TABLE_SQL))?;
            self.leases_table_made = true;
        }
        Ok(())
    }
}

impl LeaseStore for MySqlStore {
    fn take_lease(
        &mut self,
        name: &str,
        token: &LeaseToken,
        ttl: Duration,
        slot: Option<&Slot>,
    ) -> Result<Taken, StoreError> {
        crate::lease::check_name(name)?;
        self.ensure_leases_table()?;
        let (slot_id, keep) = match slot {
            Some(s) => (s.id.as_str(), s.keep.as_secs().max(1)),
            None => ("", 0),
        };
        let ttl_ms = ms(ttl);
        self.run(Retry::IfRefused, |c, _| {
            c.exec_drop(
                "INSERT IGNORE INTO `fleet_leases` (`name`) VALUES (?)",
                (name,),
            )?;
            let mut tx = c.start_transaction(TxOpts::default())?;
            let row: Option<(i64, i64, u64)> = tx.exec_first(
                format!(
                    "SELECT `holder` <> '' AND `held_until` > {NOW_MS}, \
                     ? <> '' AND `slot` = ? AND `slot_until` > UNIX_TIMESTAMP(), `fence` \
                     FROM `fleet_leases` WHERE `name` = ? FOR UPDATE"
                ),
                (slot_id, slot_id, name),
            )?;
            let Some((held, slot_done, fence)) = row else {
                return Ok(Taken::Held);
            };
            if slot_done == 1 {
                return Ok(Taken::SlotDone);
            }
            if held == 1 {
                return Ok(Taken::Held);
            }
            tx.exec_drop(
                format!(
                    "UPDATE `fleet_leases` SET `holder` = ?, `held_until` = {NOW_MS} + ?, `fence` = `fence` + 1, \
                     `slot` = IF(? = '', `slot`, ?), `slot_until` = IF(? = '', `slot_until`, UNIX_TIMESTAMP() + ?) \
                     WHERE `name` = ?"
                ),
                (token.as_str(), ttl_ms, slot_id, slot_id, slot_id, keep, name),
            )?;
            tx.commit()?;
            Ok(Taken::Won { fence: fence + 1 })
        })
    }

    fn renew_lease(
        &mut self,
        name: &str,
        token: &LeaseToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        crate::lease::check_name(name)?;
        self.ensure_leases_table()?;
        let ttl_ms = ms(ttl);
        self.run(Retry::Idempotent, |c, _| {
            c.exec_drop(
                format!(
                    "UPDATE `fleet_leases` SET `held_until` = {NOW_MS} + ? \
                     WHERE `name` = ? AND `holder` = ? AND `held_until` > {NOW_MS}"
                ),
                (ttl_ms, name, token.as_str()),
            )?;
            if c.affected_rows() == 1 {
                return Ok(true);
            }
            // Zero rows changed is also what a renewal to the same millisecond gives.
            let still: Option<i64> = c.exec_first(
                format!(
                    "SELECT 1 FROM `fleet_leases` WHERE `name` = ? AND `holder` = ? AND `held_until` > {NOW_MS}"
                ),
                (name, token.as_str()),
            )?;
            Ok(still.is_some())
        })
    }

    fn release_lease(&mut self, name: &str, token: &LeaseToken) -> Result<bool, StoreError> {
        crate::lease::check_name(name)?;
        self.ensure_leases_table()?;
        self.run(Retry::Idempotent, |c, _| {
            c.exec_drop(
                format!(
                    "UPDATE `fleet_leases` SET `holder` = '', `held_until` = 0 \
                     WHERE `name` = ? AND `holder` = ? AND `held_until` > {NOW_MS}"
                ),
                (name, token.as_str()),
            )?;
            Ok(c.affected_rows() == 1)
        })
    }
}
