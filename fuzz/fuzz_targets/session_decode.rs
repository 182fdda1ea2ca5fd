//! Any bytes through the session decoder, as `fleetctl sessions show` and
//! `fleet_core::read_session` meet them in a store: it returns a value or an error, never
//! panics, overflows the stack or allocates without bound.
#![no_main]

use fleet_core::codec::{decode, decode_any, unserialize, SessionFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [SessionFormat::Php, SessionFormat::PhpSerialize] {
        if let Ok(vars) = decode(data, format) {
            let _ = vars.to_json().to_string();
            let _ = vars.to_text();
        }
    }
    let _ = decode_any(data);
    if let Ok(value) = unserialize(data) {
        let _ = value.to_json();
    }
});
