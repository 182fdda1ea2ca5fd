//! Named leases on Redis (cron jobs, "do once" actions): taking, renewing and giving back
//! a lease with its fencing counter and schedule slots, each one script.

use std::time::Duration;

use ::redis::Script;

use super::scripts::{self, eval, Acked};
use super::{duration_ms, RedisStore, SessionKeys};
use crate::error::{cause, StoreError};
use crate::keeper::Retry;
use crate::lease::{LeaseStore, LeaseToken, Slot, Taken};

/// Named leases (cron jobs, "do once" actions). Keys, all tagged with the name so that they
/// share a cluster slot: `<prefix>lease:{NAME}` (the holder's token, with the TTL),
/// `<prefix>lease:{NAME}:fence` (the fencing counter, INCR'd by every new holder) and
/// `<prefix>lease:{NAME}:slot:<SLOT>` (a schedule slot's done-mark).
impl LeaseStore for RedisStore {
    fn take_lease(
        &mut self,
        name: &str,
        token: &LeaseToken,
        ttl: Duration,
        slot: Option<&Slot>,
    ) -> Result<Taken, StoreError> {
        crate::lease::check_name(name)?;
        let keys = self.lease_keys(name, slot.map(|s| s.id.as_str()));
        let ttl_ms = duration_ms(ttl).to_string();
        let keep_ms = slot
            .map(|s| duration_ms(s.keep).to_string())
            .unwrap_or_default();
        let script = Script::new(scripts::TAKE_LEASE);
        // With wait_replicas, WAIT in the same round trip: a fence the replicas have not got
        // could be handed out again by a replica promoted after a failover.
        let wait = self.wait;
        let reply: Acked<(i64, u64)> = self.run(&keys.0, Retry::IfRefused, |c, _| {
            eval(
                c,
                &script,
                &[&keys.0.data, &keys.1, &keys.2],
                &[
                    token.as_str().as_bytes(),
                    ttl_ms.as_bytes(),
                    keep_ms.as_bytes(),
                ],
                wait,
            )
        })?;
        let fence = match reply.reply {
            (0, fence) => fence,
            (2, _) => return Ok(Taken::SlotDone),
            _ => return Ok(Taken::Held),
        };
        if let Some(short) = self.unacknowledged(&reply, name, "taking") {
            // Not handed out: a holder could not rely on its fence. Given back at once so
            // the name (and the slot) is not blocked for the TTL by a lease nobody holds;
            // if that fails too, the TTL ends it.
            let undo = Script::new(scripts::UNDO_LEASE);
            let fence_text = fence.to_string();
            let _ = self.run(&keys.0, Retry::IfRefused, |c, _| {
                eval::<i64>(
                    c,
                    &undo,
                    &[&keys.0.data, &keys.2],
                    &[token.as_str().as_bytes(), fence_text.as_bytes()],
                    None,
                )
            });
            return Err(short);
        }
        Ok(Taken::Won { fence })
    }

    fn renew_lease(
        &mut self,
        name: &str,
        token: &LeaseToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        crate::lease::check_name(name)?;
        let keys = self.lease_keys(name, None);
        let ttl_ms = duration_ms(ttl).to_string();
        let script = Script::new(scripts::RENEW);
        // WAIT as for taking: a renewal only the master has would leave a promoted replica
        // with the older expiry, and another holder could take the lease while this one
        // still works.
        let wait = self.wait;
        let renewed: Acked<i64> = self.run(&keys.0, Retry::Idempotent, |c, _| {
            eval(
                c,
                &script,
                &[&keys.0.data],
                &[token.as_str().as_bytes(), ttl_ms.as_bytes()],
                wait,
            )
        })?;
        if renewed.reply != 1 {
            return Ok(false);
        }
        match self.unacknowledged(&renewed, name, "renewal") {
            Some(short) => Err(short),
            None => Ok(true),
        }
    }

    fn release_lease(&mut self, name: &str, token: &LeaseToken) -> Result<bool, StoreError> {
        crate::lease::check_name(name)?;
        let keys = self.lease_keys(name, None);
        let script = Script::new(scripts::RELEASE_LEASE);
        let released: Acked<i64> = self.run(&keys.0, Retry::Idempotent, |c, _| {
            eval(
                c,
                &script,
                &[&keys.0.data],
                &[token.as_str().as_bytes()],
                None,
            )
        })?;
        Ok(released.reply == 1)
    }
}

impl RedisStore {
    /// The refusal of a lease step that fewer replicas acknowledged than `wait_replicas`
    /// asks (a WAIT reply that cannot be read counts as none); `None` when enough did, or
    /// when no acknowledgement was asked for.
    pub(super) fn unacknowledged<T>(
        &self,
        acked: &Acked<T>,
        name: &str,
        step: &str,
    ) -> Option<StoreError> {
        let wait = self.wait?;
        let replicas = acked.replicas.unwrap_or(0);
        if replicas >= i64::from(wait.replicas) {
            return None;
        }
        let outcome = match step {
            "taking" => "so the lease was given back and not taken: after a failover its fencing token could be handed out again",
            _ => "so it is extended on the master only: after a failover the lease could end early and another holder take it",
        };
        Some(StoreError::server(self.endpoint_name(), cause(format!(
                "the {step} of lease \"{name}\" was acknowledged by only {replicas} of the {} replicas asked for (wait_replicas) within {} ms (wait_timeout), {outcome}. Check the replicas, or lower wait_replicas in the store URL",
                wait.replicas, wait.timeout_ms
            ))))
    }

    /// The keys of lease `name`: the lease (as a `SessionKeys` for routing), its fence
    /// counter, and the mark of `slot` (a key that is never set when there is none).
    fn lease_keys(&self, name: &str, slot: Option<&str>) -> (SessionKeys, Vec<u8>, Vec<u8>) {
        let lease = format!("{}lease:{{{name}}}", self.prefix).into_bytes();
        let mut fence = lease.clone();
        fence.extend_from_slice(b":fence");
        let mut mark = lease.clone();
        mark.extend_from_slice(b":slot:");
        mark.extend_from_slice(slot.unwrap_or("none").as_bytes());
        let keys = SessionKeys {
            data: lease,
            lock: Vec::new(),
            wake: Vec::new(),
            waiters: Vec::new(),
            gone: Vec::new(),
        };
        (keys, fence, mark)
    }
}
