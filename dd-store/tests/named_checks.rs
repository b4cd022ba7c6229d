//! The suite as named checks (`conformance_tests!`) on the reference [`MemoryStore`], and the
//! same macro on a backend declared without large values: that check is skipped with a printed
//! reason, the others run.
#![cfg(feature = "conformance")]

use dd_store::StoreError;
use dd_store::conformance::Capabilities;
use dd_store::memory::MemoryStore;

dd_store::conformance_tests! {
    capabilities: Capabilities::ALL,
    open: {
        // Clones of one MemoryStore share their data: "the same store opened again".
        let store = MemoryStore::new();
        move || {
            let store = store.clone();
            async move { Ok::<_, StoreError>(store) }
        }
    },
}

mod without_large_values {
    use super::*;

    dd_store::conformance_tests! {
        capabilities: Capabilities { large_values: false, ..Capabilities::ALL },
        open: {
            let store = MemoryStore::new();
            move || {
                let store = store.clone();
                async move { Ok::<_, StoreError>(store) }
            }
        },
    }
}
