//! The real [`KubeApi`]: the `kube` client on a current-thread runtime, every call bounded.
//!
//! Configuration, in order:
//! - the node config's `kubeconfig` (a token file named there is read on every run, so
//!   rotated service-account tokens are picked up: plexus is a new process each time; a JSON
//!   kubeconfig, which `plexus install` writes, is parsed as JSON, see `read_kubeconfig`);
//! - else in-cluster configuration when `KUBERNETES_SERVICE_HOST` is set;
//! - else no client ([`Client::new`] returns `None`): plexus then works from the node config
//!   alone.
//!
//! Bounds: a connect timeout (`apiConnectTimeoutSeconds`, default 2 s) and a budget per call
//! (`apiTimeoutSeconds`, default 5 s) that covers every attempt and back-off. Transient failures
//! (connection refused or reset, timeouts, 429, 5xx) are retried with a doubling back-off
//! starting at 50 ms while the budget lasts; 401, 403 and 404 are answered at once. kube's own
//! retry is switched off so the budget is the only bound. Events get a shorter budget of their
//! own and a single attempt: they never delay or fail a CNI command.
//!
//! # One connection, one worker
//!
//! The runtime lives on a thread of its own (`plexus-api`) that runs a queue of jobs, and every
//! call of a run shares one HTTPS connection (one TLS handshake per plexus process; the
//! transport is [`super::transport`]). Once the connection is known to be HTTP/2 (its TLS
//! handshake negotiated `h2`, which the Kubernetes API server offers, or an answer came over
//! HTTP/2), the jobs run concurrently on it; over HTTP/1.1 they run one after the other, so
//! that nothing races for a second connection. A job queued while the connection is still
//! being made waits for its protocol first, so the first requests of a run are concurrent
//! too. Reads and writes wait for their answer; Events do not: they are queued and the caller
//! goes on (ADD hands its `AddedInterface` Events to a detached sender once it has committed,
//! see [`super::events`]; the sender queues them here, concurrently on HTTP/2). Dropping the
//! [`Client`] closes the queue and waits, at most the Event budget plus [`FLUSH_MARGIN`], until
//! every queued Event has been answered, and not for the thread itself to end (its wake-up and
//! the connection's closing handshake): the process ends with it.
//!
//! ADD's pod read can be started early ([`KubeApi::prefetch_pod`], called before the journal
//! directory is opened): it is queued like any call, with the same retries and budget, and the
//! `pod` call that follows takes its answer, so the connection is being made while plexus goes
//! on with its own start. The reads of a pod's distinct NADs are queued together the same way
//! ([`KubeApi::prefetch_nads`]): on HTTP/2 they take one round trip, not one each.
//!
//! # Reads from the API server's cache
//!
//! The pod and NAD reads ask for `resourceVersion=0`: the API server answers them from its
//! watch cache instead of a quorum read of etcd, which is what keeps a burst of pods from
//! becoming a burst of etcd reads (kubelets and controllers read the same way). The cache
//! can lag behind storage by a moment, so a read it answers with "not found" is repeated
//! against storage before plexus believes it (`Read::Latest`), and so is a pod whose UID is
//! not the runtime's ([`KubeApi::pod_latest`], from [`super::pod::lookup`]): a NAD or a pod
//! created a moment ago, or a pod recreated under the same name, is never refused because of
//! the cache. A NAD edited a moment ago may be read as it was before the edit, as by any
//! client of the cache; editing a NAD never changes the pods already attached anyway.
//!
//! Tokens and kubeconfig contents never reach a log or an error message. The kubeconfig and
//! the `tokenFile` it names are checked before use ([`crate::perms::secret_file`]): owned by
//! plexus's user or root, not writable by anyone else (refused), not readable by anyone else
//! (set to 0600). [`Client::new_read_only`], for `plexus doctor`, applies the same rules
//! without changing a mode.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{
    Api, ApiResource, DynamicObject, GetParams, ListParams, PartialObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use super::api::{Access, Decision, EventType, KubeApi, Nad, PodMeta};
use super::transport::{self, Multiplexed};
use crate::cni::Error;
use crate::devices::dra::{PodClaims, ResourceClaim, ResourceSlice};

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default budget of one API call, retries included.
pub const DEFAULT_CALL_BUDGET: Duration = Duration::from_secs(5);
/// Budget of one Event (single attempt).
pub const EVENT_BUDGET: Duration = Duration::from_millis(500);
/// How long dropping a [`Client`] waits for queued Events beyond their budget.
pub const FLUSH_MARGIN: Duration = Duration::from_millis(500);
/// How long dropping a [`Client`] with the default Event budget waits for queued Events.
pub const FLUSH_BOUND: Duration = Duration::from_secs(1);

/// How to build the client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The node config's `kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub call_budget: Duration,
    /// The budget of each Event; dropping the client waits for queued Events at most this
    /// long plus [`FLUSH_MARGIN`]. [`EVENT_BUDGET`] by default; longer in the detached Event
    /// sender ([`super::events::DETACHED_EVENT_BUDGET`]), which nobody waits for.
    pub event_budget: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            kubeconfig: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            call_budget: DEFAULT_CALL_BUDGET,
            event_budget: EVENT_BUDGET,
        }
    }
}

/// The NAD resource (group `k8s.cni.cncf.io`, version `v1`), without a derived type.
pub fn nad_resource() -> ApiResource {
    ApiResource {
        group: "k8s.cni.cncf.io".into(),
        version: "v1".into(),
        api_version: "k8s.cni.cncf.io/v1".into(),
        kind: "NetworkAttachmentDefinition".into(),
        plural: "network-attachment-definitions".into(),
    }
}

/// The pod resource, read as a [`DynamicObject`] when DRA needs its `spec` and `status`: only
/// the few fields [`PodClaims`] reads are parsed, not the whole typed Pod.
fn pod_resource() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
    }
}

/// A `resource.k8s.io/v1` resource (DRA), read untyped (see [`crate::devices::dra`]).
fn dra_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "resource.k8s.io".into(),
        version: "v1".into(),
        api_version: "resource.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The kube client and the worker thread its runtime runs on.
pub struct Client {
    client: kube::Client,
    server: String,
    budget: Duration,
    event_budget: Duration,
    /// How the client was built: the detached Event sender builds its own from them.
    options: ClientOptions,
    /// The detached Event sender started ahead ([`KubeApi::prepare_events_after_exit`]).
    pending_sender: Mutex<Option<super::events::Pending>>,
    worker: Worker,
    /// Pod reads started by [`KubeApi::prefetch_pod`].
    prefetched_pods: Prefetched<Option<PartialObjectMeta<Pod>>>,
    /// NAD reads started by [`KubeApi::prefetch_nads`].
    prefetched_nads: Prefetched<Option<DynamicObject>>,
}

/// The pending answers of reads started ahead, by (namespace, name); the call that follows
/// takes its answer instead of reading again.
struct Prefetched<T>(Mutex<HashMap<(String, String), Answer<T>>>);

/// The pending answer of a call queued on the worker.
type Answer<T> = mpsc::Receiver<Result<T, Error>>;

impl<T> Prefetched<T> {
    fn new() -> Self {
        Prefetched(Mutex::new(HashMap::new()))
    }

    fn put(&self, namespace: &str, name: &str, rx: Answer<T>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert((namespace.to_owned(), name.to_owned()), rx);
        }
    }

    fn take(&self, namespace: &str, name: &str) -> Option<Answer<T>> {
        self.0
            .lock()
            .ok()?
            .remove(&(namespace.to_owned(), name.to_owned()))
    }
}

/// A unit of work for the worker.
type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The `plexus-api` thread: runs queued jobs on the runtime, concurrently once the connection
/// is multiplexed (HTTP/2), else one after the other.
struct Worker {
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    /// Jobs queued and not finished yet, signalled each time one finishes.
    unfinished: Arc<(Mutex<usize>, Condvar)>,
    /// How long dropping the worker waits for its unfinished jobs.
    flush_bound: Duration,
}

impl Worker {
    fn start(
        rt: tokio::runtime::Runtime,
        multiplexed: Multiplexed,
        flush_bound: Duration,
    ) -> Result<Worker, Error> {
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("plexus-api".into())
            .spawn(move || {
                rt.block_on(async {
                    let mut running = tokio::task::JoinSet::new();
                    while let Some(job) = queue.recv().await {
                        // A job queued while the connection is being made (ADD's NAD reads,
                        // when no pod read came first) waits for its protocol, not for the
                        // job before it: on HTTP/2 they then run together.
                        multiplexed.protocol_known().await;
                        if multiplexed.get() {
                            running.spawn(job());
                        } else {
                            job().await;
                        }
                        while running.try_join_next().is_some() {}
                    }
                    while running.join_next().await.is_some() {}
                });
            })
            .map_err(|e| Error::io("starting the Kubernetes client thread", e))?;
        Ok(Worker {
            jobs: Some(jobs),
            unfinished: Arc::new((Mutex::new(0), Condvar::new())),
            flush_bound,
        })
    }

    /// Queues `fut` without waiting for it.
    fn submit<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Counted until it has run to its end; one that never does (the thread gone) keeps
        // `drop` waiting, within its bound.
        count(&self.unfinished, 1);
        let unfinished = self.unfinished.clone();
        let job: Job = Box::new(move || {
            Box::pin(async move {
                fut.await;
                count(&unfinished, -1);
            })
        });
        let queued = self.jobs.as_ref().is_some_and(|q| q.send(job).is_ok());
        if !queued {
            count(&self.unfinished, -1);
        }
        queued
    }

    /// Queues `fut`; its output comes on the returned channel (see [`answer`]).
    fn queue<T, F>(&self, fut: F) -> Result<mpsc::Receiver<T>, Error>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let queued = self.submit(async move {
            let _ = tx.send(fut.await);
        });
        if !queued {
            return Err(Error::Internal(
                "the Kubernetes client thread is gone".into(),
            ));
        }
        Ok(rx)
    }

    /// Runs `fut` on the worker and waits for its output.
    fn run<T, F>(&self, fut: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        answer(self.queue(fut)?)
    }
}

/// Waits for the output of a job [`Worker::queue`]d.
fn answer<T>(rx: mpsc::Receiver<T>) -> Result<T, Error> {
    rx.recv()
        .map_err(|_| Error::Internal("the Kubernetes client thread stopped".into()))
}

/// Adds `by` to the count of unfinished jobs and wakes whoever waits for it.
fn count(unfinished: &(Mutex<usize>, Condvar), by: isize) {
    let (n, changed) = unfinished;
    let mut n = n.lock().unwrap_or_else(|p| p.into_inner());
    *n = n.saturating_add_signed(by);
    changed.notify_all();
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue ends the thread once the jobs already queued (Events) are done.
        self.jobs = None;
        // Waits, within its bound, until every queued job (the Events) has been answered, and
        // no longer: not for the thread to end, which would add its wake-up and the
        // connection's closing handshake to the call; the thread ends with the process.
        let (n, changed) = &*self.unfinished;
        let n = n.lock().unwrap_or_else(|p| p.into_inner());
        let waited = changed.wait_timeout_while(n, self.flush_bound, |n| *n > 0);
        if waited.is_ok_and(|(_, w)| w.timed_out()) {
            tracing::warn!(
                bound_ms = self.flush_bound.as_millis() as u64,
                "queued Kubernetes requests (Events, an unused pod prefetch) not finished in time; not waiting for them"
            );
        }
    }
}

fn config_error(what: String, e: impl std::fmt::Display) -> Error {
    Error::Kubernetes {
        msg: what,
        details: e.to_string(),
        transient: false,
    }
}

impl Client {
    /// Builds the client, or `None` when there is neither a kubeconfig nor an in-cluster
    /// environment.
    pub fn new(opts: &ClientOptions) -> Result<Option<Client>, Error> {
        Self::build(opts, FileCheck::Enforce)
    }

    /// [`Client::new`] for the read-only commands (`plexus doctor`): the kubeconfig and token
    /// files are checked by the same rules and refused alike, but a mode is never changed
    /// ([`crate::perms::inspect_secret_file`]).
    pub fn new_read_only(opts: &ClientOptions) -> Result<Option<Client>, Error> {
        Self::build(opts, FileCheck::Inspect)
    }

    fn build(opts: &ClientOptions, check: FileCheck) -> Result<Option<Client>, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the Kubernetes client runtime", e))?;
        let mut config = match &opts.kubeconfig {
            Some(path) => rt.block_on(from_kubeconfig(path, check))?,
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                kube::Config::incluster().map_err(|e| {
                    config_error(
                        "cannot use the in-cluster Kubernetes configuration".into(),
                        e,
                    )
                })?
            }
            None => return Ok(None),
        };
        config.connect_timeout = Some(opts.connect_timeout);
        config.read_timeout = Some(opts.call_budget);
        config.write_timeout = Some(opts.call_budget);
        config.default_retry = false;
        let server = config.cluster_url.to_string();
        let (client, multiplexed) = {
            let _in_rt = rt.enter();
            transport::client(config).map_err(|e| {
                config_error(format!("cannot build a Kubernetes client for {server}"), e)
            })?
        };
        let worker = Worker::start(rt, multiplexed, opts.event_budget + FLUSH_MARGIN)?;
        tracing::debug!(server, "Kubernetes client ready");
        Ok(Some(Client {
            client,
            server,
            budget: opts.call_budget,
            event_budget: opts.event_budget,
            options: opts.clone(),
            pending_sender: Mutex::new(None),
            worker,
            prefetched_pods: Prefetched::new(),
            prefetched_nads: Prefetched::new(),
        }))
    }

    /// Runs `attempt` on the worker until it succeeds, fails for good, or the budget is spent,
    /// and waits for the outcome.
    fn call<T, F, Fut>(&self, what: String, budget: Duration, attempt: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, kube::Error>> + Send + 'static,
    {
        self.worker
            .run(attempts(self.server.clone(), what, budget, true, attempt))?
    }
}

/// The retry loop of one call: `attempt` until it succeeds, fails for good (or once, without
/// `retry`), or the budget is spent.
async fn attempts<T, F, Fut>(
    server: String,
    what: String,
    budget: Duration,
    retry: bool,
    attempt: F,
) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let started = Instant::now();
    let deadline = started + budget;
    let mut delay = Duration::from_millis(50);
    let mut tries = 0u32;
    loop {
        tries += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = tokio::time::timeout(left, attempt()).await;
        let err = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(exhausted(
                    &server,
                    &what,
                    started,
                    tries,
                    "no answer in time",
                ));
            }
        };
        if !is_transient(&err) {
            return Err(refused(&server, &what, &err));
        }
        tracing::debug!(%what, tries, error = %err, "transient Kubernetes API failure");
        if !retry || Instant::now() + delay >= deadline {
            return Err(exhausted(&server, &what, started, tries, &err.to_string()));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

fn exhausted(server: &str, what: &str, started: Instant, tries: u32, last: &str) -> Error {
    Error::Kubernetes {
        msg: format!(
            "the Kubernetes API at {server} did not answer {what} within {:.1}s ({tries} {})",
            started.elapsed().as_secs_f64(),
            if tries == 1 { "attempt" } else { "attempts" }
        ),
        details: format!("last error: {last}"),
        transient: true,
    }
}

fn refused(server: &str, what: &str, e: &kube::Error) -> Error {
    let (msg, hint) = match e {
        kube::Error::Api(s) if s.code == 401 => (
            format!(
                "the Kubernetes API at {server} rejected plexus's credentials (401 Unauthorized) {what}"
            ),
            "check the token of the kubeconfig named in the node config (it may have expired or been rotated)",
        ),
        kube::Error::Api(s) if s.code == 403 => (
            format!(
                "plexus is not allowed {what} (403 Forbidden): {}",
                s.message
            ),
            "grant plexus's service account the RBAC it needs: get on pods and network-attachment-definitions, patch on pods/status, create on events",
        ),
        // The UID a status write carries (see `set_pod_annotation`) is not the pod's.
        kube::Error::Api(s) if s.code == 422 && s.message.contains("metadata.uid") => (
            format!(
                "the Kubernetes API refused {what}: the pod was deleted and recreated under the same name ({} {}: {})",
                s.code, s.reason, s.message
            ),
            "the runtime will tear this sandbox down and create a new one for the new pod",
        ),
        kube::Error::Api(s) => (
            format!(
                "the Kubernetes API failed {what} ({} {}): {}",
                s.code, s.reason, s.message
            ),
            "",
        ),
        other => (
            format!("the Kubernetes API gave an unusable answer {what}: {other}"),
            "",
        ),
    };
    Error::Kubernetes {
        msg,
        details: hint.into(),
        transient: false,
    }
}

/// How the kubeconfig and token files are checked before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileCheck {
    /// [`crate::perms::secret_file`]: refused, or set to 0600 when others may read them.
    Enforce,
    /// [`crate::perms::inspect_secret_file`]: refused alike, never changed.
    Inspect,
}

impl FileCheck {
    fn apply(self, path: &Path, what: &str) -> Result<(), Error> {
        match self {
            FileCheck::Enforce => crate::perms::secret_file(path, what),
            FileCheck::Inspect => crate::perms::inspect_secret_file(path, what).map(drop),
        }
    }
}

async fn from_kubeconfig(path: &Path, check: FileCheck) -> Result<kube::Config, Error> {
    // Who may change or read it first (see `crate::perms`): it names the server, the CA and the
    // token plexus uses as root on every node.
    check.apply(path, "the kubeconfig")?;
    let kc = read_kubeconfig(path)
        .map_err(|e| config_error(format!("cannot read the kubeconfig {}", path.display()), e))?;
    for token_file in kc
        .auth_infos
        .iter()
        .filter_map(|a| a.auth_info.as_ref()?.token_file.as_deref())
    {
        check.apply(Path::new(token_file), "the token file of the kubeconfig")?;
    }
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| config_error(format!("cannot use the kubeconfig {}", path.display()), e))
}

/// Reads a kubeconfig. A JSON kubeconfig (what `plexus install` writes) whose file
/// references are all absolute is parsed as JSON; anything else goes through kube's reader
/// (YAML, several documents, file references relative to the kubeconfig's directory). The
/// result is the same; the difference is time on every ADD: a cold YAML parse of a one-cluster
/// kubeconfig costs several times the JSON parse (docs/benchmarks.md, changelog).
pub fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && let Ok(kc) = serde_json::from_slice::<Kubeconfig>(&bytes)
        && !has_relative_file_reference(&kc)
    {
        return Ok(kc);
    }
    Kubeconfig::read_from(path).map_err(|e| e.to_string())
}

/// Whether a file named in `kc` is relative (kube's reader resolves those against the
/// kubeconfig's directory; an exec command without a `/` is looked up in `PATH` instead).
fn has_relative_file_reference(kc: &Kubeconfig) -> bool {
    let relative = |p: &Option<String>| p.as_deref().is_some_and(|p| Path::new(p).is_relative());
    let clusters = kc
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref())
        .any(|c| relative(&c.certificate_authority));
    let users = kc
        .auth_infos
        .iter()
        .filter_map(|a| a.auth_info.as_ref())
        .any(|a| {
            relative(&a.client_certificate)
                || relative(&a.client_key)
                || relative(&a.token_file)
                || a.exec.as_ref().is_some_and(|x| {
                    x.command.as_deref().is_some_and(|c| c.contains('/')) && relative(&x.command)
                })
        });
    clusters || users
}

/// Connection-level failures, timeouts, 429 and 5xx are worth another attempt.
fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Where a read is answered from (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The API server's watch cache (`resourceVersion=0`): cheap, possibly a moment behind.
    Cache,
    /// Storage (no `resourceVersion`): the latest.
    Latest,
}

impl Read {
    fn params(self) -> GetParams {
        match self {
            Read::Cache => GetParams::any(),
            Read::Latest => GetParams::default(),
        }
    }
}

impl Client {
    /// The retry loop of reading a pod's metadata (`None`: no such pod).
    fn pod_read(
        &self,
        namespace: &str,
        name: &str,
        from: Read,
    ) -> impl Future<Output = Result<Option<PartialObjectMeta<Pod>>, Error>> + Send + 'static {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("reading pod {namespace}/{name}");
        let owned = name.to_owned();
        let params = from.params();
        attempts(self.server.clone(), what, self.budget, true, move || {
            let (api, name, params) = (api.clone(), owned.clone(), params.clone());
            async move { api.get_metadata_opt_with(&name, &params).await }
        })
    }

    /// The retry loop of reading a NAD (`None`: no such NAD).
    fn nad_read(
        &self,
        namespace: &str,
        name: &str,
        from: Read,
    ) -> impl Future<Output = Result<Option<DynamicObject>, Error>> + Send + 'static {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &nad_resource());
        let what = format!("reading NetworkAttachmentDefinition {namespace}/{name}");
        let owned = name.to_owned();
        let params = from.params();
        attempts(self.server.clone(), what, self.budget, true, move || {
            let (api, name, params) = (api.clone(), owned.clone(), params.clone());
            async move {
                match api.get_with(&name, &params).await {
                    Ok(nad) => Ok(Some(nad)),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
    }

    /// One object by name, `None` when it does not exist; from the cache unless `latest`.
    fn get_object(
        &self,
        api: Api<DynamicObject>,
        what: String,
        name: &str,
        latest: bool,
    ) -> Result<Option<DynamicObject>, Error> {
        let owned = name.to_owned();
        let params = if latest { Read::Latest } else { Read::Cache }.params();
        self.call(what, self.budget, move || {
            let (api, name, params) = (api.clone(), owned.clone(), params.clone());
            async move {
                match api.get_with(&name, &params).await {
                    Ok(obj) => Ok(Some(obj)),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
    }

    /// An object read from the cache (or the answer of a read of it started ahead), read again
    /// from storage when the cache does not have it; `None`: not in storage either.
    fn settled<T, Fut>(
        &self,
        object: &str,
        ahead: Option<Answer<Option<T>>>,
        read: impl Fn(Read) -> Fut,
    ) -> Result<Option<T>, Error>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<Option<T>, Error>> + Send + 'static,
    {
        let found = match ahead {
            Some(rx) => answer(rx)?,
            None => self.worker.run(read(Read::Cache))?,
        }?;
        if found.is_some() {
            return Ok(found);
        }
        tracing::debug!(object, "not in the API server's cache; reading storage");
        self.worker.run(read(Read::Latest))?
    }

    fn pod_from(&self, namespace: &str, name: &str, from: Read) -> Result<PodMeta, Error> {
        let read = |from| self.pod_read(namespace, name, from);
        let found = match from {
            Read::Cache => self.settled(
                &format!("pod {namespace}/{name}"),
                self.prefetched_pods.take(namespace, name),
                read,
            )?,
            Read::Latest => self.worker.run(read(Read::Latest))??,
        };
        let Some(pod) = found else {
            return Err(Error::Kubernetes {
                msg: format!("pod {namespace}/{name} not found in the Kubernetes API"),
                details: "the pod was deleted, or CNI_ARGS names the wrong pod".into(),
                transient: false,
            });
        };
        Ok(PodMeta {
            namespace: namespace.into(),
            name: name.into(),
            uid: pod.metadata.uid.unwrap_or_default(),
            annotations: pod.metadata.annotations.unwrap_or_default(),
        })
    }
}

impl KubeApi for Client {
    fn prefetch_pod(&self, namespace: &str, name: &str) {
        if let Ok(rx) = self
            .worker
            .queue(self.pod_read(namespace, name, Read::Cache))
        {
            self.prefetched_pods.put(namespace, name, rx);
        }
    }

    fn prefetch_nads(&self, nads: &[(String, String)]) {
        for (namespace, name) in nads {
            if let Ok(rx) = self
                .worker
                .queue(self.nad_read(namespace, name, Read::Cache))
            {
                self.prefetched_nads.put(namespace, name, rx);
            }
        }
    }

    fn pod(&self, namespace: &str, name: &str) -> Result<PodMeta, Error> {
        self.pod_from(namespace, name, Read::Cache)
    }

    fn pod_latest(&self, namespace: &str, name: &str) -> Result<PodMeta, Error> {
        self.pod_from(namespace, name, Read::Latest)
    }

    fn nad(&self, namespace: &str, name: &str) -> Result<Option<Nad>, Error> {
        let found = self.settled(
            &format!("NetworkAttachmentDefinition {namespace}/{name}"),
            self.prefetched_nads.take(namespace, name),
            |from| self.nad_read(namespace, name, from),
        )?;
        Ok(found.map(|obj| nad_of(obj, namespace, name)))
    }

    fn set_pod_annotation(&self, pod: &PodMeta, key: &str, value: &str) -> Result<(), Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let mut meta = json!({"annotations": {key: value}});
        if !pod.uid.is_empty() {
            // A precondition: a changed UID is refused (422, "field is immutable").
            meta["uid"] = json!(pod.uid);
        }
        let patch = Patch::Merge(json!({ "metadata": meta }));
        let what = format!("writing annotation {key} of pod {}", pod.key());
        let owned = pod.name.clone();
        self.call(what, self.budget, move || {
            let (api, name, patch) = (api.clone(), owned.clone(), patch.clone());
            async move {
                api.patch_status(&name, &PatchParams::default(), &patch)
                    .await
            }
        })
        .map(drop)
    }

    fn prepare_events_after_exit(&self) {
        let mut pending = self
            .pending_sender
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.is_none() {
            match super::events::Pending::start() {
                Ok(p) => *pending = Some(p),
                Err(e) => tracing::debug!(error = %e, "no detached Event sender started ahead"),
            }
        }
    }

    fn events_after_exit(&self, pod: &PodMeta, events: &[(EventType, String, String)]) {
        let pending = self
            .pending_sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let sent = pending
            .map_or_else(super::events::Pending::start, Ok)
            .and_then(|p| p.send(&self.options, pod, events));
        if let Err(e) = sent {
            tracing::warn!(error = %e, "no detached Event sender; sending the Events from here");
            for (kind, reason, message) in events {
                self.event(pod, *kind, reason, message);
            }
        }
    }

    fn event(&self, pod: &PodMeta, kind: EventType, reason: &str, message: &str) {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", pod.name)),
                namespace: Some(pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(kind.as_str().into()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            source: Some(EventSource {
                component: Some("plexus".into()),
                host: None,
            }),
            reporting_component: Some("plexus".into()),
            ..Event::default()
        };
        let what = format!("recording event {reason} for pod {}", pod.key());
        // Queued, not waited for (see the module docs); failures are only logged.
        let job = attempts(
            self.server.clone(),
            what,
            self.event_budget,
            false,
            move || {
                let (api, ev) = (api.clone(), ev.clone());
                async move { api.create(&PostParams::default(), &ev).await }
            },
        );
        let queued = self.worker.submit(async move {
            if let Err(e) = job.await {
                tracing::warn!(error = %e, "event not recorded");
            }
        });
        if !queued {
            tracing::warn!("event not recorded: the Kubernetes client thread is gone");
        }
    }

    fn pod_claims(
        &self,
        namespace: &str,
        name: &str,
        latest: bool,
    ) -> Result<Option<PodClaims>, Error> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &pod_resource());
        let found =
            self.get_object(api, format!("reading pod {namespace}/{name}"), name, latest)?;
        Ok(found.map(|obj| PodClaims::from_pod(&obj.data)))
    }

    fn resource_claim(
        &self,
        namespace: &str,
        name: &str,
        latest: bool,
    ) -> Result<Option<ResourceClaim>, Error> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &dra_resource("ResourceClaim", "resourceclaims"),
        );
        let what = format!("reading ResourceClaim {namespace}/{name}");
        let found = self.get_object(api, what, name, latest)?;
        Ok(found.map(|obj| ResourceClaim::from_object(namespace, name, &obj.data)))
    }

    fn resource_slices(
        &self,
        driver: &str,
        node: Option<&str>,
    ) -> Result<Vec<ResourceSlice>, Error> {
        let api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &dra_resource("ResourceSlice", "resourceslices"),
        );
        let mut selector = format!("spec.driver={driver}");
        if let Some(node) = node {
            selector.push_str(&format!(",spec.nodeName={node}"));
        }
        // From the watch cache, all at once: a driver's slices of one node are few.
        let params = ListParams::default().fields(&selector).match_any();
        let what = format!("listing ResourceSlices ({selector})");
        let list = self.call(what, self.budget, move || {
            let (api, params) = (api.clone(), params.clone());
            async move { api.list(&params).await }
        })?;
        Ok(list
            .items
            .iter()
            .map(|obj| ResourceSlice::from_object(&obj.data))
            .collect())
    }

    fn server_version(&self) -> Result<String, Error> {
        let client = self.client.clone();
        let info = self.call(
            "reading the server version".into(),
            self.budget,
            move || {
                let client = client.clone();
                async move { client.apiserver_version().await }
            },
        )?;
        Ok(info.git_version)
    }

    fn all_nads(&self) -> Result<Vec<Nad>, Error> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &nad_resource());
        let mut nads = Vec::new();
        let mut next: Option<String> = None;
        // Pages of 500, as kubectl asks, each within the call budget.
        loop {
            let mut params = ListParams::default().limit(LIST_PAGE);
            if let Some(token) = &next {
                params = params.continue_token(token);
            }
            let api = api.clone();
            let page = self.call(
                "listing NetworkAttachmentDefinitions in all namespaces".into(),
                self.budget,
                move || {
                    let (api, params) = (api.clone(), params.clone());
                    async move { api.list(&params).await }
                },
            )?;
            nads.extend(page.items.into_iter().map(|obj| {
                let namespace = obj.metadata.namespace.clone().unwrap_or_default();
                let name = obj.metadata.name.clone().unwrap_or_default();
                nad_of(obj, &namespace, &name)
            }));
            next = page.metadata.continue_.filter(|c| !c.is_empty());
            if next.is_none() {
                break;
            }
        }
        nads.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(nads)
    }

    fn find_pod(&self, namespace: &str, name: &str) -> Result<Option<PodMeta>, Error> {
        let found = self
            .worker
            .run(self.pod_read(namespace, name, Read::Latest))??;
        Ok(found.map(|pod| PodMeta {
            namespace: namespace.into(),
            name: name.into(),
            uid: pod.metadata.uid.unwrap_or_default(),
            annotations: pod.metadata.annotations.unwrap_or_default(),
        }))
    }

    fn access_review(&self, access: &Access<'_>) -> Result<Decision, Error> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: some(access.verb),
                    group: Some(access.group.to_owned()),
                    resource: some(access.resource),
                    subresource: some(access.subresource),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let answer = self.call(
            format!("asking whether plexus may {}", access.describe()),
            self.budget,
            move || {
                let (api, review) = (api.clone(), review.clone());
                async move { api.create(&PostParams::default(), &review).await }
            },
        )?;
        let status = answer.status.unwrap_or_default();
        Ok(Decision {
            allowed: status.allowed,
            reason: status.reason.unwrap_or_default(),
        })
    }
}

/// Page size of [`KubeApi::all_nads`].
const LIST_PAGE: u32 = 500;

/// The parts of a NAD object plexus reads.
fn nad_of(obj: DynamicObject, namespace: &str, name: &str) -> Nad {
    Nad {
        namespace: namespace.into(),
        name: name.into(),
        config: obj.data["spec"]["config"].as_str().unwrap_or("").to_owned(),
        annotations: obj.metadata.annotations.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {
                "server": "https://10.0.0.1:6443", "certificate-authority-data": "Q0E="}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        })
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn as_value(kc: &Kubeconfig) -> serde_json::Value {
        serde_json::to_value(kc).unwrap()
    }

    fn worker() -> Worker {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Worker::start(rt, Multiplexed::default(), FLUSH_BOUND).unwrap()
    }

    /// What lets dropping the client skip waiting for its thread: a queued job counts as
    /// unfinished until it has run to its end, and no longer afterwards.
    #[test]
    fn a_job_counts_as_unfinished_until_it_has_run() {
        let w = worker();
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let (ran_tx, ran) = mpsc::channel();
        assert!(w.submit(async move {
            let _ = held.await;
            let _ = ran_tx.send(());
        }));
        let unfinished = || *w.unfinished.0.lock().unwrap();
        assert_eq!(unfinished(), 1);
        release.send(()).unwrap();
        ran.recv_timeout(Duration::from_secs(5))
            .expect("the job ran");
        // It counts itself finished right after its last step.
        let deadline = Instant::now() + Duration::from_secs(5);
        while unfinished() != 0 {
            assert!(
                Instant::now() < deadline,
                "a job that ran still counts as unfinished"
            );
            std::thread::yield_now();
        }
    }

    /// Dropping the client with a job still running (an Event not yet answered) waits for it.
    #[test]
    fn drop_waits_for_a_job_still_running() {
        let w = worker();
        let delivered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = delivered.clone();
        assert!(w.submit(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }));
        drop(w);
        assert!(
            delivered.load(std::sync::atomic::Ordering::SeqCst),
            "drop did not wait for the job"
        );
    }

    #[test]
    fn json_kubeconfig_reads_as_kube_reads_it() {
        let d = tempfile::tempdir().unwrap();
        let doc = kubeconfig(json!({"tokenFile": "/etc/cni/net.d/plexus.d/token"}));
        let p = write(d.path(), "kc", &format!("\n {doc:#}\n"));
        let ours = read_kubeconfig(&p).unwrap();
        assert_eq!(
            as_value(&ours),
            as_value(&Kubeconfig::read_from(&p).unwrap())
        );
        assert_eq!(ours.current_context.as_deref(), Some("x"));
    }

    #[test]
    fn relative_references_and_yaml_go_through_kubes_reader() {
        let d = tempfile::tempdir().unwrap();
        // A relative token file is resolved against the kubeconfig's directory, as kube does.
        let doc = kubeconfig(json!({"tokenFile": "token"}));
        let p = write(d.path(), "kc", &doc.to_string());
        let kc = read_kubeconfig(&p).unwrap();
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        let want = d.path().join("token").display().to_string();
        assert_eq!(user.token_file.as_deref(), Some(want.as_str()));
        // YAML.
        let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\ncurrent-context: x\n";
        let p = write(d.path(), "kc.yaml", yaml);
        let kc = read_kubeconfig(&p).unwrap();
        assert_eq!(as_value(&kc), as_value(&Kubeconfig::read_from(&p).unwrap()));
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://10.0.0.1:6443")
        );
        // Neither: kube's error.
        let p = write(d.path(), "bad", "{ not json: [");
        assert!(read_kubeconfig(&p).is_err());
    }

    #[test]
    fn which_file_references_are_relative() {
        let rel = |user: serde_json::Value| {
            let kc: Kubeconfig = serde_json::from_value(kubeconfig(user)).unwrap();
            has_relative_file_reference(&kc)
        };
        assert!(!rel(json!({"token": "t"})));
        assert!(!rel(
            json!({"tokenFile": "/abs/token", "client-key": "/abs/key"})
        ));
        assert!(rel(json!({"tokenFile": "token"})));
        assert!(rel(json!({"client-certificate": "certs/c.pem"})));
        // An exec command without a `/` is looked up in PATH, not resolved.
        let exec = |c: &str| json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": c}});
        assert!(!rel(exec("aws")));
        assert!(rel(exec("bin/helper")));
        assert!(!rel(exec("/usr/bin/helper")));
        let mut doc = kubeconfig(json!({"token": "t"}));
        doc["clusters"][0]["cluster"]["certificate-authority"] = json!("ca.pem");
        let kc: Kubeconfig = serde_json::from_value(doc).unwrap();
        assert!(has_relative_file_reference(&kc));
    }
}
