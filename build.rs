//! Links the `plexus` binary as a position-dependent executable (`-no-pie`) on Linux.
//!
//! Why: plexus is exec'd twice per pod (ADD and DEL) and on every VERSION probe, so its
//! start-up is paid on every pod. A position-independent executable makes the dynamic loader
//! apply about 16,500 relative relocations at every start, which copies every page of
//! `.data.rel.ro` (about 300 KB) into private memory first: measured on the benchmark VM, half
//! of plexus's page faults at start (187 against 94) and about 0.5 ms of CPU per exec. A fixed
//! address executable has none of that. This is how the CNI plugins of the field ship
//! (containernetworking/plugins, Multus and Debian's builds of them are not PIE). The shared
//! libraries, the heap and the stacks are still placed at random addresses; only the
//! executable's own image is not, and plexus is memory-safe Rust.
//!
//! Only the `plexus` binary is affected (not the library, tests or proc-macros: the code is
//! still compiled position-independent, the linker just resolves it at a fixed address). Set
//! `PLEXUS_PIE=1` at build time to keep the toolchain's default PIE link.

fn main() {
    println!("cargo::rerun-if-env-changed=PLEXUS_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let pie = std::env::var_os("PLEXUS_PIE").is_some_and(|v| v == "1");
    if linux && !pie {
        println!("cargo::rustc-link-arg-bin=plexus=-no-pie");
    }
}
