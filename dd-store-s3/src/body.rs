//! The object body: a header naming the record, then the stored value.
//!
//! ```text
//! "DDS3" | format 1 (u8) | revision (u64) | write id (16 random bytes)
//!        | replica length (u32) | replica (UTF-8) | key length (u32) | key (UTF-8) | value
//! ```
//!
//! (integers big-endian). The body header is the one authority on the revision: reads decode it,
//! and conditional writes check it (reading just the header with a ranged `GET`). The metadata copy
//! (`x-amz-meta-dd-revision`) is informational: a server that does not write objects atomically
//! (s3s-fs, when the writing client dies mid-request) can leave it behind the body, and such a
//! torn object is still read and replaced by its body revision. The replica and key make every object self-describing: long names are hashed in object
//! names (see [`crate::layout`]) and read back from here, and a read checks that the object really
//! holds the record asked for. The random write id makes the body, and so the ETag (the MD5 of
//! the body on S3), different for every write, even one that stores the same value again: a
//! writer holding an older ETag can then never pass an `If-Match` against a newer write.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use dd_store::Revision;

const MAGIC: &[u8; 4] = b"DDS3";
const FORMAT: u8 = 1;
/// The length of the fixed part of the header.
const FIXED_LEN: usize = 4 + 1 + 8 + 16;

/// A decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The record's revision.
    pub revision: Revision,
    /// The replica the record belongs to.
    pub replica: String,
    /// The record's key.
    pub key: String,
    /// The stored value.
    pub value: Bytes,
}

/// The body of a write of `value` at `revision` for `(replica, key)`.
pub fn encode(revision: Revision, replica: &str, key: &str, value: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(FIXED_LEN + 8 + replica.len() + key.len() + value.len());
    body.put_slice(MAGIC);
    body.put_u8(FORMAT);
    body.put_u64(revision.0);
    body.put_u128(rand::random::<u128>());
    put_str(&mut body, replica);
    put_str(&mut body, key);
    body.put_slice(value);
    body.freeze()
}

/// The length of the header of a body for `(replica, key)`: the bytes a ranged `GET` must read to
/// learn a record's revision.
pub fn header_len(replica: &str, key: &str) -> usize {
    FIXED_LEN + 4 + replica.len() + 4 + key.len()
}

fn put_str(body: &mut BytesMut, s: &str) {
    // Names longer than 4 GiB cannot reach this point (they would not fit in a request line).
    body.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    body.put_slice(s.as_bytes());
}

fn take_str(body: &mut Bytes, what: &str) -> Result<String, String> {
    if body.remaining() < 4 {
        return Err(format!("object body ends before the {what} length"));
    }
    let len = usize::try_from(body.get_u32()).unwrap_or(usize::MAX);
    if body.remaining() < len {
        return Err(format!(
            "object body ends inside the {what} ({len} bytes announced)"
        ));
    }
    String::from_utf8(body.split_to(len).to_vec()).map_err(|_| format!("the {what} is not UTF-8"))
}

/// Decodes a body, or says why it is not a body of this backend.
pub fn decode(mut body: Bytes) -> Result<Body, String> {
    if body.len() < FIXED_LEN {
        return Err(format!(
            "object body has {} bytes, less than the {FIXED_LEN}-byte header",
            body.len()
        ));
    }
    if &body[..4] != MAGIC {
        return Err("object body does not start with the dd-store-s3 magic 'DDS3'".to_owned());
    }
    body.advance(4);
    let format = body.get_u8();
    if format != FORMAT {
        return Err(format!(
            "unknown body format {format} (this version reads format {FORMAT})"
        ));
    }
    let revision = body.get_u64();
    if revision == 0 {
        return Err("revision 0 in object body".to_owned());
    }
    body.advance(16);
    let replica = take_str(&mut body, "replica name")?;
    let key = take_str(&mut body, "key")?;
    Ok(Body {
        revision: Revision(revision),
        replica,
        key,
        value: body,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unique_bodies() {
        let a = encode(Revision(7), "r/é", "k", b"value");
        let b = encode(Revision(7), "r/é", "k", b"value");
        assert_ne!(a, b, "two writes of the same value must differ");
        assert_eq!(
            decode(a),
            Ok(Body {
                revision: Revision(7),
                replica: "r/é".to_owned(),
                key: "k".to_owned(),
                value: Bytes::from_static(b"value"),
            })
        );
        assert_eq!(
            decode(encode(Revision(1), "r", "k", b"")).map(|b| b.value.len()),
            Ok(0)
        );
    }

    #[test]
    fn the_header_alone_decodes_to_the_revision_and_names() {
        let full = encode(Revision(42), "replica", "clé", b"a long value");
        let header = full.slice(..header_len("replica", "clé"));
        let decoded = decode(header).unwrap();
        assert_eq!(decoded.revision, Revision(42));
        assert_eq!(
            (decoded.replica.as_str(), decoded.key.as_str()),
            ("replica", "clé")
        );
        assert!(decoded.value.is_empty());
        assert_eq!(
            encode(Revision(1), "r", "k", b"").len(),
            header_len("r", "k")
        );
    }

    #[test]
    fn foreign_and_damaged_bodies_are_rejected() {
        assert!(decode(Bytes::from_static(b"hello")).is_err());
        let good = encode(Revision(1), "r", "key", b"x").to_vec();
        let mut other = good.clone();
        other[0] = b'X';
        assert!(decode(other.into()).unwrap_err().contains("magic"));
        let mut future = good.clone();
        future[4] = 9;
        assert!(decode(future.into()).unwrap_err().contains("format 9"));
        let truncated = good[..FIXED_LEN + 6].to_vec();
        assert!(decode(truncated.into()).unwrap_err().contains("ends"));
    }
}
