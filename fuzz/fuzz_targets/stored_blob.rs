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
    // What a write would store round-trips through a read.
    for algorithm in [Algorithm::Lz4, Algorithm::Zstd] {
        let c = Compression { algorithm: Some(algorithm), min_size: 16 };
        let packed = c.pack(data);
        if compress::is_framed(&packed) || !compress::is_framed(data) {
            assert_eq!(compress::unpack(&packed).as_deref().ok(), Some(data));
        }
    }
});
