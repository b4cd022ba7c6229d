//! Fuzz target `transport_frame`: the checks of [`dd_fuzz_checks::Target::TransportFrame`].
//! A failed check panics, which libFuzzer reports as a crash; the regression test of
//! dd-fuzz-checks replays `fuzz/regressions/transport_frame/` through the same checks.
#![no_main]

use dd_fuzz_checks::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = Target::TransportFrame.check(data) {
        panic!("{failure}");
    }
});
