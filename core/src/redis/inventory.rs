//! The Redis store's [`Inventory`]: `SCAN` over every master, then the found keys' sizes (or
//! data) and lifetimes in one pipeline per batch.
//!
//! A session key is `<prefix><id>`, or `<prefix>{<id>}` on a cluster (Fleet's layout); both
//! are recognised whichever topology is read, so a cluster written by phpredis's
//! `rediscluster` handler (`<prefix><id>`) can be read and copied too. Lock, wake-up and lease
//! keys are not sessions: their names hold characters no session id has.

use std::time::Duration;

use ::redis::{cmd, pipe, ConnectionLike, RedisError, Value};

use super::{duration_ms, RedisStore};
use crate::error::StoreError;
use crate::id::SessionId;
use crate::inventory::{Cursor, Inventory, Listed, LockState, StoredSession};
use crate::keeper::Retry;
use crate::store::SessionStore;

impl RedisStore {
    /// The session id in `key`, if it is a session key of this prefix.
    fn id_of_key(&self, key: &[u8]) -> Option<String> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        let rest = match rest {
            [b'{', inner @ .., b'}'] => inner,
            other => other,
        };
        SessionId::parse(rest).ok().map(|id| id.as_str().to_owned())
    }

    /// `SCAN`'s MATCH pattern for this prefix (glob characters in it escaped).
    fn scan_pattern(&self) -> Vec<u8> {
        let mut pattern = Vec::with_capacity(self.prefix.len() + 1);
        for b in self.prefix.bytes() {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(b);
        }
        pattern.push(b'*');
        pattern
    }

    /// Sizes (or data) and lifetimes of `keys`, all on the server of `slot`.
    fn describe_keys(
        &mut self,
        slot: u16,
        keys: &[(Vec<u8>, String)],
        with_data: bool,
    ) -> Result<Vec<Listed>, StoreError> {
        let mut batch = pipe();
        for (key, _) in keys {
            batch.cmd(if with_data { "GET" } else { "STRLEN" }).arg(key);
            batch.cmd("PTTL").arg(key);
        }
        let packed = batch.get_packed_pipeline();
        let replies = self.keeper.run(Retry::Idempotent, |link| {
            link.route_slot(slot);
            link.req_packed_commands(&packed, 0, keys.len() * 2)
        })?;
        let mut listed = Vec::with_capacity(keys.len());
        for ((_, id), pair) in keys.iter().zip(replies.chunks(2)) {
            let [first, ttl] = pair else { continue };
            // A key of another type (WRONGTYPE), or one that expired since SCAN: not a session.
            let (size, data) = match first {
                Value::BulkString(bytes) => (bytes.len() as u64, Some(bytes.clone())),
                Value::Int(n) if !with_data && *n > 0 => (*n as u64, None),
                _ => continue,
            };
            let ttl = match ttl {
                Value::Int(ms) if *ms >= 0 => Some(Duration::from_millis(*ms as u64)),
                Value::Int(-1) => None,
                _ => continue,
            };
            listed.push(Listed {
                id: id.clone(),
                size,
                ttl,
                data: data.filter(|_| with_data),
            });
        }
        Ok(listed)
    }
}

/// A cursor is `<master index>:<SCAN cursor on that master>`.
fn parse_cursor(cursor: Option<&Cursor>) -> (usize, String) {
    cursor
        .and_then(|c| c.0.split_once(':'))
        .and_then(|(shard, scan)| Some((shard.parse().ok()?, scan.to_owned())))
        .unwrap_or((0, "0".to_owned()))
}

impl Inventory for RedisStore {
    fn endpoint(&self) -> &str {
        SessionStore::endpoint(self)
    }

    fn page(
        &mut self,
        cursor: Option<&Cursor>,
        limit: usize,
        with_data: bool,
    ) -> Result<(Vec<Listed>, Option<Cursor>), StoreError> {
        let shards = self
            .keeper
            .run(Retry::Idempotent, |link| Ok::<_, RedisError>(link.shards()))?;
        let (mut shard, mut scan) = parse_cursor(cursor);
        let pattern = self.scan_pattern();
        let mut page = Vec::new();
        while page.len() < limit {
            let Some(&slot) = shards.get(shard) else {
                return Ok((page, None));
            };
            let count = limit.max(10);
            let (next, keys): (String, Vec<Vec<u8>>) =
                self.keeper.run(Retry::Idempotent, |link| {
                    link.route_slot(slot);
                    cmd("SCAN")
                        .arg(&scan)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(count)
                        .query(link)
                })?;
            let sessions: Vec<(Vec<u8>, String)> = keys
                .into_iter()
                .filter_map(|key| self.id_of_key(&key).map(|id| (key, id)))
                .collect();
            if !sessions.is_empty() {
                page.extend(self.describe_keys(slot, &sessions, with_data)?);
            }
            if next == "0" {
                shard += 1;
                scan = "0".to_owned();
            } else {
                scan = next;
            }
        }
        let more = shard < shards.len();
        Ok((page, more.then(|| Cursor(format!("{shard}:{scan}")))))
    }

    fn fetch(&mut self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        let keys = self.keys(id);
        let (data, ttl): (Option<Vec<u8>>, i64) = self.run(&keys, Retry::Idempotent, |c, _| {
            pipe().get(&keys.data).pttl(&keys.data).query(c)
        })?;
        Ok(data.map(|data| StoredSession {
            data,
            ttl: u64::try_from(ttl).ok().map(Duration::from_millis),
        }))
    }

    fn lock_state(&mut self, id: &SessionId) -> Result<LockState, StoreError> {
        let keys = self.keys(id);
        let ttl: i64 = self.run(&keys, Retry::Idempotent, |c, _| {
            cmd("PTTL").arg(&keys.lock).query(c)
        })?;
        Ok(match ttl {
            -2 => LockState::Free,
            -1 => LockState::Held { ttl: None },
            ms => LockState::Held {
                ttl: Some(Duration::from_millis(ms.unsigned_abs())),
            },
        })
    }

    fn insert_if_absent(
        &mut self,
        id: &SessionId,
        data: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let keys = self.keys(id);
        let ttl_ms = duration_ms(ttl);
        let set: Option<String> = self.run(&keys, Retry::IfRefused, |c, _| {
            cmd("SET")
                .arg(&keys.data)
                .arg(data)
                .arg("PX")
                .arg(ttl_ms)
                .arg("NX")
                .query(c)
        })?;
        Ok(set.is_some())
    }

    fn remove(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        let keys = self.keys(id);
        let removed: i64 = self.run(&keys, Retry::IfRefused, |c, _| {
            cmd("DEL").arg(&keys.data).query(c)
        })?;
        Ok(removed == 1)
    }
}
