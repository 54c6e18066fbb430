//! Tests of the Kubernetes API stand-in over real HTTPS: a small hyper + rustls client trusting
//! the generated CA, the real `kube` client, and kubectl when it is installed. No root needed.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use plexus_conformance::apiserver::{ApiServer, Latencies, Options, http1_connector};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Bound on every request of the test client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("conformance/ has a parent")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTPS client.

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    rt: tokio::runtime::Runtime,
    tls: TlsConnector,
    port: u16,
    token: String,
}

impl Client {
    fn new(api: &ApiServer) -> Client {
        Client::with(api.ca_pem(), api.port(), api.token())
    }

    fn with(ca_pem: &str, port: u16, token: &str) -> Client {
        Client {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            tls: http1_connector(ca_pem).expect("TLS connector"),
            port,
            token: token.to_owned(),
        }
    }

    /// A keep-alive connection (TCP + TLS + HTTP/1.1 handshake).
    fn connect(&self) -> io::Result<SendRequest<Full<Bytes>>> {
        self.rt.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT, async {
                let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let tls = self.tls.connect(name, tcp).await?;
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
                let (send, conn) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(io::Error::other)?;
                self.rt.spawn(conn);
                Ok(send)
            })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
        })
    }

    /// One request on `conn`.
    fn send_on(
        &self,
        conn: &mut SendRequest<Full<Bytes>>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Resp> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        self.rt.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT, async {
                let resp = conn.send_request(req).await.map_err(io::Error::other)?;
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(io::Error::other)?
                    .to_bytes()
                    .to_vec();
                Ok(Resp {
                    status,
                    headers,
                    body,
                })
            })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))?
        })
    }

    /// One request on a fresh connection, with arbitrary headers (no token added).
    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Resp> {
        let mut conn = self.connect()?;
        self.send_on(&mut conn, method, path, headers, body)
    }

    /// An authenticated request; panics on transport errors.
    fn call(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Resp {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        self.raw(method, path, &headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None, b"")
    }

    fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(
            "POST",
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }

    fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(
            "PUT",
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }

    fn patch(&self, path: &str, content_type: &str, body: &Value) -> Resp {
        self.call(
            "PATCH",
            path,
            Some(content_type),
            body.to_string().as_bytes(),
        )
    }

    fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None, b"")
    }
}

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const PODS: &str = "/api/v1/namespaces/default/pods";
const NADS: &str = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions";

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name},
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan-a"}},
        "spec": {"containers": [{"name": "app", "image": "pause"}], "nodeName": "node-1"}
    })
}

fn nad(name: &str, config: &str) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"config": config}
    })
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
        .parse()
        .unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Authentication, discovery, unknown paths.

#[test]
fn unauthorized_without_or_with_a_wrong_token() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    const BODY: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
    ] {
        for path in [PODS, "/version", "/api", "/nope"] {
            let r = c.raw("GET", path, &headers, b"").unwrap();
            assert_eq!(r.status, 401, "{path} {headers:?}");
            assert_eq!(r.text(), BODY);
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }
    // The scheme is case-insensitive, as in the real server.
    let auth = format!("bearer {}", api.token());
    let r = c
        .raw("GET", PODS, &[("authorization", auth.as_str())], b"")
        .unwrap();
    assert_eq!(r.status, 200);

    // Rotation: another token works once added; a removed token stops working.
    let next = "rotated-token-0123456789";
    let auth = format!("Bearer {next}");
    assert_eq!(
        c.raw("GET", PODS, &[("authorization", auth.as_str())], b"")
            .unwrap()
            .status,
        401
    );
    api.add_token(next);
    assert_eq!(
        c.raw("GET", PODS, &[("authorization", auth.as_str())], b"")
            .unwrap()
            .status,
        200
    );
    api.remove_token(api.token());
    assert_eq!(c.get(PODS).status, 401);
    let tokens: Vec<_> = api
        .requests()
        .iter()
        .filter_map(|r| r.bearer_token().map(str::to_owned))
        .collect();
    assert!(tokens.contains(&next.to_owned()), "{tokens:?}");
}

#[test]
fn discovery_documents() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let v = c.get("/version").json();
    assert_eq!(v["major"], "1");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1."));

    let apis = c.get("/api").json();
    assert_eq!(apis["kind"], "APIVersions");
    assert_eq!(apis["versions"], json!(["v1"]));

    let core = c.get("/api/v1").json();
    assert_eq!(core["kind"], "APIResourceList");
    let core_names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in ["pods", "pods/status", "events", "namespaces"] {
        assert!(core_names.contains(&n), "{core_names:?}");
    }

    let groups = c.get("/apis").json();
    assert_eq!(groups["kind"], "APIGroupList");
    let gvs: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["preferredVersion"]["groupVersion"].as_str().unwrap())
        .collect();
    assert!(gvs.contains(&"k8s.cni.cncf.io/v1") && gvs.contains(&"events.k8s.io/v1"));

    let nad = c.get("/apis/k8s.cni.cncf.io/v1").json();
    assert_eq!(nad["groupVersion"], "k8s.cni.cncf.io/v1");
    let r = &nad["resources"][0];
    assert_eq!(r["name"], "network-attachment-definitions");
    assert_eq!(r["singularName"], "network-attachment-definition");
    assert_eq!(r["namespaced"], true);
    assert_eq!(r["kind"], "NetworkAttachmentDefinition");
    assert_eq!(r["shortNames"], json!(["net-attach-def"]));
    for verb in ["get", "list", "create", "update", "patch", "delete"] {
        assert!(r["verbs"].as_array().unwrap().contains(&json!(verb)));
    }
    assert_eq!(c.get("/apis/k8s.cni.cncf.io").json()["kind"], "APIGroup");
    assert_eq!(
        c.get("/apis/events.k8s.io/v1").json()["resources"][0]["name"],
        "events"
    );
    assert_eq!(c.get("/healthz").text(), "ok");
    assert_eq!(c.get("/openapi/v2").status, 404);
    assert_eq!(api.count("GET discovery"), 7);
    assert_eq!(api.count("GET healthz"), 1);
    assert_eq!(api.count("GET unknown"), 1);
}

#[test]
fn unknown_paths_are_404_status() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    const BODY: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}"#;
    for path in [
        "/nope",
        "/api/v2",
        "/api/v1/namespaces/default/deployments",
        "/apis/apps/v1/namespaces/default/deployments",
        "/apis/k8s.cni.cncf.io/v1/namespaces/default/pods",
        "/api/v1/namespaces/default/pods/x/log",
        "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/x/status",
    ] {
        let r = c.get(path);
        assert_eq!((r.status, r.text().as_str()), (404, BODY), "{path}");
    }
    assert_eq!(api.count("GET unknown"), 7);
    // A verb the path does not take.
    let r = c.call("DELETE", "/api/v1/pods", None, b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["reason"], "MethodNotAllowed");
    let r = c.get(&format!("{PODS}?watch=true"));
    assert_eq!(r.status, 405);
    assert_eq!(api.count("WATCH pods"), 1);
}

// ---------------------------------------------------------------------------------------------
// The verbs.

#[test]
fn pods_get_list_post_put_patch_delete() {
    let api = ApiServer::start();
    let c = Client::new(&api);

    // POST: created, server-owned fields set, status is the server's.
    let mut body = pod("web");
    body["status"] = json!({"phase": "Running"});
    body["metadata"]["uid"] = json!("client-uid");
    let r = c.post(PODS, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["status"], json!({"phase": "Pending"}));
    assert_ne!(created["metadata"]["uid"], "client-uid");
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let rv1 = rv(&created);

    // POST again: 409 AlreadyExists.
    let r = c.post(PODS, &pod("web"));
    assert_eq!(r.status, 409);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"web\" already exists","reason":"AlreadyExists","details":{"name":"web","kind":"pods"},"code":409}"#
    );
    // Namespace mismatch: 400.
    let mut other = pod("x");
    other["metadata"]["namespace"] = json!("other");
    assert_eq!(c.post(PODS, &other).status, 400);
    // generateName.
    let mut gen_pod = pod("");
    gen_pod["metadata"].as_object_mut().unwrap().remove("name");
    gen_pod["metadata"]["generateName"] = json!("gen-");
    let generated = c.post(PODS, &gen_pod).json();
    let gen_name = generated["metadata"]["name"].as_str().unwrap();
    assert!(
        gen_name.starts_with("gen-") && gen_name.len() == 9,
        "{gen_name}"
    );

    // GET, with ?resourceVersion= accepted and ignored.
    let got = c.get(&format!("{PODS}/web?resourceVersion=0")).json();
    assert_eq!(got, created);
    assert_eq!(api.get("pods", "default", "web").unwrap(), created);

    // LIST: PodList, items without kind/apiVersion, the list's resourceVersion.
    c.post("/api/v1/namespaces/other/pods", &{
        let mut p = pod("elsewhere");
        p["metadata"]["namespace"] = json!("other");
        p
    });
    let list = c.get(PODS).json();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(names(&list), [gen_name, "web"]);
    assert!(list["items"][0].get("kind").is_none());
    assert!(rv(&list) >= rv1);
    assert_eq!(
        names(&c.get("/api/v1/pods").json()),
        [gen_name, "web", "elsewhere"]
    );
    // Selectors.
    let sel = c
        .get(&format!("{PODS}?fieldSelector=metadata.name%3Dweb"))
        .json();
    assert_eq!(names(&sel), ["web"]);
    let sel = c
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1,metadata.namespace%3Dother")
        .json();
    assert_eq!(names(&sel), ["elsewhere"]);
    let sel = c.get(&format!("{PODS}?labelSelector=app%3Dweb")).json();
    assert_eq!(names(&sel), ["web"]);
    let sel = c
        .get(&format!("{PODS}?labelSelector=app!%3Dweb&limit=500"))
        .json();
    assert_eq!(names(&sel), [gen_name]);
    assert_eq!(
        c.get(&format!("{PODS}?labelSelector=app+in+(web)")).status,
        400
    );

    // PUT: updates (status kept: the main resource does not write status), bumps the version.
    let mut update = created.clone();
    update["metadata"]["labels"]["tier"] = json!("front");
    update["status"] = json!({"phase": "Failed"});
    let r = c.put(&format!("{PODS}/web"), &update);
    assert_eq!(r.status, 200, "{}", r.text());
    let updated = r.json();
    assert_eq!(updated["metadata"]["labels"]["tier"], "front");
    assert_eq!(updated["status"]["phase"], "Pending");
    assert!(rv(&updated) > rv1);
    // PUT with the stale version: 409 Conflict, worded as the real server.
    let r = c.put(&format!("{PODS}/web"), &update);
    assert_eq!(r.status, 409);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"web","kind":"pods"},"code":409}"#
    );
    // PUT without a version: unconditional. Name mismatch: 400. Missing: 404.
    let mut unconditional = update.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    unconditional["metadata"]["labels"]["tier"] = json!("back");
    assert_eq!(c.put(&format!("{PODS}/web"), &unconditional).status, 200);
    assert_eq!(c.put(&format!("{PODS}/other"), &unconditional).status, 400);
    let mut missing = unconditional.clone();
    missing["metadata"]["name"] = json!("missing");
    assert_eq!(c.put(&format!("{PODS}/missing"), &missing).status, 404);

    // PATCH, merge: annotations added and removed.
    let r = c.patch(
        &format!("{PODS}/web"),
        MERGE,
        &json!({"metadata": {"annotations": {"a": "1", "k8s.v1.cni.cncf.io/networks": null}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let merged = r.json();
    assert_eq!(merged["metadata"]["annotations"], json!({"a": "1"}));
    // Strategic: maps merge, lists are replaced.
    let r = c.patch(
        &format!("{PODS}/web"),
        STRATEGIC,
        &json!({"metadata": {"labels": {"b": "2"}},
                "spec": {"containers": [{"name": "other", "image": "x"}]}}),
    );
    let strategic = r.json();
    assert_eq!(
        strategic["metadata"]["labels"],
        json!({"app": "web", "tier": "back", "b": "2"})
    );
    assert_eq!(
        strategic["spec"]["containers"],
        json!([{"name": "other", "image": "x"}])
    );
    assert_eq!(strategic["spec"]["nodeName"], "node-1");
    // JSON patch: test, add, replace, remove.
    let r = c.patch(
        &format!("{PODS}/web"),
        JSON_PATCH,
        &json!([
            {"op": "test", "path": "/metadata/labels/b", "value": "2"},
            {"op": "add", "path": "/metadata/annotations/c~1d", "value": "3"},
            {"op": "replace", "path": "/metadata/labels/b", "value": "22"},
            {"op": "remove", "path": "/metadata/labels/tier"}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let jp = r.json();
    assert_eq!(jp["metadata"]["annotations"], json!({"a": "1", "c/d": "3"}));
    assert_eq!(jp["metadata"]["labels"], json!({"app": "web", "b": "22"}));
    let r = c.patch(
        &format!("{PODS}/web"),
        JSON_PATCH,
        &json!([{"op": "test", "path": "/metadata/labels/b", "value": "2"}]),
    );
    assert_eq!(
        (r.status, r.json()["reason"].clone()),
        (422, json!("Invalid"))
    );
    // A patch carrying a stale version: 409; the current one: fine.
    let stale = json!({"metadata": {"resourceVersion": rv1.to_string(), "labels": {"x": "y"}}});
    assert_eq!(c.patch(&format!("{PODS}/web"), MERGE, &stale).status, 409);
    let fresh = json!({"metadata": {"resourceVersion": rv(&jp).to_string(), "labels": {"x": "y"}}});
    assert_eq!(c.patch(&format!("{PODS}/web"), MERGE, &fresh).status, 200);
    let r = c.patch(
        &format!("{PODS}/web"),
        JSON_PATCH,
        &json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"}]),
    );
    assert_eq!(r.status, 409);
    // Unsupported patch type; undecodable patch; missing object.
    assert_eq!(
        c.patch(
            &format!("{PODS}/web"),
            "application/apply-patch+yaml",
            &json!({})
        )
        .status,
        415
    );
    assert_eq!(
        c.call("PATCH", &format!("{PODS}/web"), Some(MERGE), b"{not json")
            .status,
        400
    );
    assert_eq!(
        c.patch(&format!("{PODS}/nope"), MERGE, &json!({})).status,
        404
    );

    // A no-op patch leaves the resourceVersion alone, as the real server does.
    let before = api.get("pods", "default", "web").unwrap();
    let same = c.patch(
        &format!("{PODS}/web"),
        MERGE,
        &json!({"metadata": {"labels": {"x": "y"}}}),
    );
    assert_eq!(rv(&same.json()), rv(&before));

    // DELETE: returns the pod; then 404 with the exact Status.
    let r = c.delete(&format!("{PODS}/web"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["name"], "web");
    let r = c.get(&format!("{PODS}/web"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"web\" not found","reason":"NotFound","details":{"name":"web","kind":"pods"},"code":404}"#
    );
    assert_eq!(c.delete(&format!("{PODS}/web")).status, 404);
    assert!(api.get("pods", "default", "web").is_none());

    // DeleteOptions preconditions.
    let r = c.call(
        "DELETE",
        &format!("{PODS}/{gen_name}"),
        Some("application/json"),
        br#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"not-it"}}"#,
    );
    assert_eq!(r.status, 409);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Precondition failed: UID")
    );
}

#[test]
fn nads_get_list_post_put_patch_delete() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let conf = r#"{"cniVersion":"1.0.0","name":"net-a","type":"macvlan","master":"plx-up0","ipam":{"type":"host-local","subnet":"10.71.0.0/24"}}"#;
    let r = c.post(NADS, &nad("net-a", conf));
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["spec"]["config"], conf);
    assert_eq!(c.post(NADS, &nad("net-a", conf)).status, 409);
    // Wrong kind for the endpoint: 400.
    assert_eq!(c.post(NADS, &pod("x")).status, 400);

    let got = c.get(&format!("{NADS}/net-a")).json();
    assert_eq!(got, created);
    assert_eq!(got["kind"], "NetworkAttachmentDefinition");

    api.put(nad("net-b", "{}"));
    let list = c.get(NADS).json();
    assert_eq!(list["kind"], "NetworkAttachmentDefinitionList");
    assert_eq!(list["apiVersion"], "k8s.cni.cncf.io/v1");
    assert_eq!(names(&list), ["net-a", "net-b"]);
    // Custom resources keep kind/apiVersion on list items.
    assert_eq!(list["items"][0]["kind"], "NetworkAttachmentDefinition");
    let all = c
        .get("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions")
        .json();
    assert_eq!(names(&all), ["net-a", "net-b"]);
    let one = c
        .get(&format!("{NADS}?fieldSelector=metadata.name%3Dnet-b"))
        .json();
    assert_eq!(names(&one), ["net-b"]);

    let mut update = got.clone();
    update["spec"]["config"] = json!("{\"cniVersion\":\"1.0.0\",\"type\":\"bridge\"}");
    let updated = c.put(&format!("{NADS}/net-a"), &update).json();
    assert!(rv(&updated) > rv(&got));
    assert_eq!(c.put(&format!("{NADS}/net-a"), &update).status, 409);

    let merged = c
        .patch(&format!("{NADS}/net-a"), MERGE, &json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/resourceName": "example.com/vf"}}}))
        .json();
    assert_eq!(
        merged["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
        "example.com/vf"
    );
    let smp = c
        .patch(
            &format!("{NADS}/net-a"),
            STRATEGIC,
            &json!({"spec": {"config": "{}"}}),
        )
        .json();
    assert_eq!(smp["spec"]["config"], "{}");
    let jp = c.patch(
        &format!("{NADS}/net-a"),
        JSON_PATCH,
        &json!([{"op": "replace", "path": "/spec/config", "value": conf}]),
    );
    assert_eq!(jp.json()["spec"]["config"], conf);

    let r = c.get(&format!("{NADS}/nope"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"network-attachment-definitions.k8s.cni.cncf.io \"nope\" not found","reason":"NotFound","details":{"name":"nope","group":"k8s.cni.cncf.io","kind":"network-attachment-definitions"},"code":404}"#
    );
    let r = c.patch(
        &format!("{NADS}/net-a"),
        MERGE,
        &json!({"metadata": {"resourceVersion": "1"}}),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "Operation cannot be fulfilled on network-attachment-definitions.k8s.cni.cncf.io \"net-a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // DELETE of a custom resource answers a Success Status.
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let r = c.delete(&format!("{NADS}/net-a"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": "net-a", "group": "k8s.cni.cncf.io",
                           "kind": "network-attachment-definitions", "uid": uid}, "code": 200})
    );
    assert_eq!(names(&c.get(NADS).json()), ["net-b"]);
}

#[test]
fn pod_status_patch_changes_annotations_and_status_not_spec() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let stored = api.put(pod("p"));
    let status_path = format!("{PODS}/p/status");
    let network_status = r#"[{"name":"cluster-net","interface":"eth0","default":true,"dns":{}}]"#;
    for (ct, body) in [
        (
            MERGE,
            json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": network_status}},
                   "spec": {"nodeName": "hijacked"}, "status": {"phase": "Running"}}),
        ),
        (
            STRATEGIC,
            json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": network_status}},
                   "spec": {"nodeName": "hijacked"}, "status": {"phase": "Running"}}),
        ),
    ] {
        api.put(pod("p"));
        let r = c.patch(&status_path, ct, &body);
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
        let p = r.json();
        assert_eq!(
            p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"],
            network_status
        );
        assert_eq!(
            p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"],
            "macvlan-a"
        );
        assert_eq!(
            p["spec"], stored["spec"],
            "{ct}: the status subresource wrote spec"
        );
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["metadata"]["uid"], stored["metadata"]["uid"]);
    }
    // JSON patch on the subresource.
    let r = c.patch(
        &status_path,
        JSON_PATCH,
        &json!([{"op": "add", "path": "/metadata/annotations/x", "value": "1"},
                {"op": "replace", "path": "/spec/nodeName", "value": "hijacked"}]),
    );
    assert_eq!(r.json()["metadata"]["annotations"]["x"], "1");
    assert_eq!(r.json()["spec"]["nodeName"], "node-1");
    // PUT on the subresource; GET on it.
    let mut full = c.get(&format!("{PODS}/p")).json();
    full["status"] = json!({"phase": "Succeeded"});
    full["spec"]["nodeName"] = json!("hijacked");
    let r = c.put(&status_path, &full);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"]["phase"], "Succeeded");
    assert_eq!(r.json()["spec"]["nodeName"], "node-1");
    assert_eq!(c.get(&status_path).json()["status"]["phase"], "Succeeded");
    // Stale version on the subresource.
    let r = c.patch(
        &status_path,
        MERGE,
        &json!({"metadata": {"resourceVersion": "1"}}),
    );
    assert_eq!(r.status, 409);
    // 404 on a missing pod's status.
    assert_eq!(
        c.patch(&format!("{PODS}/nope/status"), MERGE, &json!({}))
            .status,
        404
    );
    // The main resource does not write status.
    let r = c.patch(
        &format!("{PODS}/p"),
        MERGE,
        &json!({"status": {"phase": "Failed"}}),
    );
    assert_eq!(r.json()["status"]["phase"], "Succeeded");
    assert_eq!(api.count("PATCH pods/status"), 5);
    assert_eq!(api.count("PUT pods/status"), 1);
    assert_eq!(api.count("GET pods/status"), 1);
}

/// A patch that gives the pod's own UID goes through; one with another UID (a pod of the same
/// name recreated since) is refused as the real server refuses it, and changes nothing.
#[test]
fn patch_with_another_uid_is_refused() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let stored = api.put(pod("p"));
    let uid = stored["metadata"]["uid"].as_str().unwrap().to_owned();
    let status_path = format!("{PODS}/p/status");
    let r = c.patch(
        &status_path,
        MERGE,
        &json!({"metadata": {"uid": uid, "annotations": {"a": "1"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["metadata"]["annotations"]["a"], "1");
    let r = c.patch(
        &status_path,
        MERGE,
        &json!({"metadata": {"uid": "0000-old", "annotations": {"a": "2"}}}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Pod \"p\" is invalid: metadata.uid: Invalid value: \"0000-old\": field is immutable"
    );
    assert_eq!(r.json()["reason"], "Invalid");
    let now = c.get(&format!("{PODS}/p")).json();
    assert_eq!(now["metadata"]["annotations"]["a"], "1");
    assert_eq!(now["metadata"]["uid"], uid.as_str());
}

#[test]
fn events_in_both_groups() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": "p.", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "AddedInterface", "message": "Add net1 [10.71.0.2/24] from default/macvlan-a",
        "type": "Normal"
    });
    let r = c.post("/api/v1/namespaces/default/events", &core);
    assert_eq!(r.status, 201, "{}", r.text());
    let name = r.json()["metadata"]["name"].as_str().unwrap().to_owned();
    let new = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "p.2", "namespace": "default"},
        "regarding": {"kind": "Pod", "name": "p"}, "reason": "AddedInterface",
        "note": "n", "type": "Normal", "action": "Add", "reportingController": "plexus",
        "reportingInstance": "node-1", "eventTime": "2025-01-01T00:00:00.000000Z"
    });
    assert_eq!(
        c.post("/apis/events.k8s.io/v1/namespaces/default/events", &new)
            .status,
        201
    );
    let list = c
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dp")
        .json();
    assert_eq!(list["kind"], "EventList");
    assert_eq!(names(&list), [name.as_str()]);
    let list = c
        .get("/apis/events.k8s.io/v1/namespaces/default/events")
        .json();
    assert_eq!(list["apiVersion"], "events.k8s.io/v1");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(api.count("POST events"), 2);
    assert_eq!(api.count("LIST events"), 2);
    assert_eq!(api.list("events", "default").len(), 2);
    let r = c.get("/apis/events.k8s.io/v1/namespaces/default/events/nope");
    assert_eq!(
        r.json()["message"],
        "events.events.k8s.io \"nope\" not found"
    );
}

#[test]
fn namespaces_are_synthesized() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    api.put({
        let mut p = pod("p");
        p["metadata"]["namespace"] = json!("team-a");
        p
    });
    let list = c.get("/api/v1/namespaces").json();
    assert_eq!(list["kind"], "NamespaceList");
    let ns = names(&list);
    assert!(
        ns.contains(&"team-a".to_owned()) && ns.contains(&"default".to_owned()),
        "{ns:?}"
    );
    let one = c.get("/api/v1/namespaces/anything").json();
    assert_eq!(one["status"]["phase"], "Active");
    assert_eq!(api.count("LIST namespaces"), 1);
    assert_eq!(api.count("GET namespaces"), 1);
}

#[test]
fn tables_for_kubectl() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    api.put(pod("p"));
    api.put(nad("n", "{}"));
    let auth = format!("Bearer {}", api.token());
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let headers = [("authorization", auth.as_str()), ("accept", accept)];
    let t = c.raw("GET", PODS, &headers, b"").unwrap().json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert_eq!(t["rows"][0]["cells"][0], "p");
    assert_eq!(t["rows"][0]["cells"][2], "Pending");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "p");
    let t = c
        .raw(
            "GET",
            &format!("{NADS}/n?includeObject=Object"),
            &headers,
            b"",
        )
        .unwrap()
        .json();
    assert_eq!(t["rows"][0]["cells"][0], "n");
    assert_eq!(t["rows"][0]["object"]["spec"]["config"], "{}");
}

// ---------------------------------------------------------------------------------------------
// The store, as tests use it.

#[test]
fn put_get_list_delete_from_the_test_side() {
    let api = ApiServer::start();
    let mut p = pod("p");
    p["metadata"].as_object_mut().unwrap().remove("namespace");
    let first = api.put(p.clone());
    assert_eq!(first["metadata"]["namespace"], "default");
    let uid = first["metadata"]["uid"].clone();
    // Replacing keeps uid and creationTimestamp when not given, bumps the version.
    p["metadata"]["labels"]["v"] = json!("2");
    let second = api.put(p.clone());
    assert_eq!(second["metadata"]["uid"], uid);
    assert_eq!(
        second["metadata"]["creationTimestamp"],
        first["metadata"]["creationTimestamp"]
    );
    assert!(rv(&second) > rv(&first));
    // An explicit uid (a recreated pod) wins.
    p["metadata"]["uid"] = json!("11111111-2222-4333-8444-555555555555");
    assert_eq!(
        api.put(p)["metadata"]["uid"],
        "11111111-2222-4333-8444-555555555555"
    );
    // put applies no strategy: status is stored as given.
    let mut s = pod("s");
    s["status"] = json!({"phase": "Running"});
    assert_eq!(api.put(s)["status"]["phase"], "Running");
    assert_eq!(api.list("pods", "default").len(), 2);
    assert_eq!(api.list("pods", "").len(), 2);
    assert_eq!(api.list("pods", "other").len(), 0);
    assert!(api.delete("pods", "default", "s").is_some());
    assert!(api.get("pods", "default", "s").is_none());
    assert!(
        api.get("network-attachment-definitions", "default", "p")
            .is_none()
    );
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        api.put(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}))
    }));
    assert!(err.is_err());
}

#[test]
fn load_yaml_str_multi_document() {
    let api = ApiServer::start();
    let n = api
        .load_yaml_str(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n# only a comment\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- apiVersion: k8s.cni.cncf.io/v1\n  \
             kind: NetworkAttachmentDefinition\n  metadata: {name: n, namespace: x}\n  spec: {config: '{}'}\n\
             ---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
        )
        .unwrap();
    assert_eq!(n, 2);
    assert!(api.get("pods", "default", "a").is_some());
    assert_eq!(
        api.get("network-attachment-definitions", "x", "n").unwrap()["spec"]["config"],
        "{}"
    );
    assert!(
        api.load_yaml_str("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n")
            .is_err()
    );
    assert!(api.load_yaml_str(": : :\n- [").is_err());
}

#[test]
fn load_yaml_dir_loads_every_example() {
    let api = ApiServer::start();
    let examples = repo_root().join("examples");
    let n = api.load_yaml_dir(&examples).unwrap();
    let nads = api.list("network-attachment-definitions", "default");
    let pods = api.list("pods", "default");
    // examples/dra: the DRA demo pod's allocated claim and its driver's slice (the claim
    // template is a kind the stand-in skips).
    let claims = api.list("resourceclaims", "default");
    let slices = api.list("resourceslices", "");
    assert_eq!((claims.len(), slices.len()), (1, 1));
    assert_eq!(n, nads.len() + pods.len() + claims.len() + slices.len());
    let nad_names: Vec<&str> = nads
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        nad_names,
        [
            "bridge-hostlocal",
            "disk-net",
            "hostdevice-vf",
            "ipvlan-hostlocal",
            "macvlan-hostlocal",
            "macvlan-static",
            "macvlan-tuning",
            "sriov-dra",
            "sriov-vf"
        ]
    );
    let pod_names: Vec<&str> = pods
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        pod_names,
        ["db", "dpdk", "router", "sriov", "sriov-dra", "tuned", "web"]
    );

    // Every file is loaded (one object each) and starts with a header comment.
    let mut files = 0;
    for dir in ["nads", "pods"] {
        for entry in std::fs::read_dir(examples.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# "),
                "{} has no header comment",
                path.display()
            );
            files += 1;
        }
    }
    assert_eq!(files + claims.len() + slices.len(), n);

    // NAD configs are CNI 1.0.0 JSON named after the NAD; disk-net has none (resolved from disk).
    for obj in &nads {
        let name = obj["metadata"]["name"].as_str().unwrap();
        let Some(config) = obj["spec"]["config"].as_str() else {
            assert_eq!(name, "disk-net");
            assert_eq!(obj["spec"], json!({}));
            let disk: Value = serde_json::from_str(
                &std::fs::read_to_string(examples.join("net.d/disk-net.conflist")).unwrap(),
            )
            .unwrap();
            assert_eq!(disk["name"], "disk-net");
            assert_eq!(disk["cniVersion"], "1.0.0");
            continue;
        };
        let conf: Value = serde_json::from_str(config)
            .unwrap_or_else(|e| panic!("{name}: spec.config is not JSON: {e}"));
        assert_eq!(conf["cniVersion"], "1.0.0", "{name}");
        assert_eq!(conf["name"], name);
        let plugins: Vec<Value> = match conf["plugins"].as_array() {
            Some(p) => p.clone(),
            None => vec![conf.clone()],
        };
        for p in &plugins {
            let ty = p["type"].as_str().unwrap();
            // sriov-cni is not a Debian package; the demo stands in for it (fake-sriov).
            assert!(
                ty == "sriov"
                    || Path::new("/usr/lib/cni").join(ty).exists()
                    || !Path::new("/usr/lib/cni").exists(),
                "{name}: Debian ships no plugin {ty}"
            );
            for key in ["master", "device"] {
                if let Some(dev) = p[key].as_str() {
                    assert!(dev.starts_with("plx-"), "{name}: {key} {dev}");
                }
            }
        }
        if name == "macvlan-static" {
            assert_eq!(plugins[0]["capabilities"], json!({"ips": true}));
            assert_eq!(plugins[0]["ipam"]["type"], "static");
            assert_eq!(plugins[1]["type"], "tuning");
            assert_eq!(plugins[1]["capabilities"], json!({"mac": true}));
        }
    }
    // Pods use both annotation forms.
    let annotation = |p: &Value| {
        p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let forms: Vec<bool> = pods
        .iter()
        .map(|p| annotation(p).trim_start().starts_with('['))
        .collect();
    assert!(forms.contains(&true) && forms.contains(&false), "{forms:?}");
    for p in &pods {
        let a = annotation(p);
        if a.trim_start().starts_with('[') {
            let v: Value = serde_json::from_str(&a).unwrap();
            for sel in v.as_array().unwrap() {
                let n = sel["name"].as_str().unwrap();
                assert!(nad_names.contains(&n), "{n}");
            }
        } else {
            for item in a.split(',') {
                let item = item.trim();
                let n = item.split('@').next().unwrap();
                let n = n.rsplit('/').next().unwrap();
                assert!(nad_names.contains(&n), "{item}");
            }
        }
    }
}

#[test]
fn crd_matches_the_npwg_definition() {
    let text = std::fs::read_to_string(repo_root().join("crd/network-attachment-definition.yaml"))
        .unwrap();
    assert!(text.starts_with("# "));
    let crd: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(
        crd["metadata"]["name"],
        "network-attachment-definitions.k8s.cni.cncf.io"
    );
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "k8s.cni.cncf.io");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "NetworkAttachmentDefinition");
    assert_eq!(spec["names"]["plural"], "network-attachment-definitions");
    assert_eq!(spec["names"]["singular"], "network-attachment-definition");
    assert_eq!(spec["names"]["shortNames"], json!(["net-attach-def"]));
    let versions = spec["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let v1 = &versions[0];
    assert_eq!(v1["name"], "v1");
    assert_eq!(v1["served"], true);
    assert_eq!(v1["storage"], true);
    let schema = &v1["schema"]["openAPIV3Schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["spec"]["type"], "object");
    assert_eq!(
        schema["properties"]["spec"]["properties"]["config"]["type"],
        "string"
    );
    // The stand-in serves exactly what the CRD defines (and skips the CRD when loading).
    let api = ApiServer::start();
    assert_eq!(api.load_yaml_str(&text).unwrap(), 0);
    let c = Client::new(&api);
    let r = &c.get("/apis/k8s.cni.cncf.io/v1").json()["resources"][0];
    assert_eq!(r["name"], spec["names"]["plural"]);
    assert_eq!(r["singularName"], spec["names"]["singular"]);
    assert_eq!(r["kind"], spec["names"]["kind"]);
    assert_eq!(r["shortNames"], spec["names"]["shortNames"]);
}

// ---------------------------------------------------------------------------------------------
// Counters, records, faults.

#[test]
fn counters_and_request_records() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    api.put(pod("p"));
    c.get(&format!("{PODS}/p"));
    c.get(&format!("{PODS}/p"));
    c.get(PODS);
    c.get("/api/v1/pods");
    c.patch(
        &format!("{PODS}/p/status"),
        MERGE,
        &json!({"metadata": {"annotations": {"a": "b"}}}),
    );
    c.get(&format!("{NADS}/missing"));
    c.get(NADS);
    c.post(
        "/api/v1/namespaces/default/events",
        &json!({"metadata": {"name": "e"}}),
    );
    c.get("/version");
    c.get("/apis");
    let expected: std::collections::BTreeMap<String, u64> = [
        ("GET pods", 2),
        ("LIST pods", 2),
        ("PATCH pods/status", 1),
        ("GET network-attachment-definitions", 1),
        ("LIST network-attachment-definitions", 1),
        ("POST events", 1),
        ("GET discovery", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(api.counters(), expected);

    let records = api.requests();
    assert_eq!(records.len(), 10);
    let patch = records.iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(patch.path, "/api/v1/namespaces/default/pods/p/status");
    assert_eq!(patch.query, "");
    assert_eq!(patch.content_type.as_deref(), Some(MERGE));
    assert_eq!(
        patch.body_json(),
        json!({"metadata": {"annotations": {"a": "b"}}})
    );
    assert_eq!(patch.key, "PATCH pods/status");
    assert_eq!(patch.status, 200);
    assert_eq!(patch.bearer_token(), Some(api.token()));
    let missing = records
        .iter()
        .find(|r| r.path.ends_with("/missing"))
        .unwrap();
    assert_eq!(missing.status, 404);

    api.reset_counters();
    assert!(api.counters().is_empty());
    assert!(api.requests().is_empty());
    c.get(&format!("{PODS}?labelSelector=app%3Dp"));
    assert_eq!(api.count("LIST pods"), 1);
    assert_eq!(api.requests()[0].query, "labelSelector=app%3Dp");
    // Unauthorized requests count too.
    c.raw("GET", PODS, &[], b"").unwrap();
    assert_eq!(api.count("LIST pods"), 2);
}

#[test]
fn fail_next_then_success() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    api.put(pod("p"));
    api.fail_next(2, 503);
    for _ in 0..2 {
        let r = c.get(&format!("{PODS}/p"));
        assert_eq!(r.status, 503);
        let s = r.json();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "ServiceUnavailable");
        assert_eq!(s["code"], 503);
    }
    assert_eq!(c.get(&format!("{PODS}/p")).status, 200);
    assert_eq!(api.count("GET pods"), 3);

    // Injected failures come before authentication and apply to any path.
    api.fail_next(1, 429);
    let r = c.raw("GET", "/version", &[], b"").unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["reason"], "TooManyRequests");

    api.fail_next_with_body(1, 200, "{not json", "application/json");
    let r = c.get(&format!("{PODS}/p"));
    assert_eq!((r.status, r.text().as_str()), (200, "{not json"));
    api.fail_next_with_body(1, 502, "<html>bad gateway</html>", "text/html");
    let r = c.get(&format!("{PODS}/p"));
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(c.get(&format!("{PODS}/p")).status, 200);

    // Disarming.
    api.fail_next(5, 500);
    api.fail_next(0, 500);
    assert_eq!(c.get(&format!("{PODS}/p")).status, 200);
}

#[test]
fn fail_next_matching_fails_only_that_key() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    api.put(pod("p"));
    let status_path = format!("{PODS}/p/status");
    let patch = json!({"metadata": {"annotations": {"a": "b"}}});
    api.fail_next_matching("PATCH pods/status", 2, 500);
    for _ in 0..2 {
        // Requests under other keys pass and do not use the failure up.
        assert_eq!(c.get(&format!("{PODS}/p")).status, 200);
        assert_eq!(
            c.get(&status_path).status,
            200,
            "GET pods/status is another key"
        );
        assert_eq!(c.patch(&format!("{PODS}/p"), MERGE, &patch).status, 200);
        let r = c.patch(&status_path, MERGE, &patch);
        assert_eq!(r.status, 500);
        let s = r.json();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["reason"], "InternalError");
        assert_eq!(s["code"], 500);
        assert!(
            s["message"].as_str().unwrap().contains("PATCH pods/status"),
            "{s}"
        );
    }
    // Used up: the next one is served, and the failed ones changed nothing.
    api.put(pod("q"));
    let r = c.patch(
        &format!("{PODS}/q/status"),
        MERGE,
        &json!({"metadata": {"annotations": {"x": "y"}}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(api.count("PATCH pods/status"), 3);
    let statuses: Vec<u16> = api
        .requests()
        .iter()
        .filter(|r| r.key == "PATCH pods/status")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [500, 500, 200]);

    // Keys are armed side by side; re-arming replaces; n = 0 disarms one key only.
    api.fail_next_matching("GET pods", 1, 503);
    api.fail_next_matching("LIST pods", 5, 404);
    api.fail_next_matching("LIST pods", 1, 429);
    api.fail_next_matching("GET network-attachment-definitions", 3, 500);
    api.fail_next_matching("GET network-attachment-definitions", 0, 500);
    let r = c.get(PODS);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(c.get(PODS).status, 200);
    assert_eq!(
        c.get(&format!("{NADS}/none")).status,
        404,
        "disarmed: a real 404"
    );
    assert_eq!(c.get(&format!("{PODS}/p")).status, 503);
    assert_eq!(c.get(&format!("{PODS}/p")).status, 200);

    // A targeted failure comes first and leaves the global one armed for other requests.
    api.fail_next(1, 502);
    api.fail_next_matching("GET pods", 1, 500);
    assert_eq!(c.get(&format!("{PODS}/p")).status, 500);
    assert_eq!(c.get(PODS).status, 502);
    assert_eq!(c.get(&format!("{PODS}/p")).status, 200);
    // Injected like fail_next: before authentication.
    api.fail_next_matching("LIST pods", 1, 503);
    assert_eq!(c.raw("GET", PODS, &[], b"").unwrap().status, 503);
    assert_eq!(c.raw("GET", PODS, &[], b"").unwrap().status, 401);
}

#[test]
fn latency_delays_every_response() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let mut conn = c.connect().unwrap();
    let auth = format!("Bearer {}", api.token());
    let headers = [("authorization", auth.as_str())];
    api.set_latency(Duration::from_millis(400));
    let start = Instant::now();
    assert_eq!(
        c.send_on(&mut conn, "GET", PODS, &headers, b"")
            .unwrap()
            .status,
        200
    );
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    let start = Instant::now();
    assert_eq!(
        c.send_on(&mut conn, "GET", PODS, &[], b"").unwrap().status,
        401
    );
    assert!(start.elapsed() >= Duration::from_millis(400));
    api.set_latency(Duration::ZERO);
    let start = Instant::now();
    c.send_on(&mut conn, "GET", PODS, &headers, b"").unwrap();
    assert!(start.elapsed() < Duration::from_millis(400));
}

#[test]
fn latencies_differ_for_reads_writes_and_handshakes() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let auth = format!("Bearer {}", api.token());
    let headers = [("authorization", auth.as_str())];
    api.set_latencies(Latencies {
        read: Duration::from_millis(300),
        write: Duration::ZERO,
        handshake: Duration::from_millis(600),
    });
    let start = Instant::now();
    let mut conn = c.connect().unwrap();
    let connected = start.elapsed();
    assert!(connected >= Duration::from_millis(600), "{connected:?}");
    let start = Instant::now();
    assert_eq!(
        c.send_on(&mut conn, "GET", PODS, &headers, b"")
            .unwrap()
            .status,
        200
    );
    let read = start.elapsed();
    assert!(read >= Duration::from_millis(300), "{read:?}");
    // A write waits for its own latency only: zero here, so well under the read's.
    let body =
        br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"lat","namespace":"default"}}"#;
    let start = Instant::now();
    let created = c
        .send_on(
            &mut conn,
            "POST",
            PODS,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
        .unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    api.set_latencies(Latencies::REALISTIC);
    let start = Instant::now();
    c.send_on(&mut conn, "DELETE", &format!("{PODS}/lat"), &headers, b"")
        .unwrap();
    assert!(start.elapsed() >= Latencies::REALISTIC.write);
}

#[test]
fn refuse_connections_then_serve_again() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    let auth = format!("Bearer {}", api.token());
    let headers = [("authorization", auth.as_str())];
    let mut conn = c.connect().unwrap();
    assert_eq!(
        c.send_on(&mut conn, "GET", PODS, &headers, b"")
            .unwrap()
            .status,
        200
    );
    // Keep-alive: the same connection serves again.
    assert_eq!(
        c.send_on(&mut conn, "GET", PODS, &headers, b"")
            .unwrap()
            .status,
        200
    );

    api.refuse_connections(true);
    let err = c.connect().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    let err = std::net::TcpStream::connect(("127.0.0.1", api.port())).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // The pooled connection was closed too.
    assert!(c.send_on(&mut conn, "GET", PODS, &headers, b"").is_err());
    api.refuse_connections(true); // idempotent

    api.refuse_connections(false);
    assert_eq!(c.get(PODS).status, 200);
    api.refuse_connections(false); // idempotent
    assert_eq!(c.get(PODS).status, 200);
    assert!(api.url().ends_with(&format!(":{}", api.port())));
}

#[test]
fn stops_on_drop() {
    let api = ApiServer::start_with(Options {
        token: Some("fixed-token".into()),
        ..Options::default()
    });
    assert_eq!(api.token(), "fixed-token");
    let port = api.port();
    let c = Client::new(&api);
    assert_eq!(c.get(PODS).status, 200);
    drop(api);
    let err = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

// ---------------------------------------------------------------------------------------------
// kubeconfig, the kube client, kubectl.

#[test]
fn kubeconfig_files() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    api.write_kubeconfig(&path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let kc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(kc["current-context"], "plexus");
    let cluster = &kc["clusters"][0]["cluster"];
    assert_eq!(cluster["server"], api.url().as_str());
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    assert_eq!(ca, api.ca_pem().as_bytes());
    assert_eq!(kc["users"][0]["user"]["token"], api.token());

    let token_file = dir.path().join("token");
    let path2 = dir.path().join("kubeconfig2");
    api.write_kubeconfig_with_token_file(&path2, &token_file);
    let kc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path2).unwrap()).unwrap();
    assert_eq!(
        kc["users"][0]["user"]["tokenFile"],
        token_file.to_str().unwrap()
    );
    assert!(kc["users"][0]["user"].get("token").is_none());
    assert_eq!(
        std::fs::metadata(&path2).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// A kube client from `kubeconfig`; `retry` is kube's own `Config::default_retry`.
async fn kube_client(kubeconfig: &Path, retry: bool) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = retry;
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_client_works_against_it() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{
        Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    };

    let api = ApiServer::start();
    api.load_yaml_dir(&repo_root().join("examples")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, api.token()).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig_with_token_file(&kubeconfig, &token_file);
    let client = kube_client(&kubeconfig, true).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let web = pods.get("web").await.unwrap();
    assert_eq!(web.metadata.name.as_deref(), Some("web"));
    let list = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 7);
    // DRA's objects, typed as kube and k8s-openapi read them, with the field selector plexus
    // sends (examples/dra/allocated.yaml).
    {
        use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
        let slices: Api<ResourceSlice> = Api::all(client.clone());
        let params = ListParams::default()
            .fields("spec.driver=sriovnetwork.k8snetworkplumbingwg.io,spec.nodeName=demo-node")
            .match_any();
        let found = slices.list(&params).await.unwrap();
        assert_eq!(found.items.len(), 1);
        let slice = serde_json::to_value(&found.items[0]).unwrap();
        assert_eq!(slice["spec"]["devices"].as_array().unwrap().len(), 2);
        let none = ListParams::default().fields("spec.nodeName=other-node");
        assert!(slices.list(&none).await.unwrap().items.is_empty());
        let claims: Api<ResourceClaim> = Api::namespaced(client.clone(), "default");
        let claim = serde_json::to_value(claims.get("sriov-dra-vfs-7k2xq").await.unwrap()).unwrap();
        assert_eq!(
            claim["status"]["allocation"]["devices"]["results"][1]["device"],
            "vf-0000-03-00-4"
        );
    }
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);

    let status = json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[]"}}});
    let patched = pods
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.annotations.unwrap()["k8s.v1.cni.cncf.io/network-status"],
        "[]"
    );
    let patched = pods
        .patch_status("web", &PatchParams::default(), &Patch::Strategic(&status))
        .await
        .unwrap();
    assert_eq!(patched.metadata.name.as_deref(), Some("web"));

    match pods.get("nope").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.reason, "NotFound");
            assert_eq!(s.message, "pods \"nope\" not found");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}});
    match pods
        .patch("web", &PatchParams::default(), &Patch::Merge(&stale))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected a 409, got {other:?}"),
    }

    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "network-attachment-definitions");
    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let nad = nads.get("macvlan-hostlocal").await.unwrap();
    assert!(
        nad.data["spec"]["config"]
            .as_str()
            .unwrap()
            .contains("plx-up0")
    );
    assert_eq!(
        nads.list(&ListParams::default()).await.unwrap().items.len(),
        9
    );
    match nads.get("nope").await {
        Err(kube::Error::Api(s)) => assert_eq!(
            s.message,
            "network-attachment-definitions.k8s.cni.cncf.io \"nope\" not found"
        ),
        other => panic!("expected a 404, got {other:?}"),
    }

    assert_eq!(api.count("GET pods"), 2);
    assert_eq!(api.count("PATCH pods/status"), 2);
    assert_eq!(api.count("LIST network-attachment-definitions"), 1);
    let patch = api
        .requests()
        .into_iter()
        .find(|r| r.key == "PATCH pods/status")
        .unwrap();
    assert_eq!(patch.content_type.as_deref(), Some(MERGE));
    assert_eq!(patch.bearer_token(), Some(api.token()));

    // kube 5 retries 429/503/504 by itself (`Config::default_retry`, on by default): injected
    // 503s are invisible to the caller but show in the counters...
    api.reset_counters();
    api.fail_next(2, 503);
    assert!(pods.get("web").await.is_ok());
    assert_eq!(api.count("GET pods"), 3);
    // ...and reach the caller as API errors once that is turned off.
    let no_retry: Api<Pod> = Api::namespaced(kube_client(&kubeconfig, false).await, "default");
    api.fail_next(1, 503);
    match no_retry.get("web").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable"))
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    assert!(no_retry.get("web").await.is_ok());
    // Garbage with a 200 is a decode error, not a panic.
    api.fail_next_with_body(1, 200, "{not json", "application/json");
    assert!(no_retry.get("web").await.is_err());
    // The server going away is a transport error; coming back, it serves again.
    api.refuse_connections(true);
    assert!(no_retry.get("web").await.is_err());
    api.refuse_connections(false);
    assert!(no_retry.get("web").await.is_ok());
    drop(client);
    tokio::task::spawn_blocking(move || drop(api))
        .await
        .unwrap();
}

fn kubectl_installed() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs kubectl (bounded by coreutils `timeout`) with a private HOME so no cache leaks in.
fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("timeout")
        .arg("60")
        .arg("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running timeout kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kubectl_lists_the_examples() {
    if !kubectl_installed() {
        // Straight to the file descriptor: libtest's capture would hide an eprintln!.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: kubectl not installed");
        return;
    }
    let api = ApiServer::start();
    api.load_yaml_dir(&repo_root().join("examples")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();

    let (ok, out, err) = kubectl(&home, &kubeconfig, &["get", "pods", "-n", "default"]);
    assert!(ok, "kubectl get pods failed:\n{out}\n{err}");
    assert!(out.lines().next().unwrap().starts_with("NAME"), "{out}");
    for name in ["web", "db", "dpdk"] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from:\n{out}"
        );
    }
    for args in [
        &["get", "net-attach-def", "-n", "default"][..],
        &["get", "network-attachment-definitions", "-n", "default"][..],
    ] {
        let (ok, out, err) = kubectl(&home, &kubeconfig, args);
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        for name in [
            "macvlan-hostlocal",
            "bridge-hostlocal",
            "hostdevice-vf",
            "macvlan-static",
            "disk-net",
        ] {
            assert!(
                out.lines()
                    .any(|l| l.split_whitespace().next() == Some(name)),
                "{name} missing from:\n{out}"
            );
        }
    }
    let (ok, out, err) = kubectl(&home, &kubeconfig, &["get", "pod", "nope"]);
    assert!(!ok);
    assert!(err.contains("pods \"nope\" not found"), "{out}\n{err}");
    let (ok, out, err) = kubectl(&home, &kubeconfig, &["annotate", "pod", "web", "x=y"]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        api.get("pods", "default", "web").unwrap()["metadata"]["annotations"]["x"],
        "y"
    );
    assert!(api.count("GET discovery") > 0);
    assert!(api.count("LIST pods") >= 1);
    assert!(api.count("LIST network-attachment-definitions") >= 2);
    // kubectl asked for server-side tables.
    let list = api
        .requests()
        .into_iter()
        .find(|r| r.key == "LIST pods")
        .unwrap();
    let accept = list
        .headers
        .iter()
        .find(|(k, _)| k == "accept")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(accept.contains("as=Table"), "{accept}");
}

#[test]
fn the_binary_serves_until_sigterm() {
    use std::io::BufRead;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plexus-apiserver"))
        .arg("--load")
        .arg(repo_root().join("examples"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let url = rx.recv_timeout(Duration::from_secs(30));
    let url = match url {
        Ok(u) if !u.is_empty() => u.trim().to_owned(),
        other => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no URL on stdout ({other:?}); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let port: u16 = url
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("{url}"))
        .parse()
        .unwrap();

    let kc: Value = serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ca = base64::engine::general_purpose::STANDARD
        .decode(
            kc["clusters"][0]["cluster"]["certificate-authority-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let token = kc["users"][0]["user"]["token"].as_str().unwrap();
    let c = Client::with(std::str::from_utf8(&ca).unwrap(), port, token);
    assert_eq!(
        names(&c.get(PODS).json()),
        ["db", "dpdk", "router", "sriov", "sriov-dra", "tuned", "web"]
    );
    assert_eq!(names(&c.get(NADS).json()).len(), 9);

    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let mut status = None;
    plexus_conformance::wait_until(
        "plexus-apiserver to exit after SIGTERM",
        Duration::from_secs(30),
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
    let err = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

// ---------------------------------------------------------------------------------------------
// Authorization: RBAC rules and SelfSubjectAccessReview.

const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

fn review(verb: &str, group: &str, resource: &str, subresource: &str) -> Value {
    let mut attrs = json!({"verb": verb, "group": group, "resource": resource});
    if !subresource.is_empty() {
        attrs["subresource"] = json!(subresource);
    }
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
           "spec": {"resourceAttributes": attrs}})
}

fn plexus_cluster_role() -> String {
    std::fs::read_to_string(repo_root().join("examples/deploy/rbac.yaml")).unwrap()
}

#[test]
fn access_reviews_answer_from_the_rbac_rules() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    // By default everything is allowed, as for system:masters.
    let r = c.post(SSAR, &review("delete", "", "pods", ""));
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["kind"], "SelfSubjectAccessReview");
    assert_eq!(v["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(v["metadata"], json!({"creationTimestamp": null}));
    assert_eq!(v["spec"]["resourceAttributes"]["verb"], "delete");
    assert_eq!(v["status"]["allowed"], true);
    assert!(
        v["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("ClusterRole \"cluster-admin\""),
        "{v}"
    );
    assert_eq!(api.count("POST selfsubjectaccessreviews"), 1);

    // plexus's ClusterRole: exactly its rules.
    api.set_rbac_from_yaml(&plexus_cluster_role(), "plexus")
        .unwrap();
    let allowed = |verb: &str, group: &str, resource: &str, sub: &str| {
        let v = c.post(SSAR, &review(verb, group, resource, sub)).json();
        v["status"]["allowed"].as_bool().unwrap()
    };
    assert!(allowed("get", "", "pods", ""));
    for verb in ["get", "update", "patch"] {
        assert!(allowed(verb, "", "pods", "status"), "{verb} pods/status");
    }
    for verb in ["get", "list", "watch"] {
        assert!(allowed(
            verb,
            "k8s.cni.cncf.io",
            "network-attachment-definitions",
            ""
        ));
    }
    assert!(allowed("create", "", "events", ""));
    // `pods` does not cover `pods/status`, nor the other way round; nothing broader.
    assert!(!allowed("patch", "", "pods", ""));
    assert!(!allowed("delete", "", "pods", ""));
    assert!(!allowed("get", "", "secrets", ""));
    assert!(!allowed("create", "events.k8s.io", "events", ""));
    assert!(!allowed("*", "*", "*", ""));
    // A denial carries no reason, as RBAC gives none.
    let v = c.post(SSAR, &review("patch", "", "nodes", "")).json();
    assert_eq!(v["status"], json!({"allowed": false}));
    let v = c.post(SSAR, &review("get", "", "pods", "")).json();
    assert!(
        v["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("ServiceAccount \"plexus/kube-system\""),
        "{v}"
    );
    // Non-resource reviews: discovery is everyone's.
    let nr = |path: &str| {
        let body = json!({"kind": "SelfSubjectAccessReview",
                          "spec": {"nonResourceAttributes": {"verb": "get", "path": path}}});
        c.post(SSAR, &body).json()["status"]["allowed"].clone()
    };
    assert_eq!(nr("/version"), true);
    assert_eq!(nr("/metrics"), false);

    // Bodies the real server refuses.
    let r = c.post(
        SSAR,
        &json!({"kind": "SelfSubjectAccessReview", "spec": {}}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["reason"], "Invalid");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("exactly one of nonResourceAttributes or resourceAttributes"),
        "{}",
        r.text()
    );
    let r = c.call("POST", SSAR, Some("application/json"), b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(c.get(SSAR).status, 405);
    // Still authenticated first.
    let r =
        Client::with(api.ca_pem(), api.port(), "wrong").post(SSAR, &review("get", "", "pods", ""));
    assert_eq!(r.status, 401);

    // Discovery lists the group.
    let groups = c.get("/apis").json();
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "authorization.k8s.io"),
        "{groups}"
    );
    let res = c.get("/apis/authorization.k8s.io/v1").json();
    assert_eq!(res["resources"][0]["name"], "selfsubjectaccessreviews");
    assert_eq!(res["resources"][0]["verbs"], json!(["create"]));
}

#[test]
fn requests_the_rules_do_not_allow_get_the_real_403() {
    let api = ApiServer::start();
    api.put(pod("web"));
    api.put(nad("a", "{}"));
    let mut other = nad("b", "{}");
    other["metadata"]["namespace"] = json!("other");
    api.put(other);
    let c = Client::new(&api);
    api.set_rbac_from_yaml(&plexus_cluster_role(), "plexus")
        .unwrap();

    assert_eq!(c.get(&format!("{PODS}/web")).status, 200);
    let status = json!({"metadata": {"annotations": {"a": "b"}}});
    assert_eq!(
        c.patch(&format!("{PODS}/web/status"), MERGE, &status)
            .status,
        200
    );
    // NADs of every namespace: list is granted.
    let all = c.get("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions");
    assert_eq!(all.status, 200);
    assert_eq!(names(&all.json()), ["a", "b"]);

    let r = c.delete(&format!("{PODS}/web"));
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["reason"], "Forbidden");
    assert_eq!(
        v["message"],
        "pods \"web\" is forbidden: User \"system:serviceaccount:kube-system:plexus\" cannot \
         delete resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(v["details"], json!({"name": "web", "kind": "pods"}));
    assert!(
        api.get("pods", "default", "web").is_some(),
        "nothing deleted"
    );
    let r = c.get("/api/v1/pods");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "pods is forbidden: User \"system:serviceaccount:kube-system:plexus\" cannot list \
         resource \"pods\" in API group \"\" at the cluster scope"
    );
    let r = c.patch(
        &format!("{NADS}/a"),
        MERGE,
        &json!({"metadata": {"labels": {"x": "y"}}}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "network-attachment-definitions.k8s.cni.cncf.io \"a\" is forbidden: User \
         \"system:serviceaccount:kube-system:plexus\" cannot patch resource \
         \"network-attachment-definitions\" in API group \"k8s.cni.cncf.io\" in the namespace \
         \"default\""
    );
    // Without pods/status patch.
    api.set_rbac(&json!([
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get", "update"]},
    ]));
    let r = c.patch(&format!("{PODS}/web/status"), MERGE, &status);
    assert_eq!(r.status, 403);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("cannot patch resource \"pods/status\""),
        "{}",
        r.text()
    );
    // Discovery and health stay open.
    assert_eq!(c.get("/version").status, 200);
    assert_eq!(c.get("/healthz").status, 200);
    api.allow_all();
    assert_eq!(c.get("/api/v1/pods").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_client_asks_access_reviews_and_lists_every_namespace() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};

    let api = ApiServer::start();
    api.load_yaml_dir(&repo_root().join("examples")).unwrap();
    let mut other = nad("elsewhere", "{}");
    other["metadata"]["namespace"] = json!("other");
    api.put(other);
    api.set_rbac_from_yaml(&plexus_cluster_role(), "plexus")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let client = kube_client(&kubeconfig, false).await;

    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let ask = |verb: &str, resource: &str, sub: Option<&str>| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(String::new()),
                resource: Some(resource.into()),
                subresource: sub.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let yes = reviews
        .create(
            &PostParams::default(),
            &ask("patch", "pods", Some("status")),
        )
        .await
        .unwrap();
    let status = yes.status.unwrap();
    assert!(status.allowed);
    assert!(status.reason.unwrap().starts_with("RBAC: allowed by"));
    let no = reviews
        .create(&PostParams::default(), &ask("delete", "pods", None))
        .await
        .unwrap();
    assert!(!no.status.unwrap().allowed);

    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "network-attachment-definitions");
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = all.list(&ListParams::default().limit(500)).await.unwrap();
    assert_eq!(
        list.items.len(),
        api.list("network-attachment-definitions", "").len()
    );
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.namespace.as_deref() == Some("other"))
    );
    // A denied request reaches the caller as kube's 403.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    match pods.delete("web", &Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden")),
        other => panic!("expected a 403, got {other:?}"),
    }
    assert_eq!(api.count("POST selfsubjectaccessreviews"), 2);
    assert_eq!(api.count("LIST network-attachment-definitions"), 1);
    drop(client);
    tokio::task::spawn_blocking(move || drop(api))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Dynamic Resource Allocation: ResourceClaims (namespaced) and ResourceSlices (cluster-scoped).

#[test]
fn dra_claims_and_slices_as_the_real_server_serves_them() {
    let api = ApiServer::start();
    let c = Client::new(&api);
    api.put(json!({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"namespace": "ns", "name": "vfs"},
        "status": {"allocation": {"devices": {"results": [
            {"driver": "d", "pool": "n1", "device": "vf-1", "request": "vf"}]}}}
    }));
    for (name, driver, node) in [("s1", "d", "n1"), ("s2", "d", "n2"), ("s3", "g", "n1")] {
        api.put(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": name},
            "spec": {"driver": driver, "nodeName": node, "devices": [],
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1}}
        }));
    }
    const BASE: &str = "/apis/resource.k8s.io/v1";

    // A claim by namespace and name; a missing one is the real 404.
    let claim = c
        .get(&format!("{BASE}/namespaces/ns/resourceclaims/vfs"))
        .json();
    assert_eq!(claim["kind"], "ResourceClaim");
    assert_eq!(
        claim["status"]["allocation"]["devices"]["results"][0]["device"],
        "vf-1"
    );
    let missing = c.get(&format!("{BASE}/namespaces/ns/resourceclaims/nope"));
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json()["message"],
        "resourceclaims.resource.k8s.io \"nope\" not found"
    );

    // Slices are cluster-scoped: no namespace, not under a namespace's path.
    let s1 = c.get(&format!("{BASE}/resourceslices/s1")).json();
    assert_eq!(s1["metadata"]["name"], "s1");
    assert!(s1["metadata"].get("namespace").is_none(), "{s1}");
    assert_eq!(
        c.get(&format!("{BASE}/namespaces/ns/resourceslices"))
            .status,
        404
    );
    let list = c.get(&format!("{BASE}/resourceslices")).json();
    assert_eq!(list["kind"], "ResourceSliceList");
    assert!(
        list["items"][0].get("kind").is_none(),
        "built-in: items untyped"
    );
    assert_eq!(names(&list), ["s1", "s2", "s3"]);

    // The selectable fields: spec.driver, spec.nodeName, metadata.name; not the pool.
    let sel = |q: &str| c.get(&format!("{BASE}/resourceslices?fieldSelector={q}"));
    assert_eq!(
        names(&sel("spec.driver%3Dd%2Cspec.nodeName%3Dn1").json()),
        ["s1"]
    );
    assert_eq!(names(&sel("spec.driver%3Dd").json()), ["s1", "s2"]);
    assert_eq!(names(&sel("metadata.name%3Ds3").json()), ["s3"]);
    let r = sel("spec.pool.name%3Dn1");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "field label not supported: spec.pool.name"
    );

    // Discovery names the group and both resources.
    let groups = c.get("/apis").json();
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["preferredVersion"]["groupVersion"] == "resource.k8s.io/v1"),
        "{groups}"
    );
    let res = c.get(BASE).json();
    let scoped: Vec<(String, bool)> = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        scoped.contains(&("resourceclaims".into(), true)),
        "{scoped:?}"
    );
    assert!(
        scoped.contains(&("resourceslices".into(), false)),
        "{scoped:?}"
    );
    assert_eq!(api.count("GET resourceclaims"), 2);
    assert_eq!(api.count("LIST resourceslices"), 5);
    assert_eq!(api.count("GET resourceslices"), 1);
}
