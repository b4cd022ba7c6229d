//! Odd keys and replica names (slashes, unicode, dots, long names) round trip.

use super::*;

/// Keys that are hard for file systems, URLs and object stores.
pub fn odd_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "a/b",
        "/leading-slash",
        "trailing-slash/",
        "a//b",
        "..",
        ".",
        "../escape",
        "./here",
        ".hidden",
        "...",
        "%",
        "%41",
        "%2F",
        "100%",
        "back\\slash",
        "\\",
        "with space",
        " ",
        " leading and trailing ",
        "new\nline",
        "tab\tand\rcarriage",
        "nul\u{0}byte",
        "ünïcödé",
        "日本語のキー",
        "emoji 🎉🦀",
        "\u{FFFD}",
        "\u{10FFFF}",
        "Case",
        "case",
        "CASE",
        "cAsE",
        "~tilde",
        "#hash?query&x=y",
        "*?<>|:\"'",
        "CON",
        "nul",
        "-",
        "_",
        "+plus",
        "key.with.dots",
        "key.",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    keys.push("k".repeat(1000));
    keys.push(format!("{}🦀", "x".repeat(996)));
    keys.push("é".repeat(500));
    keys.push("K".repeat(1000));
    keys
}

async fn round_trip_keys<S: DurableStateStore>(
    store: &S,
    replica: &str,
    keys: &[String],
    check: &str,
) {
    for (i, key) in keys.iter().enumerate() {
        let value = Bytes::from(format!("value {i} of {key}"));
        put_new(store, replica, key, value, check).await;
    }
    for (i, key) in keys.iter().enumerate() {
        let value = format!("value {i} of {key}");
        assert_record(
            store,
            replica,
            key,
            Some((Revision::FIRST, value.as_bytes())),
            check,
        )
        .await;
    }
    let mut expected: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    expected.sort();
    for page_size in [1000, 3] {
        let scanned = scan_pages(store, replica, page_size, None, check).await;
        let scanned_keys: Vec<&[u8]> = scanned.iter().map(|r| r.key.as_bytes()).collect();
        assert_eq!(
            scanned_keys, expected,
            "{check}: scan of {replica:?} (page size {page_size}) must return the keys exactly"
        );
    }
    // Replace and delete through the escaped names too.
    for key in keys {
        let outcome = put(
            store,
            replica,
            key,
            Some(Revision::FIRST),
            "2".into(),
            check,
        )
        .await;
        assert_eq!(
            outcome,
            WriteOutcome::Written(Revision(2)),
            "{check}: {key:?}"
        );
    }
    for key in keys.iter().step_by(2) {
        let outcome = ok(
            store.delete(replica, key, Revision(2)).await,
            check,
            "delete",
        );
        assert_eq!(
            outcome,
            WriteOutcome::Written(Revision(2)),
            "{check}: {key:?}"
        );
    }
    let remaining: Vec<String> = scan_all(store, replica, 1000, check)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    let mut expected: Vec<&String> = keys.iter().skip(1).step_by(2).collect();
    expected.sort();
    let remaining: Vec<&String> = remaining.iter().collect();
    assert_eq!(
        remaining, expected,
        "{check}: keys left after deleting every other"
    );
}

/// The keys of [`odd_keys`] round-trip exactly through put, get, scan, replace and delete, and
/// scan in ascending byte order.
pub async fn odd_keys_round_trip<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "odd_keys_round_trip";
    let store = open_handle(open, check).await;
    let replica = unique_replica("odd-keys");
    round_trip_keys(&store, &replica, &odd_keys(), check).await;
}

/// Odd replica names (the same forms as [`odd_keys`], made unique with a suffix) round-trip
/// exactly through put, get, scan and `replicas()`, and do not see each other's records.
pub async fn odd_replica_names_round_trip<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "odd_replica_names_round_trip";
    let store = open_handle(open, check).await;
    let suffix = format!("{:016x}", rand::random::<u64>());
    // The suffix goes first so that names like "..", "." and "/x" keep their odd start.
    let names: Vec<String> = odd_keys()
        .into_iter()
        .filter(|k| k.len() < 600)
        .map(|k| format!("{k}{suffix}"))
        .chain([
            format!("/{suffix}"),
            format!("{suffix}/."),
            format!("{suffix}/.."),
            format!("{}{suffix}", "r".repeat(300)),
        ])
        .collect();
    for (i, name) in names.iter().enumerate() {
        put_new(&store, name, "k", Bytes::from(format!("in {i}")), check).await;
        put_new(&store, name, &format!("own-{i}"), "own".into(), check).await;
    }
    let listed = ok(store.replicas().await, check, "replicas()");
    for (i, name) in names.iter().enumerate() {
        let value = format!("in {i}");
        assert_record(
            &store,
            name,
            "k",
            Some((Revision(1), value.as_bytes())),
            check,
        )
        .await;
        assert!(listed.contains(name), "{check}: replicas() misses {name:?}");
        let keys: Vec<String> = scan_all(&store, name, 10, check)
            .await
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(
            keys,
            vec![format!("k"), format!("own-{i}")],
            "{check}: scan of replica {name:?}"
        );
    }
}
