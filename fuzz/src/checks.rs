//! Every parser of plexus that reads outside input, fed arbitrary input, with the invariants
//! its output must keep. Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and the
//! property tests (`tests/properties.rs` includes this file with `#[path]`), so both check the
//! same things.
//!
//! Each function panics only when an invariant is broken (a bug); any input plexus refuses
//! must come back as an error with a CNI code, never as a panic. The parsers:
//!
//! | function | parser | outside input it stands for |
//! |---|---|---|
//! | [`annotation`] | `k8s::selection::parse`, `parse_reference` | the pod's `k8s.v1.cni.cncf.io/networks` and `v1.multus-cni.io/default-network` annotations |
//! | [`node_config`] | `node::decode_stdin`, `NodeConfig::from_map` | the node config on stdin |
//! | [`nad_config`] | `NetworkConfig::parse`, `k8s::nad::with_name` | a NAD's `spec.config`, conf files |
//! | [`result`] | `CniResult::from_value`, `result::convert`, `status::entries`, `result::validate::check` | a delegate's result (every version) and `prevResult` |
//! | [`env`] | `Env::from_lookup`, `CniArgs::parse`, `PodRef::from_args` | the CNI_* environment and CNI_ARGS |
//! | [`journal`] | `state::parse_journal` | the journal and progress files after a crash or an edit |
//! | [`delegate_output`] | `delegate::exec::interpret` | what a delegate printed and how it ended |

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use plexus::cni::result::{CniResult, validate};
use plexus::cni::version::SUPPORTED;
use plexus::cni::{CniArgs, DelegateError, DelegateFailure, Env, Error, NetworkConfig};
use plexus::delegate::exec::interpret;
use plexus::delegate::{Output, Termination};
use plexus::k8s::pod::PodRef;
use plexus::k8s::{nad, selection, status};
use plexus::node::{NodeConfig, decode_stdin};
use plexus::state;
use serde_json::Value;

/// The codes a refusal may carry (CNI reserved codes and 999).
const CODES: [u32; 10] = [1, 2, 3, 4, 5, 6, 7, 11, 50, 999];

fn assert_error(e: &Error, allowed: &[u32], what: &str) {
    let code = e.code().0;
    assert!(
        allowed.contains(&code) && CODES.contains(&code),
        "{what}: unexpected code {code}: {e:?}"
    );
    assert!(!e.msg().is_empty(), "{what}: empty message: {e:?}");
    let doc = e.to_json("1.1.0");
    assert_eq!(doc["code"], code, "{what}: {doc}");
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The networks annotation, both forms, and a single reference.
pub fn annotation(text: &str) {
    match selection::parse(text, "default") {
        Ok(list) => {
            let mut ifnames = std::collections::HashSet::new();
            let mut routes = 0;
            for sel in &list {
                assert!(is_dns_label(&sel.namespace), "{text:?} -> {sel:?}");
                assert!(is_dns_label(&sel.name), "{text:?} -> {sel:?}");
                if let Some(i) = &sel.interface {
                    assert!(
                        plexus::cni::env::validate_ifname(i).is_ok(),
                        "{text:?} -> {i:?}"
                    );
                    assert!(ifnames.insert(i.clone()), "{text:?}: {i:?} twice");
                }
                if !sel.default_route.is_empty() {
                    routes += 1;
                }
                let _ = sel.runtime_config();
            }
            assert!(routes <= 1, "{text:?}: {routes} default routes");
            // Deterministic.
            assert_eq!(selection::parse(text, "default").ok(), Some(list));
        }
        Err(e) => {
            assert_error(&e, &[7], "annotation");
            assert!(
                e.msg().starts_with("k8s.v1.cni.cncf.io/networks: "),
                "{text:?}: {}",
                e.msg()
            );
        }
    }
    match selection::parse_reference(text, "kube-system") {
        Ok((ns, name, ifname)) => {
            assert!(is_dns_label(&ns) && is_dns_label(&name), "{text:?}");
            if let Some(i) = ifname {
                assert!(plexus::cni::env::validate_ifname(&i).is_ok(), "{text:?}");
            }
        }
        Err(e) => assert_error(&e, &[7], "reference"),
    }
}

/// The node config on stdin.
pub fn node_config(bytes: &[u8]) {
    let raw = match decode_stdin(bytes) {
        Ok(raw) => raw,
        Err(e) => return assert_error(&e, &[6, 7], "node config stdin"),
    };
    assert!(
        raw.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    );
    match NodeConfig::from_map(raw) {
        Ok(node) => {
            let _ = node.unknown_keys();
            let _ = node.isolation();
            let _ = node.client_options();
            assert!(node.delegate_timeout > Duration::ZERO);
            assert!(node.api_timeout > Duration::ZERO);
            for ns in &node.system_namespaces {
                assert!(node.is_system_namespace(ns));
            }
        }
        Err(e) => assert_error(&e, &[1, 7], "node config"),
    }
}

/// A NAD's `spec.config` (or a conf file).
pub fn nad_config(bytes: &[u8]) {
    match NetworkConfig::parse(bytes) {
        Ok(c) => {
            assert_eq!(c.bytes(), bytes, "the config bytes are kept exactly");
            match c.validate("fuzz") {
                Ok(v) => {
                    assert!(!c.plugins().is_empty());
                    assert_eq!(c.version().ok(), Some(v));
                }
                Err(e) => assert_error(&e, &[1, 7], "validate"),
            }
            for p in c.plugins() {
                let _ = (p.plugin_type(), p.capabilities().count());
            }
        }
        Err(e) => assert_error(&e, &[6, 7], "config"),
    }
    match nad::with_name(bytes, "fuzz-net") {
        Ok(c) => {
            assert!(!c.name().is_empty());
            if let Ok(orig) = NetworkConfig::parse(bytes) {
                if !orig.name().is_empty() {
                    assert_eq!(c.bytes(), bytes, "a named config is passed on unchanged");
                } else {
                    assert_eq!(c.name(), "fuzz-net");
                }
            }
        }
        Err(e) => assert_error(&e, &[5, 6, 7, 999], "with_name"),
    }
}

/// A delegate's result document, converted to every version.
pub fn result(v: &Value) {
    let decoded = CniResult::from_value(v);
    for to in SUPPORTED {
        match plexus::cni::result::convert(v, to) {
            Ok(doc) => {
                assert!(decoded.is_ok(), "converted what does not decode: {v}");
                assert_eq!(doc["cniVersion"], to.as_str(), "{v} -> {doc}");
                // What plexus hands on decodes again, and converting it to its own version
                // changes nothing.
                let again = plexus::cni::result::convert(&doc, to)
                    .unwrap_or_else(|e| panic!("{v} -> {doc} does not convert again: {e}"));
                assert_eq!(again, doc, "{v}");
            }
            Err(e) => assert_error(&e, &[1, 6], "convert"),
        }
    }
    match decoded {
        Ok((_, r)) => {
            for to in SUPPORTED {
                let _ = r.to_value(to);
            }
            if let Ok(entries) = status::entries("ns/net", v, true, None) {
                assert!(!entries.is_empty(), "{v}: one entry at least");
                for e in &entries {
                    assert_eq!(e["name"], "ns/net");
                }
            }
        }
        Err(e) => assert_error(&e, &[1, 6], "decode"),
    }
    validated(v, REQUESTED_IFNAME);
}

/// The interface name [`result`] validates results against, as if plexus had asked the
/// delegate for it (the seeds under `fuzz/corpus/result/` use it for their pod interface).
pub const REQUESTED_IFNAME: &str = "eth0";

/// `validate::check` of a result, `requested` being the interface plexus asked for: it never
/// panics, is deterministic, refuses in one short line, and what it accepts keeps its
/// promises: bounded lists, valid interface names and MACs, the requested interface among
/// the sandbox ones, valid names in the network-status entries, and every conversion of the
/// result accepted too (so it does not matter whether the caller validates before or after
/// converting).
pub fn validated(v: &Value, requested: &str) {
    let verdict = validate::check(v, requested);
    assert_eq!(validate::check(v, requested), verdict, "{v}");
    let Err(e) = verdict else {
        return accepted(v, requested);
    };
    assert!(!e.is_empty(), "{v}: empty message");
    assert!(!e.contains(['\n', '\r']), "{v}: not one line: {e:?}");
    // Values are cut after 64 characters (each escaped in at most 10): a few hundred bytes
    // plus the rule's text and a few quoted names.
    assert!(e.len() <= 2048, "{v}: {} bytes: {e}", e.len());
}

/// The promises of a result `validate::check` accepted (see [`validated`]).
fn accepted(v: &Value, requested: &str) {
    let len = |key: &str| v.get(key).and_then(Value::as_array).map_or(0, Vec::len);
    assert!(len("interfaces") <= validate::MAX_INTERFACES, "{v}");
    assert!(len("ips") <= validate::MAX_IPS, "{v}");
    assert!(len("routes") <= validate::MAX_ROUTES, "{v}");
    let interfaces = v
        .get("interfaces")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut sandboxed = Vec::new();
    for i in interfaces {
        let name = i["name"].as_str().unwrap_or_else(|| panic!("{v}: no name"));
        assert!(
            plexus::cni::env::validate_ifname(name).is_ok(),
            "{v}: {name:?}"
        );
        if let Some(mac) = i
            .get("mac")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            assert!(validate::parse_mac(mac).is_some(), "{v}: {mac:?}");
        }
        if i.get("sandbox")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            sandboxed.push(name);
        }
    }
    assert!(
        sandboxed.is_empty() || sandboxed.contains(&requested),
        "{v}: {sandboxed:?}"
    );
    if let Ok(entries) = status::entries("ns/net", v, false, None) {
        for e in &entries {
            if let Some(name) = e.get("interface") {
                let name = name.as_str().unwrap_or_else(|| panic!("{v}: {e}"));
                assert!(plexus::cni::env::validate_ifname(name).is_ok(), "{v}: {e}");
            }
        }
        // (Through decoding: a 0.1.0/0.2.0 result's `interfaces`, which `check` reads too,
        // are not the result's interfaces there.)
        let decoded_sandbox = CniResult::from_value(v)
            .is_ok_and(|(_, r)| r.interfaces.iter().any(|i| i.sandbox.is_some()));
        if decoded_sandbox {
            assert!(
                entries.iter().any(|e| e["interface"] == requested),
                "{v}: {entries:?}"
            );
        }
    }
    for to in SUPPORTED {
        if let Ok(doc) = plexus::cni::result::convert(v, to) {
            if let Err(e) = validate::check(&doc, requested) {
                panic!("{v} is accepted, its conversion to {to} is not: {e}\n{doc}");
            }
        }
    }
}

/// [`result`] of arbitrary bytes (what a delegate printed, before it is known to be JSON).
pub fn result_bytes(bytes: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        result(&v);
    }
}

/// The CNI environment: `vars` are the values of CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
/// CNI_IFNAME, CNI_ARGS, CNI_PATH (`None`: unset).
pub fn env(vars: [Option<&str>; 6]) {
    const NAMES: [&str; 6] = [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ];
    let get = |k: &str| {
        NAMES
            .iter()
            .position(|n| *n == k)
            .and_then(|i| vars[i].map(str::to_owned))
    };
    match Env::from_lookup(get) {
        Ok(env) => {
            if env.command.is_attachment() {
                assert!(plexus::cni::env::validate_container_id(&env.container_id).is_ok());
                assert!(plexus::cni::env::validate_ifname(&env.ifname).is_ok());
            }
            assert!(env.path.iter().all(|p| !p.as_os_str().is_empty()));
            let _ = PodRef::from_args(&env.args);
        }
        Err(e) => assert_error(&e, &[4], "env"),
    }
    if let Some(args) = vars[4] {
        cni_args(args);
    }
}

/// CNI_ARGS alone: what plexus hands its delegates parses back to the same pairs.
pub fn cni_args(text: &str) {
    match CniArgs::parse(text) {
        Ok(args) => {
            let handed = args.for_delegate();
            let back = CniArgs::parse(&handed)
                .unwrap_or_else(|e| panic!("{text:?} -> {handed:?} does not parse: {e}"));
            let ours: Vec<_> = args
                .pairs()
                .iter()
                .filter(|(k, _)| k != "IgnoreUnknown")
                .collect();
            let theirs: Vec<_> = back
                .pairs()
                .iter()
                .filter(|(k, _)| k != "IgnoreUnknown")
                .collect();
            assert_eq!(ours, theirs, "{text:?} -> {handed:?}");
            assert_eq!(back.get("IgnoreUnknown"), Some("true"));
            if let Some(pod) = PodRef::from_args(&args) {
                assert!(!pod.namespace.is_empty() && !pod.name.is_empty());
            }
        }
        Err(e) => assert_error(&e, &[4], "CNI_ARGS"),
    }
}

/// A journal file and its progress file, as found on disk.
pub fn journal(journal: &[u8], progress: Option<&[u8]>) {
    let path = Path::new("/var/lib/cni/plexus/c:eth0.json");
    match state::parse_journal(path, journal, progress) {
        Ok(j) => {
            assert_eq!(j.version, state::VERSION);
            let strict: Vec<usize> = j.pending_teardown().map(|(i, _)| i).collect();
            let after: Vec<usize> = j.pending_teardown_after_crash().map(|(i, _)| i).collect();
            assert!(
                strict.iter().all(|i| after.contains(i)),
                "{strict:?} {after:?}"
            );
            assert!(
                after.windows(2).all(|w| w[0] > w[1]),
                "last first: {after:?}"
            );
            // What plexus would write back reads back the same.
            let bytes = serde_json::to_vec(&j).expect("a journal serialises");
            let back = state::parse_journal(path, &bytes, None).expect("its own output parses");
            assert_eq!(back, j);
        }
        Err(e) => {
            assert_error(&e, &[6], "journal");
            assert!(
                e.msg().contains("c:eth0.json"),
                "names the file: {}",
                e.msg()
            );
        }
    }
}

/// What a delegate printed on stdout and how it ended (`how`: 0 exited 0, 1 exited 1, 2
/// killed by a signal, 3 timed out).
pub fn delegate_output(how: u8, stdout: &[u8]) {
    let termination = match how % 4 {
        0 => Termination::Exited(0),
        1 => Termination::Exited(1),
        2 => Termination::Signaled(9),
        _ => Termination::TimedOut,
    };
    let out = Output {
        termination,
        stdout: stdout.to_vec(),
        stderr: b"stderr".to_vec(),
    };
    match interpret(&out, Duration::from_secs(1)) {
        Ok(Some(v)) => {
            assert!(v.is_object());
            assert_eq!(termination, Termination::Exited(0));
        }
        Ok(None) => assert_eq!(termination, Termination::Exited(0)),
        Err(failure) => {
            if termination == Termination::Exited(0) {
                assert!(
                    matches!(failure, DelegateFailure::Garbage { .. }),
                    "{failure:?}"
                );
            }
            // What the runtime gets: never code 0, always a message naming plugin and network.
            let e = Error::Delegate(Box::new(DelegateError {
                plugin: "fuzz".into(),
                network: "ns/net".into(),
                command: "ADD".into(),
                failure,
            }));
            assert_ne!(e.code().0, 0, "{e:?}");
            assert!(
                e.msg().contains("\"fuzz\"") && e.msg().contains("ns/net"),
                "{e}"
            );
            let _ = e.details();
        }
    }
}
