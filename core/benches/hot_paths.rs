//! The per-request work Fleet does in the PHP worker, outside the backend round trips:
//! parsing a save_path (once per worker, and on every request whose save_path changes),
//! validating the session id and making a lock token (every request).
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

criterion_group!(benches, save_path, session_id);
criterion_main!(benches);
