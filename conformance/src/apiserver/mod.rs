//! A stand-in for the Kubernetes API server, for plexus's tests and demo.
//!
//! [`ApiServer::start`] serves HTTPS on `127.0.0.1:<random port>` from its own threads and
//! tokio runtime until dropped: a CA and a server certificate (SANs `127.0.0.1`, `localhost`)
//! are generated at start, TLS is rustls with the ring provider, ALPN `h2` then `http/1.1` (as
//! the real API server; [`Options::http1_only`] offers HTTP/1.1 alone), HTTP/1.1 with
//! keep-alive. It speaks the REST protocol the `kube` client and kubectl use for:
//!
//! | path | verbs |
//! | --- | --- |
//! | `/api/v1/namespaces/{ns}/pods[/{name}]`, `/api/v1/pods` | GET, LIST, POST, PUT, PATCH, DELETE |
//! | `/api/v1/namespaces/{ns}/pods/{name}/status` | GET, PUT, PATCH |
//! | `/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions[/{name}]`, `/apis/k8s.cni.cncf.io/v1/network-attachment-definitions` | GET, LIST, POST, PUT, PATCH, DELETE |
//! | `/api/v1/namespaces/{ns}/events[/{name}]`, `/apis/events.k8s.io/v1/namespaces/{ns}/events[/{name}]` | the same |
//! | `/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims[/{name}]`, `/apis/resource.k8s.io/v1/resourceclaims` | the same |
//! | `/apis/resource.k8s.io/v1/resourceslices[/{name}]` (cluster-scoped) | GET, LIST, PUT, PATCH, DELETE |
//! | `/api/v1/namespaces[/{name}]` | GET, LIST (every namespace exists) |
//! | `/apis/authorization.k8s.io/v1/selfsubjectaccessreviews` | POST (answered from the RBAC rules, see below) |
//! | `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}[/v1]` | discovery (legacy form) |
//! | `/healthz`, `/livez`, `/readyz` | GET |
//!
//! Faithful to the real server in what clients observe:
//! * every request needs `Authorization: Bearer <token>` (as with `--anonymous-auth=false`),
//!   else 401 `Status` `Unauthorized`;
//! * errors are `kind: Status` bodies worded as the real server words them
//!   (`pods "x" not found`, `network-attachment-definitions.k8s.cni.cncf.io "x" not found`,
//!   `Operation cannot be fulfilled on pods "x": the object has been modified; ...`), unknown
//!   paths answer 404 `the server could not find the requested resource`;
//! * one global resourceVersion counter; each write that changes an object gives it the next
//!   value (a write that changes nothing leaves it, as the real server skips no-op updates);
//!   a PUT body or a patch result carrying a stale `metadata.resourceVersion` gets 409 Conflict;
//! * PATCH takes `application/merge-patch+json` (RFC 7386), `application/json-patch+json`
//!   (RFC 6902) and `application/strategic-merge-patch+json` (applied as a merge patch: maps
//!   merge, **lists are replaced** rather than merged by key; `$patch: replace|delete` work on
//!   maps); other patch types get 415;
//! * update strategies: a pod's main resource cannot change `status`; `pods/status` changes
//!   only `status` and metadata `labels`/`annotations`; a created pod's status is
//!   `{phase: Pending}`; the server owns `uid`, `creationTimestamp`, `resourceVersion`,
//!   `name` and `namespace`; `generateName` works; a patch that gives another `uid` gets 422
//!   (`metadata.uid: ... field is immutable`);
//! * a GET of one object with `resourceVersion=0` is answered from the "watch cache", which is
//!   in step with storage unless [`ApiServer::lag_cache`] holds it back;
//! * LIST returns a `<Kind>List` with `metadata.resourceVersion`, items without `kind` and
//!   `apiVersion` for built-in types (with them for NADs); `fieldSelector` (`=`, `==`, `!=` on
//!   any dotted path, e.g. `metadata.name=x`, `spec.nodeName=n`) and `labelSelector` (`k=v`,
//!   `k!=v`, `k`, `!k`) filter; `limit`/`continue`/`resourceVersion` are ignored (all at once);
//!   for ResourceSlices only the fields the real server can select on (`metadata.name`,
//!   `spec.driver`, `spec.nodeName`) are accepted, any other gets its 400
//!   (`field label not supported: spec.pool.name`), and the same for ResourceClaims
//!   (`metadata.name`, `metadata.namespace`);
//! * `Accept: application/json;as=Table;...` gets a server-side `Table` (what `kubectl get`
//!   prints);
//! * DELETE of a pod returns the pod (deleted at once: no graceful deletion), of anything else a
//!   `Success` `Status`; DeleteOptions `preconditions` are checked;
//! * authorization: everything is allowed until [`ApiServer::set_rbac`] gives the stand-in a
//!   ClusterRole's `rules` (bound to every caller); then a resource request they do not allow
//!   gets the real 403 (`pods "x" is forbidden: User "..." cannot patch resource
//!   "pods/status" in API group "" in the namespace "default"`), and a
//!   `SelfSubjectAccessReview` (201, `status.allowed`, `status.reason`) answers from them as
//!   RBAC does (see `rbac.rs`). Discovery, health and the reviews themselves are always
//!   allowed, as the default cluster roles allow them.
//!
//! Not served: watches (`?watch=true` gets 405), server-side apply, deletecollection, OpenAPI
//! (`/openapi/v2`, `/openapi/v3` are 404, which kubectl tolerates), protobuf (always JSON).
//! Core and `events.k8s.io` events share one storage without conversion.
//!
//! Tests seed objects with [`ApiServer::put`] / [`ApiServer::load_yaml_dir`] (no strategy
//! applied), inject faults ([`ApiServer::set_latency`], [`ApiServer::fail_next`],
//! [`ApiServer::fail_next_matching`], [`ApiServer::refuse_connections`],
//! [`ApiServer::lag_cache`]) and assert on
//! [`ApiServer::counters`] and [`ApiServer::requests`].
//!
//! ```no_run
//! use plexus_conformance::apiserver::ApiServer;
//! use serde_json::json;
//!
//! let api = ApiServer::start();
//! let dir = tempfile::tempdir().unwrap();
//! api.write_kubeconfig(&dir.path().join("kubeconfig"));
//! api.put(json!({"apiVersion": "v1", "kind": "Pod",
//!                "metadata": {"name": "p", "namespace": "default"}}));
//! // ... run plexus with that kubeconfig ...
//! assert_eq!(api.counters().get("PATCH pods/status"), Some(&1));
//! ```

mod api;
mod discovery;
mod faults;
mod http;
mod kubeconfig;
mod load;
mod patch;
mod rbac;
mod status;
mod store;
mod tls;
mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub use faults::{Latencies, RequestRecord};
pub use tls::http1_connector;

use faults::{Faults, Log};
use http::Control;
use store::{Res, Store};
use util::{lock, meta_mut, meta_str};

/// How long a handle waits for the server thread to start, stop or change listening.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the handle and the server's tasks.
pub(crate) struct Shared {
    store: Mutex<Store>,
    tokens: Mutex<Vec<String>>,
    faults: Mutex<Faults>,
    log: Mutex<Log>,
    rbac: Mutex<rbac::Rbac>,
    port: u16,
    /// When the server started (RFC 3339): the synthesized namespaces' creationTimestamp.
    started: String,
}

/// How to start an [`ApiServer`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
    /// The bearer token to accept; `None` (the default) generates a random one.
    pub token: Option<String>,
    /// Offer only HTTP/1.1 in ALPN (as a proxy without HTTP/2 would); by default `h2` is
    /// offered first, as the real API server does.
    pub http1_only: bool,
}

/// A running Kubernetes API stand-in; stops when dropped. See the [module docs](self).
pub struct ApiServer {
    shared: Arc<Shared>,
    url: String,
    ca_pem: String,
    token: String,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Starts a server on a free port of 127.0.0.1 with a random token.
    ///
    /// # Panics
    /// If it cannot start (no free port, no runtime threads).
    pub fn start() -> ApiServer {
        Self::start_with(Options::default())
    }

    /// Starts a server as `options` say.
    ///
    /// # Panics
    /// If it cannot start; [`ApiServer::try_start_with`] returns the error instead.
    pub fn start_with(options: Options) -> ApiServer {
        Self::try_start_with(options)
            .unwrap_or_else(|e| panic!("cannot start the API stand-in: {e}"))
    }

    /// Starts a server as `options` say, or says why it cannot.
    pub fn try_start_with(options: Options) -> Result<ApiServer, String> {
        let tls = tls::generate(options.http1_only)?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", options.port))
            .map_err(|e| format!("binding 127.0.0.1:{}: {e}", options.port))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listener: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("listener: {e}"))?
            .port();
        let token = options.token.unwrap_or_else(|| util::random_hex(24));
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            tokens: Mutex::new(vec![token.clone()]),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Log::default()),
            rbac: Mutex::new(rbac::Rbac::default()),
            port,
            started: util::rfc3339(SystemTime::now()),
        });
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("plexus-apiserver".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("plexus-apiserver-rt")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let _ = ready_tx.send(Ok(()));
                            http::serve(thread_shared, acceptor, listener, control_rx).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("listener: {e}")));
                        }
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(|e| format!("spawning the server thread: {e}"))?;
        match ready_rx.recv_timeout(CONTROL_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("the server thread did not start in time".into()),
        }
        Ok(ApiServer {
            shared,
            url: format!("https://127.0.0.1:{port}"),
            ca_pem: tls.ca_pem,
            token,
            control,
            thread: Some(thread),
        })
    }

    /// The server's URL, `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The port it listens on (kept across [`ApiServer::refuse_connections`]).
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// The PEM of the CA that signed the server certificate: what a client must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token generated (or given) at start.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Accepts `token` too (e.g. the next one in a token-rotation test).
    pub fn add_token(&self, token: &str) {
        let mut tokens = lock(&self.shared.tokens);
        if !tokens.iter().any(|t| t == token) {
            tokens.push(token.to_owned());
        }
    }

    /// Stops accepting `token` (including the start token): requests carrying it get 401.
    pub fn remove_token(&self, token: &str) {
        lock(&self.shared.tokens).retain(|t| t != token);
    }

    /// The text of a kubeconfig for this server with `certificate-authority-data` and the
    /// start token (context `plexus`, namespace `default`).
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(
            &self.url,
            &self.ca_pem,
            kubeconfig::Credential::Token(&self.token),
        )
    }

    /// Writes [`ApiServer::kubeconfig`] to `path`, mode 0600.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path) {
        kubeconfig::write_private(path, &self.kubeconfig())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Writes a kubeconfig like [`ApiServer::write_kubeconfig`] whose user has
    /// `tokenFile: <token_file>` instead of a token. The caller writes (and rotates) that file;
    /// tokens other than [`ApiServer::token`] must be allowed with [`ApiServer::add_token`].
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write_kubeconfig_with_token_file(&self, path: &Path, token_file: &Path) {
        let text = kubeconfig::render(
            &self.url,
            &self.ca_pem,
            kubeconfig::Credential::TokenFile(token_file),
        );
        kubeconfig::write_private(path, &text)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Stores `obj` (a Pod `v1`, a NetworkAttachmentDefinition `k8s.cni.cncf.io/v1` or an Event
    /// `v1`/`events.k8s.io/v1`), creating it or replacing the object of the same kind, namespace
    /// (default `default`) and name. Sets `metadata.uid` and `metadata.creationTimestamp` when
    /// missing (keeping those of the object it replaces), and the next `resourceVersion`.
    /// Applies no update strategy: what you put is what clients get. Returns the stored object.
    ///
    /// # Panics
    /// If `obj` is of another kind or has no `metadata.name`.
    pub fn put(&self, obj: Value) -> Value {
        self.try_put(obj).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_put(&self, mut obj: Value) -> Result<Value, String> {
        let api_version = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let res = Res::for_object(api_version, kind).ok_or_else(|| {
            format!(
                "the API stand-in does not serve {kind:?} of {api_version:?} (only v1 Pod, \
                 k8s.cni.cncf.io/v1 NetworkAttachmentDefinition, v1 or events.k8s.io/v1 Event, \
                 resource.k8s.io/v1 ResourceClaim and ResourceSlice)"
            )
        })?;
        if meta_str(&obj, "name").is_none_or(str::is_empty) {
            return Err(format!("a {kind} without metadata.name: {obj}"));
        }
        let m = meta_mut(&mut obj);
        if !res.namespaced() {
            m.shift_remove("namespace");
        } else if m
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            m.insert("namespace".into(), Value::String("default".into()));
        }
        Ok(lock(&self.shared.store).put(res, obj))
    }

    fn res(resource: &str) -> Res {
        Res::from_plural(resource).unwrap_or_else(|| {
            panic!(
                "unknown resource {resource:?}: use \"pods\", \"network-attachment-definitions\" \
                 or \"events\""
            )
        })
    }

    /// The stored object `name` in `namespace`; `resource` is `pods`,
    /// `network-attachment-definitions` or `events`.
    ///
    /// # Panics
    /// On another `resource`.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store)
            .get(Self::res(resource), namespace, name)
            .cloned()
    }

    /// Every stored object of `resource` in `namespace` (all namespaces when it is `""`), by
    /// namespace then name.
    ///
    /// # Panics
    /// On an unknown `resource` (see [`ApiServer::get`]).
    pub fn list(&self, resource: &str, namespace: &str) -> Vec<Value> {
        let ns = (!namespace.is_empty()).then_some(namespace);
        lock(&self.shared.store)
            .list(Self::res(resource), ns)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Removes a stored object (as if deleted by someone else), returning it.
    ///
    /// # Panics
    /// On an unknown `resource` (see [`ApiServer::get`]).
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store).remove(Self::res(resource), namespace, name)
    }

    /// [`ApiServer::put`]s every object of a multi-document YAML text (`kind: List` is
    /// flattened; CustomResourceDefinition and Namespace documents are skipped, since the
    /// stand-in serves both by construction, and so are the ServiceAccount, ClusterRole,
    /// ClusterRoleBinding, DaemonSet and admission policy that install plexus in a real
    /// cluster). Returns how
    /// many objects were stored; on an error
    /// (bad YAML, an unsupported kind) the objects before it stay stored.
    pub fn load_yaml_str(&self, text: &str) -> Result<usize, String> {
        let objects = load::parse_documents(text)?;
        let n = objects.len();
        for obj in objects {
            self.try_put(obj)?;
        }
        Ok(n)
    }

    /// [`ApiServer::load_yaml_str`] on every `.yaml`/`.yml` file under `dir`, recursively, in
    /// path order. Returns the number of objects stored.
    pub fn load_yaml_dir(&self, dir: &Path) -> Result<usize, String> {
        let mut n = 0;
        for file in load::yaml_files(dir)? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            n += self
                .load_yaml_str(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        Ok(n)
    }

    /// [`ApiServer::load_yaml_dir`] for a directory, else [`ApiServer::load_yaml_str`] on the
    /// file's text. Returns the number of objects stored.
    pub fn load_yaml_path(&self, path: &Path) -> Result<usize, String> {
        if path.is_dir() {
            return self.load_yaml_dir(path);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        self.load_yaml_str(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Authorizes every later request by `rules`, a ClusterRole's `rules` list (e.g.
    /// `[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]`), as if bound to every
    /// caller by a ClusterRoleBinding: resource requests they do not allow get the real
    /// server's 403, and SelfSubjectAccessReviews answer from them (see the module docs).
    ///
    /// # Panics
    /// If `rules` is not a list of rules.
    pub fn set_rbac(&self, rules: &Value) {
        let rules = rbac::parse_rules(rules).unwrap_or_else(|e| panic!("set_rbac: {e}"));
        *lock(&self.shared.rbac) = rbac::Rbac::Rules(rules);
    }

    /// [`ApiServer::set_rbac`] with the `rules` of the ClusterRole `name` of a multi-document
    /// YAML manifest (e.g. `examples/deploy/rbac.yaml`, ClusterRole `plexus`).
    pub fn set_rbac_from_yaml(&self, manifest: &str, name: &str) -> Result<(), String> {
        let rules = rbac::cluster_role_rules(manifest, name)?;
        let rules = rbac::parse_rules(&rules)?;
        *lock(&self.shared.rbac) = rbac::Rbac::Rules(rules);
        Ok(())
    }

    /// Allows every request again (the default).
    pub fn allow_all(&self) {
        *lock(&self.shared.rbac) = rbac::Rbac::AllowAll;
    }

    /// `true`: the watch cache lags: reads of one object with `resourceVersion=0` (which the
    /// real server answers from that cache) see the objects as they are now, not what is
    /// stored, changed or deleted after; `false`: it catches up. Other reads always see the
    /// latest.
    pub fn lag_cache(&self, lag: bool) {
        lock(&self.shared.store).lag_cache(lag);
    }

    /// Delays every response (failures and 401s included) by `latency`; zero turns it off.
    /// The same as [`ApiServer::set_latencies`] with `latency` for reads and writes.
    pub fn set_latency(&self, latency: Duration) {
        self.set_latencies(Latencies::uniform(latency));
    }

    /// Delays every response by its kind's latency (reads, writes; failures and 401s
    /// included) and every TLS handshake by `handshake`, as a real API server takes
    /// ([`Latencies::REALISTIC`]); the default answers at once.
    pub fn set_latencies(&self, latencies: Latencies) {
        lock(&self.shared.faults).latency = latencies;
    }

    /// Delays the requests counted under `key` (see [`ApiServer::counters`], e.g.
    /// `"POST events"`) by `latency` instead of their method's; `None` gives them back their
    /// method's latency.
    pub fn set_latency_matching(&self, key: &str, latency: Option<Duration>) {
        let mut faults = lock(&self.shared.faults);
        match latency {
            Some(d) => faults.delays.insert(key.to_owned(), d),
            None => faults.delays.remove(key),
        };
    }

    /// Answers the next `n` requests (any path, before authentication) with HTTP `code` and a
    /// `Status` body (`reason` as the real server gives for that code, e.g. 503
    /// `ServiceUnavailable`; 429 also carries `Retry-After: 1`). Replaces any armed failure;
    /// `n = 0` disarms.
    pub fn fail_next(&self, n: u32, code: u16) {
        lock(&self.shared.faults).fail_next(n, code);
    }

    /// Answers the next `n` requests counted under `key` (see [`ApiServer::counters`], e.g.
    /// `"PATCH pods/status"`) with HTTP `code` and a `Status` body, like
    /// [`ApiServer::fail_next`] but leaving every other request alone. Such a request takes its
    /// targeted failure before any failure armed with [`ApiServer::fail_next`] (which it then
    /// does not use up). Replaces the failure armed for the same `key`; failures for different
    /// keys are armed side by side; `n = 0` disarms `key`.
    pub fn fail_next_matching(&self, key: &str, n: u32, code: u16) {
        lock(&self.shared.faults).fail_next_matching(key, n, code);
    }

    /// Like [`ApiServer::fail_next`] with `body` sent verbatim as `content_type` (e.g. invalid
    /// JSON, or an HTML page from a proxy).
    pub fn fail_next_with_body(&self, n: u32, code: u16, body: &str, content_type: &str) {
        lock(&self.shared.faults).fail_next_with_body(
            n,
            code,
            body.as_bytes().to_vec(),
            content_type,
        );
    }

    /// `true`: closes the listening socket and every open connection, so connects get
    /// ECONNREFUSED and pooled keep-alive connections break. `false`: listens on the same port
    /// again. Returns once done.
    ///
    /// # Panics
    /// If the port cannot be bound again (another process took it) or the server thread does
    /// not answer in time.
    pub fn refuse_connections(&self, refuse: bool) {
        let (tx, rx) = mpsc::channel();
        self.control
            .send(Control::Refuse(refuse, tx))
            .expect("the API stand-in's server thread is gone");
        match rx.recv_timeout(CONTROL_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("refuse_connections({refuse}): {e}"),
            Err(_) => panic!("refuse_connections({refuse}): no answer in {CONTROL_TIMEOUT:?}"),
        }
    }

    /// How many requests arrived, by `"<VERB> <resource>[/<subresource>]"`: `GET` (one object),
    /// `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE` and `pods`,
    /// `network-attachment-definitions`, `events`, `namespaces`, e.g. `"GET pods"`,
    /// `"PATCH pods/status"`, `"LIST network-attachment-definitions"`,
    /// `"POST selfsubjectaccessreviews"`. Discovery
    /// (`/version`, `/api`, `/apis`, ...) counts as `"GET discovery"`, health checks as
    /// `"GET healthz"`, anything else as `"<METHOD> unknown"`. Every request counts, whatever it
    /// was answered (401, injected failure, 404...).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.log).counters.clone()
    }

    /// One counter of [`ApiServer::counters`], 0 when absent.
    pub fn count(&self, key: &str) -> u64 {
        lock(&self.shared.log)
            .counters
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Zeroes the counters (and [`ApiServer::max_in_flight`]) and forgets the recorded
    /// requests.
    pub fn reset_counters(&self) {
        let mut log = lock(&self.shared.log);
        log.counters.clear();
        log.records.clear();
        log.max_in_flight = log.in_flight;
    }

    /// The TLS connections accepted since the start, by the protocol ALPN chose (`"h2"` or
    /// `"http/1.1"`; `"none"` when the client offered no ALPN).
    pub fn connections(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.log).connections.clone()
    }

    /// The most requests being answered at once (over all connections) since the start or
    /// the last [`ApiServer::reset_counters`].
    pub fn max_in_flight(&self) -> u64 {
        lock(&self.shared.log).max_in_flight
    }

    /// The requests answered so far (the most recent 10 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).records.iter().cloned().collect()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}
