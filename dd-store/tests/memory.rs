//! The conformance suite on the reference [`MemoryStore`].
#![cfg(feature = "conformance")]

use dd_store::StoreError;
use dd_store::conformance;
use dd_store::memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    let store = MemoryStore::new();
    conformance::run_all(|| {
        let store = store.clone();
        async move { Ok::<_, StoreError>(store) }
    })
    .await;
}

/// The fault-injecting wrapper with no fault set is transparent: it passes the suite too (with a
/// latency fault, which changes nothing but the timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injecting_wrapper_without_faults_passes_the_conformance_suite() {
    use dd_store::fault::{Fault, FaultInjectingStore};
    use std::time::Duration;

    let store = MemoryStore::new();
    conformance::run_all(|| {
        let wrapped = FaultInjectingStore::new(store.clone());
        wrapped
            .switch()
            .set(Fault::Latency(Duration::from_micros(50)));
        async move { Ok::<_, StoreError>(wrapped) }
    })
    .await;
}
