#![no_main]
//! A NetworkAttachmentDefinition's spec.config, or a conf file.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| plexus_fuzz::checks::nad_config(data));
