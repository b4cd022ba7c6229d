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

use sha2::{Digest, Sha256};

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

/// The most bytes S3 allows in an object name.
pub const S3_MAX_OBJECT_NAME_LEN: usize = 1024;

/// Hex digits of the name hash of a long segment.
const HASH_HEX_LEN: usize = 24;

/// What follows the kept part of a long segment: `.` plus the hash.
const HASHED_SUFFIX_LEN: usize = 1 + HASH_HEX_LEN;

/// The fewest escaped characters a long replica segment keeps before its hash.
const MIN_KEPT: usize = 8;

/// One escaped path segment (a replica name or a key) as it appears in object names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// The whole escaped string: decodes back to it.
    Exact(String),
    /// A long string: the first characters of its escaped form, `.` and a hash of the string. The
    /// string itself is stored in the object body. `group` is everything up to and including the
    /// `.` (for a key: the whole object name up to there); all long strings that share their kept
    /// part share it.
    Hashed {
        /// The kept part plus `.`.
        group: String,
    },
}

/// The object names of one store: everything lives under one key prefix of one bucket.
///
/// A replica name or key whose escaped form is too long for the object-name budget is stored as
/// its first escaped characters, `.` and a 96-bit SHA-256 hash of the name (`.` never occurs in
/// escaped text, so it marks such segments). Names of long keys sharing their kept part then sort
/// by hash; scans read the real keys from the object bodies and sort such groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLayout {
    prefix: String,
    /// Available bytes for `<replica segment>/<key segment>`.
    available: usize,
}

impl ObjectLayout {
    /// A layout under `prefix` (a non-empty prefix gets a trailing `/` if it has none) whose object
    /// names have at most `max_name_len` bytes; an error if the prefix leaves too little room.
    pub fn new(prefix: &str, max_name_len: usize) -> Result<Self, String> {
        let prefix = prefix.trim_start_matches('/');
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        let available = max_name_len.saturating_sub(prefix.len() + 1);
        let layout = Self { prefix, available };
        if layout.replica_threshold() < MIN_KEPT {
            return Err(format!(
                "the prefix '{}' ({} bytes) leaves too little room in object names of at most \
                 {max_name_len} bytes",
                layout.prefix,
                layout.prefix.len()
            ));
        }
        Ok(layout)
    }

    /// The normalised prefix (empty or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Replica names whose escaped form is longer than this are hashed.
    fn replica_threshold(&self) -> usize {
        (self.available / 3).saturating_sub(HASHED_SUFFIX_LEN)
    }

    /// Keys whose escaped form is longer than this are hashed.
    fn key_threshold(&self, replica_segment: &str) -> usize {
        self.available
            .saturating_sub(replica_segment.len() + HASHED_SUFFIX_LEN)
    }

    fn segment(s: &str, threshold: usize) -> String {
        let escaped = escape(s);
        if escaped.len() <= threshold {
            return escaped;
        }
        let digest = Sha256::digest(s.as_bytes());
        let mut out = String::with_capacity(threshold + HASHED_SUFFIX_LEN);
        out.push_str(&escaped[..threshold]);
        out.push('.');
        for b in digest.iter().take(HASH_HEX_LEN / 2) {
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    fn replica_segment(&self, replica: &str) -> String {
        Self::segment(replica, self.replica_threshold())
    }

    /// The listing prefix of all objects of `replica`.
    pub fn replica_prefix(&self, replica: &str) -> String {
        format!("{}{}/", self.prefix, self.replica_segment(replica))
    }

    /// The object name of `(replica, key)`.
    pub fn object_name(&self, replica: &str, key: &str) -> String {
        let replica_segment = self.replica_segment(replica);
        let key_segment = Self::segment(key, self.key_threshold(&replica_segment));
        format!("{}{replica_segment}/{key_segment}", self.prefix)
    }

    /// The key segment of an object listed under `replica_prefix`, or why the name is not one of
    /// ours.
    pub fn key_segment(&self, replica_prefix: &str, object_name: &str) -> Result<Segment, String> {
        let segment = object_name
            .strip_prefix(replica_prefix)
            .ok_or_else(|| format!("object '{object_name}' is not under '{replica_prefix}'"))?;
        match parse_segment(segment) {
            Ok(Segment::Hashed { group }) => Ok(Segment::Hashed {
                group: format!("{replica_prefix}{group}"),
            }),
            Ok(exact) => Ok(exact),
            Err(e) => Err(format!("object name '{object_name}': {e}")),
        }
    }

    /// The replica segment named by a common prefix of a delimiter listing of [`Self::prefix`],
    /// `None` for the probe's scratch directory, or why it is not one of ours.
    pub fn replica_segment_of(&self, common_prefix: &str) -> Result<Option<Segment>, String> {
        let Some(rest) = common_prefix.strip_prefix(&self.prefix) else {
            return Err(format!("'{common_prefix}' is not under '{}'", self.prefix));
        };
        if rest == PROBE_DIR {
            return Ok(None);
        }
        let segment = rest.strip_suffix('/').unwrap_or(rest);
        parse_segment(segment)
            .map(Some)
            .map_err(|e| format!("object prefix '{common_prefix}': {e}"))
    }

    /// Where a scan resumes after the key `cursor`: the name to start after, and the group prefix
    /// (to list and sort first) if the cursor is a long key.
    pub fn resume_point(&self, replica: &str, cursor: &str) -> (String, Option<String>) {
        let name = self.object_name(replica, cursor);
        let key_start = name.rfind('/').map_or(0, |slash| slash + 1);
        match name[key_start..].find('.').map(|dot| key_start + dot) {
            Some(dot) => {
                let group = name[..=dot].to_owned();
                // `~` sorts after every hash digit: start after the whole group.
                (format!("{group}~"), Some(group))
            }
            _ => (name, None),
        }
    }

    /// A fresh scratch object name for the open-time probe.
    pub fn probe_object_name(&self) -> String {
        format!("{}{PROBE_DIR}{:032x}", self.prefix, rand::random::<u128>())
    }
}

fn parse_segment(segment: &str) -> Result<Segment, String> {
    match segment.find('.') {
        None => unescape(segment).map(Segment::Exact),
        Some(dot) => {
            let (kept, hash) = (&segment[..dot], &segment[dot + 1..]);
            let hash_ok = hash.len() == HASH_HEX_LEN
                && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !hash_ok || kept.is_empty() || kept.contains('/') {
                return Err(format!(
                    "'{segment}' is neither escaped nor a hashed long name"
                ));
            }
            Ok(Segment::Hashed {
                group: segment[..=dot].to_owned(),
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
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
        let layout = ObjectLayout::new("dd/test", S3_MAX_OBJECT_NAME_LEN).unwrap();
        assert_eq!(layout.prefix(), "dd/test/");
        let a = layout.replica_prefix("a");
        let ab = layout.replica_prefix("a/b");
        assert!(!ab.starts_with(&a));
        assert_eq!(
            layout.replica_segment_of(&ab),
            Ok(Some(Segment::Exact("a/b".to_owned())))
        );
        let name = layout.object_name("a/b", "k/..");
        assert_eq!(
            layout.key_segment(&ab, &name),
            Ok(Segment::Exact("k/..".to_owned()))
        );
        let probe = layout.probe_object_name();
        let probe_dir = &probe[..probe.rfind('/').map_or(0, |i| i + 1)];
        assert_eq!(layout.replica_segment_of(probe_dir), Ok(None));
    }

    #[test]
    fn long_names_fit_the_budget_and_keep_order_outside_their_group() {
        let layout = ObjectLayout::new("p", 160).unwrap();
        let replica = "r".repeat(300);
        let keys = [
            "k".repeat(1000),
            "é".repeat(500),
            "a".to_owned(),
            "l".to_owned(),
        ];
        let prefix = layout.replica_prefix(&replica);
        assert!(matches!(
            layout.replica_segment_of(&prefix),
            Ok(Some(Segment::Hashed { .. }))
        ));
        for key in &keys {
            let name = layout.object_name(&replica, key);
            assert!(name.len() <= 160, "{} bytes", name.len());
            assert!(name.starts_with(&prefix));
        }
        let long = layout.object_name(&replica, &keys[0]);
        assert!(layout.object_name(&replica, "a") < long);
        assert!(long < layout.object_name(&replica, "l"));
        let Ok(Segment::Hashed { group }) = layout.key_segment(&prefix, &long) else {
            panic!("a 1000-byte key must be hashed");
        };
        let (start_after, resume_group) = layout.resume_point(&replica, &keys[0]);
        assert_eq!(resume_group.as_deref(), Some(group.as_str()));
        assert!(start_after > long && start_after < layout.object_name(&replica, "l"));
        assert!(ObjectLayout::new(&"p".repeat(150), 160).is_err());
    }
}
