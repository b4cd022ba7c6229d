//! The object body: a small header, then the stored value.
//!
//! ```text
//! "DDS3" | format 1 (1 byte) | revision (u64, big-endian) | write id (16 random bytes) | value
//! ```
//!
//! The revision is also in the object metadata (`x-amz-meta-dd-revision`) so that a `HEAD` can
//! check it without reading the value; the body copy is the one a `GET` trusts. The random write id
//! makes the body, and so the ETag (the MD5 of the body on S3), different for every write, even one
//! that stores the same value again: a writer holding an older ETag can then never pass an
//! `If-Match` against a newer write.

use bytes::{BufMut, Bytes, BytesMut};
use dd_core::store::Revision;

const MAGIC: &[u8; 4] = b"DDS3";
const FORMAT: u8 = 1;
/// The length of the header in front of the value.
pub const HEADER_LEN: usize = 4 + 1 + 8 + 16;

/// The body of a write of `value` at `revision`.
pub fn encode(revision: Revision, value: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(HEADER_LEN + value.len());
    body.put_slice(MAGIC);
    body.put_u8(FORMAT);
    body.put_u64(revision.0);
    body.put_u128(rand::random::<u128>());
    body.put_slice(value);
    body.freeze()
}

/// The revision and value of a body, or why it is not a body of this backend.
pub fn decode(mut body: Bytes) -> Result<(Revision, Bytes), String> {
    if body.len() < HEADER_LEN {
        return Err(format!(
            "object body has {} bytes, less than the {HEADER_LEN}-byte header",
            body.len()
        ));
    }
    let header = body.split_to(HEADER_LEN);
    if &header[..4] != MAGIC {
        return Err("object body does not start with the dd-store-s3 magic 'DDS3'".to_owned());
    }
    if header[4] != FORMAT {
        return Err(format!(
            "unknown body format {} (this version reads format {FORMAT})",
            header[4]
        ));
    }
    let mut revision = [0u8; 8];
    revision.copy_from_slice(&header[5..13]);
    let revision = u64::from_be_bytes(revision);
    if revision == 0 {
        return Err("revision 0 in object body".to_owned());
    }
    Ok((Revision(revision), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unique_bodies() {
        let a = encode(Revision(7), b"value");
        let b = encode(Revision(7), b"value");
        assert_ne!(a, b, "two writes of the same value must differ");
        assert_eq!(decode(a), Ok((Revision(7), Bytes::from_static(b"value"))));
    }

    #[test]
    fn foreign_bodies_are_rejected() {
        assert!(decode(Bytes::from_static(b"hello")).is_err());
        let mut other = encode(Revision(1), b"x").to_vec();
        other[0] = b'X';
        assert!(decode(other.into()).is_err());
        let mut future = encode(Revision(1), b"x").to_vec();
        future[4] = 9;
        assert!(decode(future.into()).unwrap_err().contains("format 9"));
    }
}
