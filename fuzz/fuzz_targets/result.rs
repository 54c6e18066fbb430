#![no_main]
//! A delegate's CNI result of any version, converted to every version.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| plexus_fuzz::checks::result_bytes(data));
