#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! Sessions at rest on a real Redis, a Redis Cluster and MariaDB: with encryption_key_file
//! the stored bytes hold none of a session's plaintext, with hash_ids=1 no key or row holds
//! its id; a ciphertext moved to another session or changed by one bit is refused (the
//! session reads empty, with a warning) and left as it was; data stored in the clear stays
//! readable when encryption is switched on; keys rotate, and `rekey` re-seals what the old
//! key sealed, so the old key can go.

mod common;

use common::{id, LIFETIME};

use std::path::Path;
use std::time::Duration;

use fleet_core::inventory::Cursor;
use fleet_core::{
    open_inventory, open_rekey, open_store, parse_save_path, Inventory, LeaseTerms, LockPolicy,
    RekeyCounts, SessionStore, Timeouts,
};
use fleet_harness::{MariaDbServer, RedisCluster, RedisServer};

const KEY_A: &str = "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=";
const KEY_B: &str = "7yq3VJq1cR2B0xWvF4Yb1d0n8m6l5k4j3h2g1f0e9dA=";
const HASH_KEY: &str = "mZc0VfT4r6yK2xQ8wN1pL5sH9dJ3gB7aE0uI4oY2tR8=";

const LOCKED: LockPolicy = LockPolicy {
    lease: Some(LeaseTerms {
        ttl: Duration::from_secs(30),
        wait_timeout: Duration::from_secs(5),
        renew_for: None,
    }),
};

/// A session whose values are easy to look for in stored bytes.
fn session(n: usize) -> Vec<u8> {
    format!(
        "user|s:12:\"alice-{n:06}\";csrf|s:24:\"TOKEN-0123456789-{n:06}\";note|s:600:\"{}\";",
        "plaintext ".repeat(60)
    )
    .into_bytes()
}

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hash"), format!("{HASH_KEY}\n")).unwrap();
        let keys = Keys { dir };
        keys.set(&[KEY_A]);
        keys
    }

    /// The key file now holds `keys`, one per line.
    fn set(&self, keys: &[&str]) {
        std::fs::write(self.file(), keys.join("\n") + "\n").unwrap();
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("keys")
    }

    /// The save_path options that encrypt (and hash ids, with `hashed`).
    fn options(&self, hashed: bool) -> String {
        let mut options = format!("encryption_key_file={}", self.file().display());
        if hashed {
            let hash = self.dir.path().join("hash");
            options.push_str(&format!("&hash_ids=1&hash_key_file={}", hash.display()));
        }
        options
    }
}

fn with(url: &str, options: &str) -> String {
    if options.is_empty() {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{options}")
}

fn store(url: &str) -> Box<dyn SessionStore> {
    open_store(&parse_save_path(url).unwrap(), Timeouts::default()).unwrap()
}

fn inventory(url: &str) -> Box<dyn Inventory> {
    open_inventory(&parse_save_path(url).unwrap(), Timeouts::default()).unwrap()
}

/// One request: lock, read, write `data`.
fn write(store: &mut dyn SessionStore, sid: &str, data: &[u8]) {
    let read = store.lock_and_read(&id(sid), LOCKED).unwrap();
    store
        .write_and_unlock(&id(sid), data, LIFETIME, read.lock.as_ref())
        .unwrap();
}

/// One request that reads and writes nothing new (as PHP with lazy_write off: the data it
/// read); the data it saw, and the warning it got.
fn read(store: &mut dyn SessionStore, sid: &str) -> (Vec<u8>, Option<String>) {
    let read = store.lock_and_read(&id(sid), LOCKED).unwrap();
    let notice = store.take_notice();
    let data = read.data.clone().unwrap_or_default();
    store
        .write_and_unlock(&id(sid), &data, LIFETIME, read.lock.as_ref())
        .unwrap();
    (data, notice)
}

/// Every (name, stored bytes) of the store at `plain_url`, past the frames.
fn raw(plain_url: &str) -> Vec<(String, Vec<u8>)> {
    let mut inventory = inventory(plain_url);
    let mut all = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let (page, next) = inventory.page(cursor.as_ref(), 100, true).unwrap();
        all.extend(page.into_iter().map(|l| (l.id, l.data.unwrap_or_default())));
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn backends(test: impl Fn(&str, &str)) {
    let redis = RedisServer::start();
    println!("Redis");
    test(&redis.url(), "r");
    let db = MariaDbServer::start();
    println!("MariaDB");
    test(&db.save_path(""), "m");
}

#[test]
fn stored_bytes_hold_no_plaintext_and_names_no_session_id() {
    backends(|url, tag| {
        let keys = Keys::new();
        for (hashed, compression) in [
            (false, ""),
            (true, ""),
            (true, "compression=zstd&compression_min_size=100"),
        ] {
            let options = format!("{}&{compression}", keys.options(hashed));
            let options = options.trim_end_matches('&');
            let mut sealed = store(&with(url, options));
            let ids: Vec<String> = (0..5)
                .map(|n| format!("{tag}{}{n}secretid0123456789", u8::from(hashed)))
                .collect();
            for (n, sid) in ids.iter().enumerate() {
                write(sealed.as_mut(), sid, &session(n));
                let (data, notice) = read(sealed.as_mut(), sid);
                assert_eq!(data, session(n), "{sid} round trip");
                assert_eq!(notice, None);
            }
            let stored = raw(url);
            for (n, sid) in ids.iter().enumerate() {
                let here: Vec<_> = stored.iter().filter(|(name, _)| name == sid).collect();
                assert_eq!(
                    here.len(),
                    usize::from(!hashed),
                    "{sid} stored under its id: {hashed}"
                );
                for (name, bytes) in &stored {
                    assert!(!name.contains(&sid[..12]) || !hashed, "{name} holds the id");
                    for value in [
                        format!("alice-{n:06}").into_bytes(),
                        format!("TOKEN-0123456789-{n:06}").into_bytes(),
                        b"plaintext plaintext".to_vec(),
                        b"user|".to_vec(),
                    ] {
                        assert!(!contains(bytes, &value), "{name} holds plaintext");
                    }
                }
            }
            if let Some(redis_keys) = redis_keys(url) {
                for sid in &ids {
                    assert_eq!(
                        redis_keys.contains(&sid[..12]),
                        !hashed,
                        "a data, lock or wake-up key holds {sid}: {redis_keys}"
                    );
                }
            }
            // fleetctl's view: the id given is hashed, the data opened.
            let mut listed = inventory(&with(url, options));
            let fetched = listed.fetch(&id(&ids[0])).unwrap().expect("found");
            assert_eq!(fetched.inflated().unwrap().as_ref(), &session(0)[..]);
            assert!(listed.remove(&id(&ids[0])).unwrap());
            let mut sealed = store(&with(url, options));
            assert!(!sealed.exists(&id(&ids[0])).unwrap());
            for sid in &ids[1..] {
                sealed.destroy(&id(sid), None).unwrap();
            }
        }
    });
}

/// Every key of a standalone Redis at `url` (the test's own server), as one string.
fn redis_keys(url: &str) -> Option<String> {
    if !url.starts_with("redis://") {
        return None;
    }
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    Some(keys.join(" "))
}

#[test]
fn a_moved_or_changed_ciphertext_is_refused_and_left_as_it_was() {
    backends(|url, tag| {
        let keys = Keys::new();
        let sealed_url = with(url, &keys.options(false));
        let mut sealed = store(&sealed_url);
        let (one, two) = (format!("{tag}movedone"), format!("{tag}movedtwo"));
        write(sealed.as_mut(), &one, &session(1));
        write(sealed.as_mut(), &two, &session(2));
        let mut plain = inventory(url);
        let bytes_one = plain.fetch(&id(&one)).unwrap().unwrap().data;

        // One's ciphertext under two's key.
        assert!(plain.remove(&id(&two)).unwrap());
        assert!(plain
            .insert_if_absent(&id(&two), &bytes_one, LIFETIME)
            .unwrap());
        let (data, notice) = read(sealed.as_mut(), &two);
        assert_eq!(data, b"", "moved: read as empty");
        let notice = notice.expect("a warning");
        assert!(
            notice.contains("does not decrypt") && notice.contains(&two[..6]),
            "{notice}"
        );
        assert_eq!(
            plain.fetch(&id(&two)).unwrap().unwrap().data,
            bytes_one,
            "an empty write left it as it was"
        );

        // One bit of one's ciphertext flipped.
        let mut flipped = bytes_one.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x20;
        assert!(plain.remove(&id(&one)).unwrap());
        assert!(plain
            .insert_if_absent(&id(&one), &flipped, LIFETIME)
            .unwrap());
        let (data, notice) = read(sealed.as_mut(), &one);
        assert_eq!(data, b"");
        assert!(notice.is_some());
        assert_eq!(plain.fetch(&id(&one)).unwrap().unwrap().data, flipped);
        // Also through merge mode's read, and fleetctl's.
        let merged = sealed
            .as_merge()
            .unwrap()
            .read_versioned(&id(&one))
            .unwrap();
        assert_eq!(merged.data.as_deref(), Some(&b""[..]));
        assert!(sealed.take_notice().is_some());
        let refused = inventory(&sealed_url).fetch(&id(&one)).unwrap_err();
        assert!(
            refused.to_string().contains("does not decrypt"),
            "{refused}"
        );

        // New data replaces it.
        write(sealed.as_mut(), &one, &session(3));
        assert_eq!(read(sealed.as_mut(), &one), (session(3), None));

        // A store without the key sees empty sessions, with the key id named.
        let other = Keys::new();
        other.set(&[KEY_B]);
        let mut stranger = store(&with(url, &other.options(false)));
        let (data, notice) = read(stranger.as_mut(), &one);
        assert_eq!(data, b"");
        assert!(notice.unwrap().contains("not in encryption_key_file"));
        let mut keyless = store(url);
        let (data, notice) = read(keyless.as_mut(), &one);
        assert_eq!(data, b"");
        assert!(notice.unwrap().contains("has no encryption_key_file"));
        assert_eq!(read(sealed.as_mut(), &one), (session(3), None), "unharmed");
        other.dir.close().unwrap();
        for sid in [&one, &two] {
            sealed.destroy(&id(sid), None).unwrap();
        }
    });
}

#[test]
fn sessions_stored_in_the_clear_stay_readable_when_encryption_is_switched_on() {
    backends(|url, tag| {
        let keys = Keys::new();
        let sid = format!("{tag}clearfirst");
        let mut plain = store(url);
        write(plain.as_mut(), &sid, &session(7));
        let mut sealed = store(&with(url, &keys.options(false)));
        assert_eq!(read(sealed.as_mut(), &sid), (session(7), None));
        write(sealed.as_mut(), &sid, &session(8));
        let stored = inventory(url).fetch(&id(&sid)).unwrap().unwrap().data;
        assert!(!contains(&stored, b"alice"), "sealed on its next write");
        assert_eq!(read(sealed.as_mut(), &sid), (session(8), None));
        sealed.destroy(&id(&sid), None).unwrap();
    });
}

fn rekey_all(url: &str) -> RekeyCounts {
    let mut rekey = open_rekey(&parse_save_path(url).unwrap(), Timeouts::default()).unwrap();
    let mut counts = RekeyCounts::default();
    let mut cursor = None;
    loop {
        let (page, next) = rekey.page(cursor.as_ref(), 7).unwrap();
        counts += page;
        match next {
            Some(c) => cursor = Some(c),
            None => return counts,
        }
    }
}

/// Key A, then the file `B, A` (new writes sealed with B, A's still read), `rekey`, then B
/// alone: every session is still read.
fn rotation(url: &str, tag: &str, hashed: bool) {
    let keys = Keys::new();
    let sealed_url = with(url, &keys.options(hashed));
    let ids: Vec<String> = (0..20).map(|n| format!("{tag}rot{n}")).collect();
    let mut under_a = store(&sealed_url);
    for (n, sid) in ids.iter().enumerate() {
        write(under_a.as_mut(), sid, &session(n));
    }
    let mut clear = store(url);
    write(clear.as_mut(), &format!("{tag}rotclear"), &session(99));

    keys.set(&[KEY_B, KEY_A]);
    let mut rotated = store(&sealed_url);
    for (n, sid) in ids.iter().enumerate().take(5) {
        assert_eq!(
            read(rotated.as_mut(), sid).0,
            session(n),
            "A's read under B, A"
        );
    }
    // The five just read were written back (as with lazy_write off): sealed with B, so
    // current. The one stored in the clear is sealed.
    let counts = rekey_all(&sealed_url);
    assert_eq!(
        (counts.rekeyed, counts.current, counts.unreadable),
        (16, 5, 0),
        "{counts:?}"
    );
    assert_eq!(rekey_all(&sealed_url).rekeyed, 0, "nothing left to do");

    keys.set(&[KEY_B]);
    let mut under_b = store(&sealed_url);
    for (n, sid) in ids.iter().enumerate() {
        assert_eq!(
            read(under_b.as_mut(), sid),
            (session(n), None),
            "{sid} under B alone"
        );
        under_b.destroy(&id(sid), None).unwrap();
    }
    clear.destroy(&id(&format!("{tag}rotclear")), None).unwrap();
}

#[test]
fn keys_rotate_and_rekey_lets_the_old_key_go() {
    backends(|url, tag| {
        rotation(url, tag, false);
        rotation(url, &format!("{tag}h"), true);
    });
}

/// A cluster keeps a session's data, lock and wake-up keys in one slot under hashed names
/// too; rotation and rekey work across its masters.
#[test]
fn a_cluster_locks_and_rekeys_hashed_sealed_sessions() {
    let cluster = RedisCluster::start(3, 0);
    let url = cluster.save_path("");
    let keys = Keys::new();
    let mut sealed = store(&with(&url, &keys.options(true)));
    for n in 0..10 {
        let sid = format!("cl{n}");
        write(sealed.as_mut(), &sid, &session(n));
        assert_eq!(read(sealed.as_mut(), &sid), (session(n), None));
        sealed.destroy(&id(&sid), None).unwrap();
    }
    rotation(&url, "c", true);
    rotation(&url, "d", false);
    assert!(Path::new(&keys.file()).exists());
}

/// A request that could not decrypt its session and writes an empty one in another
/// serializer's form (`a:0:{}` is php_serialize's) leaves the stored session as it was; a
/// merge-mode write that meets, as what another request stored, a session it cannot decrypt
/// gives up instead of taking it for empty (which would drop every variable of it).
#[test]
fn an_undecryptable_session_is_never_replaced_by_nothing_nor_merged_as_empty() {
    backends(|url, tag| {
        let keys = Keys::new();
        let other = Keys::new();
        other.set(&[KEY_B]);
        let mut ours = store(&with(url, &keys.options(false)));
        let mut theirs = store(&with(url, &other.options(false)));
        let sid = format!("{tag}emptyforms");
        write(ours.as_mut(), &sid, &session(1));
        let raw_before = inventory(url).fetch(&id(&sid)).unwrap().unwrap().data;
        for empty in [&b""[..], b"a:0:{}", b"\0\0\0\x02\x14\0"] {
            let read = theirs.lock_and_read(&id(&sid), LOCKED).unwrap();
            assert_eq!(read.data.as_deref(), Some(&b""[..]));
            assert!(theirs.take_notice().is_some());
            theirs
                .write_and_unlock(&id(&sid), empty, LIFETIME, read.lock.as_ref())
                .unwrap();
            assert_eq!(
                inventory(url).fetch(&id(&sid)).unwrap().unwrap().data,
                raw_before
            );
        }

        // Merge mode: B reads (empty), A writes meanwhile, B's write meets A's data.
        let base = theirs
            .as_merge()
            .unwrap()
            .read_versioned(&id(&sid))
            .unwrap();
        write(ours.as_mut(), &sid, &session(2));
        let raw_now = inventory(url).fetch(&id(&sid)).unwrap().unwrap().data;
        let refused = theirs
            .as_merge()
            .unwrap()
            .write_if_unchanged(&id(&sid), &base.version, b"n|i:1;", LIFETIME)
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            fleet_core::ErrorKind::DamagedData,
            "{refused}"
        );
        assert!(refused.to_string().contains("not merged"), "{refused}");
        assert_eq!(
            inventory(url).fetch(&id(&sid)).unwrap().unwrap().data,
            raw_now
        );
        assert_eq!(read(ours.as_mut(), &sid), (session(2), None));
        ours.destroy(&id(&sid), None).unwrap();
    });
}

/// require_encryption=1: a session stored in the clear (by whoever can write to the store)
/// reads as empty, with a warning, and is left as it is; rekey encrypts it, and then it
/// reads.
#[test]
fn require_encryption_refuses_sessions_stored_in_the_clear() {
    backends(|url, tag| {
        let keys = Keys::new();
        let strict = with(
            url,
            &format!("{}&require_encryption=1", keys.options(false)),
        );
        let sid = format!("{tag}planted");
        write(store(url).as_mut(), &sid, b"uid|i:1;admin|b:1;");
        let mut sealed = store(&strict);
        let (data, notice) = read(sealed.as_mut(), &sid);
        assert_eq!(data, b"");
        assert!(notice.unwrap().contains("require_encryption=1"));
        assert_eq!(
            inventory(url).fetch(&id(&sid)).unwrap().unwrap().data,
            b"uid|i:1;admin|b:1;"
        );
        assert!(inventory(&strict).fetch(&id(&sid)).is_err());
        assert_eq!(rekey_all(&strict).rekeyed, 1);
        assert_eq!(
            read(sealed.as_mut(), &sid),
            (b"uid|i:1;admin|b:1;".to_vec(), None)
        );
        sealed.destroy(&id(&sid), None).unwrap();
    });
}
