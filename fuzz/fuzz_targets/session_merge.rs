//! Any three blobs through the per-variable merge of `fleet.locking = merge`: it never panics;
//! merging an unchanged side gives exactly the other side; and any blob that is cut into
//! variables is joined back byte for byte.
#![no_main]

use fleet_core::codec::{join, split, SessionFormat, Split};
use fleet_core::merge::{merge, OnConflict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Three parts, cut at the first two 0xff bytes (absent: empty parts).
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let base = parts.next().unwrap_or_default();
    let ours = parts.next().unwrap_or_default();
    let theirs = parts.next().unwrap_or_default();
    for format in [SessionFormat::Php, SessionFormat::PhpSerialize] {
        for policy in [OnConflict::Ours, OnConflict::Theirs] {
            let m = merge(base, ours, theirs, format, policy);
            if ours == base {
                assert_eq!(m.data, theirs);
            }
            if theirs == base {
                assert_eq!(m.data, ours);
            }
        }
        if let Split::Vars(vars) = split(theirs, format) {
            let canonical = format == SessionFormat::Php || theirs.starts_with(b"a:");
            if canonical && !vars.is_empty() {
                let joined = join(&vars, format);
                // php_serialize's count is rewritten; everything else is kept as written.
                if format == SessionFormat::Php {
                    assert_eq!(joined, theirs);
                } else {
                    assert_eq!(split(&joined, format), Split::Vars(vars));
                }
            }
        }
    }
});
