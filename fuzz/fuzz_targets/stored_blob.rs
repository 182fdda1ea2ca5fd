//! Any stored bytes as a read meets them, of any size: the compression frame check and
//! inflation every read does before handing data to PHP, then the session decoder that
//! `fleetctl sessions show` runs. Each returns the data or an error; none panics or
//! allocates more than the frame limit.
#![no_main]

use fleet_core::compress::{self, Algorithm, Compression};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(plain) = compress::unpack(data) {
        assert!(plain.len() <= compress::MAX_INFLATED.max(data.len()));
        let _ = fleet_core::codec::decode_any(&plain);
    }
    // Whatever a write stores, compression on or off, a read gives back.
    for algorithm in [None, Some(Algorithm::Lz4), Some(Algorithm::Zstd)] {
        let c = Compression { algorithm, min_size: 16 };
        assert_eq!(compress::unpack(&c.pack(data)).as_deref().ok(), Some(data));
    }
});
