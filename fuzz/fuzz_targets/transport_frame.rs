//! Transport frames from a hostile peer: handshake and message decoding must never panic, and
//! what decodes re-encodes to something that decodes to the same value.
#![no_main]

use dd_core::transport::Message;
use dd_core::transport::tcp::Handshake;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(handshake) = Handshake::decode(data) {
        let bytes = handshake.encode().expect("a decoded handshake encodes");
        assert_eq!(Handshake::decode(&bytes).expect("re-decodes"), handshake);
    }
    if let Ok(message) = Message::decode(data) {
        let bytes = message.encode().expect("a decoded message encodes");
        assert_eq!(Message::decode(&bytes).expect("re-decodes"), message);
    }
});
