//! The plexus binary's CNI surface: env and stdin validation with exact codes and messages,
//! VERSION, and the one-document-on-stdout rule. No root needed.

mod common;
use common::plexus;
use serde_json::json;

const NODE: &str = r#"{"cniVersion":"1.1.0","name":"plexus","delegates":[]}"#;

fn full(command: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/run/netns/none"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ]
}

fn with(
    command: &'static str,
    key: &'static str,
    val: &'static str,
) -> Vec<(&'static str, &'static str)> {
    let mut e: Vec<_> = full(command)
        .into_iter()
        .filter(|(k, _)| *k != key)
        .collect();
    e.push((key, val));
    e
}

/// Asserts a failed run: non-zero exit, exactly this error document on stdout.
fn assert_error(env: &[(&str, &str)], stdin: &str, expected: serde_json::Value) {
    let r = plexus(env, stdin);
    assert_ne!(r.code, 0, "must exit non-zero: {r:?}");
    assert_eq!(r.json(), expected, "stderr: {}", r.stderr);
}

#[test]
fn version_answers_seven_versions_without_reading_anything() {
    // The dummy env runtimes probe with, and garbage on stdin: VERSION must not care.
    let r = plexus(
        &[
            ("CNI_COMMAND", "VERSION"),
            ("CNI_NETNS", "dummy"),
            ("CNI_IFNAME", "dummy"),
            ("CNI_PATH", "dummy"),
        ],
        "not json at all",
    );
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn missing_variables_are_listed_together() {
    assert_error(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_PATH", "/x"),
        ],
        NODE,
        json!({"cniVersion":"1.1.0","code":4,"msg":"required env variables [CNI_NETNS,CNI_IFNAME] missing"}),
    );
    assert_error(
        &[],
        NODE,
        json!({"cniVersion":"1.1.0","code":4,"msg":"required env variables [CNI_COMMAND] missing"}),
    );
    assert_error(
        &[("CNI_COMMAND", "DEL")],
        NODE,
        json!({"cniVersion":"1.1.0","code":4,"msg":"required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_PATH] missing"}),
    );
}

#[test]
fn interface_name_rules() {
    for (ifname, msg) in [
        ("abcdefghijklmnop", "interface name is too long"),
        (".", "interface name is . or .."),
        (
            "a/b",
            "interface name contains / or : or whitespace characters",
        ),
    ] {
        let r = plexus(&with("ADD", "CNI_IFNAME", ifname), NODE);
        assert_ne!(r.code, 0);
        let doc = r.json();
        assert_eq!(
            (doc["code"].as_u64(), doc["msg"].as_str()),
            (Some(4), Some(msg)),
            "{ifname}: {doc}"
        );
    }
}

#[test]
fn container_id_must_start_alphanumeric() {
    assert_error(
        &with("ADD", "CNI_CONTAINERID", "-abc"),
        NODE,
        json!({"cniVersion":"1.1.0","code":4,"msg":"invalid characters in containerID","details":"-abc"}),
    );
}

#[test]
fn stdin_must_be_a_named_json_config() {
    assert_error(
        &full("ADD"),
        "{}",
        json!({"cniVersion":"1.1.0","code":7,"msg":"missing network name"}),
    );
    let r = plexus(&full("ADD"), "this is not json");
    assert_ne!(r.code, 0);
    assert_eq!(r.json()["code"], 6);
    assert!(
        r.json()["msg"]
            .as_str()
            .unwrap()
            .starts_with("error unmarshalling network config")
    );
}

#[test]
fn version_gates() {
    assert_error(
        &full("CHECK"),
        r#"{"cniVersion":"0.3.1","name":"plexus"}"#,
        json!({"cniVersion":"0.3.1","code":1,"msg":"config version does not allow CHECK",
               "details":"CHECK needs cniVersion 0.4.0 or newer, the config is 0.3.1"}),
    );
    assert_error(
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")],
        r#"{"cniVersion":"1.0.0","name":"plexus"}"#,
        json!({"cniVersion":"1.0.0","code":1,"msg":"config version does not allow GC",
               "details":"GC needs cniVersion 1.1.0 or newer, the config is 1.0.0"}),
    );
    assert_error(
        &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/x")],
        r#"{"cniVersion":"0.4.0","name":"plexus"}"#,
        json!({"cniVersion":"0.4.0","code":1,"msg":"config version does not allow STATUS",
               "details":"STATUS needs cniVersion 1.1.0 or newer, the config is 0.4.0"}),
    );
    let r = plexus(&full("ADD"), r#"{"cniVersion":"7.0.0","name":"plexus"}"#);
    assert_eq!(r.json()["code"], 1);
    assert_eq!(r.json()["msg"], "incompatible CNI versions");
}

#[test]
fn unknown_command() {
    assert_error(
        &[("CNI_COMMAND", "FROBNICATE")],
        NODE,
        json!({"cniVersion":"1.1.0","code":4,"msg":"unknown CNI_COMMAND: FROBNICATE"}),
    );
}

#[test]
fn cni_args_without_ignore_unknown_refuse_unknown_keys() {
    let r = plexus(&with("ADD", "CNI_ARGS", "FOO=bar"), NODE);
    assert_ne!(r.code, 0);
    assert_eq!(r.json()["code"], 4);
    assert_eq!(r.json()["msg"], "CNI_ARGS: unknown key \"FOO\"");
}

#[test]
fn no_cluster_network_is_an_actionable_config_error() {
    let r = plexus(&full("ADD"), NODE);
    assert_ne!(r.code, 0);
    assert_eq!(r.json()["code"], 7);
    assert_eq!(
        r.json()["msg"],
        "node config \"plexus\" has no cluster network"
    );
}

#[test]
fn a_panic_still_prints_one_code_999_error_document() {
    let r = plexus(
        &[("CNI_COMMAND", "VERSION"), ("PLEXUS_DEBUG_PANIC", "1")],
        "",
    );
    assert_ne!(r.code, 0);
    let doc = r.json();
    assert_eq!(doc["code"], 999);
    assert_eq!(doc["cniVersion"], "1.1.0");
    assert!(
        doc["msg"].as_str().unwrap().starts_with("plexus bug: "),
        "{doc}"
    );
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "exactly one document: {:?}",
        r.stdout
    );
    assert!(r.stderr.contains("plexus panicked"), "{}", r.stderr);
}

/// The program headers' types of the ELF64 little-endian file `bytes`, and its `e_type`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn elf_type_and_segments(bytes: &[u8]) -> (u16, Vec<u32>) {
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(&bytes[..5], b"\x7fELF\x02", "an ELF64 file");
    let phoff = usize::try_from(u64_at(0x20)).unwrap();
    let (phentsize, phnum) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    let segments = (0..phnum).map(|i| u32_at(phoff + i * phentsize)).collect();
    (u16_at(0x10), segments)
}

/// build.rs links the binary statically and at a fixed address (see its docs): an
/// `ET_EXEC` file with no `PT_INTERP` (no dynamic loader is asked for) and no `PT_DYNAMIC`
/// (nothing to bind at start). The tests run this same link (debug profile).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_is_static_and_not_pie() {
    const ET_EXEC: u16 = 2;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    let escape = [option_env!("PLEXUS_PIE"), option_env!("PLEXUS_DYNAMIC")];
    if escape.contains(&Some("1")) {
        eprintln!("SKIPPED: built with PLEXUS_PIE=1 or PLEXUS_DYNAMIC=1");
        return;
    }
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_plexus")).unwrap();
    let (e_type, segments) = elf_type_and_segments(&bytes);
    assert_eq!(e_type, ET_EXEC, "not a position-independent executable");
    assert!(
        !segments.contains(&PT_INTERP),
        "no dynamic loader: {segments:?}"
    );
    assert!(
        !segments.contains(&PT_DYNAMIC),
        "nothing linked dynamically: {segments:?}"
    );
}
