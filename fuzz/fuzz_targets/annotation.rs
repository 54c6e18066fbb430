#![no_main]
//! The networks annotation (both forms) and single network references.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        plexus_fuzz::checks::annotation(text);
    }
});
