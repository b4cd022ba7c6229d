//! The durable envelope decoder must reject any byte string cleanly, and re-encode what it
//! accepts to the same bytes.
#![no_main]

use dd_durable::envelope::{Record, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode(data) {
        let again = encode(&record).expect("a decoded record encodes");
        let decoded: Record<'_> = decode(&again).expect("a re-encoded record decodes");
        assert_eq!(decoded, record);
    }
});
