#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! What the store tests share: opening a store from a save_path, ids, and one counter
//! request. (Each test binary uses some of it.)
#![allow(dead_code)]

use std::time::Duration;

use fleet_core::MySqlStore;
use fleet_core::RedisStore;
use fleet_core::{
    parse_save_path, BackendConfig, LockPolicy, SessionId, SessionStore, StoreConfig, StoreError,
    Timeouts,
};

/// The lifetime the tests write sessions with.
pub const LIFETIME: Duration = Duration::from_secs(1440);

pub fn open_redis(save_path: &str) -> RedisStore {
    let StoreConfig {
        common,
        backend: BackendConfig::Redis(config),
    } = parse_save_path(save_path).expect("save_path")
    else {
        panic!("not a Redis save_path: {save_path}");
    };
    RedisStore::new(&config, common.connection(Timeouts::default())).expect("store")
}

pub fn open_mysql(save_path: &str) -> MySqlStore {
    let StoreConfig {
        common,
        backend: BackendConfig::MySql(config),
    } = parse_save_path(save_path).expect("save_path")
    else {
        panic!("not a MySQL save_path: {save_path}");
    };
    MySqlStore::new(&config, common.connection(Timeouts::default())).expect("store")
}

pub fn id(s: &str) -> SessionId {
    SessionId::parse(s.as_bytes()).expect("valid id")
}

/// One request on a counter session: lock+read, then write the read number plus one.
pub fn increment(
    store: &mut impl SessionStore,
    sid: &SessionId,
    policy: LockPolicy,
) -> Result<u64, StoreError> {
    let read = store.lock_and_read(sid, policy)?;
    let n = read
        .data
        .as_deref()
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    store.write_and_unlock(sid, n.to_string().as_bytes(), LIFETIME, read.lock.as_ref())?;
    Ok(n)
}
