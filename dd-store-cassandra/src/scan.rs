//! Merging the per-bucket reads of one scan page into one page in key order.
//!
//! A page reads, from every bucket of the replica, up to `per_bucket + 1` rows after the
//! cursor. A bucket that returned more than `per_bucket` rows ("truncated") may hold further
//! keys that were not read, so the page can only safely cover keys up to the smallest last key
//! among the truncated buckets: every key up to that cutoff has been read from every bucket.

use dd_store::{ScanPage, StoredRecord};

/// The rows read from one bucket, in ascending key order.
#[derive(Debug, Default)]
pub struct BucketRows {
    /// At most `per_bucket` records.
    pub records: Vec<StoredRecord>,
    /// Whether the bucket holds more keys after the last of `records`.
    pub truncated: bool,
}

/// How many rows to read per bucket for a page of `limit` records over `buckets` buckets:
/// about twice the fair share plus slack, so that a page usually fills in one round.
pub fn per_bucket_limit(limit: usize, buckets: usize) -> usize {
    let share = limit.div_ceil(buckets.max(1));
    (share.saturating_mul(2).saturating_add(8))
        .min(limit)
        .clamp(1, 10_000)
}

/// Merges the buckets' rows into one page of at most `limit` records in ascending key (byte)
/// order. `next` is the last returned key when more keys follow, `None` at the end.
pub fn merge_page(buckets: Vec<BucketRows>, limit: usize) -> ScanPage {
    let limit = limit.max(1);
    let cutoff: Option<String> = buckets
        .iter()
        .filter(|b| b.truncated)
        .filter_map(|b| b.records.last().map(|r| r.key.clone()))
        .min_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut records: Vec<StoredRecord> = buckets
        .into_iter()
        .flat_map(|b| b.records)
        .filter(|r| {
            cutoff
                .as_ref()
                .is_none_or(|c| r.key.as_bytes() <= c.as_bytes())
        })
        .collect();
    records.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    let more = records.len() > limit || cutoff.is_some();
    records.truncate(limit);
    let next = if more {
        records.last().map(|r| r.key.clone())
    } else {
        None
    };
    ScanPage { records, next }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use dd_store::Revision;

    use super::*;

    fn rec(key: &str) -> StoredRecord {
        StoredRecord {
            key: key.to_owned(),
            revision: Revision::FIRST,
            value: bytes::Bytes::new(),
        }
    }

    fn bucket(keys: &[&str], truncated: bool) -> BucketRows {
        BucketRows {
            records: keys.iter().map(|k| rec(k)).collect(),
            truncated,
        }
    }

    fn keys(page: &ScanPage) -> Vec<&str> {
        page.records.iter().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn untruncated_buckets_end_the_scan() {
        let page = merge_page(
            vec![bucket(&["b", "d"], false), bucket(&["a", "c"], false)],
            10,
        );
        assert_eq!(keys(&page), vec!["a", "b", "c", "d"]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn the_limit_cuts_and_sets_the_cursor() {
        let page = merge_page(
            vec![bucket(&["b", "d"], false), bucket(&["a", "c"], false)],
            3,
        );
        assert_eq!(keys(&page), vec!["a", "b", "c"]);
        assert_eq!(page.next.as_deref(), Some("c"));
    }

    #[test]
    fn a_truncated_bucket_bounds_the_page() {
        // Bucket 2 may hold keys between "b" and "z" that were not read.
        let page = merge_page(
            vec![bucket(&["c", "z"], false), bucket(&["a", "b"], true)],
            10,
        );
        assert_eq!(keys(&page), vec!["a", "b"]);
        assert_eq!(page.next.as_deref(), Some("b"));
    }

    #[test]
    fn byte_order_not_char_order() {
        let page = merge_page(vec![bucket(&["é"], false), bucket(&["Z", "a"], false)], 10);
        assert_eq!(keys(&page), vec!["Z", "a", "é"]);
    }

    #[test]
    fn per_bucket_limit_bounds() {
        assert_eq!(per_bucket_limit(1, 64), 1);
        assert_eq!(per_bucket_limit(7, 64), 7);
        assert_eq!(per_bucket_limit(1000, 64), 40);
        assert_eq!(per_bucket_limit(usize::MAX, 64), 10_000);
    }
}
