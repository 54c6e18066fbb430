//! A stand-in for the kubelet's PodResources API, for plexus's SR-IOV tests and demo.
//!
//! [`PodResourcesServer::start`] binds a unix socket and serves gRPC `v1.PodResourcesLister`
//! on it over HTTP/2 (cleartext, as the kubelet does) from a thread and tokio runtime of its
//! own, until dropped. The messages are those of `plexus-podresources-api`, the crate plexus's
//! client uses: the kubelet's `api.proto` v1 field for field, so the stand-in answers exactly
//! the bytes a kubelet would.
//!
//! What it serves, like the kubelet:
//! - `List`: every pod set with [`PodResourcesServer::set_pod`], containers in the given
//!   order, each with its devices per resource and the DRA claims it uses
//!   (`dynamic_resources`, with driver, pool and device: [`Container::claim`]);
//! - `Get` for one pod (namespace, name); a pod it does not know gets an `Unknown` status
//!   `pod <name> not found in namespace <namespace>`, as from the kubelet;
//! - any other method: `Unimplemented`.
//!
//! Faults and observations, for tests:
//! - [`PodResourcesServer::serve_get`]`(false)`: `Get` answers `Unimplemented`, like a kubelet
//!   before 1.27 (clients must then use `List`);
//! - [`PodResourcesServer::set_delay`]: every call waits that long before answering (a slow
//!   or stuck kubelet);
//! - [`PodResourcesServer::calls`]: every call received, in order (`List`, `Get ns/name`).
//!
//! Dropping the server stops it at once (calls in flight are abandoned) and removes the
//! socket file.
//!
//! ```no_run
//! use plexus_conformance::podresources::{Container, PodResourcesServer};
//!
//! let kubelet = PodResourcesServer::start(std::path::Path::new("/tmp/kubelet.sock"));
//! kubelet.set_pod("default", "web", vec![
//!     Container::new("app").device("example.com/sriov_vf", &["0000:af:00.1", "0000:af:00.2"]),
//! ]);
//! // ... run plexus with "podResourcesSocket": "/tmp/kubelet.sock" ...
//! assert_eq!(kubelet.calls(), ["Get default/web"]);
//! ```
//!
//! The `plexus-podresources` binary serves pods from a JSON file with this module (see
//! [`PodResourcesServer::load`] for the format).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podresources_api as api;
use serde_json::Value;
use tonic::Status;
use tonic_prost::ProstCodec;

/// One container of a pod and the devices the kubelet gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The container's name.
    pub name: String,
    /// `(resource name, device IDs)`, in order.
    pub devices: Vec<(String, Vec<String>)>,
    /// DRA claims the container uses, as the kubelet reports them (`dynamic_resources`):
    /// `(namespace, claim, [(driver, pool, device)])`.
    pub claims: Vec<(String, String, Vec<ClaimedDevice>)>,
}

/// A device of a DRA claim as the kubelet names it: `(driver, pool, device)`.
pub type ClaimedDevice = (String, String, String);

impl Container {
    /// A container without devices.
    pub fn new(name: &str) -> Container {
        Container {
            name: name.to_owned(),
            devices: vec![],
            claims: vec![],
        }
    }

    /// Adds DRA claim `namespace/claim` with its devices `(driver, pool, device)`, reported in
    /// `dynamic_resources` as a kubelet with `KubeletPodResourcesDynamicResources` does.
    pub fn claim(
        mut self,
        namespace: &str,
        claim: &str,
        devices: &[(&str, &str, &str)],
    ) -> Container {
        self.claims.push((
            namespace.to_owned(),
            claim.to_owned(),
            devices
                .iter()
                .map(|(d, p, n)| ((*d).to_owned(), (*p).to_owned(), (*n).to_owned()))
                .collect(),
        ));
        self
    }

    /// Adds devices `ids` of `resource`.
    pub fn device(mut self, resource: &str, ids: &[&str]) -> Container {
        self.devices.push((
            resource.to_owned(),
            ids.iter().map(|s| (*s).to_owned()).collect(),
        ));
        self
    }

    fn to_api(&self) -> api::ContainerResources {
        api::ContainerResources {
            name: self.name.clone(),
            devices: self
                .devices
                .iter()
                .map(|(resource, ids)| api::ContainerDevices {
                    resource_name: resource.clone(),
                    device_ids: ids.clone(),
                    topology: Some(api::TopologyInfo {
                        nodes: vec![api::NumaNode { id: 0 }],
                    }),
                })
                .collect(),
            dynamic_resources: self
                .claims
                .iter()
                .map(|(ns, claim, devices)| api::DynamicResource {
                    claim_name: claim.clone(),
                    claim_namespace: ns.clone(),
                    claim_resources: devices
                        .iter()
                        .map(|(driver, pool, device)| api::ClaimResource {
                            cdi_devices: vec![api::CdiDevice {
                                name: format!("k8s.{driver}/net={device}"),
                            }],
                            driver_name: driver.clone(),
                            pool_name: pool.clone(),
                            device_name: device.clone(),
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

#[derive(Default)]
struct Shared {
    pods: Mutex<Vec<api::PodResources>>,
    no_get: AtomicBool,
    delay: Mutex<Duration>,
    calls: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running PodResources stand-in; stops when dropped. See the [module docs](self).
pub struct PodResourcesServer {
    socket: PathBuf,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PodResourcesServer {
    /// Serves on `socket` (a stale file there is replaced); panics when it cannot. The socket
    /// accepts connections when this returns.
    pub fn start(socket: &Path) -> PodResourcesServer {
        Self::try_start(socket).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`PodResourcesServer::start`], with the failure returned.
    pub fn try_start(socket: &Path) -> Result<PodResourcesServer, String> {
        let err = |what: &str, e: std::io::Error| {
            format!("PodResources stand-in on {}: {what}: {e}", socket.display())
        };
        let _ = std::fs::remove_file(socket);
        let listener =
            std::os::unix::net::UnixListener::bind(socket).map_err(|e| err("binding", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err("setting the socket non-blocking", e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| err("starting its runtime", e))?;
        let listener = {
            let _in_rt = rt.enter();
            tokio::net::UnixListener::from_std(listener).map_err(|e| err("registering", e))?
        };
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("podresources".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        () = accept(listener, serving) => {}
                        _ = stopped => {}
                    }
                });
                // Calls still waiting (a delay) are abandoned, not awaited.
                rt.shutdown_background();
            })
            .map_err(|e| err("starting its thread", e))?;
        Ok(PodResourcesServer {
            socket: socket.to_owned(),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The socket it serves on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sets (or replaces) pod `namespace/name` with `containers`, in that order.
    pub fn set_pod(&self, namespace: &str, name: &str, containers: Vec<Container>) {
        let pod = api::PodResources {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            containers: containers.iter().map(Container::to_api).collect(),
        };
        let mut pods = lock(&self.shared.pods);
        match pods
            .iter_mut()
            .find(|p| p.namespace == namespace && p.name == name)
        {
            Some(p) => *p = pod,
            None => pods.push(pod),
        }
    }

    /// Forgets pod `namespace/name`.
    pub fn remove_pod(&self, namespace: &str, name: &str) {
        lock(&self.shared.pods).retain(|p| !(p.namespace == namespace && p.name == name));
    }

    /// Whether `Get` is served (default) or answers `Unimplemented`.
    pub fn serve_get(&self, on: bool) {
        self.shared.no_get.store(!on, Ordering::SeqCst);
    }

    /// How long every call waits before answering (default none).
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    /// The calls received so far: `List`, `Get <namespace>/<name>`, or the path of an unknown
    /// method.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.shared.calls).clone()
    }

    /// Sets the pods of `doc`:
    /// `{"pods":[{"namespace":"default","name":"web","containers":[{"name":"app",
    /// "devices":{"example.com/sriov_vf":["0000:af:00.1"]}}]}]}` (a container's resources in
    /// the object's key order).
    pub fn load(&self, doc: &Value) -> Result<(), String> {
        let pods = doc["pods"].as_array().ok_or("no \"pods\" list")?;
        for (i, pod) in pods.iter().enumerate() {
            let s = |k: &str| {
                pod[k]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(format!("pods[{i}]: no string {k:?}"))
            };
            let (namespace, name) = (s("namespace")?, s("name")?);
            let mut containers = vec![];
            for c in pod["containers"].as_array().into_iter().flatten() {
                let cname = c["name"]
                    .as_str()
                    .ok_or(format!("pods[{i}]: a container without a name"))?;
                let mut container = Container::new(cname);
                for (resource, ids) in c["devices"].as_object().into_iter().flatten() {
                    let ids: Vec<&str> = ids
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    container = container.device(resource, &ids);
                }
                containers.push(container);
            }
            self.set_pod(&namespace, &name, containers);
        }
        Ok(())
    }
}

impl Drop for PodResourcesServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn accept(listener: tokio::net::UnixListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => continue,
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: http::Request<Incoming>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    let delay = *lock(&shared.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let path = req.uri().path().to_owned();
    let res = match path.as_str() {
        api::LIST_PATH => {
            lock(&shared.calls).push("List".into());
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<
                api::ListPodResourcesResponse,
                api::ListPodResourcesRequest,
            >::default());
            grpc.unary(
                Unary(|_: tonic::Request<api::ListPodResourcesRequest>| {
                    Ok(api::ListPodResourcesResponse {
                        pod_resources: lock(&shared.pods).clone(),
                    })
                }),
                req,
            )
            .await
        }
        api::GET_PATH => {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<
                api::GetPodResourcesResponse,
                api::GetPodResourcesRequest,
            >::default());
            grpc.unary(
                Unary(|r: tonic::Request<api::GetPodResourcesRequest>| {
                    let r = r.into_inner();
                    lock(&shared.calls).push(format!("Get {}/{}", r.pod_namespace, r.pod_name));
                    if shared.no_get.load(Ordering::SeqCst) {
                        return Err(Status::unimplemented(
                            "unknown method Get for service v1.PodResourcesLister",
                        ));
                    }
                    lock(&shared.pods)
                        .iter()
                        .find(|p| p.namespace == r.pod_namespace && p.name == r.pod_name)
                        .map(|p| api::GetPodResourcesResponse {
                            pod_resources: Some(p.clone()),
                        })
                        .ok_or_else(|| {
                            Status::unknown(format!(
                                "pod {} not found in namespace {}",
                                r.pod_name, r.pod_namespace
                            ))
                        })
                }),
                req,
            )
            .await
        }
        other => {
            lock(&shared.calls).push(other.to_owned());
            Status::unimplemented(format!("unknown method {other}")).into_http()
        }
    };
    Ok(res)
}

/// A unary gRPC method from a function.
struct Unary<F>(F);

impl<F, M1, M2> tower_service::Service<tonic::Request<M1>> for Unary<F>
where
    F: FnMut(tonic::Request<M1>) -> Result<M2, Status>,
{
    type Response = tonic::Response<M2>;
    type Error = Status;
    type Future = Ready<Result<tonic::Response<M2>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<M1>) -> Self::Future {
        ready((self.0)(req).map(tonic::Response::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn load_sets_pods_in_order_and_replaces_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = PodResourcesServer::start(&dir.path().join("k.sock"));
        s.load(&json!({"pods":[
            {"namespace":"ns","name":"a","containers":[
                {"name":"init","devices":{"r/x":["1"]}},
                {"name":"app","devices":{"r/x":["2","3"],"r/y":["9"]}}]},
            {"namespace":"ns","name":"b"}
        ]}))
        .unwrap();
        s.set_pod("ns", "b", vec![Container::new("app").device("r/x", &["7"])]);
        let pods = lock(&s.shared.pods).clone();
        assert_eq!(pods.len(), 2);
        let a = &pods[0];
        assert_eq!((a.namespace.as_str(), a.name.as_str()), ("ns", "a"));
        let devices: Vec<(&str, &str, Vec<String>)> = a
            .containers
            .iter()
            .flat_map(|c| {
                c.devices.iter().map(|d| {
                    (
                        c.name.as_str(),
                        d.resource_name.as_str(),
                        d.device_ids.clone(),
                    )
                })
            })
            .collect();
        assert_eq!(
            devices,
            vec![
                ("init", "r/x", vec!["1".to_owned()]),
                ("app", "r/x", vec!["2".to_owned(), "3".to_owned()]),
                ("app", "r/y", vec!["9".to_owned()]),
            ]
        );
        assert_eq!(pods[1].containers[0].devices[0].device_ids, ["7"]);
        s.remove_pod("ns", "a");
        assert_eq!(lock(&s.shared.pods).len(), 1);
        assert!(s.load(&json!({"pods":[{"name":"x"}]})).is_err());
        assert!(s.load(&json!({})).is_err());
    }

    #[test]
    fn drop_stops_and_removes_the_socket_even_with_a_connection_open() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("k.sock");
        let s = PodResourcesServer::start(&sock);
        s.set_delay(Duration::from_secs(3600));
        let _held = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        drop(s);
        assert!(!sock.exists());
        assert!(std::os::unix::net::UnixStream::connect(&sock).is_err());
    }
}
