//! Compression of large sessions: the `compression` and `compression_min_size` options of
//! every save_path form, and the frame that compressed data is stored in.
//!
//! The frame, so a read recognises compressed data whatever the option says now:
//!
//! | bytes | holds |
//! |---|---|
//! | 0..4 | the magic `00 46 4C 43` (`"\0FLC"`) |
//! | 4 | the algorithm: 1 = LZ4 (block format), 2 = Zstandard, 0 = stored as it is |
//! | 5..9 | the uncompressed length, u32 little-endian |
//! | 9.. | the compressed bytes (for 0, the data itself) |
//!
//! No serializer PHP uses writes a NUL byte first (`php` starts with a variable name,
//! `php_serialize` with `a:`, igbinary with `00 00 00 02`, msgpack with a map byte), so data
//! without the magic is read as it is: switching compression on or off logs nobody out,
//! and a store holds both kinds side by side. Data is compressed only from
//! `compression_min_size` bytes, and stored uncompressed when compressing does not make it
//! smaller. Data that does begin with the magic (a `php`-format session whose first key
//! starts with it) is never stored bare, with compression on or off: it goes into a frame
//! of algorithm 0, so that a read cannot take it for a damaged frame.

use std::borrow::Cow;

use crate::error::ConfigError;

const MAGIC: [u8; 4] = [0, b'F', b'L', b'C'];
const HEADER: usize = 9;
/// Refuse to inflate beyond this: no PHP session is that large, and a damaged or hostile
/// length must not make a worker allocate gigabytes.
pub const MAX_INFLATED: usize = 256 << 20;
/// Zstandard's own default level: most of the ratio, at LZ4-like speed on session-sized data.
const ZSTD_LEVEL: i32 = 3;

/// The compression algorithm of a save_path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// LZ4 (`lz4_flex`): the fastest, the default of `compression=lz4`.
    Lz4,
    /// Zstandard at level 3: a better ratio for a little more CPU.
    Zstd,
}

impl Algorithm {
    fn id(self) -> u8 {
        match self {
            Algorithm::Lz4 => 1,
            Algorithm::Zstd => 2,
        }
    }

    /// The name as written in `compression=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Lz4 => "lz4",
            Algorithm::Zstd => "zstd",
        }
    }
}

/// `compression_min_size` by default: below 2 KB the saving is a few hundred bytes at most,
/// not worth the CPU.
pub const DEFAULT_MIN_SIZE: usize = 2048;

/// The compression options of a save_path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// `None`: written as it is (compressed data is still read).
    pub algorithm: Option<Algorithm>,
    /// Data shorter than this many bytes is written as it is (`compression_min_size`).
    pub min_size: usize,
}

impl Default for Compression {
    fn default() -> Compression {
        Compression {
            algorithm: None,
            min_size: DEFAULT_MIN_SIZE,
        }
    }
}

/// Why stored data could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored data is a damaged compressed frame ({0})")]
pub struct DamagedFrame(pub String);

impl Compression {
    /// Takes option `name` if it is one of these; returns whether it was.
    pub(crate) fn take_option(&mut self, name: &str, value: &str) -> Result<bool, ConfigError> {
        match name {
            "compression" => {
                self.algorithm = match value {
                    "lz4" => Some(Algorithm::Lz4),
                    "zstd" => Some(Algorithm::Zstd),
                    "" | "none" | "0" | "off" => None,
                    _ => {
                        return Err(ConfigError::Invalid {
                            part: format!("compression={value}"),
                            reason: "use lz4, zstd or none",
                        })
                    }
                }
            }
            "compression_min_size" => {
                self.min_size = value.parse().map_err(|_| ConfigError::Invalid {
                    part: format!("compression_min_size={value}"),
                    reason: "a size in bytes, e.g. 2048",
                })?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// What to store for `data`: a frame when the option is on, `data` is at least
    /// `min_size` bytes and compressing makes it smaller; a frame of algorithm 0 around
    /// `data` when `data` itself begins with the magic; else `data` itself.
    pub fn pack<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        if let Some(framed) = self.compressed(data) {
            return Cow::Owned(framed);
        }
        // A sealed frame's magic too (crate::seal): both begin "\0FL".
        if data.starts_with(&MAGIC[..3]) {
            if let Some(framed) = frame(STORED, data, data) {
                return Cow::Owned(framed);
            }
        }
        Cow::Borrowed(data)
    }

    /// `data` compressed into a frame, if the option is on, `data` is large enough and
    /// compressing makes it smaller.
    fn compressed(&self, data: &[u8]) -> Option<Vec<u8>> {
        let algorithm = self.algorithm?;
        if data.len() < self.min_size.max(HEADER + 1) {
            return None;
        }
        let body = match algorithm {
            Algorithm::Lz4 => lz4_flex::compress(data),
            Algorithm::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).ok()?,
        };
        if body.len() + HEADER >= data.len() {
            return None;
        }
        frame(algorithm.id(), data, &body)
    }
}

/// The frame's algorithm byte for data stored as it is.
const STORED: u8 = 0;

/// A frame of `algorithm` holding `body`, the form of `data` (`None` past 4 GB, which no
/// session reaches).
fn frame(algorithm: u8, data: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let length = u32::try_from(data.len()).ok()?;
    let mut framed = Vec::with_capacity(HEADER + body.len());
    framed.extend_from_slice(&MAGIC);
    framed.push(algorithm);
    framed.extend_from_slice(&length.to_le_bytes());
    framed.extend_from_slice(body);
    Some(framed)
}

/// Whether `stored` is a compression frame.
pub fn is_framed(stored: &[u8]) -> bool {
    stored.starts_with(&MAGIC)
}

/// How long the session data in `stored` is once inflated, as far as it tells: the frame
/// header's length for a frame (checked again when it is inflated), else its own length.
pub fn inflated_size(stored: &[u8]) -> usize {
    match stored.get(5..HEADER) {
        Some(length) if is_framed(stored) => {
            let mut le = [0u8; 4];
            le.copy_from_slice(length);
            u32::from_le_bytes(le) as usize
        }
        _ => stored.len(),
    }
}

/// The session data in `stored`: inflated if it is a frame, else `stored` itself.
pub fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, DamagedFrame> {
    if !is_framed(stored) {
        return Ok(Cow::Borrowed(stored));
    }
    let (Some(&algorithm), Some(length)) = (stored.get(4), stored.get(5..HEADER)) else {
        return Err(DamagedFrame("shorter than its header".into()));
    };
    let mut le = [0u8; 4];
    le.copy_from_slice(length);
    let length = u32::from_le_bytes(le) as usize;
    if length > MAX_INFLATED {
        return Err(DamagedFrame(format!(
            "says it inflates to {length} bytes, over the {MAX_INFLATED} Fleet accepts"
        )));
    }
    let body = &stored[HEADER..];
    let data = match algorithm {
        STORED => body.to_vec(),
        1 => lz4_flex::decompress(body, length).map_err(|e| DamagedFrame(format!("lz4: {e}")))?,
        2 => {
            zstd::bulk::decompress(body, length).map_err(|e| DamagedFrame(format!("zstd: {e}")))?
        }
        other => return Err(DamagedFrame(format!("unknown algorithm {other}"))),
    };
    if data.len() != length {
        return Err(DamagedFrame(format!(
            "inflated to {} bytes, not the {length} its header says",
            data.len()
        )));
    }
    Ok(Cow::Owned(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(algorithm: Algorithm) -> Compression {
        Compression {
            algorithm: Some(algorithm),
            min_size: 100,
        }
    }

    fn cart(items: usize) -> Vec<u8> {
        let mut s = format!("cart|a:{items}:{{");
        for i in 0..items {
            s.push_str(&format!(
                "i:{i};a:3:{{s:3:\"sku\";s:8:\"SKU-{i:04}\";s:3:\"qty\";i:{};s:5:\"price\";d:{}.99;}}",
                i % 5 + 1,
                i % 90 + 9
            ));
        }
        s.push('}');
        s.into_bytes()
    }

    #[test]
    fn round_trips_on_both_sides_of_the_threshold() {
        for algorithm in [Algorithm::Lz4, Algorithm::Zstd] {
            let c = on(algorithm);
            for data in [
                cart(0),
                cart(1),
                cart(50),
                cart(2000),
                Vec::new(),
                vec![0u8; 99],
                vec![0u8; 100],
            ] {
                let packed = c.pack(&data);
                // Everything here from 100 bytes on compresses well.
                assert_eq!(
                    is_framed(&packed),
                    data.len() >= 100,
                    "{algorithm:?}, {} bytes",
                    data.len()
                );
                assert_eq!(unpack(&packed).as_deref(), Ok(&data[..]));
            }
            let big = cart(2000);
            assert!(
                c.pack(&big).len() * 3 < big.len(),
                "{algorithm:?} shrinks a cart"
            );
            assert!(
                !is_framed(&c.pack(&cart(1))),
                "below the threshold: as it is"
            );
        }
    }

    #[test]
    fn incompressible_data_is_stored_as_it_is() {
        let mut noise = vec![0u8; 10_000];
        let mut x: u32 = 12345;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = (x >> 24) as u8;
        }
        noise[0] = b'a';
        for algorithm in [Algorithm::Lz4, Algorithm::Zstd] {
            assert!(!is_framed(&on(algorithm).pack(&noise)));
        }
    }

    #[test]
    fn off_writes_as_it_is_and_still_reads_frames() {
        let data = cart(100);
        assert_eq!(Compression::default().pack(&data), Cow::Borrowed(&data[..]));
        let framed = on(Algorithm::Zstd).pack(&data).into_owned();
        assert_eq!(unpack(&framed).as_deref(), Ok(&data[..]));
    }

    /// Found by the stored_blob fuzz target: data that begins with the magic and is not
    /// compressed (compression off, under the threshold, or incompressible) was stored
    /// bare, and its next read took it for a damaged frame.
    #[test]
    fn data_that_begins_like_a_frame_round_trips() {
        let mut lookalike = b"\0FLC\x01\x0a\0\0\0garbage".to_vec();
        let settings = [
            Compression::default(),
            on(Algorithm::Lz4),
            on(Algorithm::Zstd),
        ];
        for c in settings {
            assert_eq!(
                unpack(&c.pack(&lookalike)).as_deref(),
                Ok(&lookalike[..]),
                "{c:?}"
            );
        }
        lookalike.extend(cart(100));
        for c in settings {
            assert_eq!(
                unpack(&c.pack(&lookalike)).as_deref(),
                Ok(&lookalike[..]),
                "{c:?}"
            );
        }
        let cart = cart(100);
        assert_eq!(
            Compression::default().pack(&cart),
            Cow::Borrowed(&cart[..]),
            "other data stays bare"
        );
    }

    #[test]
    fn damaged_frames_are_errors_not_panics() {
        let framed = on(Algorithm::Lz4).pack(&cart(100)).into_owned();
        let mut cut = framed.clone();
        cut.truncate(framed.len() / 2);
        assert!(unpack(&cut).is_err());
        assert!(unpack(&framed[..6]).is_err());
        let mut huge = framed.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&huge).is_err());
        let mut unknown = framed;
        unknown[4] = 9;
        assert!(unpack(&unknown).is_err());
    }

    #[test]
    fn options_parse() {
        let mut c = Compression::default();
        assert_eq!(c.take_option("compression", "zstd"), Ok(true));
        assert_eq!(c.take_option("compression_min_size", "512"), Ok(true));
        assert_eq!(
            c,
            Compression {
                algorithm: Some(Algorithm::Zstd),
                min_size: 512
            }
        );
        assert!(c.take_option("compression", "gzip").is_err());
        assert!(c.take_option("compression_min_size", "big").is_err());
        assert_eq!(c.take_option("prefix", "x"), Ok(false));
    }
}
