//! The per-request work Fleet does in the PHP worker, outside the backend round trips:
//! parsing a save_path (once per worker, and on every request whose save_path changes),
//! validating the session id and making a lock token (every request), and with sessions at
//! rest sealing, opening and hashing an id.
//!
//! There is no PHP session-format codec in core yet (nothing reads session contents); its
//! bench comes with it.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fleet_core::{parse_save_path, LeaseToken, SessionId};

fn save_path(c: &mut Criterion) {
    c.bench_function("parse_save_path redis", |b| {
        b.iter(|| {
            parse_save_path(black_box(
                "redis://10.0.0.5:6379/2?prefix=app:&timeout=0.5&connect_timeout=1",
            ))
        })
    });
    c.bench_function("parse_save_path mysql", |b| {
        b.iter(|| {
            parse_save_path(black_box(
                "mysql://sessions:pw@10.0.0.6:3306/app?table=php_sessions&lock=row&timeout=2",
            ))
        })
    });
}

fn session_id(c: &mut Criterion) {
    let php_default = "k3l9d0a7bq1m2n8s5t4u6v7w9x0y1z2a"; // 32 chars, sid_bits_per_character=5
    c.bench_function("SessionId::parse 32 chars", |b| {
        b.iter(|| SessionId::parse(black_box(php_default.as_bytes())))
    });
    let long = "a".repeat(256);
    c.bench_function("SessionId::parse 256 chars", |b| {
        b.iter(|| SessionId::parse(black_box(long.as_bytes())))
    });
    c.bench_function("LeaseToken::generate", |b| b.iter(LeaseToken::generate));
}

/// Encryption at rest: sealing and opening a 2 KB session (what a write and a read add).
fn sealing(c: &mut Criterion) {
    let Ok(keys) = fleet_core::seal::Keyring::parse("q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=")
    else {
        return;
    };
    let session: Vec<u8> = (0..2048u32)
        .map(|i| b"abcdefghij|s:4:\"x\";"[i as usize % 19])
        .collect();
    let Ok(sealed) = keys.seal("hk3s9q0r1v5m2o8b7c4d6e0f1a", &session) else {
        return;
    };
    c.bench_function("seal 2 KB session", |b| {
        b.iter(|| keys.seal("hk3s9q0r1v5m2o8b7c4d6e0f1a", &session))
    });
    let small = b"n|i:42;user|s:3:\"ann\";";
    c.bench_function("seal + open a 23-byte session", |b| {
        b.iter(|| {
            keys.seal("hk3s9q0r1v5m2o8b7c4d6e0f1a", small)
                .map(|s| keys.open("hk3s9q0r1v5m2o8b7c4d6e0f1a", &s))
        })
    });
    c.bench_function("open 2 KB session", |b| {
        b.iter(|| keys.open("hk3s9q0r1v5m2o8b7c4d6e0f1a", &sealed))
    });
    let Ok(hasher) =
        fleet_core::seal::IdHasher::parse("mZc0VfT4r6yK2xQ8wN1pL5sH9dJ3gB7aE0uI4oY2tR8=")
    else {
        return;
    };
    let Ok(id) = fleet_core::SessionId::parse(b"hk3s9q0r1v5m2o8b7c4d6e0f1a") else {
        return;
    };
    c.bench_function("hash_ids: HMAC of a 26-character id", |b| {
        b.iter(|| hasher.name(&id))
    });
}

criterion_group!(benches, save_path, session_id, sealing);
criterion_main!(benches);
