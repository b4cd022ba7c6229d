//! Bounded property tests mirroring the `transport_frame` fuzz target (fuzz/): handshake and
//! message decoding of arbitrary or mutated bytes never panics, and whatever decodes
//! re-encodes to the same value. Runs on stable in the normal test suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dd_core::UniqueReplicaId;
use dd_core::transport::Message;
use dd_core::transport::tcp::{Handshake, PROTOCOL_VERSION};
use proptest::prelude::*;

fn check(bytes: &[u8]) {
    if let Ok(h) = Handshake::decode(bytes) {
        assert_eq!(Handshake::decode(&h.encode().unwrap()).unwrap(), h);
    }
    if let Ok(m) = Message::decode(bytes) {
        assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
    }
}

fn valid_frames() -> Vec<Vec<u8>> {
    let from = UniqueReplicaId::new("r1", 7);
    vec![
        Handshake::Hello {
            protocol: PROTOCOL_VERSION,
            cluster: "c".into(),
            from: from.clone(),
            nonce: Some([3; 32]),
        }
        .encode()
        .unwrap(),
        Handshake::Challenge {
            from,
            nonce: [1; 32],
            proof: [2; 32],
        }
        .encode()
        .unwrap(),
        Message::Tree {
            depth: 4,
            level: 1,
            nodes: vec![(0, 9), (15, u64::MAX)],
        }
        .encode()
        .unwrap(),
        Message::LeafDigests {
            depth: 4,
            whole: false,
            leaves: vec![3, 65_535],
            digests: vec![("k".into(), 9), ("other".into(), u64::MAX)],
        }
        .encode()
        .unwrap(),
        Message::Read {
            request: 5,
            key: "key".into(),
        }
        .encode()
        .unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = valid_frames()[which].clone();
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        check(&bytes);
        check(&bytes[..cut % (bytes.len() + 1)]);
    }
}
