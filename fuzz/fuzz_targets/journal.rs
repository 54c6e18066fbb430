#![no_main]
//! A journal file and its progress file: the bytes before the first 0xFF byte are the
//! journal, those after it the progress file (absent without a 0xFF byte).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match data.iter().position(|&b| b == 0xff) {
        Some(i) => plexus_fuzz::checks::journal(&data[..i], Some(&data[i + 1..])),
        None => plexus_fuzz::checks::journal(data, None),
    }
});
