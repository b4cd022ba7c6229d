//! Where records live in the bucket: object names and their order-preserving escaping.
//!
//! Every record is one object named `<prefix><escaped replica>/<escaped key>`. Escaping keeps the
//! letters and digits that are safe everywhere and writes every other byte of the UTF-8 string as
//! an escape character plus two upper-case hex digits. Unlike plain percent-encoding, the escape
//! character depends on where the byte sits relative to the literal ranges, so that the escaped
//! names sort (by bytes, as S3 lists them) exactly like the original strings:
//!
//! | bytes            | written as            |
//! |------------------|-----------------------|
//! | `0x00..=0x2F`    | `-` + hex (`/` → `-2F`, `.` → `-2E`) |
//! | `0`..=`8`        | literal               |
//! | `0x39..=0x40`    | `9` + hex (`9` → `939`, `@` → `940`) |
//! | `A`..=`Z`        | literal               |
//! | `0x5B..=0x60`    | `_` + hex (`_` → `_5F`) |
//! | `a`..=`y`        | literal               |
//! | `0x7A..=0xFF`    | `z` + hex (`z` → `z7A`, `é` → `zC3zA9`) |
//!
//! Each escape character lies between the literal ranges around the bytes it stands for, and no
//! escape character is a literal, so the codes are prefix-free and ordered like the bytes. An
//! escaped name never contains `/` or `.`, so the replica part ends at the first `/` and one
//! replica's objects can never share a listing prefix with another's.
//!
//! ```
//! use dd_store_s3::layout::{escape, unescape};
//! assert_eq!(escape("node-a"), "node-2Da");
//! assert_eq!(escape("../x/é"), "-2E-2E-2Fx-2FzC3zA9");
//! assert_eq!(unescape("-2E-2E-2Fx-2FzC3zA9").as_deref(), Ok("../x/é"));
//! assert!(escape("a/b") < escape("a0") && escape("z") < escape("é"));
//! ```

use std::fmt::Write as _;

/// The most bytes S3 allows in an object name.
pub const MAX_OBJECT_NAME_LEN: usize = 1024;

/// The directory under the prefix that holds the open-time probe's scratch objects. It starts with
/// `.`, which no escaped replica name does.
const PROBE_DIR: &str = ".dd-probe/";

/// One escape group: the bytes `lo..=hi` are written as `escape` followed by two hex digits.
struct EscapeGroup {
    escape: u8,
    lo: u8,
    hi: u8,
}

const GROUPS: [EscapeGroup; 4] = [
    EscapeGroup {
        escape: b'-',
        lo: 0x00,
        hi: 0x2F,
    },
    EscapeGroup {
        escape: b'9',
        lo: 0x39,
        hi: 0x40,
    },
    EscapeGroup {
        escape: b'_',
        lo: 0x5B,
        hi: 0x60,
    },
    EscapeGroup {
        escape: b'z',
        lo: 0x7A,
        hi: 0xFF,
    },
];

fn is_literal(b: u8) -> bool {
    matches!(b, b'0'..=b'8' | b'A'..=b'Z' | b'a'..=b'y')
}

/// Escapes `s` so that it is a safe, `/`-free part of an object name that sorts like `s`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for &b in s.as_bytes() {
        if is_literal(b) {
            out.push(char::from(b));
        } else if let Some(group) = GROUPS.iter().find(|g| (g.lo..=g.hi).contains(&b)) {
            out.push(char::from(group.escape));
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02X}");
        }
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Reverses [`escape`]. Only the canonical escaped form is accepted; anything else (a character
/// that is neither literal nor an escape, a bad hex digit, a byte escaped with the wrong escape
/// character, invalid UTF-8) is an error describing the problem.
pub fn unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if is_literal(c) {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(group) = GROUPS.iter().find(|g| g.escape == c) else {
            return Err(format!(
                "unexpected character {:?} at byte {i}",
                char::from(c)
            ));
        };
        let digits = bytes.get(i + 1..i + 3).unwrap_or_default();
        let value = match digits {
            [h, l] => hex_value(*h).zip(hex_value(*l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        let Some(value) = value.filter(|v| (group.lo..=group.hi).contains(v)) else {
            return Err(format!("invalid escape at byte {i}"));
        };
        out.push(value);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| "escaped bytes are not UTF-8".to_owned())
}

/// The object names of one store: everything lives under one key prefix of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLayout {
    prefix: String,
}

impl ObjectLayout {
    /// A layout under `prefix`; a non-empty prefix gets a trailing `/` if it has none.
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim_start_matches('/');
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        Self { prefix }
    }

    /// The normalised prefix (empty or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The listing prefix of all objects of `replica`.
    pub fn replica_prefix(&self, replica: &str) -> String {
        format!("{}{}/", self.prefix, escape(replica))
    }

    /// The object name of `(replica, key)`.
    pub fn object_name(&self, replica: &str, key: &str) -> String {
        format!("{}{}", self.replica_prefix(replica), escape(key))
    }

    /// The key of an object listed under `replica_prefix`, or why the name is not one of ours.
    pub fn key_of(&self, replica_prefix: &str, object_name: &str) -> Result<String, String> {
        let escaped = object_name
            .strip_prefix(replica_prefix)
            .ok_or_else(|| format!("object '{object_name}' is not under '{replica_prefix}'"))?;
        unescape(escaped).map_err(|e| format!("object name '{object_name}': {e}"))
    }

    /// The replica named by a common prefix of a delimiter listing of [`Self::prefix`], `None` for
    /// the probe's scratch directory, or why it is not one of ours.
    pub fn replica_of(&self, common_prefix: &str) -> Result<Option<String>, String> {
        let Some(rest) = common_prefix.strip_prefix(&self.prefix) else {
            return Err(format!("'{common_prefix}' is not under '{}'", self.prefix));
        };
        if rest == PROBE_DIR {
            return Ok(None);
        }
        let escaped = rest.strip_suffix('/').unwrap_or(rest);
        unescape(escaped)
            .map(Some)
            .map_err(|e| format!("object prefix '{common_prefix}': {e}"))
    }

    /// A fresh scratch object name for the open-time probe.
    pub fn probe_object_name(&self) -> String {
        format!("{}{PROBE_DIR}{:032x}", self.prefix, rand::random::<u128>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_value_round_trips_and_keeps_order() {
        let mut samples: Vec<String> = (0u32..0x80)
            .filter_map(char::from_u32)
            .map(|c| c.to_string())
            .collect();
        samples.extend(
            [
                "é", "日本", "😀", "a", "a/", "a/b", "a0", "aa", "..", "9", "z", "zz", "_", "~",
            ]
            .map(str::to_owned),
        );
        for s in &samples {
            assert_eq!(unescape(&escape(s)).as_deref(), Ok(s.as_str()), "{s:?}");
            assert!(!escape(s).contains('/') && !escape(s).contains('.'));
        }
        for a in &samples {
            for b in &samples {
                assert_eq!(a.cmp(b), escape(a).cmp(&escape(b)), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn non_canonical_names_are_rejected() {
        for bad in ["a/b", "-", "-2", "-3A", "9-2F", "zzz", "-2g", "z80", "a.b"] {
            assert!(unescape(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replica_prefixes_never_nest() {
        let layout = ObjectLayout::new("dd/test");
        assert_eq!(layout.prefix(), "dd/test/");
        let a = layout.replica_prefix("a");
        let ab = layout.replica_prefix("a/b");
        assert!(!ab.starts_with(&a));
        assert_eq!(layout.replica_of(&ab).as_deref(), Ok(Some("a/b")));
        let name = layout.object_name("a/b", "k/..");
        assert_eq!(layout.key_of(&ab, &name).as_deref(), Ok("k/.."));
        let probe = layout.probe_object_name();
        let probe_dir = &probe[..probe.rfind('/').map_or(0, |i| i + 1)];
        assert_eq!(layout.replica_of(probe_dir), Ok(None));
    }
}
