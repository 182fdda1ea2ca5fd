//! Merge mode's steps on Redis (every form: the keys of a session share its slot): a read
//! that returns the data with its SHA-1 as the version, a write made only if the stored
//! bytes still have that digest, and a destroy that leaves a tombstone.

use std::time::Duration;

use ::redis::Value;

use super::scripts::eval;
use super::{lifetime_secs, RedisStore};
use crate::error::{cause, StoreError};
use crate::id::SessionId;
use crate::keeper::Retry;
use crate::store::{ConditionalWrite, HeldLock, MergeStore, SessionStore, Version, VersionedRead};

impl MergeStore for RedisStore {
    fn read_versioned(&mut self, id: &SessionId) -> Result<VersionedRead, StoreError> {
        self.read_merge(id, None)
    }

    fn read_versioned_and_touch(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
    ) -> Result<(VersionedRead, bool), StoreError> {
        Ok((self.read_merge(id, Some(lifetime))?, true))
    }

    fn write_if_unchanged(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
    ) -> Result<ConditionalWrite, StoreError> {
        let keys = self.keys(id);
        let lifetime = lifetime_secs(lifetime).to_string();
        let version = base.0.as_deref().unwrap_or_default();
        let wait = self.wait;
        let acked = self.run(&keys, Retry::IfRefused, |c, s| {
            eval::<Value>(
                c,
                &s.write_if_unchanged,
                &[&keys.data, &keys.gone, &keys.lock],
                &[version.as_bytes(), data, lifetime.as_bytes()],
                wait,
            )
        })?;
        let reply = self.check_acks(acked);
        let Value::Array(items) = reply else {
            return Err(self.unexpected("the merge write script"));
        };
        let mut items = items.into_iter();
        Ok(match items.next() {
            Some(Value::Int(1)) => ConditionalWrite::Written,
            Some(Value::Int(2)) => ConditionalWrite::Gone,
            Some(Value::Int(3)) => ConditionalWrite::Locked,
            Some(Value::Int(0)) => {
                let now = parse_versioned(Value::Array(items.collect()))
                    .ok_or_else(|| self.unexpected("the merge write script"))?;
                ConditionalWrite::Changed(now)
            }
            _ => return Err(self.unexpected("the merge write script")),
        })
    }

    /// A plain write under the lock: a conditional write checks the lock in the same script
    /// that writes, and Redis runs scripts one at a time, so none has landed since this
    /// request's locked read; the write itself checks the lock is still this request's. The
    /// locked read gave the session its lifetime, so it has not expired since either.
    fn write_holding(
        &mut self,
        id: &SessionId,
        _base: &Version,
        data: &[u8],
        lifetime: Duration,
        lock: &HeldLock,
    ) -> Result<ConditionalWrite, StoreError> {
        self.write_and_unlock(id, data, lifetime, Some(lock))?;
        Ok(ConditionalWrite::Written)
    }

    /// `EXPIRE`, which does nothing to a key that is gone.
    fn refresh(&mut self, id: &SessionId, lifetime: Duration) -> Result<(), StoreError> {
        self.touch_and_unlock(id, lifetime, None)
    }

    fn read_versioned_under_lock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
    ) -> Result<VersionedRead, StoreError> {
        self.read_merge(id, Some(lifetime))
    }

    fn destroy_for_good(&mut self, id: &SessionId, remember: Duration) -> Result<bool, StoreError> {
        let keys = self.keys(id);
        let remember = lifetime_secs(remember).to_string();
        let wait = self.wait;
        let acked = self.run(&keys, Retry::IfRefused, |c, s| {
            eval::<i64>(
                c,
                &s.destroy_for_good,
                &[&keys.data, &keys.gone, &keys.lock],
                &[remember.as_bytes()],
                wait,
            )
        })?;
        Ok(self.check_acks(acked) == 1)
    }
}

impl RedisStore {
    /// The merge read, giving a stored session `lifetime` in the same script if asked.
    fn read_merge(
        &mut self,
        id: &SessionId,
        lifetime: Option<Duration>,
    ) -> Result<VersionedRead, StoreError> {
        let keys = self.keys(id);
        let seconds = lifetime.map(|l| lifetime_secs(l).to_string());
        let args: Vec<&[u8]> = seconds.iter().map(|s| s.as_bytes()).collect();
        let reply: Value = self.run(&keys, Retry::Idempotent, |c, s| {
            eval(c, &s.read_versioned, &[&keys.data, &keys.gone], &args, None).map(|a| a.reply)
        })?;
        parse_versioned(reply).ok_or_else(|| self.unexpected("the merge read script"))
    }

    fn unexpected(&self, what: &str) -> StoreError {
        StoreError::server(
            self.endpoint_name(),
            cause(format!("unexpected reply to {what}")),
        )
    }
}

/// `{data, version}`, or `{0, version}` when no session is stored (the version is '' when
/// there is no tombstone either).
fn parse_versioned(reply: Value) -> Option<VersionedRead> {
    let Value::Array(items) = reply else {
        return None;
    };
    let mut items = items.into_iter();
    let (data, version) = match (items.next(), items.next()) {
        (Some(Value::BulkString(data)), Some(Value::BulkString(v))) => (Some(data), v),
        (Some(Value::Int(0)), Some(Value::BulkString(v))) => (None, v),
        _ => return None,
    };
    let version = String::from_utf8(version).ok()?;
    Some(VersionedRead {
        data,
        version: Version((!version.is_empty()).then_some(version)),
    })
}
