//! Session id validation: nothing outside PHP's id alphabet reaches a key or a query.

use std::fmt;

use thiserror::Error;

/// Longest id accepted. PHP's own ids are at most 256 characters (`session.sid_length`).
pub const MAX_ID_LEN: usize = 256;

/// A session id known to be 1 to [`MAX_ID_LEN`] characters of `a-z A-Z 0-9 , -`, the
/// alphabet PHP itself generates and accepts (`php_session_valid_key`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
/// Why a session id was refused.
pub enum InvalidId {
    #[error("the id is empty")]
    /// No bytes at all.
    Empty,
    #[error("the id is {len} bytes long; at most {MAX_ID_LEN} are allowed")]
    /// Longer than [`MAX_ID_LEN`].
    TooLong {
        /// The id's length.
        len: usize,
    },
    #[error("byte {position} of the id is outside a-z A-Z 0-9 , -")]
    /// A byte outside PHP's id alphabet.
    BadByte {
        /// Where, counting from 0.
        position: usize,
    },
}

impl SessionId {
    /// Checks `raw` against the alphabet and length PHP uses.
    pub fn parse(raw: &[u8]) -> Result<SessionId, InvalidId> {
        if raw.is_empty() {
            return Err(InvalidId::Empty);
        }
        if raw.len() > MAX_ID_LEN {
            return Err(InvalidId::TooLong { len: raw.len() });
        }
        if let Some(position) = raw.iter().position(|b| !is_id_byte(*b)) {
            return Err(InvalidId::BadByte { position });
        }
        // Every byte is ASCII, so this cannot fail; no char-by-char rebuild needed.
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(SessionId(s.to_owned())),
            Err(e) => Err(InvalidId::BadByte {
                position: e.valid_up_to(),
            }),
        }
    }

    /// The id as text (it is ASCII).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name a hashed id is stored under (64 hex digits, within the alphabet).
    pub(crate) fn hashed(hex: String) -> SessionId {
        SessionId(hex)
    }

    /// A short form for warnings: an id is a credential, so logs get only its start.
    pub fn abbreviated(&self) -> String {
        let head: String = self.0.chars().take(6).collect();
        format!("{head}…")
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.abbreviated())
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b',' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_php_ids() {
        for id in ["a", "abcDEF0123456789,-", &"x".repeat(MAX_ID_LEN)] {
            assert_eq!(SessionId::parse(id.as_bytes()).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(SessionId::parse(b""), Err(InvalidId::Empty));
        assert_eq!(
            SessionId::parse("x".repeat(257).as_bytes()),
            Err(InvalidId::TooLong { len: 257 })
        );
        for (bad, at) in [
            (&b"ab c"[..], 2),
            (b"a\0b", 1),
            (b"a*", 1),
            (b"{x}", 0),
            (b"a\r\n", 1),
            (b"ab_LOCK", 2),
            ("é".as_bytes(), 0),
        ] {
            assert_eq!(
                SessionId::parse(bad),
                Err(InvalidId::BadByte { position: at }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_print_whole_id() {
        let id = SessionId::parse(b"abcdefghijklmnop").unwrap();
        assert_eq!(format!("{id:?}"), "SessionId(abcdef…)");
    }
}
