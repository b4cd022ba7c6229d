//! Fuzz target `record_decode`: the checks of [`dd_fuzz_checks::Target::RecordDecode`].
//! A failed check panics, which libFuzzer reports as a crash; the regression test of
//! dd-fuzz-checks replays `fuzz/regressions/record_decode/` through the same checks.
#![no_main]

use dd_fuzz_checks::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = Target::RecordDecode.check(data) {
        panic!("{failure}");
    }
});
