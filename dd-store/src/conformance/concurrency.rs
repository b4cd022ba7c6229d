//! Handles racing on one key with conditional writes.

use super::*;

fn parse_count(record: &Option<StoredRecord>, check: &str) -> u64 {
    match record {
        None => 0,
        Some(r) => std::str::from_utf8(&r.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{check}: counter value {:?} is not a number", r.value)),
    }
}

/// [`RACING_WRITERS`] tasks, each on its own handle, increment one counter record with
/// read-then-conditional-put loops (bounded). No update is lost: the final count and revision
/// equal the number of successful puts.
pub async fn concurrent_conditional_writers<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "concurrent_conditional_writers";
    let replica = unique_replica("race");
    let mut tasks = Vec::new();
    for writer in 0..RACING_WRITERS {
        let store = open_handle(open, check).await;
        let replica = replica.clone();
        tasks.push(tokio::spawn(async move {
            let mut successes = 0u64;
            let mut conflicts = 0u64;
            for _ in 0..ATTEMPTS_PER_WRITER {
                if successes == INCREMENTS_PER_WRITER {
                    break;
                }
                let current = get(&store, &replica, "counter", check).await;
                let count = parse_count(&current, check);
                let expected = current.map(|r| r.revision);
                let value = Bytes::from((count + 1).to_string());
                match put(&store, &replica, "counter", expected, value, check).await {
                    WriteOutcome::Written(revision) => {
                        assert_eq!(
                            Some(revision),
                            Some(expected.map_or(Revision::FIRST, Revision::next)),
                            "{check}: writer {writer} got an unexpected revision"
                        );
                        successes += 1;
                    }
                    WriteOutcome::Conflict { .. } => conflicts += 1,
                }
                tokio::task::yield_now().await;
            }
            (successes, conflicts)
        }));
    }
    let mut total = 0u64;
    let mut results = BTreeMap::new();
    for (writer, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok((successes, conflicts)) => {
                results.insert(writer, (successes, conflicts));
                total += successes;
            }
            Err(e) => panic!("{check}: writer {writer} failed: {e}"),
        }
    }
    assert!(total > 0, "{check}: no writer succeeded: {results:?}");
    let store = open_handle(open, check).await;
    let record = get(&store, &replica, "counter", check).await;
    let count = parse_count(&record, check);
    assert_eq!(
        count, total,
        "{check}: lost updates: the counter is {count} after {total} successful increments \
         (successes, conflicts per writer: {results:?})"
    );
    assert_eq!(
        record.map(|r| r.revision),
        Some(Revision(total)),
        "{check}: the revision must equal the number of successful puts"
    );
}
