#![no_main]
//! The CNI_* environment: the input is six values separated by NUL bytes, an empty one
//! meaning unset (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut vars = [None; 6];
    for (slot, value) in vars.iter_mut().zip(text.split('\0')) {
        *slot = Some(value).filter(|v| !v.is_empty());
    }
    plexus_fuzz::checks::env(vars);
});
