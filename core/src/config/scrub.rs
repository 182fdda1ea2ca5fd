//! Keeping passwords out of messages: the parts of a save_path that may hold one, the
//! scrubbing every parse error passes through on its way out of [`super::parse_save_path`],
//! and [`redact_userinfo`] for anything else that quotes a store URL.

use super::{split_query, split_scheme, split_userinfo};
use crate::error::ConfigError;

/// Options whose value is a password. `sentinel_password` is not one of Fleet's, but
/// someone will write it, and its value is a password all the same.
const PASSWORD_OPTIONS: &[&str] = &["auth", "password", "sentinel_password"];

/// The parts of `save_path` that may hold a password, raw and %-decoded: everything before
/// its last `@` (a userinfo, or a password whose `/ ? @` hid where it ends), and the query
/// from the value of the first password option on (an unencoded `&` in the password makes
/// the rest of it look like more options).
pub(super) fn secret_regions(save_path: &str) -> Vec<String> {
    let (scheme, rest) = match split_scheme(save_path) {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => (String::new(), save_path),
    };
    let mut regions = Vec::new();
    if let Some(at) = rest.rfind('@') {
        regions.push(rest[..at].to_owned());
    }
    let (_, after_userinfo) = split_userinfo(&scheme, rest);
    let (_, query) = split_query(after_userinfo);
    let mut offset = 0;
    for pair in query.split('&') {
        let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
        if PASSWORD_OPTIONS.contains(&decode_lossy(name).as_str()) {
            let value_at = offset + (name.len() + 1).min(pair.len());
            regions.push(query[value_at..].to_owned());
            break;
        }
        offset += pair.len() + 1;
    }
    for decoded in regions.iter().map(|r| decode_lossy(r)).collect::<Vec<_>>() {
        if !regions.contains(&decoded) {
            regions.push(decoded);
        }
    }
    regions.retain(|r| !r.is_empty());
    regions
}

/// `%XX` decoded where it is a valid escape, everything else kept: the text an error may
/// quote after decoding.
fn decode_lossy(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escape {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `quote` and `region` share a piece long enough to give a password away: 4
/// characters, or all of the shorter one.
fn overlaps(quote: &str, region: &str) -> bool {
    let chars: Vec<char> = quote.chars().collect();
    let n = 4.min(chars.len()).min(region.chars().count());
    n > 0
        && chars
            .windows(n)
            .any(|w| region.contains(&w.iter().collect::<String>()))
}

/// `e` as it may be shown: if a part it quotes overlaps one of `regions` (the parts of the
/// value that may hold a password), the same problem without the quote.
pub(super) fn scrub(e: ConfigError, regions: &[String]) -> ConfigError {
    let unsafe_quote = |quote: &str| regions.iter().any(|r| overlaps(quote, r));
    let problem = match &e {
        ConfigError::NoScheme { value } if unsafe_quote(value) => {
            "it has no scheme; write it as redis://host:port or mysql://user@host/database"
                .to_owned()
        }
        ConfigError::UnknownScheme { scheme } if unsafe_quote(scheme) => {
            "the scheme is not supported; use redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster:// or mysql://".to_owned()
        }
        ConfigError::Invalid { part, reason } if unsafe_quote(part) => (*reason).to_owned(),
        ConfigError::UnknownOption { option, known } if unsafe_quote(option) => {
            format!("an unknown option; known options are {known}")
        }
        ConfigError::PasswordFile {
            option,
            path,
            cause,
        } if unsafe_quote(path) => format!("cannot read {option}: {cause}"),
        ConfigError::PasswordEnv {
            option,
            name,
            cause,
        } if unsafe_quote(name) => {
            format!("{option} names an environment variable, but {cause}")
        }
        ConfigError::OutsideOpenBasedir { option, path } if unsafe_quote(path) => {
            format!("{option} names a file that is not within open_basedir: Fleet does not read files PHP itself may not open")
        }
        _ => return e,
    };
    ConfigError::Redacted { problem }
}

/// Replaces the userinfo of something that looks like a URL with `***`, and the value of a
/// password option and the rest of the query after it, for error messages.
pub fn redact_userinfo(value: &str) -> String {
    let (head, scheme, tail) = match split_scheme(value) {
        Some((scheme, rest)) => (format!("{scheme}://"), scheme.to_ascii_lowercase(), rest),
        None => (String::new(), String::new(), value),
    };
    let (userinfo, after) = split_userinfo(&scheme, tail);
    let mut out = head;
    if userinfo.is_some() {
        out.push_str("***@");
    }
    let (before_query, query) = split_query(after);
    out.push_str(before_query);
    if after.len() > before_query.len() {
        out.push('?');
    }
    let mut pairs = Vec::new();
    for pair in query.split('&') {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if PASSWORD_OPTIONS.contains(&decode_lossy(name).as_str()) {
            pairs.push(format!("{name}=***"));
            break;
        }
        pairs.push(pair.to_owned());
    }
    out.push_str(&pairs.join("&"));
    out
}
