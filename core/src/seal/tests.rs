use super::*;

const KEY_A: &str = "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=";
const KEY_B: &str = "7yq3VJq1cR2B0xWvF4Yb1d0n8m6l5k4j3h2g1f0e9dA=";

fn ring(lines: &str) -> Keyring {
    Keyring::parse(lines).unwrap()
}

const SESSION: &[u8] = b"user|s:5:\"alice\";csrf|s:32:\"0123456789abcdef0123456789abcdef\";";

#[test]
fn sealed_data_opens_under_its_own_name_only_and_shows_no_plaintext() {
    let keys = ring(KEY_A);
    let sealed = keys.seal("abc123", SESSION).unwrap();
    assert!(is_sealed(&sealed));
    assert_eq!(sealed.len(), SESSION.len() + HEADER + TAG);
    for window in [&b"alice"[..], b"0123456789abcdef", b"user|"] {
        assert!(!sealed.windows(window.len()).any(|w| w == window));
    }
    assert_eq!(keys.open("abc123", &sealed).unwrap(), SESSION);
    assert_eq!(
        keys.open("abc124", &sealed),
        Err(Unsealed::Forged {
            key: keys.current()
        }),
        "moved to another session's key"
    );
    // Fresh nonces: the same data never seals to the same bytes.
    assert_ne!(keys.seal("abc123", SESSION).unwrap(), sealed);
}

#[test]
fn every_changed_byte_and_every_cut_is_refused() {
    let keys = ring(KEY_A);
    let sealed = keys.seal("s1", SESSION).unwrap();
    for i in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[i] ^= 0x01;
        assert!(keys.open("s1", &flipped).is_err(), "byte {i} flipped");
    }
    for len in 0..sealed.len() {
        assert!(keys.open("s1", &sealed[..len]).is_err(), "cut at {len}");
    }
}

#[test]
fn the_first_key_seals_and_every_key_opens() {
    let old = ring(KEY_A);
    let rotated = ring(&format!("{KEY_B}\n{KEY_A}\n"));
    let new_only = ring(KEY_B);
    let sealed_old = old.seal("s", SESSION).unwrap();
    assert_eq!(rotated.open("s", &sealed_old).unwrap(), SESSION);
    assert!(!rotated.is_current(&sealed_old));
    let sealed_new = rotated.seal("s", SESSION).unwrap();
    assert!(rotated.is_current(&sealed_new));
    assert_eq!(new_only.open("s", &sealed_new).unwrap(), SESSION);
    assert_eq!(
        new_only.open("s", &sealed_old),
        Err(Unsealed::UnknownKey { key: old.current() })
    );
    assert_eq!(
        without_keys(&sealed_old),
        Unsealed::NoKeys { key: old.current() }
    );
}

#[test]
fn key_files_are_checked_line_by_line_without_quoting_them() {
    assert!(Keyring::parse("").is_err());
    assert!(Keyring::parse("# only a comment\n\n").is_err());
    let short = Keyring::parse("c2hvcnQ=").unwrap_err();
    assert!(
        short.contains("line 1") && short.contains("32 bytes"),
        "{short}"
    );
    let bad = Keyring::parse(&format!("{KEY_A}\nnot base64 at all!")).unwrap_err();
    assert!(bad.contains("line 2") && !bad.contains("at all"), "{bad}");
    let twice = Keyring::parse(&format!("{KEY_A}\n{KEY_A}")).unwrap_err();
    assert!(twice.contains("twice"), "{twice}");
    // Without padding, with comments and CRLF line ends.
    let loose = format!("# rotated 2026-12\r\n{}\r\n", KEY_A.trim_end_matches('='));
    assert_eq!(ring(&loose), ring(KEY_A));
    let debug = format!("{:?}", ring(KEY_A));
    assert!(!debug.contains(&KEY_A[..8]), "{debug}");
}

#[test]
fn hashed_ids_are_keyed_stable_and_within_the_id_alphabet() {
    let id = SessionId::parse(b"hk3s9q0r1v5m2o8b7c4d6e0f1a").unwrap();
    let a = IdHasher::parse(KEY_A).unwrap();
    let b = IdHasher::parse(KEY_B).unwrap();
    let name = a.name(&id);
    assert_eq!(name.as_str().len(), 64);
    assert!(SessionId::parse(name.as_str().as_bytes()).is_ok());
    assert_eq!(a.name(&id), name, "stable");
    assert_ne!(b.name(&id), name, "keyed");
    assert!(!name.as_str().contains(id.as_str()));
    // The secret is derived from the file's key with a label: not the key used as it is.
    let raw = {
        let mut mac =
            <HmacSha256 as hmac::KeyInit>::new_from_slice(&*decode_key(KEY_A).unwrap()).unwrap();
        mac.update(id.as_str().as_bytes());
        let tag = mac.finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_ne!(name.as_str(), raw);
    assert_eq!(format!("{a:?}"), "IdHasher(***)");
}

proptest::proptest! {
    /// Whatever the bytes, opening never panics, and only what was sealed under that name
    /// opens.
    #[test]
    fn opening_any_bytes_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let keys = ring(KEY_A);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&data);
        let _ = keys.open("s", &framed);
        let _ = keys.open("s", &data);
        let sealed = keys.seal("s", &data).unwrap();
        proptest::prop_assert_eq!(keys.open("s", &sealed).unwrap(), data);
    }
}
