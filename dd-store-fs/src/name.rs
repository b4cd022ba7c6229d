//! File names for keys and replica names: safe, reversible, case-preserving, and unique even on
//! case-insensitive file systems.
//!
//! Every byte of the UTF-8 name outside `[a-z0-9_-]` — including upper-case letters — is written
//! as `%XX` with upper-case hex digits. Escaped names therefore never contain an upper-case letter
//! except in a `%XX` escape and never start with `.` or `~`, so:
//! - `Key` (`%4Bey`) and `key` stay two files even where `%4bey` and `%4Bey` are one name;
//! - names starting with `.` are free for the store's own files (lock, temporary files);
//! - names starting with `~` are free for long names.
//!
//! An escaped name longer than [`MAX_ESCAPED_LEN`] bytes (file systems allow 255) is replaced by
//! `~` and the lower-case hex SHA-256 of the name; the full name is then kept inside the file.

use sha2::{Digest, Sha256};

/// The longest escaped name used as a file name as it is.
pub const MAX_ESCAPED_LEN: usize = 200;

/// The first character of a hashed (long) name.
pub const HASHED_PREFIX: char = '~';

/// How a key or replica name is stored as a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    /// The escaped name itself.
    Escaped(String),
    /// `~` and the SHA-256 of a name too long to escape; the name is kept inside the file.
    Hashed(String),
}

impl FileName {
    /// The file name for `name`.
    pub fn for_name(name: &str) -> FileName {
        let escaped = escape(name);
        if escaped.len() <= MAX_ESCAPED_LEN {
            FileName::Escaped(escaped)
        } else {
            let digest = Sha256::digest(name.as_bytes());
            let mut hashed = String::with_capacity(65);
            hashed.push(HASHED_PREFIX);
            for byte in digest.iter() {
                hashed.push_str(&format!("{byte:02x}"));
            }
            FileName::Hashed(hashed)
        }
    }

    /// The file name as a string.
    pub fn as_str(&self) -> &str {
        match self {
            FileName::Escaped(s) | FileName::Hashed(s) => s,
        }
    }
}

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
}

/// Escapes `name` (see the module docs).
pub fn escape(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(name.len());
    for &byte in name.as_bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Reverses [`escape`]; `None` if `file_name` is not exactly what [`escape`] produces for some
/// name (so a foreign file is never mistaken for a key).
pub fn unescape(file_name: &str) -> Option<String> {
    let bytes = file_name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            let decoded = (hi << 4) | lo;
            if is_plain(decoded) {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else if is_plain(byte) {
            out.push(byte);
            i += 1;
        } else {
            return None;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (!name.is_empty() && escape(&name).len() <= MAX_ESCAPED_LEN).then_some(name)
}

/// Whether `file_name` has the form of a hashed long name.
pub fn is_hashed(file_name: &str) -> bool {
    file_name
        .strip_prefix(HASHED_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_case_apart() {
        for name in [
            "a/b", "..", ".x", "Key", "key", "%41", "é 🦀", "a\\b\n", "_-09az",
        ] {
            let escaped = escape(name);
            assert_eq!(unescape(&escaped).as_deref(), Some(name), "{name:?}");
            assert!(!escaped.starts_with('.') && !escaped.starts_with('~'));
            assert!(
                escaped.bytes().all(|b| is_plain(b)
                    || b == b'%'
                    || b.is_ascii_uppercase()
                    || b.is_ascii_digit())
            );
        }
        assert_eq!(escape("Key"), "%4Bey");
        assert_ne!(escape("Key").to_lowercase(), escape("key").to_lowercase());
    }

    #[test]
    fn foreign_names_are_not_keys() {
        for foreign in [
            "README.txt",
            "Key",
            "%4b",
            "%",
            "%4",
            "%61",
            "",
            "a%ZZ",
            "%FF",
        ] {
            assert_eq!(unescape(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn long_names_are_hashed() {
        let long = "x".repeat(MAX_ESCAPED_LEN + 1);
        let FileName::Hashed(name) = FileName::for_name(&long) else {
            panic!("a long name must be hashed");
        };
        assert!(is_hashed(&name));
        assert_eq!(unescape(&name), None);
        let short = "x".repeat(MAX_ESCAPED_LEN);
        assert_eq!(FileName::for_name(&short), FileName::Escaped(short.clone()));
        // An escaped name too long to be used as it is does not decode either.
        assert_eq!(unescape(&escape(&"X".repeat(100))), None);
    }
}
