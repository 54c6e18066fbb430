#![no_main]
//! The node config as the runtime writes it on stdin.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| plexus_fuzz::checks::node_config(data));
