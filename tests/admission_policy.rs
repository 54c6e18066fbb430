//! The example ValidatingAdmissionPolicy (`examples/deploy/nad-policy.yaml`) refuses exactly
//! the NetworkAttachmentDefinitions it says it refuses, evaluated as the API server would:
//! its variables and the expression and messageExpression of each validation, read from the
//! file, run with the `cel` crate against sample NAD objects.
//!
//! It proves that the policy is a v1 ValidatingAdmissionPolicy with a Deny binding for CREATE
//! and UPDATE of NADs, failing closed; that the shipped allowed list is the documented one;
//! that allowed configs pass in every JSON layout (single plugin, conflist, IPAM types,
//! whitespace and newlines around the colon, pretty-printed, `"type"` as a value, no
//! spec.config); and which validation refuses each bad NAD: every meta-plugin plexus refuses
//! on the node (as `type` or `ipam.type`, and even when someone adds it to the allowed list),
//! an unlisted type anywhere in a conflist, and a `\u` escape that would hide a `type` key.
//! A property test checks the text-based extraction of `type` values against a JSON parse of
//! random configs (`PROPTEST_CASES` cases, 256 when unset; failing cases are kept in
//! `proptest-regressions/admission_policy.txt`), and the example NADs are checked against
//! plexus's own reading of their types.
//!
//! The CEL environment is the crate's standard library plus its strings extension, which
//! follows cel-go's `ext.Strings()`: Kubernetes enables that library (`split`, `join`...) for
//! admission policy expressions, so no function had to be written here.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use cel::{Context, Env, Program, Value as Cel, extensions};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use plexus::cni::NetworkConfig;
use plexus::delegate::policy;
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

const POLICY_FILE: &str = "examples/deploy/nad-policy.yaml";
const POLICY_NAME: &str = "plexus-nad-plugin-types";

/// The allowed list the file ships.
const DEFAULT_ALLOWED: [&str; 14] = [
    "bridge",
    "macvlan",
    "ipvlan",
    "vlan",
    "ptp",
    "tuning",
    "portmap",
    "bandwidth",
    "sbr",
    "firewall",
    "static",
    "host-local",
    "dhcp",
    "whereabouts",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The policy's two documents, as the Kubernetes API types read them (their deserializers
/// check apiVersion and kind).
fn documents() -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    let text = fs::read_to_string(repo().join(POLICY_FILE)).expect("reading the policy file");
    let mut docs = serde_yaml::Deserializer::from_str(&text);
    let policy = ValidatingAdmissionPolicy::deserialize(docs.next().expect("first document"))
        .expect("the first document is a v1 ValidatingAdmissionPolicy");
    let binding =
        ValidatingAdmissionPolicyBinding::deserialize(docs.next().expect("second document"))
            .expect("the second document is a v1 ValidatingAdmissionPolicyBinding");
    assert!(docs.next().is_none(), "more than two documents");
    (policy, binding)
}

/// The validations, told apart by what their messages say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    /// No `\u` escape in spec.config.
    Escape,
    /// No meta-plugin, whatever the allowed list says.
    MetaPlugin,
    /// Every `type` in the allowed list.
    NotAllowed,
}

use Check::{Escape, MetaPlugin, NotAllowed};

struct Validation {
    check: Check,
    expression: Program,
    message_expression: Program,
}

/// The policy's variables and validations, compiled.
struct Policy {
    env: Arc<Env>,
    variables: Vec<(String, Program)>,
    validations: Vec<Validation>,
}

/// What the policy decides for one NAD.
#[derive(Debug)]
struct Verdict {
    /// The validations that evaluated to false.
    failed: BTreeSet<Check>,
    /// Their messageExpressions' results, in the file's order.
    messages: Vec<String>,
    /// The `types` variable: the value of every `type` key the policy found.
    types: Vec<String>,
}

impl Verdict {
    fn admitted(&self) -> bool {
        self.failed.is_empty()
    }
}

impl Policy {
    /// The policy as the file has it.
    fn load() -> Policy {
        Policy::load_with_allowed(&[])
    }

    /// The policy after an operator appended `extra` to its allowedTypes list.
    fn load_with_allowed(extra: &[&str]) -> Policy {
        let (vap, _) = documents();
        let spec = vap.spec.expect("spec");
        // The Kubernetes CEL environment: cel-go's standard library plus, among others, the
        // strings extension (cel-go ext.Strings: split, join, ...), which the crate implements.
        let mut env = Env::stdlib();
        env.add_extension(extensions::strings)
            .expect("registering the strings extension");
        let env = Arc::new(env);
        let compile = |what: &str, source: &str| -> Program {
            env.compile(source)
                .unwrap_or_else(|e| panic!("{what} does not compile: {e:?}\n{source}"))
        };

        let mut variables = Vec::new();
        for v in spec.variables.expect("spec.variables") {
            let mut source = v.expression;
            if v.name == "allowedTypes" && !extra.is_empty() {
                // What an operator does: add names at the end of the literal list.
                let end = source.rfind(']').expect("allowedTypes is a list literal");
                let added: Vec<String> = extra.iter().map(|t| format!("'{t}'")).collect();
                source.replace_range(end..end, &format!(", {}", added.join(", ")));
            }
            let program = compile(&format!("variable {}", v.name), &source);
            variables.push((v.name, program));
        }

        let mut validations = Vec::new();
        for v in spec.validations.expect("spec.validations") {
            let message = v.message.expect("every validation has a static message");
            let check = if message.contains("\\u escape") {
                Escape
            } else if message.contains("meta-plugin") {
                MetaPlugin
            } else if message.contains("not in the allowedTypes list") {
                NotAllowed
            } else {
                panic!("a validation of unknown purpose: {message}")
            };
            assert!(
                !message.contains('\n') && message.contains(POLICY_NAME),
                "{check:?}: the static message is one line naming the policy: {message}"
            );
            let message_expression = v
                .message_expression
                .expect("every validation names the types in a messageExpression");
            validations.push(Validation {
                check,
                expression: compile(&format!("{check:?} expression"), &v.expression),
                message_expression: compile(
                    &format!("{check:?} messageExpression"),
                    &message_expression,
                ),
            });
        }
        let checks: BTreeSet<Check> = validations.iter().map(|v| v.check).collect();
        assert_eq!(
            checks,
            BTreeSet::from([Escape, MetaPlugin, NotAllowed]),
            "one validation of each kind"
        );
        assert_eq!(validations.len(), 3, "one validation of each kind");
        Policy {
            env,
            variables,
            validations,
        }
    }

    fn eval(&self, program: &Program, object: &Cel, variables: &HashMap<String, Cel>) -> Cel {
        let mut ctx = Context::with_env(Arc::clone(&self.env));
        ctx.add_variable_from_value("object", object.clone());
        ctx.add_variable_from_value("variables", variables.clone());
        // An evaluation error would refuse the NAD (failurePolicy: Fail); none of the policy's
        // expressions may fail on a well-formed NAD object.
        program
            .execute(&ctx)
            .unwrap_or_else(|e| panic!("evaluation error: {e}"))
    }

    /// Every variable, in order (each may use the ones before it, as in Kubernetes).
    fn variables(&self, object: &Cel) -> HashMap<String, Cel> {
        let mut vars = HashMap::new();
        for (name, program) in &self.variables {
            let value = self.eval(program, object, &vars);
            vars.insert(name.clone(), value);
        }
        vars
    }

    /// The admission decision for `nad` (a NAD object as JSON).
    fn check(&self, nad: &Value) -> Verdict {
        let object = to_cel(nad);
        let vars = self.variables(&object);
        let mut failed = BTreeSet::new();
        let mut messages = Vec::new();
        for v in &self.validations {
            match self.eval(&v.expression, &object, &vars) {
                Cel::Bool(true) => {}
                Cel::Bool(false) => {
                    failed.insert(v.check);
                    let Cel::String(m) = self.eval(&v.message_expression, &object, &vars) else {
                        panic!("{:?}: messageExpression is not a string", v.check)
                    };
                    // Kubernetes falls back to the static message on an empty or multi-line one.
                    assert!(
                        !m.trim().is_empty() && !m.contains('\n'),
                        "{:?}: messageExpression gave {m:?}",
                        v.check
                    );
                    messages.push(m.to_string());
                }
                other => panic!("{:?}: expression gave {other:?}, not a bool", v.check),
            }
        }
        Verdict {
            failed,
            messages,
            types: strings(&vars["types"]),
        }
    }

    /// The value of the `allowedTypes` variable (it uses nothing of the object).
    fn allowed(&self) -> Vec<String> {
        strings(&self.variables(&to_cel(&nad(None)))["allowedTypes"])
    }
}

/// A JSON value as CEL sees a Kubernetes object (the samples hold no numbers).
fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::String(s) => Cel::from(s.as_str()),
        Value::Array(a) => Cel::from(a.iter().map(to_cel).collect::<Vec<_>>()),
        Value::Object(o) => Cel::from(
            o.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<String, Cel>>(),
        ),
        Value::Number(n) => panic!("a number in a sample object: {n}"),
    }
}

fn strings(v: &Cel) -> Vec<String> {
    let Cel::List(items) = v else {
        panic!("not a list: {v:?}")
    };
    items
        .iter()
        .map(|i| match i {
            Cel::String(s) => s.to_string(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

/// A NAD object with `config` as its spec.config (none: `spec: {}`).
fn nad(config: Option<&str>) -> Value {
    let spec = match config {
        Some(c) => json!({ "config": c }),
        None => json!({}),
    };
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": { "name": "net", "namespace": "default" },
        "spec": spec,
    })
}

/// A single-plugin config of `plugin_type` with `ipam_type` IPAM.
fn single(plugin_type: &str, ipam_type: &str) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": "net",
        "type": plugin_type,
        "master": "eth0",
        "ipam": { "type": ipam_type, "subnet": "10.1.0.0/24" },
    })
    .to_string()
}

/// A conflist of `first` (with host-local IPAM) then `second`.
fn conflist(first: &str, second: &str) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": "net",
        "plugins": [
            { "type": first, "bridge": "br0", "ipam": { "type": "host-local", "subnet": "10.1.0.0/24" } },
            { "type": second, "capabilities": { "mac": true } },
        ],
    })
    .to_string()
}

/// The `type` values of `config` found by parsing it, as the policy's text reading sees them:
/// the values of keys `type` (and of keys ending in an escaped quote and `type`, which the
/// text cannot tell from a `type` key), each as its JSON text up to the first `"` (the string
/// itself when it needs no escape); `""` when the value is not a string, or is the string
/// `type` (whose text `"type"` the reading takes for the next key). Both readings refuse
/// what is neither a plain string nor an allowed name.
fn json_types(config: &str) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    if k == "type" || k.ends_with("\"type") {
                        out.push(match v {
                            Value::String(s) if s == "type" => String::new(),
                            Value::String(s) => {
                                let text = serde_json::to_string(s).expect("a string");
                                let inner = &text[1..text.len() - 1];
                                inner.split('"').next().unwrap_or("").to_owned()
                            }
                            _ => String::new(),
                        });
                    }
                    walk(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        &serde_json::from_str(config).expect("sample configs are JSON"),
        &mut out,
    );
    out
}

fn strs(v: &Option<Vec<String>>) -> Vec<&str> {
    v.iter().flatten().map(String::as_str).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn the_file_is_a_v1_policy_with_a_deny_binding_for_nad_writes() {
    let (vap, binding) = documents();
    assert_eq!(vap.metadata.name.as_deref(), Some(POLICY_NAME));
    let spec = vap.spec.expect("spec");
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    assert!(
        spec.param_kind.is_none(),
        "no parameters: the list is in the policy"
    );
    assert!(spec.match_conditions.is_none());
    let constraints = spec.match_constraints.expect("matchConstraints");
    assert!(constraints.namespace_selector.is_none() && constraints.object_selector.is_none());
    assert!(constraints.exclude_resource_rules.is_none());
    let rules = constraints.resource_rules.expect("resourceRules");
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(strs(&rule.api_groups), ["k8s.cni.cncf.io"]);
    assert_eq!(strs(&rule.api_versions), ["v1"]);
    assert_eq!(strs(&rule.operations), ["CREATE", "UPDATE"]);
    assert_eq!(strs(&rule.resources), ["network-attachment-definitions"]);
    assert!(rule.resource_names.is_none());
    let names: Vec<&str> = spec
        .variables
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["allowedTypes", "config", "types"]);

    assert_eq!(binding.metadata.name.as_deref(), Some(POLICY_NAME));
    let bspec = binding.spec;
    assert_eq!(bspec.policy_name, POLICY_NAME);
    assert_eq!(bspec.validation_actions, ["Deny"]);
    assert!(bspec.param_ref.is_none());
    assert!(
        bspec.match_resources.is_none(),
        "the binding narrows nothing: every namespace"
    );
}

#[test]
fn the_default_allowed_list_is_the_documented_one() {
    let policy = Policy::load();
    assert_eq!(policy.allowed(), DEFAULT_ALLOWED);
    // host-device and sriov hand host devices to pods: documented, not allowed by default.
    let text = fs::read_to_string(repo().join(POLICY_FILE)).expect("reading the policy file");
    for t in ["host-device", "sriov"] {
        assert!(
            text.contains(&format!("`{t}`")),
            "the header must explain {t}"
        );
        assert!(!DEFAULT_ALLOWED.contains(&t));
    }
    // An operator's addition lands in the list.
    let edited = Policy::load_with_allowed(&["host-device"]);
    assert_eq!(
        edited.allowed().last().map(String::as_str),
        Some("host-device")
    );
}

#[test]
fn allowed_configs_pass_in_every_layout() {
    let policy = Policy::load();
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<Value>(&conflist("macvlan", "tuning")).expect("JSON"),
    )
    .expect("pretty-printing");
    let samples: Vec<(&str, String, Vec<&str>)> =
        vec![
        (
            "single plugin, host-local IPAM",
            single("macvlan", "host-local"),
            vec!["macvlan", "host-local"],
        ),
        (
            "single plugin, static IPAM",
            single("ipvlan", "static"),
            vec!["ipvlan", "static"],
        ),
        (
            "conflist bridge + tuning",
            conflist("bridge", "tuning"),
            vec!["bridge", "host-local", "tuning"],
        ),
        (
            "whitespace and newlines around the colon",
            "{\"cniVersion\" : \"1.0.0\", \"name\":\"net\",\n  \"type\"  \r\n\t:\n   \"bridge\" ,\
             \"ipam\": {\"type\"\n:\"static\"}}"
                .to_owned(),
            vec!["bridge", "static"],
        ),
        ("pretty-printed", pretty, vec!["macvlan", "host-local", "tuning"]),
        (
            "\"type\" as a value, before the type key",
            r#"{"cniVersion":"1.0.0","name":"type","type":"bridge"}"#.to_owned(),
            vec!["bridge"],
        ),
        (
            "\"type\" as a value, last in an object and in an array",
            r#"{"cniVersion":"1.0.0","type":"bridge","tags":["type"],"name":"type"}"#.to_owned(),
            vec!["bridge"],
        ),
        (
            "\"type\" inside a value",
            r#"{"cniVersion":"1.0.0","name":"a \"type\": \"plexus\"","type":"vlan"}"#.to_owned(),
            vec!["vlan"],
        ),
    ];
    for (what, config, want) in samples {
        let v = policy.check(&nad(Some(&config)));
        assert!(
            v.admitted(),
            "{what}: refused by {:?}: {:?}\n{config}",
            v.failed,
            v.messages
        );
        assert_eq!(
            v.types, want,
            "{what}: the types the policy found\n{config}"
        );
        assert_eq!(v.types, json_types(&config), "{what}: the types JSON has");
    }
}

#[test]
fn nads_without_a_config_pass() {
    let policy = Policy::load();
    let mut no_spec = nad(None);
    no_spec.as_object_mut().expect("an object").remove("spec");
    for (what, obj) in [("spec: {}", nad(None)), ("no spec", no_spec)] {
        let v = policy.check(&obj);
        assert!(v.admitted(), "{what}: refused by {:?}", v.failed);
        assert!(v.types.is_empty());
    }
}

#[test]
fn every_meta_plugin_is_refused_as_type_or_ipam_type() {
    let policy = Policy::load();
    let metas: BTreeSet<&str> = policy::META_PLUGINS.iter().copied().collect();
    assert!(
        ["plexus", "multus", "multus-shim"]
            .iter()
            .all(|m| metas.contains(m)),
        "{metas:?}"
    );
    for meta in metas {
        for (what, config) in [
            ("type", single(meta, "host-local")),
            ("ipam.type", single("bridge", meta)),
            ("second plugin's type", conflist("bridge", meta)),
        ] {
            let v = policy.check(&nad(Some(&config)));
            assert_eq!(
                v.failed,
                BTreeSet::from([MetaPlugin, NotAllowed]),
                "{meta} as {what}: {:?}",
                v.messages
            );
            let m = &v.messages[0];
            assert!(m.contains(&format!("\"{meta}\"")), "{m}");
            assert!(
                m.contains("a meta-plugin as a delegate lets a NAD author choose what root runs on every node"),
                "{m}"
            );
            assert!(
                m.contains(&DEFAULT_ALLOWED.join(", ")),
                "names the allowed list: {m}"
            );
        }
    }
}

#[test]
fn meta_plugins_stay_refused_when_added_to_the_allowed_list() {
    let policy = Policy::load_with_allowed(policy::META_PLUGINS);
    assert!(policy.allowed().iter().any(|t| t == "plexus"));
    for meta in policy::META_PLUGINS {
        for config in [single(meta, "host-local"), single("bridge", meta)] {
            let v = policy.check(&nad(Some(&config)));
            assert_eq!(v.failed, BTreeSet::from([MetaPlugin]), "{meta}: {config}");
            // The list the message offers leaves them out.
            assert!(
                v.messages[0].ends_with(&format!(
                    "(allowed plugin types: {})",
                    DEFAULT_ALLOWED.join(", ")
                )),
                "{}",
                v.messages[0]
            );
        }
    }
    // The rest of the policy is unchanged.
    let v = policy.check(&nad(Some(&single("evil", "host-local"))));
    assert_eq!(v.failed, BTreeSet::from([NotAllowed]));
}

#[test]
fn unlisted_types_are_refused_naming_them_and_the_list() {
    let policy = Policy::load();
    for (what, config, bad) in [
        ("type", single("evil", "host-local"), "evil"),
        ("ipam.type", single("macvlan", "evil-ipam"), "evil-ipam"),
        ("only the second plugin", conflist("bridge", "evil"), "evil"),
        (
            "host-device, not in the default list",
            single("host-device", "static"),
            "host-device",
        ),
        (
            "\"type\" as a value does not hide the next type key",
            r#"{"cniVersion":"1.0.0","name":"type","type":"evil"}"#.to_owned(),
            "evil",
        ),
        (
            "a type named \"type\" (read as no string)",
            r#"{"cniVersion":"1.0.0","name":"net","type":"type"}"#.to_owned(),
            "",
        ),
        (
            "a type with an escaped character",
            r#"{"cniVersion":"1.0.0","name":"net","type":"bridge\/x"}"#.to_owned(),
            "bridge\\/x",
        ),
        (
            "a type that is a list",
            r#"{"cniVersion":"1.0.0","name":"net","type":["bridge"]}"#.to_owned(),
            "",
        ),
        (
            "a type that is an object with an allowed name inside",
            r#"{"cniVersion":"1.0.0","name":"net","type": {"bridge": "x"}}"#.to_owned(),
            "",
        ),
    ] {
        let v = policy.check(&nad(Some(&config)));
        assert_eq!(v.failed, BTreeSet::from([NotAllowed]), "{what}\n{config}");
        let m = &v.messages[0];
        assert!(
            m.contains(&format!("\"{bad}\"")),
            "{what}: names the type: {m}"
        );
        assert!(
            m.contains(&DEFAULT_ALLOWED.join(", ")),
            "{what}: names the allowed list: {m}"
        );
    }
}

#[test]
fn a_type_hidden_by_a_unicode_escape_is_refused() {
    let policy = Policy::load();
    // JSON reads "\u0074ype" as "type": plexus on the node would see ipam.type plexus.
    let hidden =
        r#"{"cniVersion":"1.0.0","name":"net","type":"bridge","ipam":{"\u0074ype":"plexus"}}"#;
    let parsed = NetworkConfig::parse(hidden.as_bytes()).expect("valid JSON");
    assert_eq!(policy::types(&parsed), ["bridge", "plexus"]);
    let v = policy.check(&nad(Some(hidden)));
    assert_eq!(
        v.types,
        ["bridge"],
        "the text reading does not see the escaped key"
    );
    assert_eq!(
        v.failed,
        BTreeSet::from([Escape]),
        "so the escape rule must refuse it"
    );
    assert!(v.messages[0].contains("\\u escape"), "{}", v.messages[0]);
    assert!(
        v.messages[0].contains(&DEFAULT_ALLOWED.join(", ")),
        "{}",
        v.messages[0]
    );

    // An escape in the value: refused for the escape and for the name it is not.
    let value = r#"{"cniVersion":"1.0.0","name":"net","type":"\u0070lexus"}"#;
    let v = policy.check(&nad(Some(value)));
    assert_eq!(v.failed, BTreeSet::from([Escape, NotAllowed]));
}

#[test]
fn the_example_nads_pass_once_their_host_device_plugins_are_allowed() {
    let default = Policy::load();
    let with_devices = Policy::load_with_allowed(&["host-device", "sriov"]);
    let dir = repo().join("examples/nads");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("examples/nads")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    let mut refused_by_default = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("reading an example");
        let obj: Value = serde_yaml::from_str(&text).expect("an example NAD");
        let name = obj["metadata"]["name"].as_str().expect("a name").to_owned();
        let v = with_devices.check(&obj);
        assert!(v.admitted(), "{name}: {:?}", v.messages);
        if let Some(config) = obj["spec"]["config"].as_str() {
            // The policy's text reading finds what plexus finds on the node.
            let parsed = NetworkConfig::parse(config.as_bytes()).expect("a runnable config");
            assert_eq!(
                sorted(v.types.clone()),
                sorted(
                    policy::types(&parsed)
                        .into_iter()
                        .map(str::to_owned)
                        .collect()
                ),
                "{name}"
            );
        }
        let v = default.check(&obj);
        if !v.admitted() {
            assert_eq!(v.failed, BTreeSet::from([NotAllowed]), "{name}");
            refused_by_default.insert(name);
        }
    }
    assert_eq!(
        refused_by_default,
        BTreeSet::from([
            "hostdevice-vf".to_owned(),
            "sriov-dra".to_owned(),
            "sriov-vf".to_owned()
        ])
    );
}

/// Writes JSON with spaces, tabs and line breaks around every colon and comma.
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        w.write_all(if first { b"\n\t" } else { b" \r\n,\t " })
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b" \n\t :\r\n  ")
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        w.write_all(if first { b" " } else { b"\n, " })
    }
}

fn spaced(v: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Spaced);
    serde::Serialize::serialize(v, &mut ser).expect("serializing");
    String::from_utf8(out).expect("UTF-8")
}

/// Random configs: keys and strings made of the pieces the text reading is sensitive to.
fn config() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => Just("type".to_owned()),
        4 => proptest::sample::select(&[
            "name", "ipam", "plugins", "x\"type", "\"type\"", "type\"", ":type", "\\type",
            "Type", "a\\\"type", "types",
        ][..])
        .prop_map(str::to_owned),
        1 => "[a-z]{0,6}",
    ];
    let piece = proptest::sample::select(
        &[
            "bridge",
            "macvlan",
            "host-local",
            "tuning",
            "plexus",
            "multus",
            "multus-shim",
            "evil",
            "type",
            "\"type\"",
            "\"type\":\"plexus",
            ":",
            "\"",
            "\\",
            " ",
            "/",
            "\\u0074ype",
        ][..],
    );
    let string = proptest::collection::vec(piece, 1..3).prop_map(|p| Value::String(p.concat()));
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u8..100).prop_map(|n| json!(n)),
        string,
    ];
    let value = leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    // A config is an object.
    value.prop_map(|v| match v {
        Value::Object(_) => v,
        other => json!({ "type": other }),
    })
}

thread_local! {
    static POLICY: RefCell<Option<Policy>> = const { RefCell::new(None) };
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Where tests/properties.rs keeps its failing cases too, replayed first on every run.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/admission_policy.txt",
            ),
        )),
        ..ProptestConfig::default()
    })]

    /// For any JSON config, in any layout, the policy finds exactly the `type` values a JSON
    /// parse finds, and refuses exactly when one is a meta-plugin, one is not allowed, or the
    /// text holds a `\u`.
    #[test]
    fn the_text_reading_agrees_with_a_json_parse(config in config()) {
        POLICY.with(|cell| {
            let mut cell = cell.borrow_mut();
            let policy = cell.get_or_insert_with(Policy::load);
            let texts = [
                config.to_string(),
                serde_json::to_string_pretty(&config).expect("pretty-printing"),
                spaced(&config),
            ];
            for text in texts {
                let v = policy.check(&nad(Some(&text)));
                let want = json_types(&text);
                prop_assert_eq!(sorted(v.types.clone()), sorted(want.clone()), "{}", text);
                let mut expect = BTreeSet::new();
                if text.contains("\\u") {
                    expect.insert(Escape);
                }
                if want.iter().any(|t| policy::META_PLUGINS.contains(&t.as_str())) {
                    expect.insert(MetaPlugin);
                }
                if want.iter().any(|t| !DEFAULT_ALLOWED.contains(&t.as_str())) {
                    expect.insert(NotAllowed);
                }
                prop_assert_eq!(&v.failed, &expect, "{}", text);
            }
            Ok(())
        })?;
    }
}
