//! Fuzz target `crdt_decode`: the checks of [`dd_fuzz_checks::Target::CrdtDecode`].
//! A failed check panics, which libFuzzer reports as a crash; the regression test of
//! dd-fuzz-checks replays `fuzz/regressions/crdt_decode/` through the same checks.
#![no_main]

use dd_fuzz_checks::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = Target::CrdtDecode.check(data) {
        panic!("{failure}");
    }
});
