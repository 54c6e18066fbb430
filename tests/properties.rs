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

use plexus::cni::env::validate_ifname;
use plexus::cni::result::CniResult;
use plexus::cni::result::validate::{self, MAX_IPS, parse_mac};
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

/// A name the kernel refuses for certain: with `/`, `:` or whitespace somewhere, or longer
/// than 15 bytes.
fn bad_ifname() -> impl Strategy<Value = String> {
    let forbidden = proptest::sample::select(
        &[
            '/', ':', ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{2028}',
            '\u{3000}',
        ][..],
    );
    prop_oneof![
        ("[a-z0-9.]{0,7}", forbidden, "[a-z0-9.]{0,7}").prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        (
            ".{0,8}",
            proptest::sample::select(&["/", ":", "\n", " "][..]),
            ".{0,8}"
        )
            .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        "[a-zA-Z0-9_.\\-]{16,40}",
        ".{16,40}".prop_filter("longer than 15 bytes", |s| s.len() > 15),
        Just("../../x\n\"evil".to_owned()),
    ]
}

/// An interface name: valid, sure to be refused, or anything.
fn any_ifname() -> impl Strategy<Value = String> {
    prop_oneof![3 => ifname(), 2 => bad_ifname(), 1 => any::<String>()]
}

/// `bytes` as a MAC address: hex pairs joined by `sep` (`:` or `-`), or groups of four hex
/// digits joined by `.` when `sep` is `.`; upper-case digits when `upper`.
fn format_mac(bytes: &[u8], sep: char, upper: bool) -> String {
    let pairs: Vec<String> = bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect();
    if sep == '.' {
        let groups: Vec<String> = pairs.chunks(2).map(|p| p.concat()).collect();
        groups.join(".")
    } else {
        pairs.join(&sep.to_string())
    }
}

/// A MAC address Go's `net.ParseMAC` accepts, in any of its forms.
fn valid_mac() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(&[6usize, 8, 20][..])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
        proptest::sample::select(&[':', '-', '.'][..]),
        any::<bool>(),
    )
        .prop_map(|(bytes, sep, upper)| format_mac(&bytes, sep, upper))
}

/// A `mac` value: valid, empty (absent), MAC-like or anything.
fn any_mac() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => valid_mac(),
        1 => Just(String::new()),
        1 => "[0-9a-fA-F:.\\-]{10,24}",
        1 => any::<String>(),
    ]
}

/// A 1.x or 0.3.x/0.4.0 result whose interfaces have random, often hostile, names and MACs,
/// some in the sandbox and some not, with a number of addresses around [`MAX_IPS`] at times;
/// with the interface name plexus asked for (often one of the sandbox ones).
fn hostile_result() -> impl Strategy<Value = (Value, String)> {
    let iface = (any_ifname(), prop::option::of(any_mac()), any::<bool>());
    (
        proptest::sample::select(&["0.3.1", "0.4.0", "1.0.0", "1.1.0"][..]),
        prop::collection::vec(iface, 0..5),
        prop_oneof![7 => 0usize..4, 1 => (MAX_IPS - 2)..(MAX_IPS + 3)],
        prop_oneof![ifname(), any_ifname()],
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(version, ifaces, n_ips, other, pick, use_pick)| {
            let interfaces: Vec<Value> = ifaces
                .iter()
                .map(|(name, mac, sandbox)| {
                    let mut i = json!({"name": name});
                    if let Some(mac) = mac {
                        i["mac"] = json!(mac);
                    }
                    if *sandbox {
                        i["sandbox"] = json!("/var/run/netns/p");
                    }
                    i
                })
                .collect();
            let ips: Vec<Value> = (0..n_ips)
                .map(|k| json!({"address": format!("10.0.{}.{}/16", k / 250, k % 250 + 1)}))
                .collect();
            let doc = json!({"cniVersion": version, "interfaces": interfaces, "ips": ips});
            let requested = if ifaces.is_empty() || !use_pick {
                other
            } else {
                ifaces[pick.index(ifaces.len())].0.clone()
            };
            (doc, requested)
        })
}

/// [`valid_result`] with the interface plexus asked for (its first interface, all of which
/// are in the sandbox), host-side interfaces with MACs after them (1.x and 0.3.x/0.4.0
/// only), and DNS settings.
fn valid_result_with_hosts() -> impl Strategy<Value = (Value, String)> {
    (
        valid_result(),
        prop::collection::vec((ifname(), valid_mac()), 0..3),
        ifname(),
        prop::collection::vec("[a-z0-9.:]{1,40}", 0..4),
        prop::option::of("[a-z0-9.]{1,60}"),
    )
        .prop_map(|(mut doc, hosts, fallback, list, domain)| {
            // valid_result writes `ips` (perhaps empty) in every version but 0.1.0/0.2.0.
            let legacy = doc.get("ips").is_none();
            let requested = doc["interfaces"][0]["name"]
                .as_str()
                .map_or(fallback, str::to_owned);
            if !legacy {
                let mut interfaces = doc["interfaces"].as_array().cloned().unwrap_or_default();
                interfaces.extend(hosts.iter().map(|(n, m)| json!({"name": n, "mac": m})));
                doc["interfaces"] = Value::Array(interfaces);
            }
            let mut dns = json!({"nameservers": list, "search": list, "options": list});
            if let Some(d) = domain {
                dns["domain"] = json!(d);
            }
            doc["dns"] = dns;
            (doc, requested)
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
    fn result_validation_never_panics_and_refuses_exactly_what_breaks_a_rule(
        (v, requested) in hostile_result(),
    ) {
        checks::validated(&v, &requested);
        if v["ips"].as_array().is_some_and(|ips| ips.len() < 8) {
            // (The conversions of the large ones take long and find nothing more.)
            checks::result(&v);
        }
        // The oracle: every name valid, every non-empty MAC parsed, the addresses within
        // bounds, and the requested interface among the sandbox ones when there are any.
        let interfaces = v["interfaces"].as_array().unwrap();
        let sandboxed: Vec<&str> = interfaces
            .iter()
            .filter(|i| i.get("sandbox").is_some())
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        let want = interfaces.iter().all(|i| {
            validate_ifname(i["name"].as_str().unwrap()).is_ok()
                && i.get("mac")
                    .and_then(Value::as_str)
                    .is_none_or(|m| m.is_empty() || parse_mac(m).is_some())
        }) && v["ips"].as_array().unwrap().len() <= MAX_IPS
            && (sandboxed.is_empty() || sandboxed.contains(&requested.as_str()));
        let got = validate::check(&v, &requested);
        prop_assert_eq!(got.is_ok(), want, "{} for {:?}: {:?}", v, requested, got);
    }

    #[test]
    fn a_bad_interface_name_is_always_refused(
        (v, requested) in valid_result_with_hosts(),
        bad in bad_ifname(),
        at in any::<prop::sample::Index>(),
        in_sandbox in any::<bool>(),
    ) {
        let mut v = v;
        let mut interfaces = v["interfaces"].as_array().cloned().unwrap_or_default();
        let k = at.index(interfaces.len() + 1);
        let mut iface = json!({"name": bad});
        if in_sandbox {
            iface["sandbox"] = json!("/var/run/netns/p");
        }
        interfaces.insert(k, iface);
        v["interfaces"] = Value::Array(interfaces);
        // Also when the bad name is the one plexus asked for.
        for req in [&requested, &bad] {
            let e = validate::check(&v, req).unwrap_err();
            prop_assert!(
                e.starts_with(&format!("interfaces[{k}].name ")),
                "{}: {}", v, e
            );
            prop_assert!(!e.contains('\n'), "{}", e);
        }
    }

    #[test]
    fn macs_of_6_8_or_20_bytes_parse_and_no_other_length_does(
        bytes in prop_oneof![
            proptest::sample::select(&[6usize, 8, 20][..])
                .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
            // Not 0: an empty `mac` is an absent one.
            prop::collection::vec(any::<u8>(), 1..32),
        ],
        sep in proptest::sample::select(&[':', '-'][..]),
        upper in any::<bool>(),
    ) {
        let ok = matches!(bytes.len(), 6 | 8 | 20);
        let mut forms = vec![format_mac(&bytes, sep, upper)];
        if bytes.len() % 2 == 0 {
            forms.push(format_mac(&bytes, '.', upper));
        }
        for mac in forms {
            prop_assert_eq!(parse_mac(&mac), ok.then(|| bytes.clone()), "{}", mac);
            let v = json!({
                "cniVersion": "1.1.0",
                "interfaces": [{"name": "eth0", "mac": mac, "sandbox": "/var/run/netns/p"}],
            });
            prop_assert_eq!(validate::check(&v, "eth0").is_ok(), ok, "{}", mac);
        }
    }

    #[test]
    fn valid_results_are_accepted((v, requested) in valid_result_with_hosts()) {
        if let Err(e) = validate::check(&v, &requested) {
            return Err(TestCaseError::fail(format!("{v} for {requested:?}: {e}")));
        }
        checks::validated(&v, &requested);
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
