//! containerd in the rig: a real container runtime calling plexus as a kubelet's runtime does.
//!
//! [`Containerd::start`] runs Debian's `containerd` (1.6) inside the sandbox (private network
//! and mount namespaces, see [`crate::sandbox`]), never the host's service: its own config
//! file, root and state directories in a temp dir on the sandbox's `/run/cni` tmpfs (gone
//! with the sandbox), its own socket, and the CRI plugin with
//! - `bin_dir` = [`Containerd::bin_dir`] (Debian's plugins of `/usr/lib/cni` through an
//!   overlay whose upper layer is on the tmpfs; the installer container copies plexus there)
//!   and `conf_dir` = [`Containerd::conf_dir`] (`max_conf_num = 1`: the lexically first
//!   config is the pod network, as on a node);
//! - `sandbox_image` = the local pause image (`conformance/images/`; nothing is pulled: the
//!   network is closed and the sandbox has no route out anyway);
//! - the `overlayfs` snapshotter ([`SNAPSHOTTER`]; only it was tried here);
//! - runc with cgroupfs (`SystemdCgroup = false`): there is no systemd here.
//!
//! What had to be set, and why (each found by running it here):
//! - **cgroups**: the sandbox mounts a fresh sysfs on `/sys`, which hides the host's cgroup
//!   mounts; runc needs them, so [`prepare`] mounts a tmpfs on `/sys/fs/cgroup` and mounts
//!   again every cgroup hierarchy the host has (v1 controllers and the v2 `unified` one of a
//!   hybrid host, or the single v2 one), with the host's options: the same hierarchies, seen
//!   from the sandbox's mount namespace.
//! - **`/run/containerd`**: containerd 1.6 puts its shims' sockets in
//!   `/run/containerd/s/` whatever its `state` setting; a tmpfs there keeps them off the host.
//! - **AppArmor**: `disable_apparmor = true`. The fresh sysfs hides securityfs, and loading
//!   containerd's default profile is not what is tested here.
//! - **`restrict_oom_score_adj = true`**: the sandbox's pause gets `oom_score_adj` -998, and
//!   lowering it below the runtime's own fails here even as root ("failed to update
//!   /proc/self/oom_score_adj: Permission denied" from runc's nsexec, seen with runc
//!   `--debug`, see [`RUNC_ENV`]); restricted, containerd never asks for less than its own.
//! - seccomp needs nothing (unconfined unless a pod asks).
//! - **`bin_dir` is an overlay**, not links to `/usr/lib/cni`: plexus refuses a delegate that
//!   resolves outside the plugin directories ("... resolves to /usr/lib/cni/bridge, outside
//!   every plugin directory"), and copies would cost ~60 MB of tmpfs per containerd.
//! - **the pods' cgroups** go under [`CGROUP_PARENT`] rather than containerd's `/k8s.io`
//!   (the hierarchies are the host's), and the parent is removed at the end.
//! - the plugins that cannot work here (btrfs, zfs, devmapper, aufs snapshotters, tracing)
//!   are disabled, to keep the log free of their start-up errors.
//!
//! containerd's root, state and logs die with the sandbox's tmpfs; its processes do not (there
//! is no PID namespace): dropping a [`Containerd`] stops and removes every pod sandbox through
//! the CRI, stops containerd, and kills any shim left (found by our socket's path in its
//! command line, killed by PID) with its children. [`Containerd::kill`] and
//! [`Containerd::restart`] kill containerd alone (SIGKILL, as a crash: the shims and pods go
//! on) and start it again on the same directories.
//!
//! The images are docker-archives built offline with buildah ([`build_images`]) and imported
//! with `ctr images import` into the `k8s.io` namespace, where the CRI plugin sees them.
//!
//! # Skipping
//!
//! [`skip`] says whether a test must be skipped: only when one of [`TOOLS`] is truly missing
//! **and** [`REQUIRE_ENV`] (`PLEXUS_REQUIRE_CONTAINERD`) is unset; with it set (CI,
//! `conformance/test.sh`), a missing tool fails the test.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::cri::{Cri, api};
use crate::{COMMAND_TIMEOUT, output_with_timeout, sandbox};

/// Set to anything non-empty, a missing containerd/runc/buildah fails the containerd tests
/// instead of skipping them.
pub const REQUIRE_ENV: &str = "PLEXUS_REQUIRE_CONTAINERD";

/// The programs the containerd tier needs.
pub const TOOLS: [&str; 6] = [
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "buildah",
    "cc",
];

/// Set to a path, the runc binary containerd runs (e.g. a wrapper adding `--debug` that
/// keeps runc's log), for diagnosing a runtime that fails on a new machine.
pub const RUNC_ENV: &str = "PLEXUS_CONTAINERD_RUNC";

/// The pause image's name (built by `conformance/images/build-pause.sh`).
pub const PAUSE_IMAGE: &str = "localhost/plexus-test-pause:1";

/// The CRI namespace of containerd.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// How long containerd may take to answer after its start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Debian's `containernetworking-plugins` are.
pub const DEBIAN_PLUGINS: &str = "/usr/lib/cni";

/// The tools of [`TOOLS`] not found in `PATH`.
pub fn missing_tools() -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    TOOLS
        .into_iter()
        .filter(|t| !std::env::split_paths(&path).any(|d| is_executable(&d.join(t))))
        .collect()
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// Whether test `name` must be skipped: prints `SKIPPED <name>: ...` and returns `true` when a
/// tool is missing and [`REQUIRE_ENV`] is unset; panics when a tool is missing and it is set.
pub fn skip(name: &str) -> bool {
    if sandbox::inside() {
        return false;
    }
    let missing = missing_tools();
    if missing.is_empty() {
        return false;
    }
    let required = std::env::var_os(REQUIRE_ENV).is_some_and(|v| !v.is_empty());
    let what = format!(
        "needs {} (apt-get install containerd runc buildah; conformance/needs.sh does)",
        missing.join(", ")
    );
    if required {
        panic!("{name} {what}, and {REQUIRE_ENV} is set: the containerd tests must run");
    }
    eprintln!("SKIPPED {name}: {what}; set {REQUIRE_ENV}=1 to fail instead");
    true
}

/// The archives [`build_images`] made.
#[derive(Debug, Clone)]
pub struct Images {
    /// The plexus image (`localhost/plexus:<version>`), from the binary given.
    pub plexus: PathBuf,
    /// Its name.
    pub plexus_name: String,
    /// The pause image ([`PAUSE_IMAGE`]).
    pub pause: PathBuf,
}

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The image name `deploy/build-image.sh` gives by default: `localhost/plexus:<version>`, the
/// version being plexus's (the top-level Cargo.toml's, read as the script reads it).
pub fn plexus_image_name() -> String {
    let version = fs::read_to_string(repo_root().join("Cargo.toml"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("version = \"")
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_owned)
            })
        })
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned());
    format!("localhost/plexus:{version}")
}

/// Builds (or finds already built) the plexus image from `binary` and the pause image, as
/// docker-archives in `cache` (e.g. next to the test binaries): the plexus one with
/// `deploy/build-image.sh --binary`, the pause one with `conformance/images/build-pause.sh`.
/// An archive is named after the size and modification time of what it was built from, so
/// a rebuilt binary gets a new image and concurrent tests share one; it is written under a
/// temporary name and renamed.
pub fn build_images(binary: &Path, cache: &Path) -> Result<Images, String> {
    fs::create_dir_all(cache).map_err(|e| format!("mkdir -p {}: {e}", cache.display()))?;
    let root = repo_root();
    let stamp = |p: &Path| -> Result<String, String> {
        let m = fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(format!("{}-{}.{}", m.size(), m.mtime(), m.mtime_nsec()))
    };
    let plexus_name = plexus_image_name();
    let version = plexus_name.rsplit(':').next().unwrap_or_default();
    let plexus = cache.join(format!("plexus-{version}-{}.tar", stamp(binary)?));
    let pause_src = root.join("conformance/images/pause.c");
    let pause = cache.join(format!("pause-{}.tar", stamp(&pause_src)?));
    let build = |out: &Path, cmd: &mut Command| -> Result<(), String> {
        if out.exists() {
            return Ok(());
        }
        let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
        cmd.arg(&tmp);
        let run = output_with_timeout(cmd, b"", Duration::from_secs(300))?;
        if !run.status.success() {
            return Err(format!(
                "{cmd:?} failed ({}): {}{}",
                run.status,
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            ));
        }
        fs::rename(&tmp, out).map_err(|e| format!("rename to {}: {e}", out.display()))
    };
    let mut p = Command::new(root.join("deploy/build-image.sh"));
    p.arg("--binary")
        .arg(binary)
        .arg("--tag")
        .arg(&plexus_name)
        .arg("--out");
    build(&plexus, &mut p)?;
    build(
        &pause,
        &mut Command::new(root.join("conformance/images/build-pause.sh")),
    )?;
    Ok(Images {
        plexus,
        plexus_name,
        pause,
    })
}

/// Mounts, once per sandbox, what containerd needs and the sandbox hides or shares with the
/// host: the cgroup hierarchies under `/sys/fs/cgroup`, a tmpfs on `/run/containerd`. See the
/// [module docs](self). Panics outside the sandbox.
pub fn prepare() {
    static ONCE: Once = Once::new();
    assert!(
        sandbox::inside(),
        "containerd runs only inside the sandbox (sandbox::run / sandbox::enter)"
    );
    ONCE.call_once(|| {
        let mounts = fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
        let cgroups: Vec<(String, String, String)> = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4
                    && (f[2] == "cgroup" || f[2] == "cgroup2")
                    && f[1].starts_with("/sys/fs/cgroup"))
                .then(|| (f[1].to_owned(), f[2].to_owned(), f[3].to_owned()))
            })
            .collect();
        let v2_only = cgroups.iter().any(|(m, _, _)| m == "/sys/fs/cgroup");
        if !v2_only {
            mount("tmpfs", "/sys/fs/cgroup", "tmpfs", Some("mode=0755"));
        }
        for (dir, fstype, opts) in &cgroups {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir -p {dir}: {e}"));
            mount("cgroup", dir, fstype, Some(opts));
        }
        fs::create_dir_all("/run/containerd").expect("mkdir /run/containerd");
        mount("tmpfs", "/run/containerd", "tmpfs", Some("mode=0711"));
    });
}

fn mount(source: &str, target: &str, fstype: &str, opts: Option<&str>) {
    let mut cmd = Command::new("mount");
    cmd.args(["-t", fstype]);
    if let Some(o) = opts {
        cmd.args(["-o", o]);
    }
    cmd.args([source, target]);
    let out = output_with_timeout(&mut cmd, b"", COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "mount -t {fstype} {source} {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A containerd started by the rig; stopped and cleaned up when dropped. See the
/// [module docs](self).
pub struct Containerd {
    dir: tempfile::TempDir,
    /// Its gRPC socket (CRI and containerd's own API).
    pub socket: PathBuf,
    /// The CRI plugin's `bin_dir`.
    pub bin_dir: PathBuf,
    /// The CRI plugin's `conf_dir`.
    pub conf_dir: PathBuf,
    /// Where the rig's pods keep their logs.
    pub log_dir: PathBuf,
    /// containerd's own log (stdout and stderr), appended across restarts.
    pub log: PathBuf,
    child: Option<Child>,
    cri: Cri,
}

impl Containerd {
    /// Starts containerd in a new temp dir under `/run/cni` and imports `images`
    /// (docker-archives). Panics when it cannot.
    pub fn start(images: &[&Path]) -> Containerd {
        prepare();
        let dir = tempfile::Builder::new()
            .prefix("containerd-")
            .tempdir_in("/run/cni")
            .expect("temp dir in /run/cni");
        let d = dir.path().to_path_buf();
        let bin_dir = d.join("opt-cni-bin");
        let conf_dir = d.join("etc-cni-net.d");
        let log_dir = d.join("pod-logs");
        for p in [&bin_dir, &conf_dir, &log_dir] {
            fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        }
        // The node's plugin directory: Debian's plugins as regular files, writable (the
        // installer copies plexus there) without touching /usr/lib/cni: an overlay with it as
        // the lower layer and the upper one on the sandbox's tmpfs. (Links to /usr/lib/cni
        // would not do: plexus refuses a plugin that resolves outside the plugin
        // directories, and copies would cost ~60 MB of tmpfs per containerd.)
        let (upper, work) = (d.join("bin-upper"), d.join("bin-work"));
        for p in [&upper, &work] {
            fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        }
        assert!(
            Path::new(DEBIAN_PLUGINS).join("bridge").exists(),
            "{DEBIAN_PLUGINS}/bridge is missing (containernetworking-plugins)"
        );
        mount(
            "overlay",
            &bin_dir.display().to_string(),
            "overlay",
            Some(&format!(
                "lowerdir={DEBIAN_PLUGINS},upperdir={},workdir={}",
                upper.display(),
                work.display()
            )),
        );
        let socket = d.join("containerd.sock");
        let config = config_toml(&d, &socket, &bin_dir, &conf_dir);
        fs::write(d.join("config.toml"), config).expect("write config.toml");
        let cri = Cri::new(&socket).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Containerd {
            log: d.join("containerd.log"),
            dir,
            socket,
            bin_dir,
            conf_dir,
            log_dir,
            child: None,
            cri,
        };
        c.spawn();
        for image in images {
            c.import(image);
        }
        c
    }

    /// The temp dir holding everything of this containerd.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CRI client on its socket.
    pub fn cri(&self) -> &Cri {
        &self.cri
    }

    /// containerd's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// containerd's PID, while the rig's process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("containerd log file");
        let err = log.try_clone().expect("dup log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run containerd: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        let mut quick = Cri::new(&self.socket).unwrap_or_else(|e| panic!("{e}"));
        quick.timeout = Duration::from_secs(2);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "containerd exited at start ({status}); its log:\n{}",
                    self.log_text()
                );
            }
            if self.socket.exists() && quick.version().is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "containerd did not answer on {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.socket.display(),
                    self.log_text()
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// `ctr -n k8s.io images import` of a docker-archive or oci-archive, unpacked for the
    /// CRI's snapshotter. Panics when it fails.
    pub fn import(&self, archive: &Path) {
        let out = output_with_timeout(
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(["-n", K8S_NAMESPACE, "images", "import", "--snapshotter"])
                .arg(SNAPSHOTTER)
                .arg(archive),
            b"",
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "ctr images import {}: {}{}",
            archive.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills containerd with SIGKILL, as a crash: its shims and the pods' processes go on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// [`Containerd::kill`] (when running), then starts it again on the same directories and
    /// waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Waits (bounded) until the CRI plugin's loaded CNI config names network `name` (it
    /// reloads `conf_dir` on changes, asynchronously), from `Status`'s verbose `cniconfig`.
    pub fn wait_for_network(&self, name: &str, timeout: Duration) {
        let needle = format!("\"Name\": \"{name}\"");
        let compact = format!("\"Name\":\"{name}\"");
        let mut last = String::new();
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Ok(s) = self.cri.status() {
                last = s.info.get("cniconfig").cloned().unwrap_or_default();
                if last.contains(&needle) || last.contains(&compact) {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "containerd did not load CNI network {name:?} within {timeout:?}; its cniconfig: {last}"
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Stops and removes every pod sandbox (errors ignored), for a clean end.
    pub fn remove_all_pods(&self) {
        if let Ok(pods) = self.cri.list_pod_sandbox() {
            for p in pods {
                let _ = self.cri.stop_pod_sandbox(&p.id);
                let _ = self.cri.remove_pod_sandbox(&p.id);
            }
        }
    }

    /// The PIDs of the shims this containerd started (their command line names its socket)
    /// and of their children (the pods' processes).
    pub fn leftover_processes(&self) -> Vec<u32> {
        let socket = self.socket.display().to_string();
        let mut shims = vec![];
        let mut parents: Vec<(u32, u32)> = vec![];
        for e in fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim") && cmdline.contains(&socket) {
                shims.push(pid);
            }
            if let Some(ppid) = fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_owned();
                    after.parse::<u32>().ok()
                })
            {
                parents.push((pid, ppid));
            }
        }
        let mut all = shims.clone();
        let mut i = 0;
        while i < all.len() {
            let p = all[i];
            all.extend(
                parents
                    .iter()
                    .filter(|(_, pp)| *pp == p)
                    .map(|(c, _)| *c)
                    .filter(|c| !shims.contains(c)),
            );
            i += 1;
        }
        all.sort_unstable();
        all.dedup();
        all
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let mut quick = Cri::new(&self.socket).ok();
            if let Some(q) = quick.as_mut() {
                q.timeout = Duration::from_secs(20);
                if let Ok(pods) = q.list_pod_sandbox() {
                    for p in pods {
                        let _ = q.stop_pod_sandbox(&p.id);
                        let _ = q.remove_pod_sandbox(&p.id);
                    }
                }
            }
            if let Some(child) = self.child.as_mut() {
                // SAFETY: kill(2) on our own child's PID.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            self.kill();
        }
        for pid in self.leftover_processes() {
            // SAFETY: kill(2) of a PID we found as this containerd's shim or its child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        // The pods' parent cgroup, in every hierarchy, when no other rig's pod is in it
        // (rmdir of a cgroup with children fails, and that is fine).
        // cgroup v1: one per hierarchy (/sys/fs/cgroup/<controller>/plexus-rig); v2: the one.
        let parent = CGROUP_PARENT.trim_start_matches('/');
        let _ = fs::remove_dir(Path::new("/sys/fs/cgroup").join(parent));
        for h in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = fs::remove_dir(h.path().join(parent));
        }
    }
}

/// The pods' parent cgroup (cgroupfs): containerd's default would be `/k8s.io`, which the
/// host may use. runc removes each pod's cgroup; [`Containerd`]'s drop removes this parent
/// when it is empty (the cgroup hierarchies are the host's: see [`prepare`]).
pub const CGROUP_PARENT: &str = "/plexus-rig";

/// The snapshotter of the CRI plugin and of `ctr images import`.
pub const SNAPSHOTTER: &str = "overlayfs";

fn config_toml(dir: &Path, socket: &Path, bin_dir: &Path, conf_dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# Written by plexus's test rig (conformance/src/containerd.rs).
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{SNAPSHOTTER}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false{binary_name}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
    max_conf_num = 1
"#,
        socket = socket.display(),
        binary_name = std::env::var(RUNC_ENV)
            .map(|b| format!("\n        BinaryName = {b:?}"))
            .unwrap_or_default(),
        bin = bin_dir.display(),
        conf = conf_dir.display(),
    )
}

/// A pod sandbox config as the kubelet sends it: metadata, labels, the pod's `annotations`,
/// a log directory, the pod's own network namespace (or the node's with `host_network`).
pub fn pod_config(
    log_dir: &Path,
    namespace: &str,
    name: &str,
    uid: &str,
    annotations: &[(&str, &str)],
    host_network: bool,
) -> api::PodSandboxConfig {
    let dir = log_dir.join(format!("{namespace}_{name}_{uid}"));
    let _ = fs::create_dir_all(&dir);
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: namespace.to_owned(),
            attempt: 0,
        }),
        hostname: if host_network {
            String::new()
        } else {
            name.to_owned()
        },
        log_directory: dir.display().to_string(),
        labels: [
            ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
            (
                "io.kubernetes.pod.namespace".to_owned(),
                namespace.to_owned(),
            ),
            ("io.kubernetes.pod.uid".to_owned(), uid.to_owned()),
        ]
        .into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: CGROUP_PARENT.to_owned(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: if host_network {
                        api::NAMESPACE_NODE
                    } else {
                        api::NAMESPACE_POD
                    },
                    pid: api::NAMESPACE_CONTAINER,
                    ipc: api::NAMESPACE_POD,
                }),
            }),
        }),
    }
}

/// The name of the network namespace containerd made for sandbox `id` (`cni-<uuid>` in
/// `/run/netns`), from the verbose `PodSandboxStatus`'s runtime spec; `None` for a sandbox on
/// the node's network or when the runtime does not say.
pub fn sandbox_netns(cri: &Cri, id: &str) -> Option<String> {
    let status = cri.pod_sandbox_status(id, true).ok()?;
    let info: serde_json::Value = serde_json::from_str(status.info.get("info")?).ok()?;
    info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .and_then(|p| Path::new(p).file_name()?.to_str().map(str::to_owned))
}
