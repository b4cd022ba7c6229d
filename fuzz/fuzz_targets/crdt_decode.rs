//! CRDT states from a peer or a durable store: the first byte picks one of the built-in types,
//! the rest is its serialised state. Decoding must never panic; an accepted state must
//! re-encode, re-decode and merge with itself.
#![no_main]

use dd_core::crdt::builtin_type_names;
use dd_core::data::TypeRegistry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let names = builtin_type_names();
    let type_name = &names[usize::from(selector) % names.len()];
    let registry = TypeRegistry::with_builtin_types();
    if let Ok(mut value) = registry.decode(type_name, bytes) {
        let encoded = value.encode().expect("a decoded state encodes");
        let copy = registry
            .decode(type_name, &encoded)
            .expect("a re-encoded state decodes");
        let _ = value.merge_erased(copy.as_ref());
        let _ = value.encode_delta();
    }
});
