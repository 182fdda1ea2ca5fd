//! Any stored bytes as an encrypted read meets them: opening never panics, and never gives
//! back bytes that were not sealed for that session name with one of the keys. Whatever a
//! write seals (compressed or not) opens under its own name, and under no other.
#![no_main]

use fleet_core::compress::{self, Compression};
use fleet_core::seal::{self, Keyring};
use libfuzzer_sys::fuzz_target;

const KEYS: &str = "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=\n7yq3VJq1cR2B0xWvF4Yb1d0n8m6l5k4j3h2g1f0e9dA=\n";

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = Keyring::parse(KEYS) else { return };
    // Arbitrary bytes, and arbitrary bytes behind a sealed frame's magic and format byte:
    // a random tag matches with probability 2^-128, so none may open.
    let mut framed = b"\0FLE\x01".to_vec();
    framed.extend_from_slice(data);
    for stored in [data, &framed[..]] {
        if seal::is_sealed(stored) {
            assert!(keys.open("s", stored).is_err(), "unauthenticated bytes opened");
        }
    }
    // What is sealed opens, whole, under its own name only.
    let packed = Compression::default().pack(data);
    let Ok(sealed) = keys.seal("s", &packed) else { return };
    let opened = keys.open("s", &sealed).expect("its own name opens it");
    assert_eq!(compress::unpack(&opened).as_deref().ok(), Some(data));
    assert!(keys.open("t", &sealed).is_err());
    // Any one byte changed is refused.
    if !sealed.is_empty() {
        let mut flipped = sealed.clone();
        let i = data.first().map_or(0, |b| *b as usize) % flipped.len();
        flipped[i] ^= 0x80;
        assert!(keys.open("s", &flipped).is_err());
    }
});
