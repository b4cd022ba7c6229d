//! The conformance suite on the reference [`MemoryStore`].
#![cfg(feature = "conformance")]

use dd_core::store::StoreError;
use dd_core::store::conformance;
use dd_core::store::memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    let store = MemoryStore::new();
    conformance::run_all(|| {
        let store = store.clone();
        async move { Ok::<_, StoreError>(store) }
    })
    .await;
}
