//! Conversion tests for every family. Expected documents are written in the key order
//! plexus renders (libcni's struct order) and compared byte for byte.

use serde_json::{Value, json};

use super::*;
use crate::cni::error::Code;
use crate::cni::version::SUPPORTED;

/// Compares two documents exactly, key order included.
#[track_caller]
fn assert_json(actual: &Value, expected: &Value) {
    assert_eq!(
        actual.to_string(),
        expected.to_string(),
        "\nactual:   {actual:#}\nexpected: {expected:#}"
    );
}

#[track_caller]
fn conv(v: &Value, to: Version) -> Value {
    convert(v, to).unwrap_or_else(|e| panic!("convert to {to}: {e:?}"))
}

fn dns_full() -> Value {
    json!({
        "nameservers": ["10.96.0.10"],
        "domain": "cluster.local",
        "search": ["default.svc.cluster.local", "svc.cluster.local"],
        "options": ["ndots:5"]
    })
}

/// A 1.1.0 result with every 1.x field: a host-side and a sandbox interface, two IPv4 and
/// one IPv6 address (interleaved), routes of both families, dns and a plugin-specific key.
fn full_v1_1() -> Value {
    json!({
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "veth0a1b2c", "mac": "aa:bb:cc:dd:ee:01", "mtu": 1500},
            {
                "name": "eth0",
                "mac": "aa:bb:cc:dd:ee:02",
                "mtu": 9000,
                "sandbox": "/var/run/netns/pod1",
                "socketPath": "/run/vhost/eth0.sock",
                "pciID": "0000:3b:00.1"
            }
        ],
        "ips": [
            {"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
            {"interface": 1, "address": "2001:db8::5/64", "gateway": "2001:db8::1"},
            {"interface": 1, "address": "10.2.0.5/16"}
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "priority": 100, "table": 200, "scope": 0},
            {"dst": "2001:db8:100::/48", "gw": "2001:db8::1", "advmss": 1360, "priority": 50, "table": 201},
            {"dst": "192.168.0.0/16", "gw": "10.2.0.1"}
        ],
        "dns": dns_full(),
        "x-plugin-note": {"kept": true}
    })
}

fn full_v04(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "veth0a1b2c", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/var/run/netns/pod1"}
        ],
        "ips": [
            {"version": "4", "interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
            {"version": "6", "interface": 1, "address": "2001:db8::5/64", "gateway": "2001:db8::1"},
            {"version": "4", "interface": 1, "address": "10.2.0.5/16"}
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
            {"dst": "2001:db8:100::/48", "gw": "2001:db8::1"},
            {"dst": "192.168.0.0/16", "gw": "10.2.0.1"}
        ],
        "dns": dns_full()
    })
}

fn full_v02(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "ip4": {
            "ip": "10.1.0.5/24",
            "gateway": "10.1.0.1",
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
                {"dst": "192.168.0.0/16", "gw": "10.2.0.1"}
            ]
        },
        "ip6": {
            "ip": "2001:db8::5/64",
            "gateway": "2001:db8::1",
            "routes": [{"dst": "2001:db8:100::/48", "gw": "2001:db8::1"}]
        },
        "dns": dns_full()
    })
}

#[test]
fn full_1_1_0_decodes_to_the_model() {
    let (v, r) = CniResult::from_value(&full_v1_1()).unwrap();
    assert_eq!(v, Version::V1_1_0);
    assert_eq!(r.interfaces.len(), 2);
    assert_eq!(
        r.interfaces[1],
        Interface {
            name: "eth0".into(),
            mac: Some("aa:bb:cc:dd:ee:02".into()),
            mtu: Some(9000),
            sandbox: Some("/var/run/netns/pod1".into()),
            socket_path: Some("/run/vhost/eth0.sock".into()),
            pci_id: Some("0000:3b:00.1".into()),
        }
    );
    assert_eq!(r.interfaces[0].sandbox, None);
    assert!(r.ips[0].is_ipv4() && r.ips[1].is_ipv6() && r.ips[2].is_ipv4());
    assert_eq!(r.ips[1].family(), Some(IpFamily::V6));
    assert_eq!(
        r.routes[0],
        Route {
            dst: "0.0.0.0/0".into(),
            gw: Some("10.1.0.1".into()),
            mtu: Some(1400),
            advmss: None,
            priority: Some(100),
            table: Some(200),
            scope: Some(0),
        }
    );
    assert_eq!(r.dns.domain.as_deref(), Some("cluster.local"));
    // Re-rendering in 1.1.0 gives the input minus the key the model does not hold.
    let mut expected = full_v1_1();
    expected
        .as_object_mut()
        .unwrap()
        .shift_remove("x-plugin-note");
    assert_json(&r.to_value(Version::V1_1_0).unwrap(), &expected);
}

#[test]
fn full_1_1_0_converts_to_every_version() {
    let src = full_v1_1();
    assert_json(&conv(&src, Version::V0_4_0), &full_v04("0.4.0"));
    assert_json(&conv(&src, Version::V0_3_1), &full_v04("0.3.1"));
    assert_json(&conv(&src, Version::V0_3_0), &full_v04("0.3.0"));
    assert_json(&conv(&src, Version::V0_2_0), &full_v02("0.2.0"));
    assert_json(&conv(&src, Version::V0_1_0), &full_v02("0.1.0"));

    // Same family: only the version string changes, plugin keys and all.
    let v1_0 = conv(&src, Version::V1_0_0);
    let mut expected = src.clone();
    expected["cniVersion"] = json!("1.0.0");
    assert_json(&v1_0, &expected);
    assert_json(&conv(&v1_0, Version::V1_1_0), &src);
    assert_eq!(conv(&v1_0, Version::V1_1_0).to_string(), src.to_string());

    // Within the older families too.
    assert_json(
        &conv(&full_v04("0.4.0"), Version::V0_3_0),
        &full_v04("0.3.0"),
    );
    assert_json(
        &conv(&full_v02("0.2.0"), Version::V0_1_0),
        &full_v02("0.1.0"),
    );
}

#[test]
fn cni_version_is_the_first_key() {
    let (_, r) = CniResult::from_value(&full_v1_1()).unwrap();
    for v in SUPPORTED {
        let out = r.to_value(v).unwrap();
        let first = out.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(first, "cniVersion", "{v}");
        assert_eq!(out["cniVersion"], json!(v.as_str()));
    }
}

#[test]
fn no_ip_cannot_go_to_0_2_0() {
    let src = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        "dns": {"nameservers": ["10.0.0.53"]}
    });
    for to in [Version::V0_2_0, Version::V0_1_0] {
        let e = convert(&src, to).unwrap_err();
        assert_eq!(
            e,
            Error::Conversion("cannot convert: no valid IP addresses".into())
        );
        assert_eq!(e.msg(), "cannot convert: no valid IP addresses");
        assert_eq!(e.code(), Code::INCOMPATIBLE_VERSION);
        assert_eq!(e.code(), Code(1));
    }
    let e = CniResult::default().to_value(Version::V0_2_0).unwrap_err();
    assert_eq!(e.msg(), "cannot convert: no valid IP addresses");
    // The newer shapes hold a result without addresses.
    assert_json(
        &conv(&src, Version::V0_4_0),
        &json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
            "dns": {"nameservers": ["10.0.0.53"]}
        }),
    );
}

#[test]
fn ipv6_only_to_0_2_0_keeps_only_ip6_and_its_routes() {
    let src = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
        "ips": [
            {"interface": 0, "address": "2001:db8::5/64", "gateway": "2001:db8::1"},
            {"interface": 0, "address": "fd00::7/64"}
        ],
        "routes": [
            {"dst": "::/0", "gw": "2001:db8::1", "table": 100},
            {"dst": "10.0.0.0/8", "gw": "10.0.0.1"},
            {"dst": "fd00:1::/64"}
        ]
    });
    assert_json(
        &conv(&src, Version::V0_2_0),
        &json!({
            "cniVersion": "0.2.0",
            "ip6": {
                "ip": "2001:db8::5/64",
                "gateway": "2001:db8::1",
                "routes": [{"dst": "::/0", "gw": "2001:db8::1"}, {"dst": "fd00:1::/64"}]
            },
            "dns": {}
        }),
    );
    // IPv4-only: symmetric.
    let v4 = json!({
        "cniVersion": "1.1.0",
        "ips": [{"address": "10.0.0.5/8"}],
        "routes": [{"dst": "::/0"}, {"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
    });
    assert_json(
        &conv(&v4, Version::V0_1_0),
        &json!({
            "cniVersion": "0.1.0",
            "ip4": {"ip": "10.0.0.5/8", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]},
            "dns": {}
        }),
    );
}

#[test]
fn up_conversion() {
    // ip6 written before ip4: libcni still puts ip4 (and its routes) first.
    let v02 = json!({
        "cniVersion": "0.2.0",
        "ip6": {"ip": "2001:db8::5/64", "routes": [{"dst": "::/0", "gw": "2001:db8::1"}]},
        "ip4": {
            "ip": "10.1.0.5/24",
            "gateway": "10.1.0.1",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.96.0.0/12", "gw": "10.1.0.254"}]
        },
        "dns": {"nameservers": ["10.96.0.10"]}
    });
    assert_json(
        &conv(&v02, Version::V1_1_0),
        &json!({
            "cniVersion": "1.1.0",
            "ips": [
                {"address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"address": "2001:db8::5/64"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0"},
                {"dst": "10.96.0.0/12", "gw": "10.1.0.254"},
                {"dst": "::/0", "gw": "2001:db8::1"}
            ],
            "dns": {"nameservers": ["10.96.0.10"]}
        }),
    );
    assert_json(
        &conv(&v02, Version::V0_4_0),
        &json!({
            "cniVersion": "0.4.0",
            "ips": [
                {"version": "4", "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"version": "6", "address": "2001:db8::5/64"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0"},
                {"dst": "10.96.0.0/12", "gw": "10.1.0.254"},
                {"dst": "::/0", "gw": "2001:db8::1"}
            ],
            "dns": {"nameservers": ["10.96.0.10"]}
        }),
    );

    // 0.4.0 -> 1.0.0: `version` removed; 1.x-only keys in a 0.4.0 result are not read.
    let v04 = json!({
        "cniVersion": "0.4.0",
        "interfaces": [
            {"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
            {"name": "eth0", "sandbox": "/var/run/netns/p", "mtu": 1500, "pciID": "0000:00:01.0"}
        ],
        "ips": [
            {"version": "4", "interface": 1, "address": "10.22.0.9/16", "gateway": "10.22.0.1"},
            {"version": "6", "interface": 1, "address": "fd00::9/64"}
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.22.0.1", "table": 7}],
        "dns": {}
    });
    assert_json(
        &conv(&v04, Version::V1_0_0),
        &json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "eth0", "sandbox": "/var/run/netns/p"}
            ],
            "ips": [
                {"interface": 1, "address": "10.22.0.9/16", "gateway": "10.22.0.1"},
                {"interface": 1, "address": "fd00::9/64"}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.22.0.1"}]
        }),
    );
    // A 0.4.0 entry without `version` is accepted (the address decides).
    let no_version = json!({"cniVersion": "0.3.1", "ips": [{"address": "10.0.0.1/8"}]});
    assert_json(
        &conv(&no_version, Version::V1_1_0),
        &json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.1/8"}]}),
    );
}

#[test]
fn missing_version_is_0_1_0_and_unknown_is_rejected() {
    let old = json!({"ip4": {"ip": "10.0.0.2/8", "gateway": "10.0.0.1"}});
    let (v, r) = CniResult::from_value(&old).unwrap();
    assert_eq!(v, Version::V0_1_0);
    assert_eq!(r.ips[0].address, "10.0.0.2/8");
    for empty in [json!(""), Value::Null] {
        let mut doc = old.clone();
        doc["cniVersion"] = empty;
        assert_eq!(CniResult::from_value(&doc).unwrap().0, Version::V0_1_0);
    }
    // Same family: the version is inserted first, the rest kept.
    assert_json(
        &conv(&old, Version::V0_2_0),
        &json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/8", "gateway": "10.0.0.1"}}),
    );
    assert_json(
        &conv(&old, Version::V1_0_0),
        &json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.0.0.2/8", "gateway": "10.0.0.1"}]
        }),
    );

    for bad in ["2.0.0", "1.0", "0.4", "v1.0.0"] {
        let doc = json!({"cniVersion": bad, "ips": []});
        let e = CniResult::from_value(&doc).unwrap_err();
        assert_eq!(e.code(), Code::INCOMPATIBLE_VERSION, "{bad}");
        assert!(matches!(e, Error::IncompatibleVersion { .. }));
        assert_eq!(
            e.msg(),
            format!("unsupported cniVersion \"{bad}\" in CNI result")
        );
        assert_eq!(
            e.details(),
            "plexus supports [0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0]"
        );
        assert_eq!(convert(&doc, Version::V1_1_0).unwrap_err(), e);
    }
}

#[test]
fn garbage_is_a_decode_error() {
    let cases = [
        (json!([]), "the result must be a JSON object, got a list"),
        (
            json!("1.0.0"),
            "the result must be a JSON object, got a string",
        ),
        (
            json!({"cniVersion": 1}),
            "cniVersion must be a string, got a number",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": {"address": "10.0.0.1/8"}}),
            "ips must be a list, got an object",
        ),
        (
            json!({"cniVersion": "0.4.0", "ips": "10.0.0.1/8"}),
            "ips must be a list, got a string",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8"}, {"address": "banana"}]}),
            r#"ips[1].address "banana" is not an IP/prefix"#,
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}),
            r#"ips[0].address "10.0.0.1" is not an IP/prefix"#,
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/33"}]}),
            r#"ips[0].address "10.0.0.1/33" is not an IP/prefix"#,
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]}),
            "ips[0].address is missing",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": ["10.0.0.1/8"]}),
            "ips[0] must be an object, got a string",
        ),
        (
            json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "2001:db8::1/64"}]}),
            r#"ips[0].version "4" does not match address "2001:db8::1/64" (IPv6)"#,
        ),
        (
            json!({"cniVersion": "0.3.0", "ips": [{"version": "6", "address": "10.0.0.1/8"}]}),
            r#"ips[0].version "6" does not match address "10.0.0.1/8" (IPv4)"#,
        ),
        (
            json!({"cniVersion": "0.4.0", "ips": [{"version": "5", "address": "10.0.0.1/8"}]}),
            r#"ips[0].version "5" is not "4" or "6""#,
        ),
        (
            json!({"cniVersion": "0.4.0", "ips": [{"version": 4, "address": "10.0.0.1/8"}]}),
            "ips[0].version must be a string, got a number",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "gateway": "10.0.0.1/8"}]}),
            r#"ips[0].gateway "10.0.0.1/8" is not an IP address"#,
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"interface": -1, "address": "10.0.0.1/8"}]}),
            "ips[0].interface must be a non-negative integer, got -1",
        ),
        (
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mac": 5}]}),
            "interfaces[0].mac must be a string, got a number",
        ),
        (
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": ["eth0"]}]}),
            "interfaces[0].name must be a string, got a list",
        ),
        (
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mtu": "1500"}]}),
            r#"interfaces[0].mtu must be an integer from 0 to 4294967295, got the string "1500""#,
        ),
        (
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mtu": 1500.5}]}),
            "interfaces[0].mtu must be an integer from 0 to 4294967295, got 1500.5",
        ),
        (
            json!({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "table": -1}]}),
            "routes[0].table must be an integer from 0 to 4294967295, got -1",
        ),
        (
            json!({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "priority": 4294967296u64}]}),
            "routes[0].priority must be an integer from 0 to 4294967295, got 4294967296",
        ),
        (
            json!({"cniVersion": "1.0.0", "routes": [{"dst": "default", "gw": "10.0.0.1"}]}),
            r#"routes[0].dst "default" is not an IP/prefix"#,
        ),
        (
            json!({"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}),
            "routes[0].dst is missing",
        ),
        (
            json!({"cniVersion": "0.4.0", "routes": [{"dst": "0.0.0.0/0", "gw": true}]}),
            "routes[0].gw must be a string, got a boolean",
        ),
        (
            json!({"cniVersion": "1.0.0", "dns": []}),
            "dns must be an object, got a list",
        ),
        (
            json!({"cniVersion": "1.0.0", "dns": {"nameservers": "10.0.0.1"}}),
            "dns.nameservers must be a list, got a string",
        ),
        (
            json!({"cniVersion": "1.0.0", "dns": {"search": ["a", 1]}}),
            "dns.search[1] must be a string, got a number",
        ),
        (
            json!({"cniVersion": "0.2.0", "ip4": "10.0.0.1/8"}),
            "ip4 must be an object, got a string",
        ),
        (
            json!({"cniVersion": "0.2.0", "ip4": {"ip": "2001:db8::1/64"}}),
            r#"ip4.ip "2001:db8::1/64" is not an IPv4 address"#,
        ),
        (
            json!({"cniVersion": "0.1.0", "ip6": {"ip": "10.0.0.1/8"}}),
            r#"ip6.ip "10.0.0.1/8" is not an IPv6 address"#,
        ),
        (
            json!({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}),
            "ip4.ip is missing",
        ),
        (
            json!({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::1/64", "routes": [{"dst": 6}]}}),
            "ip6.routes[0].dst must be a string, got a number",
        ),
    ];
    for (doc, msg) in cases {
        let e = CniResult::from_value(&doc).unwrap_err();
        assert_eq!(e.code(), Code::DECODE, "{doc}");
        assert!(matches!(e, Error::Decode { .. }), "{doc}");
        assert_eq!(e.msg(), format!("invalid CNI result: {msg}"), "{doc}");
        for to in SUPPORTED {
            assert_eq!(convert(&doc, to).unwrap_err(), e, "{doc} -> {to}");
        }
    }
}

#[test]
fn long_strings_are_cut_in_messages() {
    let long = "x".repeat(10_000);
    let doc = json!({"cniVersion": "1.0.0", "ips": [{"address": long}]});
    let msg = CniResult::from_value(&doc).unwrap_err().msg();
    assert!(msg.len() < 200, "{msg}");
    assert!(msg.contains("x\"… is not an IP/prefix"), "{msg}");
}

/// Replaces every node of some valid documents with values of every kind and runs the
/// whole API on each: errors are fine, panics are not.
#[test]
fn never_panics_on_mangled_documents() {
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, c) in o {
                    pointers(c, format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    pointers(c, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let replacements = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(""),
        json!("banana"),
        json!("10.0.0.1/8"),
        json!("::/0"),
        json!("é/∞"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"ip": 1}),
    ];
    let docs = [
        full_v1_1(),
        full_v04("0.4.0"),
        full_v02("0.2.0"),
        full_v02("0.1.0"),
    ];
    let mut runs = 0;
    for doc in docs {
        let mut ptrs = Vec::new();
        pointers(&doc, String::new(), &mut ptrs);
        for p in &ptrs {
            for r in &replacements {
                let mut d = doc.clone();
                *d.pointer_mut(p).unwrap() = r.clone();
                if let Ok((_, res)) = CniResult::from_value(&d) {
                    for to in SUPPORTED {
                        let _ = res.to_value(to);
                    }
                }
                for to in SUPPORTED {
                    let _ = convert(&d, to);
                }
                runs += 1;
            }
        }
    }
    assert!(runs > 500);
}

#[test]
fn hand_built_bad_address_is_a_conversion_error() {
    let r = CniResult {
        ips: vec![IpConfig {
            address: "10.0.0.1".into(),
            ..IpConfig::default()
        }],
        ..CniResult::default()
    };
    assert_eq!(r.ips[0].family(), None);
    assert!(!r.ips[0].is_ipv4() && !r.ips[0].is_ipv6());
    // 1.x does not need the family.
    assert_json(
        &r.to_value(Version::V1_1_0).unwrap(),
        &json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.1"}]}),
    );
    for v in [Version::V0_4_0, Version::V0_2_0] {
        let e = r.to_value(v).unwrap_err();
        assert_eq!(
            e,
            Error::Conversion(
                "cannot convert: ips[0].address \"10.0.0.1\" is not an IP/prefix".into()
            )
        );
    }
}

#[test]
fn empty_dns_per_family() {
    let r = CniResult {
        ips: vec![IpConfig {
            address: "10.0.0.5/8".into(),
            ..IpConfig::default()
        }],
        ..CniResult::default()
    };
    assert!(r.dns.is_empty());
    let ips1 = json!([{"address": "10.0.0.5/8"}]);
    let ips04 = json!([{"version": "4", "address": "10.0.0.5/8"}]);
    assert_json(
        &r.to_value(Version::V1_1_0).unwrap(),
        &json!({"cniVersion": "1.1.0", "ips": ips1}),
    );
    assert_json(
        &r.to_value(Version::V1_0_0).unwrap(),
        &json!({"cniVersion": "1.0.0", "ips": ips1}),
    );
    assert_json(
        &r.to_value(Version::V0_4_0).unwrap(),
        &json!({"cniVersion": "0.4.0", "ips": ips04, "dns": {}}),
    );
    assert_json(
        &r.to_value(Version::V0_2_0).unwrap(),
        &json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.5/8"}, "dns": {}}),
    );

    // Partly filled dns: empty lists and a missing domain are left out, in every family.
    let mut partial = r.clone();
    partial.dns.nameservers = vec!["10.0.0.53".into()];
    assert!(!partial.dns.is_empty());
    for v in SUPPORTED {
        assert_json(
            &partial.to_value(v).unwrap()["dns"],
            &json!({"nameservers": ["10.0.0.53"]}),
        );
    }
    let mut domain_only = r.clone();
    domain_only.dns.domain = Some("example.org".into());
    assert!(!domain_only.dns.is_empty());
    assert_json(
        &domain_only.to_value(Version::V1_0_0).unwrap()["dns"],
        &json!({"domain": "example.org"}),
    );

    // Through convert: `{}` and all-empty fields are an empty dns.
    let v11 = json!({"cniVersion": "1.1.0", "ips": ips1, "dns": {}});
    assert_json(
        &conv(&v11, Version::V0_4_0),
        &json!({"cniVersion": "0.4.0", "ips": ips04, "dns": {}}),
    );
    let v04 = json!({
        "cniVersion": "0.4.0",
        "ips": ips04,
        "dns": {"nameservers": [], "domain": "", "search": null}
    });
    assert!(CniResult::from_value(&v04).unwrap().1.dns.is_empty());
    assert_json(
        &conv(&v04, Version::V1_0_0),
        &json!({"cniVersion": "1.0.0", "ips": ips1}),
    );
    // A result without dns at all still gets `"dns": {}` in 0.x.
    let bare = json!({"cniVersion": "1.0.0", "ips": ips1});
    assert_json(
        &conv(&bare, Version::V0_3_1),
        &json!({"cniVersion": "0.3.1", "ips": ips04, "dns": {}}),
    );
    assert_json(
        &conv(&bare, Version::V0_1_0),
        &json!({"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.5/8"}, "dns": {}}),
    );
}
