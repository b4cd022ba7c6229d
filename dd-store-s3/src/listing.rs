//! Listing object names page by page, and keeping a listing's position between scan pages.
//!
//! Every listing request asks for up to [`LIST_PAGE`] names. When a scan page stops in the middle
//! of them, the rest (and the continuation token) is kept in a small [`ListingCache`] under the
//! page's cursor, so that the next page of a scan with a small page size needs no new `LIST`
//! request. A scan then sees the keys of each 1000-name window as they were when that window was
//! listed, exactly as with ordinary `ListObjectsV2` pagination; entries expire after
//! [`CACHE_TTL`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::S3Error;
use crate::objects::{Listing, ObjectClient};

/// Names asked for per listing request (the S3 maximum).
pub(crate) const LIST_PAGE: usize = 1000;

/// How long a kept listing position may be reused.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(30);

/// How many listing positions are kept (one per scan in progress).
const CACHE_ENTRIES: usize = 16;

/// Object names under a prefix, one listing page at a time.
#[derive(Debug)]
pub(crate) struct Lister {
    prefix: String,
    start_after: Option<String>,
    continuation: Option<String>,
    buffered: VecDeque<String>,
    started: bool,
}

impl Lister {
    /// Names under `prefix`, after `start_after`.
    pub fn new(prefix: String, start_after: Option<String>) -> Self {
        Self {
            prefix,
            start_after,
            continuation: None,
            buffered: VecDeque::new(),
            started: false,
        }
    }

    /// Whether names may remain.
    pub fn has_more(&self) -> bool {
        !self.buffered.is_empty() || !self.started || self.continuation.is_some()
    }

    /// Lists the next page if nothing is buffered.
    async fn fill(&mut self, objects: &ObjectClient) -> Result<(), S3Error> {
        if !self.buffered.is_empty() || (self.started && self.continuation.is_none()) {
            return Ok(());
        }
        let start_after = if self.started {
            None
        } else {
            self.start_after.as_deref()
        };
        let Listing {
            objects: names,
            next,
            ..
        } = objects
            .list(
                &self.prefix,
                start_after,
                self.continuation.as_deref(),
                None,
                LIST_PAGE,
            )
            .await?;
        if names.is_empty() && next.is_some() {
            return Err(objects.empty_truncated_listing());
        }
        self.started = true;
        self.continuation = next;
        self.buffered.extend(names);
        Ok(())
    }

    /// The next name, `None` at the end.
    pub async fn next(&mut self, objects: &ObjectClient) -> Result<Option<String>, S3Error> {
        self.fill(objects).await?;
        Ok(self.buffered.pop_front())
    }

    /// The next name if it starts with `prefix`.
    pub async fn next_if_starts_with(
        &mut self,
        objects: &ObjectClient,
        prefix: &str,
    ) -> Result<Option<String>, S3Error> {
        self.fill(objects).await?;
        if self.buffered.front().is_some_and(|n| n.starts_with(prefix)) {
            return Ok(self.buffered.pop_front());
        }
        Ok(None)
    }
}

#[derive(Debug)]
struct Entry {
    cursor: String,
    lister: Lister,
    stored: Instant,
}

/// Listing positions of scans in progress, by cursor. Clones share the cache.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListingCache {
    entries: Arc<Mutex<VecDeque<Entry>>>,
}

impl ListingCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // The critical sections below cannot panic half-way; a poisoned cache is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `lister`, positioned right after the page that ended at `cursor`.
    pub fn put(&self, cursor: String, lister: Lister) {
        let mut entries = self.lock();
        entries.retain(|e| e.stored.elapsed() < CACHE_TTL);
        while entries.len() >= CACHE_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(Entry {
            cursor,
            lister,
            stored: Instant::now(),
        });
    }

    /// The kept listing of `prefix` that continues after `cursor`, if any (and fresh).
    pub fn take(&self, prefix: &str, cursor: &str) -> Option<Lister> {
        let mut entries = self.lock();
        let index = entries
            .iter()
            .position(|e| e.cursor == cursor && e.lister.prefix == prefix)?;
        let entry = entries.remove(index)?;
        (entry.stored.elapsed() < CACHE_TTL).then_some(entry.lister)
    }
}
