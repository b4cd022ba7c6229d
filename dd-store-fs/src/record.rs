//! The record file format.
//!
//! ```text
//! magic      8 bytes  "DDFSREC" 0x01 (format version 1)
//! revision   u64 LE
//! key length u32 LE
//! value len  u64 LE
//! key        UTF-8 bytes
//! value      bytes
//! crc32      u32 LE   CRC-32 (IEEE) of every byte before it
//! ```
//!
//! The key is stored in full so that hashed long names can be listed and so that a file moved or
//! copied under another name is detected. A file that is truncated, foreign or damaged fails
//! [`decode`] with a reason.

use bytes::Bytes;
use dd_store::Revision;

/// The first 8 bytes of every record file.
pub const MAGIC: &[u8; 8] = b"DDFSREC\x01";

const HEADER_LEN: usize = 8 + 8 + 4 + 8;
const CRC_LEN: usize = 4;

/// A decoded record file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFile {
    /// The record's key.
    pub key: String,
    /// The record's revision.
    pub revision: Revision,
    /// The record's value.
    pub value: Bytes,
}

/// Encodes a record file.
pub fn encode(key: &str, revision: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + key.len() + value.len() + CRC_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&revision.0.to_le_bytes());
    // Keys are far below 4 GiB; saturating keeps this total, and decode rejects the mismatch.
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

/// The lengths a header announces, after checking the magic.
fn header(bytes: &[u8]) -> Result<(u64, usize, u64), String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a dd-store-fs record file (wrong magic bytes)".to_owned());
    }
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    let revision = read_u64(bytes, 8);
    let key_len = read_u32(bytes, 16) as usize;
    let value_len = read_u64(bytes, 20);
    Ok((revision, key_len, value_len))
}

/// Decodes a whole record file.
pub fn decode(bytes: Bytes) -> Result<RecordFile, String> {
    let (revision, key_len, value_len) = header(&bytes)?;
    let expected_len = (HEADER_LEN as u64)
        .saturating_add(key_len as u64)
        .saturating_add(value_len)
        .saturating_add(CRC_LEN as u64);
    if bytes.len() as u64 != expected_len {
        return Err(format!(
            "length {} bytes, but the header announces {expected_len} bytes (truncated or damaged)",
            bytes.len()
        ));
    }
    let body_end = bytes.len() - CRC_LEN;
    let stored_crc = read_u32(&bytes, body_end);
    let actual_crc = crc32fast::hash(&bytes[..body_end]);
    if stored_crc != actual_crc {
        return Err(format!(
            "checksum mismatch: stored {stored_crc:08x}, computed {actual_crc:08x}"
        ));
    }
    if revision == 0 {
        return Err("revision 0 is not a valid revision".to_owned());
    }
    let key_end = HEADER_LEN + key_len;
    let key = std::str::from_utf8(&bytes[HEADER_LEN..key_end])
        .map_err(|e| format!("stored key is not UTF-8: {e}"))?
        .to_owned();
    let value = bytes.slice(key_end..body_end);
    Ok(RecordFile {
        key,
        revision: Revision(revision),
        value,
    })
}

/// Reads only the key of a record file from its first bytes (for listing hashed names); the
/// checksum is verified when the record itself is read.
pub fn decode_key(prefix: &[u8]) -> Result<Option<String>, String> {
    let (_, key_len, _) = header(prefix)?;
    let Some(key) = prefix.get(HEADER_LEN..HEADER_LEN + key_len) else {
        return Ok(None);
    };
    std::str::from_utf8(key)
        .map(|k| Some(k.to_owned()))
        .map_err(|e| format!("stored key is not UTF-8: {e}"))
}

/// How many leading bytes [`decode_key`] needs for a key of at most `max_key_len` bytes.
pub fn key_prefix_len(max_key_len: usize) -> usize {
    HEADER_LEN + max_key_len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let encoded = encode("k/é", Revision(7), b"value");
        let decoded = decode(Bytes::from(encoded.clone())).map_err(|e| e.to_string());
        assert_eq!(
            decoded,
            Ok(RecordFile {
                key: "k/é".to_owned(),
                revision: Revision(7),
                value: Bytes::from_static(b"value"),
            })
        );
        assert_eq!(decode_key(&encoded), Ok(Some("k/é".to_owned())));
    }

    #[test]
    fn damage_is_detected() {
        let encoded = encode("k", Revision(1), b"value");
        for cut in [0, 3, 10, encoded.len() - 1] {
            let err = decode(Bytes::copy_from_slice(&encoded[..cut]));
            assert!(err.is_err(), "cut at {cut}");
        }
        let mut flipped = encoded.clone();
        flipped[30] ^= 0x40;
        assert!(decode(Bytes::from(flipped)).is_err_and(|e| e.contains("checksum")));
        assert!(
            decode(Bytes::from_static(b"hello, world, not a record"))
                .is_err_and(|e| e.contains("magic"))
        );
        let mut longer = encoded;
        longer.push(0);
        assert!(decode(Bytes::from(longer)).is_err());
    }
}
