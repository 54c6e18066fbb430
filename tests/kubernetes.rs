//! plexus's Kubernetes side against the API stand-in, over HTTPS with a bearer token and the
//! real `kube` client: pod lookup, NAD resolution, network-status write, errors, retries,
//! bounds and request counts. No root needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plexus::cni::Command;
use plexus::k8s::api::{EventType, KubeApi, PodMeta};
use plexus::k8s::client::{Client, ClientOptions};
use plexus::k8s::nad::Isolation;
use plexus::k8s::pod::{self, PodRef};
use plexus::k8s::{networks, status};
use plexus_conformance::apiserver::ApiServer;
use serde_json::{Value, json};

const MACVLAN: &str = r#"{"cniVersion":"1.0.0","name":"macvlan-a","type":"macvlan","master":"plx-up0","ipam":{"type":"host-local","subnet":"10.71.0.0/24"}}"#;
const BRIDGE: &str = r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge","bridge":"plxbr0","ipam":{"type":"host-local","subnet":"10.72.0.0/24"}}]}"#;

fn nad(ns: &str, name: &str, config: &str) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"config": config}
    })
}

fn pod_obj(ns: &str, name: &str, uid: &str, networks: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "uid": uid,
                     "annotations": {"k8s.v1.cni.cncf.io/networks": networks, "team": "blue"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })
}

/// A stand-in holding pod `default/web` (uid `u-1`) selecting two NADs, one twice.
fn server() -> ApiServer {
    let s = ApiServer::start();
    s.put(nad("default", "macvlan-a", MACVLAN));
    s.put(nad("other", "bridge-b", BRIDGE));
    s.put(pod_obj(
        "default",
        "web",
        "u-1",
        "macvlan-a,other/bridge-b,macvlan-a@net9",
    ));
    s
}

fn client_for(s: &ApiServer, dir: &Path) -> Client {
    let kc = dir.join("kubeconfig");
    s.write_kubeconfig(&kc);
    client_with(&kc, Duration::from_secs(5))
}

fn client_with(kubeconfig: &Path, budget: Duration) -> Client {
    Client::new(&ClientOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        connect_timeout: Duration::from_secs(2),
        call_budget: budget,
        ..ClientOptions::default()
    })
    .expect("client builds")
    .expect("a kubeconfig gives a client")
}

fn web() -> PodRef {
    PodRef {
        namespace: "default".into(),
        name: "web".into(),
        uid: Some("u-1".into()),
    }
}

fn counts(s: &ApiServer) -> BTreeMap<String, u64> {
    s.counters()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("discovery"))
        .collect()
}

#[test]
fn pod_nads_and_status_round_trip_with_minimal_requests() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    s.reset_counters();

    let pod = pod::lookup(&c, &web(), Command::Add).expect("pod read");
    assert_eq!(pod.uid, "u-1");
    let sel = networks::selected(&c, &pod, &Isolation::default(), Path::new("/nonexistent"))
        .expect("networks resolved");
    let keys: Vec<String> = sel.iter().map(|x| x.network.key()).collect();
    assert_eq!(
        keys,
        vec!["default/macvlan-a", "other/bridge-b", "default/macvlan-a"]
    );
    assert_eq!(
        sel[0].network.config.bytes(),
        MACVLAN.as_bytes(),
        "NAD config bytes kept exactly"
    );
    assert_eq!(
        sel[1].network.config.name(),
        "bridge-b",
        "the NAD name is injected"
    );

    let result = json!({"cniVersion":"1.0.0","interfaces":[{"name":"net1","mac":"5e:2d:11:0c:a1:04","sandbox":"/run/netns/x"}],
                        "ips":[{"address":"10.71.0.2/24","interface":0}]});
    let entries = status::entries("default/macvlan-a", &result, false, None).unwrap();
    status::write(&c, &pod, &entries).expect("status written");

    let stored = s.get("pods", "default", "web").expect("pod still there");
    let text = stored["metadata"]["annotations"][status::ANNOTATION]
        .as_str()
        .unwrap();
    assert_eq!(text, status::annotation(&entries), "reads back identical");
    assert_eq!(
        text,
        r#"[{"name":"default/macvlan-a","interface":"net1","ips":["10.71.0.2"],"mac":"5e:2d:11:0c:a1:04","dns":{}}]"#
    );
    assert_eq!(
        stored["metadata"]["annotations"]["team"], "blue",
        "other annotations kept"
    );
    assert_eq!(
        stored["spec"]["containers"][0]["image"], "busybox",
        "the status write touches no spec"
    );
    // 1 pod read + 1 read per distinct NAD + 1 status write.
    assert_eq!(
        counts(&s),
        BTreeMap::from([
            ("GET pods".to_string(), 1),
            ("GET network-attachment-definitions".to_string(), 2),
            ("PATCH pods/status".to_string(), 1),
        ])
    );
}

#[test]
fn wrong_token_is_a_clear_401_without_retries() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let token_file = d.path().join("token");
    std::fs::write(&token_file, "not-the-token").unwrap();
    let kc = d.path().join("kubeconfig");
    s.write_kubeconfig_with_token_file(&kc, &token_file);
    let c = client_with(&kc, Duration::from_secs(5));
    s.reset_counters();
    let e = pod::lookup(&c, &web(), Command::Add).unwrap_err();
    assert_eq!(
        e.msg(),
        format!(
            "the Kubernetes API at {}/ rejected plexus's credentials (401 Unauthorized) reading pod default/web",
            s.url()
        )
    );
    assert_eq!(e.code().0, 5);
    assert!(!e.msg().contains("not-the-token") && !e.details().contains("not-the-token"));
    assert_eq!(counts(&s).get("GET pods"), Some(&1), "401 is not retried");
}

#[test]
fn rotated_token_file_is_read_by_the_next_run() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let token_file = d.path().join("token");
    let kc = d.path().join("kubeconfig");
    s.write_kubeconfig_with_token_file(&kc, &token_file);
    std::fs::write(&token_file, s.token()).unwrap();
    assert!(
        pod::lookup(
            &client_with(&kc, Duration::from_secs(5)),
            &web(),
            Command::Add
        )
        .is_ok()
    );
    // The token rotates: the old one is refused from now on by a fresh file's token.
    s.add_token("rotated-token-2");
    std::fs::write(&token_file, "rotated-token-2").unwrap();
    let pod = pod::lookup(
        &client_with(&kc, Duration::from_secs(5)),
        &web(),
        Command::Add,
    )
    .unwrap();
    assert_eq!(pod.name, "web");
    let last = s.requests().into_iter().last().expect("a request");
    assert_eq!(last.method, "GET");
}

#[test]
fn uid_mismatch_fails_add_but_not_del() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    let stale = PodRef {
        uid: Some("u-0".into()),
        ..web()
    };
    let e = pod::lookup(&c, &stale, Command::Add).unwrap_err();
    assert_eq!(
        e.msg(),
        "pod default/web has UID u-1 in the Kubernetes API but the runtime asked for UID u-0: the pod was deleted and recreated"
    );
    assert!(pod::lookup(&c, &stale, Command::Del).is_ok());
}

#[test]
fn two_503s_are_retried_and_the_lookup_succeeds() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    s.reset_counters();
    s.fail_next(2, 503);
    let pod = pod::lookup(&c, &web(), Command::Add).expect("retried to success");
    assert_eq!(pod.uid, "u-1");
    assert_eq!(counts(&s).get("GET pods"), Some(&3));
}

#[test]
fn refused_connections_fail_within_the_bound() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let kc = d.path().join("kubeconfig");
    s.write_kubeconfig(&kc);
    let c = client_with(&kc, Duration::from_millis(1500));
    s.refuse_connections(true);
    let started = Instant::now();
    let e = pod::lookup(&c, &web(), Command::Add).unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "bounded by the 1.5 s budget, took {took:?}"
    );
    assert_eq!(e.code().0, 11, "unreachable is try-again-later: {e}");
    assert!(
        e.msg().starts_with(&format!(
            "the Kubernetes API at {}/ did not answer reading pod default/web within",
            s.url()
        )),
        "{}",
        e.msg()
    );
    s.refuse_connections(false);
    assert!(
        pod::lookup(&c, &web(), Command::Add).is_ok(),
        "works again once the server is back"
    );
}

#[test]
fn missing_nad_and_missing_pod_are_named() {
    let s = server();
    s.put(pod_obj("default", "lost", "u-9", "nope"));
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    let lost = PodRef {
        namespace: "default".into(),
        name: "lost".into(),
        uid: None,
    };
    let pod = pod::lookup(&c, &lost, Command::Add).unwrap();
    let e = networks::selected(&c, &pod, &Isolation::default(), Path::new("/x")).unwrap_err();
    assert_eq!(
        e.msg(),
        "network default/nope: NetworkAttachmentDefinition not found"
    );
    let gone = PodRef {
        name: "gone".into(),
        ..lost
    };
    let e = pod::lookup(&c, &gone, Command::Add).unwrap_err();
    assert_eq!(e.msg(), "pod default/gone not found in the Kubernetes API");
}

#[test]
fn events_are_best_effort_and_bounded() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    let pod = pod::lookup(&c, &web(), Command::Add).unwrap();
    let entry = json!({"name":"default/macvlan-a","interface":"net1","ips":["10.71.0.2"]});
    let message = plexus::k8s::events::added_interface_message(&entry);
    // The client's own queue (what the detached sender uses; ADD's hand-over to that sender
    // is tested through the binary in tests/operability.rs).
    c.event(&pod, EventType::Normal, "AddedInterface", &message);
    // Events are queued, not waited for; on HTTP/2 a later call can overtake them.
    plexus_conformance::wait_until("the event recorded", Duration::from_secs(5), || {
        !s.list("events", "default").is_empty()
    });
    let events = s.list("events", "default");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "AddedInterface");
    assert_eq!(
        events[0]["message"],
        "Add net1 [10.71.0.2] from default/macvlan-a"
    );
    assert_eq!(events[0]["involvedObject"]["uid"], "u-1");
    // A slow API server does not hold the CNI command for long: queuing returns at once, and
    // the client's end waits for the queued event only within the event's own budget.
    s.set_latency(Duration::from_secs(3));
    let started = Instant::now();
    c.event(&pod, EventType::Normal, "AddedInterface", &message);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "queuing took {:?}",
        started.elapsed()
    );
    drop(c);
    let waited = started.elapsed();
    assert!(
        waited >= plexus::k8s::client::EVENT_BUDGET && waited < Duration::from_secs(2),
        "dropping the client took {waited:?}"
    );
}

#[test]
fn no_kubeconfig_and_no_cluster_means_no_client() {
    // SAFETY-free check: only meaningful when the test runner is not itself in a pod.
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        eprintln!("SKIPPED: running inside a Kubernetes pod");
        return;
    }
    assert!(Client::new(&ClientOptions::default()).unwrap().is_none());
    let e = Client::new(&ClientOptions {
        kubeconfig: Some(PathBuf::from("/nonexistent/kubeconfig")),
        ..ClientOptions::default()
    })
    .err()
    .expect("a missing kubeconfig is an error");
    assert_eq!(
        e.msg(),
        "cannot read the kubeconfig /nonexistent/kubeconfig"
    );
}

/// The KubeApi impl is object-safe and usable behind `dyn`, as the transaction uses it.
#[test]
fn client_is_usable_as_dyn_kube_api() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    let api: &dyn KubeApi = &c;
    assert!(api.nad("default", "absent").unwrap().is_none());
    assert_eq!(
        api.nad("default", "macvlan-a").unwrap().unwrap().config,
        MACVLAN
    );
}

#[test]
fn the_pod_read_asks_for_metadata_only() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    s.reset_counters();
    pod::lookup(&c, &web(), Command::Add).unwrap();
    let reads: Vec<_> = s
        .requests()
        .into_iter()
        .filter(|r| r.key == "GET pods")
        .collect();
    assert_eq!(reads.len(), 1);
    let accept = reads[0]
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("accept"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        accept.contains("as=PartialObjectMetadata"),
        "Accept: {accept}"
    );
}

/// The pod read, then the NADs and finally an Event with the status write, as an ADD makes
/// them, with every answer delayed so that requests sent together are answered together.
/// Returns the most requests in flight at once while reading, then while writing.
fn add_like_requests(s: &ApiServer, c: &Client, runtime_pod: bool) -> (u64, u64) {
    s.set_latency(Duration::from_millis(150));
    let pod = if runtime_pod {
        // As the runtime passes it (no pod read): the NAD reads are then the first requests,
        // queued while the connection is still being made.
        let stored = s.get("pods", "default", "web").expect("pod stored");
        PodMeta {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u-1".into(),
            annotations: serde_json::from_value(stored["metadata"]["annotations"].clone())
                .expect("annotations"),
        }
    } else {
        pod::lookup(c, &web(), Command::Add).expect("pod read")
    };
    networks::selected(c, &pod, &Isolation::default(), Path::new("/nonexistent"))
        .expect("networks resolved");
    let reading = s.max_in_flight();
    assert_eq!(s.count("GET network-attachment-definitions"), 2);
    s.reset_counters();
    c.event(
        &pod,
        plexus::k8s::api::EventType::Normal,
        "AddedInterface",
        "Add net1 [10.71.0.2] from default/macvlan-a",
    );
    c.set_pod_annotation(&pod, status::ANNOTATION, "[]")
        .expect("status written");
    (reading, s.max_in_flight())
}

/// On HTTP/2 (offered first, as the real API server does) all of a run's requests share one
/// connection, and the reads of distinct NADs, and the last Event and the status write, are
/// in flight together: one round trip each, not one per request (src/k8s/transport.rs).
#[test]
fn on_http2_one_connection_carries_concurrent_requests() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    let (reading, writing) = add_like_requests(&s, &c, false);
    drop(c); // waits for the queued Event
    assert_eq!(s.connections(), BTreeMap::from([("h2".to_string(), 1)]));
    assert_eq!(reading, 2, "the two NADs in flight together");
    assert_eq!(
        writing, 2,
        "the Event and the status write in flight together"
    );
    assert_eq!(s.count("POST events"), 1);
}

/// The stand-in offering HTTP/1.1 only (as a server or proxy without h2), with the NADs and
/// the pod `web` of [`add_like_requests`].
fn http1_server() -> ApiServer {
    let s = ApiServer::start_with(plexus_conformance::apiserver::Options {
        http1_only: true,
        ..Default::default()
    });
    s.put(nad("default", "macvlan-a", MACVLAN));
    s.put(nad("other", "bridge-b", BRIDGE));
    s.put(pod_obj("default", "web", "u-1", "macvlan-a,other/bridge-b"));
    s
}

/// A server (or proxy) offering only HTTP/1.1: still one connection for every request, one
/// request at a time, never a second connection (and TLS handshake) for a request that would
/// have to wait; also when the NAD reads are the first requests (the pod from the runtime).
#[test]
fn on_http1_one_connection_carries_one_request_at_a_time() {
    for runtime_pod in [false, true] {
        let s = http1_server();
        let d = tempfile::tempdir().unwrap();
        let c = client_for(&s, d.path());
        assert_eq!(add_like_requests(&s, &c, runtime_pod), (1, 1));
        drop(c);
        assert_eq!(
            s.connections(),
            BTreeMap::from([("http/1.1".to_string(), 1)])
        );
        assert_eq!(s.count("POST events"), 1);
    }
}

/// The NAD reads of a pod whose annotations came from the runtime are a run's first requests:
/// queued while the connection is being made, they wait for its protocol (ALPN), not for each
/// other, and so are in flight together on HTTP/2.
#[test]
fn on_http2_the_first_requests_wait_for_the_protocol_not_for_each_other() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    let (reading, _) = add_like_requests(&s, &c, true);
    drop(c);
    assert_eq!(s.count("GET pods"), 0);
    assert_eq!(reading, 2, "the two NADs in flight together");
    assert_eq!(s.connections(), BTreeMap::from([("h2".to_string(), 1)]));
}

/// A YAML kubeconfig (what kubeadm and most tools write) works as the JSON one `plexus
/// install` writes: it goes through kube's reader instead of the JSON fast path.
#[test]
fn yaml_kubeconfig_works_too() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let doc: Value = serde_json::from_str(&s.kubeconfig()).unwrap();
    let yaml = serde_yaml::to_string(&doc).unwrap();
    assert!(!yaml.trim_start().starts_with('{'), "{yaml}");
    let kc = d.path().join("kubeconfig.yaml");
    std::fs::write(&kc, yaml).unwrap();
    std::fs::set_permissions(&kc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let c = client_with(&kc, Duration::from_secs(5));
    let pod = pod::lookup(&c, &web(), Command::Add).expect("pod read");
    assert_eq!(pod.uid, "u-1");
}

/// The connection (TCP and TLS) starts when the client is built, before any request
/// (src/k8s/transport.rs): an ADD whose pod comes from the runtime may make its first request
/// only after its cluster network's delegate. The first request then uses that connection.
#[test]
fn the_connection_is_made_before_the_first_request_and_then_used() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    plexus_conformance::wait_until(
        "the connection made by building the client",
        Duration::from_secs(5),
        || s.connections().values().sum::<u64>() == 1,
    );
    assert!(counts(&s).is_empty(), "no request yet: {:?}", counts(&s));
    let pod = pod::lookup(&c, &web(), Command::Add).expect("pod read");
    assert_eq!(pod.uid, "u-1");
    drop(c);
    assert_eq!(s.connections(), BTreeMap::from([("h2".to_string(), 1)]));
}

/// The `resourceVersion` of each request counted under `key`, oldest first ("" when none).
fn read_versions(s: &ApiServer, key: &str) -> Vec<String> {
    s.requests()
        .into_iter()
        .filter(|r| r.key == key)
        .map(|r| {
            r.query
                .split('&')
                .find_map(|kv| kv.strip_prefix("resourceVersion="))
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

/// Pod and NAD reads ask for `resourceVersion=0` (the API server's watch cache, not a quorum
/// read of etcd). When the cache lags, what it cannot vouch for is read again from storage:
/// a NAD or a pod created since (not found in the cache), a pod recreated since (its UID is
/// the old one's), a NAD that really is missing. Nothing else is read twice.
#[test]
fn reads_ask_the_cache_and_storage_settles_what_it_cannot_vouch_for() {
    let s = server();
    let d = tempfile::tempdir().unwrap();
    let c = client_for(&s, d.path());
    s.reset_counters();
    assert_eq!(pod::lookup(&c, &web(), Command::Add).unwrap().uid, "u-1");
    assert!(c.nad("default", "macvlan-a").unwrap().is_some());
    assert_eq!(read_versions(&s, "GET pods"), ["0"]);
    assert_eq!(
        read_versions(&s, "GET network-attachment-definitions"),
        ["0"]
    );

    s.lag_cache(true);
    s.put(nad("default", "fresh", MACVLAN));
    s.put(pod_obj("default", "new", "u-9", "fresh"));
    s.put(pod_obj("default", "web", "u-2", "macvlan-a"));
    s.reset_counters();
    // Created since: not in the cache, found in storage.
    let fresh = c
        .nad("default", "fresh")
        .unwrap()
        .expect("found in storage");
    assert_eq!(fresh.config, MACVLAN);
    assert_eq!(
        read_versions(&s, "GET network-attachment-definitions"),
        ["0", ""]
    );
    let new = PodRef {
        namespace: "default".into(),
        name: "new".into(),
        uid: Some("u-9".into()),
    };
    assert_eq!(pod::lookup(&c, &new, Command::Add).unwrap().uid, "u-9");
    assert_eq!(read_versions(&s, "GET pods"), ["0", ""]);
    // Recreated since: the cache has the old UID, storage the new one, which is the runtime's.
    s.reset_counters();
    let recreated = PodRef {
        uid: Some("u-2".into()),
        ..web()
    };
    let got = pod::lookup(&c, &recreated, Command::Add).unwrap();
    assert_eq!(
        (
            got.uid.as_str(),
            got.annotations["k8s.v1.cni.cncf.io/networks"].as_str()
        ),
        ("u-2", "macvlan-a")
    );
    assert_eq!(read_versions(&s, "GET pods"), ["0", ""]);
    // The runtime's UID is the one the cache has: no second read (the status write's UID
    // precondition is what catches that sandbox's pod being gone).
    s.reset_counters();
    assert_eq!(pod::lookup(&c, &web(), Command::Add).unwrap().uid, "u-1");
    assert_eq!(read_versions(&s, "GET pods"), ["0"]);
    // Missing for real: two reads, then absent.
    s.reset_counters();
    assert_eq!(c.nad("default", "nope").unwrap(), None);
    assert_eq!(
        read_versions(&s, "GET network-attachment-definitions"),
        ["0", ""]
    );
}
