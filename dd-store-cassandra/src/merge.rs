//! A k-way merge of per-bucket record streams (each in ascending key order) into one stream in
//! ascending key (byte) order, for `scan`.

use std::pin::Pin;

use dd_store::StoredRecord;
use futures::{Stream, StreamExt};

use crate::error::CassandraError;

/// The records of one bucket, in ascending key order.
pub type RecordStream =
    Pin<Box<dyn Stream<Item = Result<StoredRecord, CassandraError>> + Send + 'static>>;

struct Merge {
    streams: Vec<RecordStream>,
    heads: Vec<Option<StoredRecord>>,
    primed: bool,
    failed: bool,
}

/// Merges `streams` by key; the first error ends the merged stream after being yielded.
pub fn merge_streams(
    streams: Vec<RecordStream>,
) -> impl Stream<Item = Result<StoredRecord, CassandraError>> + Send + 'static {
    let heads = streams.iter().map(|_| None).collect();
    let state = Merge {
        streams,
        heads,
        primed: false,
        failed: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.failed {
            return None;
        }
        if !state.primed {
            state.primed = true;
            for i in 0..state.streams.len() {
                match state.streams[i].next().await {
                    Some(Ok(record)) => state.heads[i] = Some(record),
                    Some(Err(e)) => {
                        state.failed = true;
                        return Some((Err(e), state));
                    }
                    None => {}
                }
            }
        }
        let smallest = state
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|r| (i, r.key.as_bytes())))
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i)?;
        let record = state.heads[smallest].take()?;
        match state.streams[smallest].next().await {
            Some(Ok(next)) => state.heads[smallest] = Some(next),
            Some(Err(e)) => {
                // Yield the record in hand first would reorder nothing, but the error must not
                // be lost: report it now and stop.
                state.failed = true;
                return Some((Err(e), state));
            }
            None => {}
        }
        Some((Ok(record), state))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use dd_store::Revision;
    use futures::TryStreamExt;

    use super::*;

    fn stream(keys: &[&str]) -> RecordStream {
        let records: Vec<Result<StoredRecord, CassandraError>> = keys
            .iter()
            .map(|k| {
                Ok(StoredRecord {
                    key: (*k).to_owned(),
                    revision: Revision::FIRST,
                    value: bytes::Bytes::new(),
                })
            })
            .collect();
        Box::pin(futures::stream::iter(records))
    }

    #[tokio::test]
    async fn merges_in_byte_order() {
        let merged: Vec<String> = merge_streams(vec![
            stream(&["b", "é"]),
            stream(&[]),
            stream(&["Z", "a", "c"]),
        ])
        .map_ok(|r| r.key)
        .try_collect()
        .await
        .unwrap();
        assert_eq!(merged, vec!["Z", "a", "b", "c", "é"]);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let failing: RecordStream = Box::pin(futures::stream::iter(vec![Err(
            CassandraError::Config("boom".into()),
        )]));
        let items: Vec<_> = merge_streams(vec![stream(&["a"]), failing]).collect().await;
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }
}
