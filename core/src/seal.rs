//! Sessions at rest: stored data encrypted (`encryption_key_file=`) and session ids the
//! store never sees (`hash_ids=1`, with `hash_key_file=`).
//!
//! The sealed frame holds whatever [`crate::compress`] made of the data (compress, then
//! encrypt: ciphertext does not compress):
//!
//! | bytes | holds |
//! |---|---|
//! | 0..4 | the magic `00 46 4C 45` (`"\0FLE"`) |
//! | 4 | the format: 1 = XChaCha20-Poly1305 |
//! | 5..9 | the key id: the first 4 bytes of SHA-256(`"fleet key id\0"` ‖ key) |
//! | 9..33 | the nonce, 24 fresh random bytes per write |
//! | 33.. | the ciphertext, then Poly1305's 16-byte tag |
//!
//! The associated data is the header (bytes 0..33) and the session's name in the store (its
//! id, or with `hash_ids=1` its HMAC): a frame copied under another session's key, or given
//! another key id, does not open. A read recognises the magic whatever the options say now,
//! so data stored before encryption was switched on stays readable (it is sealed on its next
//! write) and the magic never clashes with a session PHP wrote (see [`crate::compress`]).
//!
//! Why XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`, audited by NCC Group in 2020):
//! its 192-bit nonces can be drawn at random for every write without a counter shared
//! between workers or servers (AES-GCM's 96-bit random nonces are limited to about 2^32
//! writes per key), and it runs in constant time in software on every CPU, with or
//! without AES instructions.
//!
//! Keys live in [`chacha20poly1305`]'s cipher state, which zeroes it when dropped (its
//! `zeroize` feature); the bytes read from a key file are zeroed too. Nothing here formats a
//! key: `Debug` shows key ids only.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::ConfigError;
use crate::id::SessionId;

const MAGIC: [u8; 4] = [0, b'F', b'L', b'E'];
const FORMAT_XCHACHA20_POLY1305: u8 = 1;
const NONCE: usize = 24;
const HEADER: usize = 4 + 1 + 4 + NONCE;
const TAG: usize = 16;
const KEY_BYTES: usize = 32;

/// A key's public name: derived from the key, so it says which key sealed a session
/// without saying anything about the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[derive(Clone)]
struct SealKey {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

/// The keys of an `encryption_key_file`: the first seals, every one opens.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<SealKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| k.id))
            .finish()
    }
}

impl PartialEq for Keyring {
    fn eq(&self, other: &Keyring) -> bool {
        self.ids().eq(other.ids())
    }
}

impl Eq for Keyring {}

/// Why a sealed frame did not open. Whatever the reason, no byte of it is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsealed {
    /// The data is sealed, and this store has no `encryption_key_file`.
    #[error("it is encrypted (key {key}), and session.save_path has no encryption_key_file")]
    NoKeys {
        /// The key that sealed it.
        key: KeyId,
    },
    /// None of the keys has the id the frame names.
    #[error("it is encrypted with key {key}, which is not in encryption_key_file")]
    UnknownKey {
        /// The key that sealed it.
        key: KeyId,
    },
    /// The tag does not match: another key with a colliding id, changed bytes, or a frame
    /// moved from another session.
    #[error("it does not decrypt with key {key}: the data was changed, or moved from another session's key")]
    Forged {
        /// The key it names.
        key: KeyId,
    },
    /// Stored in the clear, and the save_path has require_encryption=1.
    #[error("it is stored unencrypted, and require_encryption=1 accepts only encrypted sessions (fleetctl sessions rekey encrypts those stored before encryption was switched on)")]
    Clear,
    /// Shorter than a frame's header and tag, or of a format this build does not know.
    #[error("it is a damaged encrypted frame ({0})")]
    Damaged(&'static str),
}

impl Keyring {
    /// Parses the contents of a key file: one key per line, base64 of 32 bytes (as
    /// `head -c 32 /dev/urandom | base64` writes); blank lines and lines starting with `#`
    /// are skipped. Errors name the line, never its text.
    pub fn parse(contents: &str) -> Result<Keyring, String> {
        let mut keys: Vec<SealKey> = Vec::new();
        for (n, line) in contents.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = decode_key(line).map_err(|why| format!("line {}: {why}", n + 1))?;
            let id = key_id(&bytes[..]);
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("line {}: the same key is listed twice", n + 1));
            }
            let cipher = XChaCha20Poly1305::new((&*bytes).into());
            keys.push(SealKey { id, cipher });
        }
        if keys.is_empty() {
            return Err("it holds no key (one per line: head -c 32 /dev/urandom | base64)".into());
        }
        Ok(Keyring { keys })
    }

    /// The ids of the keys, the sealing one first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    /// The key new data is sealed with.
    pub fn current(&self) -> KeyId {
        self.keys[0].id
    }

    /// `data` sealed with the first key for the session stored as `name`.
    pub fn seal(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = &self.keys[0];
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = FORMAT_XCHACHA20_POLY1305;
        header[5..9].copy_from_slice(&key.id.0);
        getrandom::fill(&mut header[9..]).map_err(|e| SealError(e.to_string()))?;
        let nonce = XNonce::from(nonce_of(&header));
        let aad = associated_data(&header, name);
        // Encrypted where it is stored: the header, the data (encrypted in place), the tag.
        let mut framed = Vec::with_capacity(HEADER + data.len() + TAG);
        framed.extend_from_slice(&header);
        framed.extend_from_slice(data);
        let tag = key
            .cipher
            .encrypt_inout_detached(&nonce, &aad, framed[HEADER..].as_mut().into())
            .map_err(|_| SealError("the cipher refused the data".into()))?;
        framed.extend_from_slice(&tag);
        Ok(framed)
    }

    /// The bytes sealed in `stored` for the session stored as `name`.
    pub fn open(&self, name: &str, stored: &[u8]) -> Result<Vec<u8>, Unsealed> {
        let (header, key) = parse_header(stored)?;
        let Some(found) = self.keys.iter().find(|k| k.id == key) else {
            return Err(Unsealed::UnknownKey { key });
        };
        let nonce = XNonce::from(nonce_of(header));
        let aad = associated_data(header, name);
        found
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &stored[HEADER..],
                    aad: &aad,
                },
            )
            .map_err(|_| Unsealed::Forged { key })
    }

    /// Whether `stored` is sealed with the key new data is sealed with.
    pub fn is_current(&self, stored: &[u8]) -> bool {
        parse_header(stored).is_ok_and(|(_, key)| key == self.current())
    }
}

/// How many bytes a sealed frame adds to the data in it.
pub const OVERHEAD: usize = HEADER + TAG;

/// A session met inside a merge's write that does not decrypt: the write is given up rather
/// than merged with what would look like an empty session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; another request stored it, and this write was not merged with it")]
pub struct Undecryptable(pub Unsealed);

/// The operating system's random number generator failed (no nonce, so nothing sealed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no data was encrypted: {0}")]
pub struct SealError(String);

/// Whether `stored` is a sealed frame (of any format).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(&MAGIC)
}

/// Why a sealed frame cannot be opened without keys (the key it names, when it names one).
pub fn without_keys(stored: &[u8]) -> Unsealed {
    match parse_header(stored) {
        Ok((_, key)) => Unsealed::NoKeys { key },
        Err(damaged) => damaged,
    }
}

fn parse_header(stored: &[u8]) -> Result<(&[u8], KeyId), Unsealed> {
    if stored.len() < HEADER + TAG {
        return Err(Unsealed::Damaged("shorter than its header and tag"));
    }
    if stored[4] != FORMAT_XCHACHA20_POLY1305 {
        return Err(Unsealed::Damaged("an unknown format"));
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&stored[5..9]);
    Ok((&stored[..HEADER], KeyId(id)))
}

fn nonce_of(header: &[u8]) -> [u8; NONCE] {
    let mut nonce = [0u8; NONCE];
    nonce.copy_from_slice(&header[9..HEADER]);
    nonce
}

/// The header, then the session's stored name.
fn associated_data(header: &[u8], name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + name.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn key_id(key: &[u8]) -> KeyId {
    let digest = Sha256::new()
        .chain_update(b"fleet key id\0")
        .chain_update(key)
        .finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest[..4]);
    KeyId(id)
}

/// A key file's line as its 32 bytes (zeroed when dropped).
fn decode_key(line: &str) -> Result<Zeroizing<[u8; KEY_BYTES]>, &'static str> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = Zeroizing::new(
        engine
            .decode(line)
            .map_err(|_| "not base64 (write head -c 32 /dev/urandom | base64)")?,
    );
    if decoded.len() != KEY_BYTES {
        return Err("not 32 bytes once base64-decoded (write head -c 32 /dev/urandom | base64)");
    }
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    key.copy_from_slice(&decoded);
    Ok(key)
}

/// The secret of `hash_ids=1`: session ids become HMAC-SHA256(secret, id), in hex, in every
/// key and row (data, lock, wake-up, tombstone), so the store's names cannot be used as
/// cookies. Only the keyed HMAC state is kept (zeroed when dropped), not the secret's bytes.
#[derive(Clone)]
pub struct IdHasher {
    mac: HmacSha256,
}

impl fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdHasher(***)")
    }
}

impl PartialEq for IdHasher {
    fn eq(&self, other: &IdHasher) -> bool {
        self.hex(b"fleet hash key fingerprint") == other.hex(b"fleet hash key fingerprint")
    }
}

impl Eq for IdHasher {}

type HmacSha256 = Hmac<Sha256>;

impl IdHasher {
    /// The secret from a `hash_key_file`'s first key (the format of an encryption key file).
    pub fn parse(contents: &str) -> Result<IdHasher, String> {
        let (n, line) = contents
            .lines()
            .map(str::trim)
            .enumerate()
            .find(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .ok_or("it holds no key (head -c 32 /dev/urandom | base64)")?;
        let secret = decode_key(line).map_err(|why| format!("line {}: {why}", n + 1))?;
        // Through a labelled derivation, so that naming the encryption key file here too
        // does not use one key for two purposes.
        IdHasher::derived_from(&secret)
    }

    /// The secret HMAC-SHA256(key, "fleet hash ids").
    fn derived_from(key: &[u8; KEY_BYTES]) -> Result<IdHasher, String> {
        let keyed = |secret: &[u8]| {
            <HmacSha256 as hmac::KeyInit>::new_from_slice(secret)
                .map_err(|_| "HMAC-SHA256 refused the key".to_owned())
        };
        let mut mac = keyed(key)?;
        mac.update(b"fleet hash ids");
        let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
        secret.copy_from_slice(&mac.finalize().into_bytes());
        Ok(IdHasher {
            mac: keyed(&secret[..])?,
        })
    }

    /// The name session `id` is stored under: 64 hex digits.
    pub fn name(&self, id: &SessionId) -> SessionId {
        SessionId::hashed(self.hex(id.as_str().as_bytes()))
    }

    fn hex(&self, bytes: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        let tag = mac.finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a save_path's `encryption_key_file`, `hash_ids` and `hash_key_file` set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealing {
    /// Seal data written, open data read.
    pub keys: Option<Keyring>,
    /// Store names instead of ids.
    pub hasher: Option<IdHasher>,
    /// `require_encryption=1`: data stored in the clear is refused like a frame that does
    /// not open (so nobody who can write to the store can plant a session).
    pub required: bool,
}

impl Sealing {
    /// Whether the save_path asks for nothing of this.
    pub fn is_off(&self) -> bool {
        self.keys.is_none() && self.hasher.is_none() && !self.required
    }

    /// The name session `id` is stored under.
    pub fn name<'a>(&self, id: &'a SessionId) -> std::borrow::Cow<'a, SessionId> {
        match &self.hasher {
            Some(h) => std::borrow::Cow::Owned(h.name(id)),
            None => std::borrow::Cow::Borrowed(id),
        }
    }
}

/// Reads the key file `path`, named by setting `option`, once the file guard allows it.
pub(crate) fn read_key_file(
    option: &'static str,
    path: &str,
) -> Result<Zeroizing<String>, ConfigError> {
    crate::config::check_file(option, path)?;
    let refuse = |cause: String| ConfigError::KeyFile {
        option,
        path: path.to_owned(),
        cause,
    };
    if !Path::new(path).is_absolute() {
        return Err(refuse(
            "give an absolute path (PHP-FPM's working directory is not the site's)".into(),
        ));
    }
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| refuse(e.to_string()))
}

#[cfg(test)]
mod tests;
