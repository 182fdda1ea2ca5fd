//! Any text as `session.save_path`: a typed config or an error that names the problem,
//! never a panic, and never a password in the message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match fleet_core::parse_save_path(&text) {
        Ok(config) => {
            let _ = config.endpoint();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
