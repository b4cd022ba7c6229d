//! The versioned, checksummed format of every stored record.
//!
//! Every format version shares the same *frame*, which is fixed forever so that any build can
//! tell a damaged record from one written by a newer build:
//!
//! ```text
//! offset  size  field
//! 0       4     magic "DDUR"
//! 4       2     format version, u16 big-endian
//! 6       4     total record length in bytes (frame included), u32 big-endian
//! 10      n     body, laid out by the format version
//! 10+n    4     CRC-32 (IEEE) of bytes 0..10+n, u32 big-endian
//! ```
//!
//! Body of format version 1:
//!
//! ```text
//! offset  size  field
//! 0       1     record kind: 0 = data, 1 = tombstone
//! 1       2     length t of the CRDT type name, u16 big-endian (0 for a tombstone)
//! 3       t     CRDT type name, UTF-8 (its `TypeName`)
//! 3+t     rest  payload: the CRDT state serialised with postcard (empty for a tombstone)
//! ```
//!
//! Body of format version 2 (a data record with its key's "pruning performed" markers, so that a
//! value and its markers land in one atomic write; records without markers are still written in
//! version 1):
//!
//! ```text
//! offset  size  field
//! 0       1     record kind: 0 = data (a tombstone has no markers and is written in version 1)
//! 1       2     length t of the CRDT type name, u16 big-endian
//! 3       t     CRDT type name, UTF-8 (its `TypeName`)
//! 3+t     4     length p of the payload, u32 big-endian
//! 7+t     p     payload: the CRDT state serialised with postcard
//! 7+t+p   rest  pruning markers (`dd_core::durable::PrunedIncarnations`, postcard), not empty
//! ```
//!
//! [`decode`] checks, in order: the magic, the length, the checksum and then the version, so a
//! flipped or missing byte is reported as damage and only an intact record from a newer build as
//! [`RecordError::UnsupportedFormat`].
//!
//! ```
//! use dd_durable::record::{self, Record};
//! let bytes = record::encode(&Record::Data { type_name: "GCounter", payload: &[0] }).unwrap();
//! assert_eq!(record::decode(&bytes).unwrap(), Record::Data { type_name: "GCounter", payload: &[0] });
//! let mut damaged = bytes.clone();
//! damaged[12] ^= 0x40;
//! assert!(record::decode(&damaged).unwrap_err().to_string().contains("checksum mismatch"));
//! ```

use dd_core::durable::DurableError;

/// The magic bytes every record starts with.
pub const MAGIC: [u8; 4] = *b"DDUR";

/// The newest format version this build writes and reads. Version 1 is still written for every
/// record without pruning markers (and read, whoever wrote it).
pub const CURRENT_VERSION: u16 = 2;

const V1: u16 = 1;
const V2: u16 = 2;

const VERSION_AT: usize = 4;
const LENGTH_AT: usize = 6;
const BODY_AT: usize = 10;
const CRC_LEN: usize = 4;
/// The smallest possible record: the frame with an empty body.
const MIN_LEN: usize = BODY_AT + CRC_LEN;

const KIND_DATA: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;

/// The content of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// The state of a CRDT.
    Data {
        /// The CRDT's stable type name.
        type_name: &'a str,
        /// The state, serialised with postcard.
        payload: &'a [u8],
    },
    /// The key was deleted.
    Tombstone,
}

/// Why a record could not be encoded or decoded. Turn it into a [`DurableError`] naming the
/// backend, replica and key with [`RecordError::at`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are damaged or not a record at all.
    #[error("{reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// An intact record of a format version this build does not know.
    #[error("format version {version}, this build reads up to {CURRENT_VERSION}")]
    UnsupportedFormat {
        /// The version found.
        version: u16,
    },
    /// A record the format cannot hold (empty type name, type name over 64 KiB, record over
    /// 4 GiB).
    #[error("cannot encode record: {reason}")]
    Unencodable {
        /// What is wrong.
        reason: String,
    },
}

impl RecordError {
    fn corrupt(reason: impl Into<String>) -> Self {
        RecordError::Corrupt {
            reason: reason.into(),
        }
    }

    /// This error as a [`DurableError`] about the record of `replica`/`key` in `backend`.
    pub fn at(self, backend: &str, replica: &str, key: &str) -> DurableError {
        match self {
            RecordError::Corrupt { reason } => DurableError::Corrupt {
                backend: backend.to_owned(),
                replica: replica.to_owned(),
                key: key.to_owned(),
                reason,
            },
            RecordError::UnsupportedFormat { version } => DurableError::UnsupportedFormat {
                backend: backend.to_owned(),
                replica: replica.to_owned(),
                key: key.to_owned(),
                version,
                supported: CURRENT_VERSION,
            },
            RecordError::Unencodable { reason } => {
                DurableError::Store(dd_core::store::StoreError::Backend {
                    backend: backend.to_owned(),
                    message: format!(
                        "record of replica '{replica}' key '{key}': cannot encode: {reason}"
                    ),
                    source: None,
                })
            }
        }
    }
}

/// Encodes a record without pruning markers (format version 1).
pub fn encode(record: &Record<'_>) -> Result<Vec<u8>, RecordError> {
    encode_with_pruning(record, None)
}

/// Encodes a record with its key's encoded pruning markers, if any: a data record with markers
/// in format version 2, anything else as [`encode`] (version 1). A tombstone never carries
/// markers (a deleted key needs none); they are refused.
///
/// ```
/// use dd_durable::record::{self, Record};
/// let record = Record::Data { type_name: "GCounter", payload: &[0] };
/// let bytes = record::encode_with_pruning(&record, Some(&[1, 2, 3])).unwrap();
/// assert_eq!(record::decode_with_pruning(&bytes).unwrap(), (record, Some(&[1u8, 2, 3][..])));
/// assert_eq!(record::decode(&bytes).unwrap(), record);
/// ```
pub fn encode_with_pruning(
    record: &Record<'_>,
    pruning: Option<&[u8]>,
) -> Result<Vec<u8>, RecordError> {
    let pruning = pruning.filter(|p| !p.is_empty());
    if pruning.is_some() && matches!(record, Record::Tombstone) {
        return Err(RecordError::Unencodable {
            reason: "a tombstone with pruning markers".to_owned(),
        });
    }
    let (kind, type_name, payload): (u8, &str, &[u8]) = match record {
        Record::Data { type_name, payload } => (KIND_DATA, type_name, payload),
        Record::Tombstone => (KIND_TOMBSTONE, "", &[]),
    };
    if kind == KIND_DATA && type_name.is_empty() {
        return Err(RecordError::Unencodable {
            reason: "empty type name".to_owned(),
        });
    }
    let name_len = u16::try_from(type_name.len()).map_err(|_| RecordError::Unencodable {
        reason: format!("type name of {} bytes (at most 65535)", type_name.len()),
    })?;
    let extra = pruning.map_or(0, |p| 4 + p.len());
    let total = MIN_LEN + 3 + type_name.len() + payload.len() + extra;
    let total_u32 = u32::try_from(total).map_err(|_| RecordError::Unencodable {
        reason: format!("record of {total} bytes (at most 4 GiB)"),
    })?;
    let version = if pruning.is_some() { V2 } else { V1 };
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&total_u32.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&name_len.to_be_bytes());
    out.extend_from_slice(type_name.as_bytes());
    if let Some(pruning) = pruning {
        // Fits: the whole record's length fits in a u32.
        let payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(pruning);
    } else {
        out.extend_from_slice(payload);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Decodes a record of any supported format version, checking every part of it; pruning
/// markers a version-2 record carries are left out (see [`decode_with_pruning`]).
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, RecordError> {
    decode_with_pruning(bytes).map(|(record, _)| record)
}

/// Decodes a record of any supported format version with the encoded pruning markers it carries
/// (version 2), checking every part of it.
pub fn decode_with_pruning(bytes: &[u8]) -> Result<(Record<'_>, Option<&[u8]>), RecordError> {
    let len = bytes.len();
    if len < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            RecordError::corrupt(format!(
                "truncated: {len} bytes, shorter than the {MIN_LEN}-byte frame"
            ))
        } else {
            not_a_record(bytes)
        });
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(not_a_record(bytes));
    }
    if len < MIN_LEN {
        return Err(RecordError::corrupt(format!(
            "truncated: {len} bytes, shorter than the {MIN_LEN}-byte frame"
        )));
    }
    let declared = u32_at(bytes, LENGTH_AT) as usize;
    if len < declared {
        return Err(RecordError::corrupt(format!(
            "truncated: record is {len} bytes but its header declares {declared}"
        )));
    }
    if len > declared {
        return Err(RecordError::corrupt(format!(
            "record is {len} bytes but its header declares {declared}"
        )));
    }
    let crc_at = len - CRC_LEN;
    let stored = u32_at(bytes, crc_at);
    let computed = crc32fast::hash(&bytes[..crc_at]);
    if stored != computed {
        return Err(RecordError::corrupt(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let version = u16::from_be_bytes([bytes[VERSION_AT], bytes[VERSION_AT + 1]]);
    let body = &bytes[BODY_AT..crc_at];
    match version {
        V1 => decode_v1_body(body).map(|record| (record, None)),
        V2 => decode_v2_body(body),
        v if v > CURRENT_VERSION => Err(RecordError::UnsupportedFormat { version: v }),
        v => Err(RecordError::corrupt(format!("invalid format version {v}"))),
    }
}

fn not_a_record(bytes: &[u8]) -> RecordError {
    let head: Vec<String> = bytes
        .iter()
        .take(MAGIC.len())
        .map(|b| format!("{b:02x}"))
        .collect();
    RecordError::corrupt(format!(
        "not a durable-dd record (starts with {}, expected the magic \"DDUR\")",
        if head.is_empty() {
            "nothing".to_owned()
        } else {
            head.join(" ")
        }
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

/// The body of format version 1 (see the module docs).
fn decode_v1_body(body: &[u8]) -> Result<Record<'_>, RecordError> {
    let [kind, n0, n1, rest @ ..] = body else {
        return Err(RecordError::corrupt(format!(
            "version 1 body of {} bytes is shorter than its 3-byte header",
            body.len()
        )));
    };
    let name_len = usize::from(u16::from_be_bytes([*n0, *n1]));
    if rest.len() < name_len {
        return Err(RecordError::corrupt(format!(
            "type name of {name_len} bytes overruns the body"
        )));
    }
    let (name, payload) = rest.split_at(name_len);
    match *kind {
        KIND_DATA => {
            let type_name = std::str::from_utf8(name)
                .map_err(|e| RecordError::corrupt(format!("type name is not UTF-8: {e}")))?;
            if type_name.is_empty() {
                return Err(RecordError::corrupt("data record without a type name"));
            }
            Ok(Record::Data { type_name, payload })
        }
        KIND_TOMBSTONE if name.is_empty() && payload.is_empty() => Ok(Record::Tombstone),
        KIND_TOMBSTONE => Err(RecordError::corrupt(
            "tombstone record with a type name or payload",
        )),
        other => Err(RecordError::corrupt(format!("unknown record kind {other}"))),
    }
}

/// The body of format version 2 (see the module docs).
fn decode_v2_body(body: &[u8]) -> Result<(Record<'_>, Option<&[u8]>), RecordError> {
    let [kind, n0, n1, rest @ ..] = body else {
        return Err(RecordError::corrupt(format!(
            "version 2 body of {} bytes is shorter than its 3-byte header",
            body.len()
        )));
    };
    if *kind != KIND_DATA {
        return Err(RecordError::corrupt(format!(
            "version 2 record of kind {kind}: only data records carry pruning markers"
        )));
    }
    let name_len = usize::from(u16::from_be_bytes([*n0, *n1]));
    if rest.len() < name_len + 4 {
        return Err(RecordError::corrupt(format!(
            "type name of {name_len} bytes and the payload length overrun the body"
        )));
    }
    let (name, rest) = rest.split_at(name_len);
    let (len, rest) = rest.split_at(4);
    let payload_len = u32_at(len, 0) as usize;
    if rest.len() <= payload_len {
        return Err(RecordError::corrupt(format!(
            "payload of {payload_len} bytes leaves no room for the pruning markers \
             ({} bytes after the payload length)",
            rest.len()
        )));
    }
    let (payload, pruning) = rest.split_at(payload_len);
    let type_name = std::str::from_utf8(name)
        .map_err(|e| RecordError::corrupt(format!("type name is not UTF-8: {e}")))?;
    if type_name.is_empty() {
        return Err(RecordError::corrupt("data record without a type name"));
    }
    Ok((Record::Data { type_name, payload }, Some(pruning)))
}
