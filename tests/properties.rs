//! Property tests of every parser that reads outside input: arbitrary input never makes plexus
//! panic, refusals carry a CNI code, and what plexus produces from valid input round-trips.
//! The invariants live in `fuzz/src/checks.rs`, shared with the cargo-fuzz targets.
//!
//! Each property runs `PROPTEST_CASES` cases (proptest's variable; 256 when unset), so the
//! whole file stays within seconds in CI; a long local run is `PROPTEST_CASES=100000 cargo
//! nextest run --test properties`. A failing case is shrunk and saved under
//! `proptest-regressions/` (kept in the repository, replayed first on every run); every bug
//! found this way also gets a plain test here, named after what it broke.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

use plexus::cni::result::CniResult;
use plexus::cni::{CniArgs, Version};
use plexus::k8s::selection::{self, NetworkSelection};
use plexus::state::{self, AttachmentState, Journal, Phase, PodKey};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ---- generators ----

/// Text made mostly of the characters the annotation syntax gives meaning to.
fn annotation_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/@,. \\-]{0,60}",
        "[\\[\\]{}\":,a-z0-9/@ \\-]{0,80}",
        any::<String>(),
    ]
}

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn ifname() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.\\-]{1,15}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

/// Any JSON value, `depth` levels deep at most, with keys often taken from `keys`.
fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => proptest::sample::select(keys).prop_map(str::to_owned),
        1 => "[a-zA-Z]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z0-9./:\\-]{0,20}".prop_map(Value::String),
        proptest::sample::select(
            &[
                "1.1.0",
                "1.0.0",
                "0.4.0",
                "0.3.1",
                "0.3.0",
                "0.2.0",
                "0.1.0",
                "9.9.9",
                "10.1.2.3/24",
                "10.1.2.1",
                "fd00::5/64",
                "0.0.0.0/0",
                "::/0",
                "eth0",
                "/var/run/netns/x",
                "aa:bb:cc:dd:ee:ff",
                "bridge",
                "4",
                "6",
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const RESULT_KEYS: &[&str] = &[
    "cniVersion",
    "interfaces",
    "ips",
    "routes",
    "dns",
    "ip4",
    "ip6",
    "name",
    "mac",
    "sandbox",
    "mtu",
    "address",
    "gateway",
    "interface",
    "version",
    "dst",
    "gw",
    "nameservers",
    "domain",
    "search",
    "options",
    "ip",
    "socketPath",
    "pciID",
    "priority",
    "table",
    "scope",
];

const CONFIG_KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "plugins",
    "capabilities",
    "ipam",
    "kubeconfig",
    "clusterNetwork",
    "defaultNetworks",
    "delegates",
    "cniDir",
    "binDir",
    "confDir",
    "namespaceIsolation",
    "globalNamespaces",
    "systemNamespaces",
    "multusNamespace",
    "logLevel",
    "logFile",
    "logToStderr",
    "delegateTimeoutSeconds",
    "apiTimeoutSeconds",
    "apiConnectTimeoutSeconds",
    "readinessindicatorfile",
    "readinessTimeoutSeconds",
    "runtimeConfig",
    "prevResult",
    "cni.dev/valid-attachments",
    "ips",
    "mac",
];

/// A well-formed result of `version` (addresses of both families, routes, interfaces).
fn valid_result() -> impl Strategy<Value = Value> {
    let version = proptest::sample::select(
        &[
            "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
        ][..],
    );
    let v4 = (1u8..=254, 1u8..=254, 8u8..=30).prop_map(|(a, b, p)| format!("10.{a}.{b}.2/{p}"));
    let v6 = (1u16..0xffff, 48u8..=128).prop_map(|(a, p)| format!("fd00:{a:x}::2/{p}"));
    let addr = prop_oneof![v4, v6];
    (
        version,
        prop::collection::vec(addr, 0..4),
        prop::collection::vec(ifname(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(version, addrs, ifaces, with_routes)| {
            let v = Version::parse(version).expect("a supported version");
            let legacy = matches!(v, Version::V0_1_0 | Version::V0_2_0);
            if legacy {
                let mut doc = json!({"cniVersion": version, "dns": {}});
                if let Some(a) = addrs.iter().find(|a| !a.contains(':')) {
                    doc["ip4"] = json!({"ip": a});
                }
                if let Some(a) = addrs.iter().find(|a| a.contains(':')) {
                    doc["ip6"] = json!({"ip": a});
                }
                return doc;
            }
            let with_version = matches!(v, Version::V0_3_0 | Version::V0_3_1 | Version::V0_4_0);
            let interfaces: Vec<Value> = ifaces
                .iter()
                .map(|n| json!({"name": n, "mac": "0a:58:0a:00:00:02", "sandbox": "/run/netns/p"}))
                .collect();
            let ips: Vec<Value> = addrs
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let mut ip = json!({"address": a});
                    if with_version {
                        ip["version"] = json!(if a.contains(':') { "6" } else { "4" });
                    }
                    if !interfaces.is_empty() {
                        ip["interface"] = json!(i % interfaces.len());
                    }
                    ip
                })
                .collect();
            let mut doc = json!({"cniVersion": version, "interfaces": interfaces, "ips": ips});
            if with_routes {
                doc["routes"] =
                    json!([{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.9.0.1"}]);
            }
            doc
        })
}

fn cni_args_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,12}", "[^;\\x00]{0,16}"), 0..6)
}

/// A journal the way ADD writes one, with states and results.
fn journal() -> impl Strategy<Value = Journal> {
    let state = proptest::sample::select(
        &[
            AttachmentState::Planned,
            AttachmentState::Started,
            AttachmentState::Added,
            AttachmentState::Deleted,
        ][..],
    );
    let att = (dns_label(), ifname(), state, any::<bool>()).prop_map(|(net, ifname, st, res)| {
        let mut a = state::Attachment::new(
            format!("ns/{net}"),
            ifname,
            format!(r#"{{"cniVersion":"1.0.0","name":"{net}","type":"bridge"}}"#),
            Map::new(),
            "IgnoreUnknown=true",
            false,
        );
        a.state = st;
        if res {
            a.result = Some(json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}));
        }
        a
    });
    (prop::collection::vec(att, 1..6), any::<bool>()).prop_map(|(atts, added)| {
        let mut j = Journal::new(
            "c",
            "eth0",
            Some("/run/netns/p".into()),
            "IgnoreUnknown=true",
            Some(PodKey {
                namespace: "ns".into(),
                name: "p".into(),
                uid: None,
            }),
            atts,
        );
        if added {
            j.phase = Phase::Added;
        }
        j
    })
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig {
        // Fork-free and quick: the parsers are pure.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/properties.txt",
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn annotation_text_never_panics(text in annotation_text()) {
        checks::annotation(&text);
    }

    #[test]
    fn annotations_round_trip_in_both_forms(
        items in prop::collection::vec(
            (prop::option::of(dns_label()), dns_label(), prop::option::of(ifname())),
            0..8,
        ),
    ) {
        // Requested interface names must be unique: keep the first of each.
        let mut seen = std::collections::HashSet::new();
        let items: Vec<_> = items
            .into_iter()
            .map(|(ns, name, i)| (ns, name, i.filter(|i| seen.insert(i.clone()))))
            .collect();
        let want: Vec<NetworkSelection> = items
            .iter()
            .map(|(ns, name, i)| NetworkSelection {
                namespace: ns.clone().unwrap_or_else(|| "pods".into()),
                name: name.clone(),
                interface: i.clone(),
                ..Default::default()
            })
            .collect();
        let comma: Vec<String> = items
            .iter()
            .map(|(ns, name, i)| {
                let mut s = ns.as_ref().map_or(String::new(), |n| format!("{n}/"));
                s.push_str(name);
                if let Some(i) = i {
                    s.push('@');
                    s.push_str(i);
                }
                s
            })
            .collect();
        let json_form: Vec<Value> = items
            .iter()
            .map(|(ns, name, i)| {
                let mut o = json!({"name": name});
                if let Some(ns) = ns { o["namespace"] = json!(ns); }
                if let Some(i) = i { o["interface"] = json!(i); }
                o
            })
            .collect();
        prop_assert_eq!(&selection::parse(&comma.join(","), "pods").unwrap(), &want);
        prop_assert_eq!(
            &selection::parse(&Value::Array(json_form).to_string(), "pods").unwrap(),
            &want
        );
    }

    #[test]
    fn node_config_never_panics(v in json_value(CONFIG_KEYS), name in any::<bool>()) {
        let mut v = v;
        if name {
            if let Some(o) = v.as_object_mut() { o.insert("name".into(), json!("plexus")); }
        }
        checks::node_config(v.to_string().as_bytes());
    }

    #[test]
    fn node_config_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        checks::node_config(&bytes);
    }

    #[test]
    fn nad_config_never_panics(v in json_value(CONFIG_KEYS)) {
        checks::nad_config(v.to_string().as_bytes());
        checks::nad_config(serde_json::to_string_pretty(&v).unwrap().as_bytes());
    }

    #[test]
    fn arbitrary_results_never_panic(v in json_value(RESULT_KEYS)) {
        checks::result(&v);
    }

    #[test]
    fn valid_results_convert_to_every_version(v in valid_result()) {
        checks::result(&v);
        let (_, r) = CniResult::from_value(&v).unwrap();
        let has_ip = !r.ips.is_empty();
        let legacy = |v: Version| matches!(v, Version::V0_1_0 | Version::V0_2_0);
        let from_legacy = legacy(Version::parse(v["cniVersion"].as_str().unwrap()).unwrap());
        for to in plexus::cni::version::SUPPORTED {
            let converted = plexus::cni::result::convert(&v, to);
            // Only a result without any address cannot go down to 0.1.0/0.2.0 (within that
            // family only the version string changes).
            prop_assert_eq!(
                converted.is_ok(),
                has_ip || !legacy(to) || from_legacy,
                "{} -> {}", v, to.as_str()
            );
        }
        // Up to 1.1.0 and back to the original version keeps every address of the original.
        let up = plexus::cni::result::convert(&v, Version::V1_1_0).unwrap();
        let (_, up_r) = CniResult::from_value(&up).unwrap();
        let addrs = |r: &CniResult| r.ips.iter().map(|i| i.address.clone()).collect::<Vec<_>>();
        prop_assert_eq!(addrs(&up_r), addrs(&r));
    }

    #[test]
    fn delegate_output_never_panics(how in any::<u8>(), v in json_value(RESULT_KEYS), raw in any::<bool>()) {
        let stdout = if raw { v.to_string().into_bytes() } else { format!("{{\"code\":{v}}}").into_bytes() };
        checks::delegate_output(how, &stdout);
        checks::delegate_output(how, &stdout[..stdout.len() / 2]);
    }

    #[test]
    fn env_never_panics(vars in prop::array::uniform6(prop::option::of(prop_oneof![
        proptest::sample::select(&["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"][..]).prop_map(str::to_owned),
        "[a-zA-Z0-9_.:;=/ \\-]{0,20}",
        any::<String>(),
    ]))) {
        let refs = vars.each_ref().map(|v| v.as_deref());
        checks::env(refs);
    }

    #[test]
    fn cni_args_round_trip(pairs in cni_args_pairs(), ignore in any::<bool>()) {
        let mut text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if ignore { text.insert(0, "IgnoreUnknown=1".into()); }
        checks::cni_args(&text.join(";"));
    }

    #[test]
    fn journals_round_trip_and_any_truncation_is_an_error(j in journal(), cut in any::<prop::sample::Index>()) {
        let bytes = serde_json::to_vec_pretty(&j).unwrap();
        let path = Path::new("/var/lib/cni/plexus/c:eth0.json");
        prop_assert_eq!(&state::parse_journal(path, &bytes, None).unwrap(), &j);
        checks::journal(&bytes, None);
        // A journal cut anywhere (the reboot-truncated cache of other meta-plugins) is an
        // error naming the file, never a shorter journal.
        let at = cut.index(bytes.len().saturating_sub(1));
        let short = &bytes[..at];
        if !short.iter().all(u8::is_ascii_whitespace) || short.is_empty() {
            let e = state::parse_journal(path, short, None).unwrap_err();
            prop_assert_eq!(e.code().0, 6);
        }
        checks::journal(short, None);
    }

    #[test]
    fn progress_files_with_torn_lines_never_panic(
        j in journal(),
        lines in prop::collection::vec(json_value(&["phase", "attachments", "state", "result"]), 0..4),
        tail in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let plan = serde_json::to_vec(&j).unwrap();
        let mut progress = Vec::new();
        for l in &lines {
            progress.extend_from_slice(l.to_string().as_bytes());
            progress.push(b'\n');
        }
        progress.extend_from_slice(&tail);
        checks::journal(&plan, Some(&progress));
    }

    #[test]
    fn journal_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        checks::journal(&bytes, None);
        checks::journal(br#"{"version":1}"#, Some(&bytes));
    }
}

// ---- regressions and fixed examples (kept as plain tests) ----

#[test]
fn cni_args_values_with_equals_signs_round_trip() {
    checks::cni_args("IgnoreUnknown=1;K8S_POD_NAME=a=b;X==");
}

#[test]
fn a_delegate_error_with_code_zero_is_reported_as_999() {
    // A broken plugin printing {"code":0} and exiting 1 must not give the runtime an error
    // document with code 0 (which reads as no error).
    checks::delegate_output(1, br#"{"code":0,"msg":"nothing"}"#);
}

#[test]
fn cni_args_parse_of_plexus_output_keeps_every_pair() {
    let args = CniArgs::parse("IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;Z=1").unwrap();
    assert_eq!(
        args.for_delegate(),
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;Z=1"
    );
}
