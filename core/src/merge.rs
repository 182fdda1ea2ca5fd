//! The three-way merge of one session, per top-level variable, for writes that did not hold
//! the session's lock (`fleet.locking = merge`): `base` is what this request read, `ours` what
//! it writes, `theirs` what is stored now.
//!
//! A variable changed only by us, or only by them, merges cleanly; one added or removed counts
//! as a change. A variable both changed, to different values, is a conflict, settled by the
//! [`OnConflict`] policy and reported. Data that cannot be cut into variables
//! ([`crate::codec::Split::Whole`]) is merged as one variable.
//!
//! What a merge cannot see: two requests that both turn `n` from 3 into 4 wrote the same value,
//! so they agree and one increment is lost without any conflict.

use std::collections::HashMap;

use crate::codec::{join, split, SessionFormat, Split};

mod write;

pub use write::{write_merged, MergeOutcome, MergeReport, MergeTerms};

/// Which side a conflicting variable takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// This request's value: the last writer wins, as without merging.
    Ours,
    /// The stored value: the first writer wins.
    Theirs,
}

/// The outcome of [`merge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The data to store.
    pub data: Vec<u8>,
    /// The variables both sides changed differently (their names, lossy UTF-8; `*` for a
    /// session merged whole).
    pub conflicts: Vec<String>,
    /// Whether the session was merged whole (it could not be cut into variables).
    pub whole: bool,
}

/// Merges `ours` into `theirs` relative to `base`; all three written by `format`'s handler.
pub fn merge(
    base: &[u8],
    ours: &[u8],
    theirs: &[u8],
    format: SessionFormat,
    on_conflict: OnConflict,
) -> Merged {
    if let Some(merged) = one_side_unchanged(base, ours, theirs) {
        return merged;
    }
    let (Split::Vars(b), Split::Vars(o), Split::Vars(t)) = (
        split(base, format),
        split(ours, format),
        split(theirs, format),
    ) else {
        return whole(ours, theirs, on_conflict);
    };
    let mut out: Vec<(&[u8], &[u8])> = Vec::with_capacity(t.len().max(o.len()));
    let mut conflicts = Vec::new();
    // Looked up by name: a session may have many variables, and a merge may run a dozen
    // times in one write. `split` guarantees each name once.
    let (bm, om, tm) = (index(&b), index(&o), index(&t));
    // Their order first (what is stored), then the variables only we have, in our order.
    let keys = t
        .iter()
        .map(|(k, _)| *k)
        .chain(o.iter().map(|(k, _)| *k).filter(|k| !tm.contains_key(k)));
    for key in keys {
        let (was, mine, stored) = (
            bm.get(key).copied(),
            om.get(key).copied(),
            tm.get(key).copied(),
        );
        let value = if mine == was {
            stored
        } else if stored == was || mine == stored {
            mine
        } else {
            conflicts.push(String::from_utf8_lossy(key).into_owned());
            match on_conflict {
                OnConflict::Ours => mine,
                OnConflict::Theirs => stored,
            }
        };
        if let Some(value) = value {
            out.push((key, value));
        }
    }
    Merged {
        data: join(&out, format),
        conflicts,
        whole: false,
    }
}

/// Merges data Fleet cannot cut into variables (another serialize handler, such as
/// igbinary): as one variable, so both sides changing it is one conflict (`*`).
pub fn merge_opaque(base: &[u8], ours: &[u8], theirs: &[u8], on_conflict: OnConflict) -> Merged {
    one_side_unchanged(base, ours, theirs).unwrap_or_else(|| whole(ours, theirs, on_conflict))
}

/// One side unchanged (or both the same): no need to cut anything, and the result is
/// exactly the other side's bytes.
fn one_side_unchanged(base: &[u8], ours: &[u8], theirs: &[u8]) -> Option<Merged> {
    let clean = |data: &[u8]| Merged {
        data: data.to_vec(),
        conflicts: Vec::new(),
        whole: false,
    };
    if ours == base || ours == theirs {
        return Some(clean(theirs));
    }
    (theirs == base).then(|| clean(ours))
}

/// Both sides changed a session merged whole: one conflict, settled by the policy.
fn whole(ours: &[u8], theirs: &[u8], on_conflict: OnConflict) -> Merged {
    let data = match on_conflict {
        OnConflict::Ours => ours,
        OnConflict::Theirs => theirs,
    };
    Merged {
        data: data.to_vec(),
        conflicts: vec!["*".to_owned()],
        whole: true,
    }
}

/// The variables by name.
fn index<'a>(vars: &[(&'a [u8], &'a [u8])]) -> HashMap<&'a [u8], &'a [u8]> {
    vars.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PHP: SessionFormat = SessionFormat::Php;

    fn merged(base: &str, ours: &str, theirs: &str, policy: OnConflict) -> (String, Vec<String>) {
        let m = merge(
            base.as_bytes(),
            ours.as_bytes(),
            theirs.as_bytes(),
            PHP,
            policy,
        );
        (String::from_utf8(m.data).unwrap(), m.conflicts)
    }

    #[test]
    fn changes_to_different_variables_both_survive() {
        let (data, conflicts) = merged(
            "a|i:0;b|i:0;",
            "a|i:1;b|i:0;",
            "a|i:0;b|i:1;",
            OnConflict::Ours,
        );
        assert_eq!(data, "a|i:1;b|i:1;");
        assert!(conflicts.is_empty());
    }

    #[test]
    fn added_and_removed_variables_count_as_changes() {
        // We added c; they removed b.
        let (data, conflicts) = merged(
            "a|i:0;b|i:0;",
            "a|i:0;b|i:0;c|i:9;",
            "a|i:0;",
            OnConflict::Ours,
        );
        assert_eq!(data, "a|i:0;c|i:9;");
        assert!(conflicts.is_empty());
        // We removed a (a logout's unset); they changed b.
        let (data, _) = merged("a|i:0;b|i:0;", "b|i:0;", "a|i:0;b|i:5;", OnConflict::Ours);
        assert_eq!(data, "b|i:5;");
    }

    #[test]
    fn both_changing_one_variable_is_a_conflict_settled_by_the_policy() {
        let (ours, conflicts) = merged("n|i:1;", "n|i:2;", "n|i:7;", OnConflict::Ours);
        assert_eq!((ours.as_str(), conflicts), ("n|i:2;", vec!["n".to_owned()]));
        let (theirs, _) = merged("n|i:1;", "n|i:2;", "n|i:7;", OnConflict::Theirs);
        assert_eq!(theirs, "n|i:7;");
    }

    #[test]
    fn the_same_change_on_both_sides_is_no_conflict_and_loses_an_increment() {
        // What merge cannot see: both read 3 and wrote 4.
        let (data, conflicts) = merged("n|i:3;", "n|i:4;k|i:1;", "n|i:4;", OnConflict::Ours);
        assert_eq!(data, "n|i:4;k|i:1;");
        assert!(conflicts.is_empty());
    }

    #[test]
    fn a_session_that_cannot_be_cut_is_merged_whole() {
        let m = merge(
            b"a|i:1;b|R:1;",
            b"a|i:2;b|R:1;",
            b"a|i:3;b|R:1;",
            PHP,
            OnConflict::Theirs,
        );
        assert_eq!(
            (m.data, m.conflicts),
            (b"a|i:3;b|R:1;".to_vec(), vec!["*".to_owned()])
        );
        // One side unchanged: the other side's bytes, whatever they are.
        let m = merge(
            b"\x00igbinary",
            b"\x00igbinary",
            b"\x01other",
            PHP,
            OnConflict::Ours,
        );
        assert_eq!(m.data, b"\x01other");
    }

    #[test]
    fn php_serialize_sessions_merge_per_element() {
        let f = SessionFormat::PhpSerialize;
        let base = b"a:2:{s:1:\"a\";i:0;s:1:\"b\";i:0;}";
        let ours = b"a:2:{s:1:\"a\";i:1;s:1:\"b\";i:0;}";
        let theirs = b"a:3:{s:1:\"a\";i:0;s:1:\"b\";i:2;s:1:\"c\";b:1;}";
        let m = merge(base, ours, theirs, f, OnConflict::Ours);
        assert_eq!(m.data, b"a:3:{s:1:\"a\";i:1;s:1:\"b\";i:2;s:1:\"c\";b:1;}");
        assert!(m.conflicts.is_empty());
    }

    /// A php-format session of up to 6 variables drawn from a few names and values.
    fn session() -> impl Strategy<Value = Vec<(u8, i64)>> {
        proptest::collection::vec((0u8..6, -3i64..3), 0..6)
    }

    fn encode(vars: &[(u8, i64)]) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (name, value) in vars {
            if !seen.contains(name) {
                seen.push(*name);
                out.extend_from_slice(format!("k{name}|i:{value};").as_bytes());
            }
        }
        out
    }

    proptest! {
        #[test]
        fn merging_an_unchanged_side_gives_the_other_side_exactly(base in session(), x in session()) {
            let (base, x) = (encode(&base), encode(&x));
            prop_assert_eq!(merge(&base, &base, &x, PHP, OnConflict::Ours).data, x.clone());
            prop_assert_eq!(merge(&base, &x, &base, PHP, OnConflict::Theirs).data, x);
        }

        #[test]
        fn every_variable_changed_by_one_side_only_keeps_that_change(
            base in session(), ours in session(), theirs in session()
        ) {
            let (b, o, t) = (encode(&base), encode(&ours), encode(&theirs));
            let m = merge(&b, &o, &t, PHP, OnConflict::Ours);
            let Split::Vars(out) = split(&m.data, PHP) else { panic!("merged data cuts") };
            let (Split::Vars(bv), Split::Vars(ov), Split::Vars(tv)) =
                (split(&b, PHP), split(&o, PHP), split(&t, PHP)) else { panic!() };
            let get = |v: &[(&[u8], &[u8])], k: &[u8]| v.iter().find(|(n, _)| *n == k).map(|(_, x)| x.to_vec());
            for name in 0u8..6 {
                let key = format!("k{name}");
                let k = key.as_bytes();
                let (was, mine, stored, now) = (get(&bv, k), get(&ov, k), get(&tv, k), get(&out, k));
                if mine == was { prop_assert_eq!(now, stored); }
                else if stored == was { prop_assert_eq!(now, mine); }
                else { prop_assert_eq!(now, mine); }
            }
        }
    }
}
