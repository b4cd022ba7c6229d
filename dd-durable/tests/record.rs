//! The record format: round-trips, golden bytes and detection of every kind of damage.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use dd_core::crdt::GCounter;
use dd_core::data::ErasedData;
use dd_durable::record::{self, Record, RecordError};
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    let payload = common::counter(&[("a", 1, 7)]).encode().unwrap();
    record::encode(&Record::Data {
        type_name: "GCounter",
        payload: &payload,
    })
    .unwrap()
}

fn corrupt_reason(bytes: &[u8]) -> String {
    match record::decode(bytes) {
        Err(RecordError::Corrupt { reason }) => reason,
        other => panic!("expected a corrupt-record error, got {other:?}"),
    }
}

/// Recomputes the trailing checksum, as a writer of another version would.
fn with_valid_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let at = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..at]);
    bytes[at..].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn data_and_tombstone_round_trip() {
    let payload = vec![0u8, 1, 2, 255];
    let data = Record::Data {
        type_name: "ORSet<String>",
        payload: &payload,
    };
    assert_eq!(record::decode(&record::encode(&data).unwrap()), Ok(data));
    let empty = Record::Data {
        type_name: "GCounter",
        payload: &[],
    };
    assert_eq!(record::decode(&record::encode(&empty).unwrap()), Ok(empty));
    let tomb = record::encode(&Record::Tombstone).unwrap();
    assert_eq!(record::decode(&tomb), Ok(Record::Tombstone));
}

#[test]
fn large_payload_round_trips() {
    let payload = vec![0xabu8; 3 * 1024 * 1024];
    let record = Record::Data {
        type_name: "GCounter",
        payload: &payload,
    };
    let bytes = record::encode(&record).unwrap();
    assert_eq!(record::decode(&bytes), Ok(record));
}

#[test]
fn golden_v1_data_record() {
    // A version-1 record of GCounter {a#1: 7}. If this test fails, the format changed: bump
    // CURRENT_VERSION and keep the old version readable instead of changing version 1.
    let golden = common::from_hex(include_str!("fixtures/v1_gcounter_a1_7.hex"));
    assert_eq!(sample(), golden, "encoding of version 1 drifted");
    let Record::Data { type_name, payload } = record::decode(&golden).unwrap() else {
        panic!("golden record is not data");
    };
    assert_eq!(type_name, "GCounter");
    let value = common::registry().decode(type_name, payload).unwrap();
    let counter = value.downcast_ref::<GCounter>().unwrap();
    assert_eq!(counter, &common::counter(&[("a", 1, 7)]));
}

#[test]
fn golden_v1_tombstone() {
    let golden = common::from_hex(include_str!("fixtures/v1_tombstone.hex"));
    assert_eq!(record::encode(&Record::Tombstone).unwrap(), golden);
    assert_eq!(record::decode(&golden), Ok(Record::Tombstone));
}

#[test]
fn wrong_magic_is_not_a_record() {
    let mut bytes = sample();
    bytes[..4].copy_from_slice(b"PK\x03\x04");
    assert!(corrupt_reason(&bytes).contains("not a durable-dd record"));
    assert!(corrupt_reason(b"{\"json\": true}").contains("not a durable-dd record"));
    assert!(corrupt_reason(b"x").contains("not a durable-dd record"));
}

#[test]
fn newer_version_is_unsupported() {
    let mut bytes = sample();
    bytes[4..6].copy_from_slice(&99u16.to_be_bytes());
    let bytes = with_valid_crc(bytes);
    assert_eq!(
        record::decode(&bytes),
        Err(RecordError::UnsupportedFormat { version: 99 })
    );
    let err = record::decode(&bytes)
        .unwrap_err()
        .at("memory", "node-a", "hits");
    assert_eq!(
        err.to_string(),
        "memory: record of replica 'node-a' key 'hits' has format version 99, this build reads up to 2"
    );
}

#[test]
fn version_zero_is_corrupt() {
    let mut bytes = sample();
    bytes[4..6].copy_from_slice(&0u16.to_be_bytes());
    assert!(corrupt_reason(&with_valid_crc(bytes)).contains("invalid format version 0"));
}

#[test]
fn unknown_kind_and_bad_type_name_are_corrupt() {
    let mut kind = sample();
    kind[10] = 7;
    assert!(corrupt_reason(&with_valid_crc(kind)).contains("unknown record kind 7"));
    let mut name = sample();
    name[13] = 0xff;
    assert!(corrupt_reason(&with_valid_crc(name)).contains("not UTF-8"));
    let mut overrun = sample();
    overrun[11] = 0xff;
    assert!(corrupt_reason(&with_valid_crc(overrun)).contains("overruns"));
}

#[test]
fn corrupt_error_names_backend_replica_and_key() {
    let mut bytes = sample();
    bytes[20] ^= 1;
    let err = record::decode(&bytes)
        .unwrap_err()
        .at("sqlite:/var/lib/dd.db", "node-a", "users/42");
    let text = err.to_string();
    assert!(text.starts_with("sqlite:/var/lib/dd.db: record of replica 'node-a' key 'users/42' is corrupt: checksum mismatch"), "{text}");
}

#[test]
fn every_truncation_is_detected() {
    for record in [sample(), record::encode(&Record::Tombstone).unwrap()] {
        for len in 0..record.len() {
            let reason = corrupt_reason(&record[..len]);
            assert!(reason.contains("truncated"), "length {len}: {reason}");
        }
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    let record = sample();
    for at in 0..record.len() {
        for bit in 0..8 {
            let mut bytes = record.clone();
            bytes[at] ^= 1 << bit;
            check_damage_detected(&bytes, at);
        }
    }
}

/// A record damaged at byte `at` must be reported as corrupt, with the reason that fits where.
fn check_damage_detected(bytes: &[u8], at: usize) {
    let reason = corrupt_reason(bytes);
    match at {
        0..4 => assert!(
            reason.contains("not a durable-dd record"),
            "byte {at}: {reason}"
        ),
        6..10 => assert!(reason.contains("header declares"), "byte {at}: {reason}"),
        _ => assert!(reason.contains("checksum mismatch"), "byte {at}: {reason}"),
    }
}

fn arb_record() -> impl Strategy<Value = (bool, String, Vec<u8>)> {
    (
        any::<bool>(),
        "[A-Za-z<>, ]{1,40}",
        proptest::collection::vec(any::<u8>(), 0..300),
    )
}

fn encode_arb(tombstone: bool, name: &str, payload: &[u8]) -> Vec<u8> {
    let record = if tombstone {
        Record::Tombstone
    } else {
        Record::Data {
            type_name: name,
            payload,
        }
    };
    record::encode(&record).unwrap()
}

proptest! {
    #[test]
    fn random_records_round_trip((tombstone, name, payload) in arb_record()) {
        let bytes = encode_arb(tombstone, &name, &payload);
        let decoded = record::decode(&bytes).unwrap();
        if tombstone {
            prop_assert_eq!(decoded, Record::Tombstone);
        } else {
            prop_assert_eq!(decoded, Record::Data { type_name: &name, payload: &payload });
        }
    }

    #[test]
    fn random_byte_changes_are_detected(
        (tombstone, name, payload) in arb_record(),
        at in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut bytes = encode_arb(tombstone, &name, &payload);
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        check_damage_detected(&bytes, at);
    }

    #[test]
    fn random_truncations_are_detected(
        (tombstone, name, payload) in arb_record(),
        cut in any::<proptest::sample::Index>(),
    ) {
        let bytes = encode_arb(tombstone, &name, &payload);
        let len = cut.index(bytes.len());
        let reason = corrupt_reason(&bytes[..len]);
        prop_assert!(reason.contains("truncated"), "length {}: {}", len, reason);
    }

    #[test]
    fn random_appended_bytes_are_detected(
        (tombstone, name, payload) in arb_record(),
        extra in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut bytes = encode_arb(tombstone, &name, &payload);
        bytes.extend_from_slice(&extra);
        let reason = corrupt_reason(&bytes);
        prop_assert!(reason.contains("header declares"), "{}", reason);
    }
}

#[test]
fn records_the_format_cannot_hold_are_refused() {
    let empty = Record::Data {
        type_name: "",
        payload: &[1],
    };
    assert!(matches!(
        record::encode(&empty),
        Err(RecordError::Unencodable { .. })
    ));
    let long_name = "T".repeat(70_000);
    let long = Record::Data {
        type_name: &long_name,
        payload: &[],
    };
    let err = record::encode(&long).unwrap_err();
    assert!(
        err.to_string().contains("type name of 70000 bytes"),
        "{err}"
    );
}

/// A version-2 record: a data record with its key's pruning markers.
fn sample_v2() -> Vec<u8> {
    let payload = common::counter(&[("a", 1, 7)]).encode().unwrap();
    record::encode_with_pruning(
        &Record::Data {
            type_name: "GCounter",
            payload: &payload,
        },
        Some(b"markers"),
    )
    .unwrap()
}

#[test]
fn version_2_carries_pruning_markers_and_every_damage_is_detected() {
    let record = sample_v2();
    assert_eq!(record[4..6], 2u16.to_be_bytes());
    let (decoded, markers) = record::decode_with_pruning(&record).unwrap();
    assert_eq!(markers, Some(&b"markers"[..]));
    let Record::Data { type_name, payload } = decoded else {
        panic!("not data");
    };
    assert_eq!(type_name, "GCounter");
    let value = common::registry().decode(type_name, payload).unwrap();
    assert_eq!(
        value.downcast_ref::<GCounter>().unwrap(),
        &common::counter(&[("a", 1, 7)])
    );
    // Without markers (or with none) a record is still version 1, byte for byte.
    let plain = Record::Data { type_name, payload };
    assert_eq!(record::encode_with_pruning(&plain, None).unwrap(), sample());
    assert_eq!(
        record::encode_with_pruning(&plain, Some(&[])).unwrap(),
        sample()
    );
    assert!(matches!(
        record::encode_with_pruning(&Record::Tombstone, Some(b"m")),
        Err(RecordError::Unencodable { .. })
    ));
    for len in 0..record.len() {
        let reason = corrupt_reason(&record[..len]);
        assert!(reason.contains("truncated"), "length {len}: {reason}");
    }
    for at in 0..record.len() {
        for bit in 0..8 {
            let mut bytes = record.clone();
            bytes[at] ^= 1 << bit;
            check_damage_detected(&bytes, at);
        }
    }
}

#[test]
fn malformed_version_2_bodies_are_corrupt() {
    let record = sample_v2();
    // The payload length (after the 10-byte frame, kind, name length and "GCounter").
    let len_at = 10 + 3 + "GCounter".len();
    let payload_len = u32::from_be_bytes(record[len_at..len_at + 4].try_into().unwrap());
    let with_payload_len = |n: u32| {
        let mut bytes = record.clone();
        bytes[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
        with_valid_crc(bytes)
    };
    let overrun = payload_len + u32::try_from(b"markers".len()).unwrap();
    assert!(corrupt_reason(&with_payload_len(overrun)).contains("no room for the pruning markers"));
    assert!(corrupt_reason(&with_payload_len(u32::MAX)).contains("no room"));
    let mut tombstone = record.clone();
    tombstone[10] = 1;
    assert!(corrupt_reason(&with_valid_crc(tombstone)).contains("only data records"));
    let mut no_name = record.clone();
    no_name[11..13].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(corrupt_reason(&with_valid_crc(no_name)).contains("overrun the body"));
}
