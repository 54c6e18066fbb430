//! Links the `plexus` binary as a position-dependent executable (`-no-pie`) on Linux, and
//! release builds without libgcc_s.
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
//!
//! In release builds (where panics abort, so nothing unwinds) the unwinder that std links is
//! taken from the static `libgcc_eh.a` instead of the shared `libgcc_s.so.1`: one library less
//! for the dynamic loader to open, map and relocate at every start, and no run of libgcc_s's
//! constructor, whose CPU feature detection (CPUID instructions, which trap to the hypervisor
//! on a VM) was a tenth of plexus's CPU in a profile of ADD. Measured with `perf stat` over 800
//! `VERSION` runs, twice: 0.68 → 0.59 ms of CPU and 87 → 77 page faults per exec. The library
//! ships with gcc, which links Rust binaries on Linux anyway. The tests' debug builds keep
//! the toolchain's default.

fn main() {
    println!("cargo::rerun-if-env-changed=PLEXUS_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let pie = std::env::var_os("PLEXUS_PIE").is_some_and(|v| v == "1");
    if linux && !pie {
        println!("cargo::rustc-link-arg-bin=plexus=-no-pie");
    }
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if linux && gnu && std::env::var("PROFILE").is_ok_and(|p| p == "release") {
        // Listed before std's `-lgcc_s`: the unwinder's symbols resolve here, and `--as-needed`
        // then drops libgcc_s.so.1.
        println!("cargo::rustc-link-lib=static:-bundle=gcc_eh");
    }
}
