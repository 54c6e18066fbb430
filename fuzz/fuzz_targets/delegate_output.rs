#![no_main]
//! What a delegate printed: the first byte says how it ended, the rest is its stdout.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((how, stdout)) = data.split_first() {
        plexus_fuzz::checks::delegate_output(*how, stdout);
    }
});
