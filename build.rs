//! Links the `plexus` binary statically against glibc, at a fixed address, on Linux with glibc.
//!
//! Why: plexus is exec'd twice per pod (ADD and DEL) and on every VERSION probe, so its
//! start-up is paid on every pod, and it is copied onto hosts whose C library the build never
//! saw. Both ask for the binary the CNI plugins of the field ship (containernetworking/plugins
//! and Multus are static Go binaries):
//!
//! - **Static** (glibc's `libc.a`): no dynamic loader at start (no `libc.so.6` to find, map
//!   and relocate, no symbol binding), and no dependency on the host's glibc version (linked
//!   dynamically, the binary needed glibc 2.35, which RHEL 9 or Ubuntu 20.04 nodes do not
//!   have). Every exec (each pod's ADD and DEL, every VERSION probe) starts faster and takes
//!   fewer page faults (figures: docs/benchmarks.md, changelog). The binary grows by libc's
//!   code.
//! - **Not PIE** (`-no-pie`): a position-independent executable makes the start-up code apply
//!   its relative relocations at every start, which copies every page of `.data.rel.ro` into
//!   private memory first: about half of plexus's page faults at start. The heap and the stacks are still
//!   placed at random addresses; only the executable's image is not, and plexus is
//!   memory-safe Rust.
//!
//! What a static glibc changes for plexus: the only name service it uses is `getaddrinfo`,
//! for a kubeconfig server given as a host name. glibc has the `files` and `dns` sources built
//! in (`/etc/hosts`, `/etc/resolv.conf`), which is what a node's `hosts:` line normally names;
//! another source in `/etc/nsswitch.conf` (`resolve`, `mdns`, …) would be loaded from the
//! host's shared libraries, which a static binary can only do for the glibc it was built with,
//! so such a source may be skipped. Give the server as an address (what `plexus install`
//! writes from `KUBERNETES_SERVICE_HOST`) or a name in `/etc/hosts` or DNS.
//!
//! How, without changing how the rest of the workspace builds: rustc's own static mode
//! (`-C target-feature=+crt-static`) cannot be given to one binary of a package, and set for
//! the whole build it breaks the proc-macro crates. So rustc keeps linking as usual, and only
//! the `plexus` binary's link gets `-static` (the C start files of a static program, no
//! dynamic loader) plus a search directory, made here in `OUT_DIR`, where each library rustc
//! names (`-lc`, `-lgcc_s`, `-lm`, …) is a one-line linker script standing for its static
//! archives (`libc.a` grouped with `libgcc.a` and `libgcc_eh.a`; `libgcc_eh.a`, the static
//! unwinder, for `libgcc_s`). Searched before the system directories, these make every `-l`
//! resolve to an archive. Both ship with the C toolchain that links Rust binaries on Linux
//! (gcc and libc6-dev). This links with rust-lld (rustc's default linker here since 1.90) and
//! with GNU ld. The library, the tests and the proc-macros are not affected; the integration
//! tests run the `plexus` binary built this way (debug profile).
//!
//! Escape hatches, at build time: `PLEXUS_DYNAMIC=1` links glibc dynamically (still not PIE;
//! release builds then take the unwinder from the static `libgcc_eh.a`, so that no
//! `libgcc_s.so.1` is loaded: its constructor's CPU feature detection runs CPUID
//! instructions, which a hypervisor traps);
//! `PLEXUS_PIE=1` keeps the toolchain's default link (dynamic PIE).

use std::path::PathBuf;

/// The libraries rustc links a Linux binary with, and the archives each stands for here. libc
/// comes as a group with libgcc (its `long double` helpers) and the unwinder, which need each
/// other: a linker that reads archives in order (GNU ld; rust-lld does not care) resolves them
/// only as a group.
const STATIC_STAND_INS: [(&str, &[&str]); 7] = [
    ("c", &["c", "gcc", "gcc_eh"]),
    ("gcc_s", &["gcc_eh"]),
    ("m", &["m"]),
    ("rt", &["rt"]),
    ("pthread", &["pthread"]),
    ("dl", &["dl"]),
    ("util", &["util"]),
];

fn main() {
    println!("cargo::rerun-if-env-changed=PLEXUS_PIE");
    println!("cargo::rerun-if-env-changed=PLEXUS_DYNAMIC");
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| v == "1");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if !linux || set("PLEXUS_PIE") {
        return;
    }
    println!("cargo::rustc-link-arg-bin=plexus=-no-pie");
    if !gnu {
        return;
    }
    if set("PLEXUS_DYNAMIC") {
        if std::env::var("PROFILE").is_ok_and(|p| p == "release") {
            // Listed before std's `-lgcc_s`: the unwinder's symbols resolve here, and
            // `--as-needed` then drops libgcc_s.so.1.
            println!("cargo::rustc-link-lib=static:-bundle=gcc_eh");
        }
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-libs");
    std::fs::create_dir_all(&dir).expect("creating the static stand-ins' directory");
    for (lib, archives) in STATIC_STAND_INS {
        let archives: Vec<String> = archives.iter().map(|a| format!("-l:lib{a}.a")).collect();
        let script = format!(
            "/* plexus build.rs: -l{lib} links static archives */\nGROUP ( {} )\n",
            archives.join(" ")
        );
        std::fs::write(dir.join(format!("lib{lib}.so")), script)
            .expect("writing a static stand-in linker script");
    }
    println!("cargo::rustc-link-arg-bin=plexus=-static");
    println!("cargo::rustc-link-arg-bin=plexus=-L{}", dir.display());
}
