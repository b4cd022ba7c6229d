//! The checks of the `record_decode` target: the durable record format
//! ([`dd_durable::record`]) read back from a store.
//!
//! [`decode`] must reject any byte string cleanly; a record it accepts must re-encode to the
//! same bytes (the format has one encoding per record) and decode again to the same record.

use dd_durable::record::{decode_with_pruning as decode, encode_with_pruning};

use crate::{CheckFailure, Outcome, Target};

/// Checks one input (see the module docs).
///
/// ```
/// use dd_durable::record::{encode, Record};
/// use dd_fuzz_checks::{record, Outcome};
/// let bytes = encode(&Record::Tombstone).unwrap();
/// assert_eq!(record::check(&bytes), Ok(Outcome::Accepted));
/// assert_eq!(record::check(&bytes[1..]), Ok(Outcome::Rejected));
/// ```
pub fn check(data: &[u8]) -> Result<Outcome, CheckFailure> {
    let fail = |reason: String| CheckFailure::new(Target::RecordDecode, reason);
    let Ok(record) = decode(data) else {
        return Ok(Outcome::Rejected);
    };
    let again = encode_with_pruning(&record.0, record.1)
        .map_err(|e| fail(format!("decoded record {record:?} does not encode: {e}")))?;
    if again != data {
        return Err(fail(format!(
            "decoded record {record:?} re-encodes to different bytes: {again:02x?}"
        )));
    }
    let decoded = decode(&again)
        .map_err(|e| fail(format!("re-encoded record {record:?} does not decode: {e}")))?;
    if decoded != record {
        return Err(fail(format!(
            "record {record:?} decodes as {decoded:?} after re-encoding"
        )));
    }
    Ok(Outcome::Accepted)
}
