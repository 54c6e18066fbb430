//! The kubelet's PodResources API client (gRPC `v1.PodResourcesLister` over a unix socket).
//!
//! One lookup ([`allocations`]) is: a current-thread tokio runtime (the same style as the
//! Kubernetes client), a connection to the socket, an HTTP/2 handshake (hyper's client
//! connection, no pool, no TLS: the socket's permissions are the kubelet's access control),
//! then `Get` for the pod and, only if the kubelet answers `Get` with any gRPC status (not
//! served before 1.27 or with the `KubeletPodResourcesGet` gate off), `List` on the same
//! connection, keeping the pod whose namespace and name match. Everything, connect included,
//! is bounded by one timeout; the runtime and the connection are dropped on return.
//! [`list_pods`] is `List` alone, the same way: whether the kubelet serves the API at all (for
//! `plexus doctor`).
//!
//! The gRPC layer is tonic's core (`tonic::client::Grpc` with prost messages from
//! [`podresources_api`], the definitions the test stand-in serves too) on a minimal
//! [`tower_service::Service`] over hyper's HTTP/2 `SendRequest`: tonic's `transport`
//! (endpoints, balancing, buffering, reconnects) is not built in, since a CNI call makes one
//! connection and then exits. Answers are accepted up to 16 MiB (`List` names every pod of
//! the node), as the kubelet's own clients do.
//!
//! Failures map to [`LookupFailure`]: the socket cannot be connected (absent, refused, not a
//! socket) → `Unreachable`; the bound passed → `Timeout`; anything else (not HTTP/2, a gRPC
//! error from `List`, an undecodable message) → `Failed`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::PathAndQuery;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podresources_api as api;
use tonic::client::Grpc;
use tonic_prost::ProstCodec;

use super::{Allocations, LookupFailure};

/// Largest answer accepted.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The devices allocated to pod `namespace/name`, asked of the kubelet at `socket` within
/// `timeout` (see the module docs).
pub fn allocations(
    socket: &Path,
    timeout: Duration,
    namespace: &str,
    name: &str,
) -> Result<Allocations, LookupFailure> {
    let rt = runtime(socket)?;
    rt.block_on(async {
        match tokio::time::timeout(timeout, lookup(socket, namespace, name)).await {
            Ok(found) => found,
            Err(_) => Err(LookupFailure::Timeout {
                socket: socket.to_owned(),
                after: timeout,
            }),
        }
    })
}

type Client = Grpc<Http2>;

/// The runtime one lookup runs on.
fn runtime(socket: &Path) -> Result<tokio::runtime::Runtime, LookupFailure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LookupFailure::Failed {
            socket: socket.to_owned(),
            cause: format!("cannot start the client runtime: {e}"),
        })
}

/// The number of pods the kubelet at `socket` answers `List` with, within `timeout`: whether
/// its PodResources API serves at all (what `plexus doctor` asks; ADD uses [`allocations`]).
pub fn list_pods(socket: &Path, timeout: Duration) -> Result<usize, LookupFailure> {
    let rt = runtime(socket)?;
    rt.block_on(async {
        let listed = async {
            let (mut client, driver) = connect(socket).await?;
            let all = list_all(&mut client).await;
            driver.abort();
            all.map(|pods| pods.len())
                .map_err(|status| list_failure(socket, &status))
        };
        match tokio::time::timeout(timeout, listed).await {
            Ok(found) => found,
            Err(_) => Err(LookupFailure::Timeout {
                socket: socket.to_owned(),
                after: timeout,
            }),
        }
    })
}

/// A gRPC client on a new connection to `socket`, and the task driving the connection.
async fn connect(socket: &Path) -> Result<(Client, tokio::task::JoinHandle<()>), LookupFailure> {
    let stream =
        tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| LookupFailure::Unreachable {
                socket: socket.to_owned(),
                cause: e.to_string(),
            })?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| LookupFailure::Failed {
                socket: socket.to_owned(),
                cause: format!("HTTP/2 handshake: {e}"),
            })?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "PodResources connection ended");
        }
    });
    // The authority is required by HTTP/2 and ignored by the kubelet.
    let client = Grpc::with_origin(Http2(send), Uri::from_static("http://localhost"))
        .max_decoding_message_size(MAX_MESSAGE);
    Ok((client, driver))
}

/// What a failed `List` means.
fn list_failure(socket: &Path, status: &tonic::Status) -> LookupFailure {
    if status.code() == tonic::Code::Unavailable {
        LookupFailure::Unreachable {
            socket: socket.to_owned(),
            cause: status.to_string(),
        }
    } else {
        LookupFailure::Failed {
            socket: socket.to_owned(),
            cause: format!("List: {status}"),
        }
    }
}

async fn lookup(socket: &Path, namespace: &str, name: &str) -> Result<Allocations, LookupFailure> {
    let (mut client, driver) = connect(socket).await?;
    let found = match get(&mut client, namespace, name).await {
        Ok(pod) => Ok(pod),
        Err(status) => {
            tracing::debug!(status = %status, "PodResources Get not served; asking List");
            list(&mut client, namespace, name)
                .await
                .map_err(|status| list_failure(socket, &status))
        }
    };
    driver.abort();
    found.map(|pod| pod.as_ref().map(of_pod).unwrap_or_default())
}

/// `Get`; `None` when the kubelet answers for another pod (or none).
async fn get(
    client: &mut Client,
    namespace: &str,
    name: &str,
) -> Result<Option<api::PodResources>, tonic::Status> {
    ready(client).await?;
    let req = api::GetPodResourcesRequest {
        pod_name: name.to_owned(),
        pod_namespace: namespace.to_owned(),
    };
    let codec: ProstCodec<api::GetPodResourcesRequest, api::GetPodResourcesResponse> =
        ProstCodec::default();
    let res = client
        .unary(
            tonic::Request::new(req),
            PathAndQuery::from_static(api::GET_PATH),
            codec,
        )
        .await?;
    Ok(res
        .into_inner()
        .pod_resources
        .filter(|p| p.namespace == namespace && p.name == name))
}

/// `List`, filtered to the pod.
async fn list(
    client: &mut Client,
    namespace: &str,
    name: &str,
) -> Result<Option<api::PodResources>, tonic::Status> {
    Ok(list_all(client)
        .await?
        .into_iter()
        .find(|p| p.namespace == namespace && p.name == name))
}

/// `List`: every pod of the node.
async fn list_all(client: &mut Client) -> Result<Vec<api::PodResources>, tonic::Status> {
    ready(client).await?;
    let codec: ProstCodec<api::ListPodResourcesRequest, api::ListPodResourcesResponse> =
        ProstCodec::default();
    let res = client
        .unary(
            tonic::Request::new(api::ListPodResourcesRequest {}),
            PathAndQuery::from_static(api::LIST_PATH),
            codec,
        )
        .await?;
    Ok(res.into_inner().pod_resources)
}

async fn ready(client: &mut Client) -> Result<(), tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))
}

/// The pod's devices, containers in the kubelet's order.
fn of_pod(pod: &api::PodResources) -> Allocations {
    Allocations::from_entries(pod.containers.iter().flat_map(|c| {
        c.devices
            .iter()
            .map(|d| (d.resource_name.as_str(), d.device_ids.as_slice()))
    }))
}

/// tonic's client service: one HTTP/2 connection, requests sent as they come.
struct Http2(SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for Http2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_conformance::podresources::{Container, PodResourcesServer};
    use std::time::Instant;

    const R: &str = "example.com/vf";

    fn server(dir: &Path) -> PodResourcesServer {
        let s = PodResourcesServer::start(&dir.join("kubelet.sock"));
        s.set_pod(
            "ns",
            "p",
            vec![
                Container::new("init").device(R, &["vf-1"]),
                Container::new("app")
                    .device(R, &["vf-1", "vf-2"])
                    .device("other/r", &["o"]),
            ],
        );
        s.set_pod("ns", "q", vec![Container::new("app").device(R, &["vf-9"])]);
        s
    }

    #[test]
    fn get_answers_for_the_pod() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let got = allocations(s.socket(), Duration::from_secs(5), "ns", "p").unwrap();
        assert_eq!(got.ids(R), ["vf-1", "vf-2"]);
        assert_eq!(got.ids("other/r"), ["o"]);
        assert_eq!(s.calls(), ["Get ns/p"]);
        // A pod the kubelet does not know has no devices.
        let none = allocations(s.socket(), Duration::from_secs(5), "ns", "nobody").unwrap();
        assert_eq!(none, Allocations::default());
    }

    #[test]
    fn list_when_get_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        s.serve_get(false);
        let got = allocations(s.socket(), Duration::from_secs(5), "ns", "q").unwrap();
        assert_eq!(got.ids(R), ["vf-9"]);
        assert_eq!(s.calls(), ["Get ns/q", "List"]);
    }

    #[test]
    fn list_pods_counts_what_list_answers() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        assert_eq!(list_pods(s.socket(), Duration::from_secs(5)).unwrap(), 2);
        assert_eq!(s.calls(), ["List"]);
        let sock = dir.path().join("missing.sock");
        assert!(matches!(
            list_pods(&sock, Duration::from_secs(5)),
            Err(LookupFailure::Unreachable { .. })
        ));
    }

    #[test]
    fn absent_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("missing.sock");
        match allocations(&sock, Duration::from_secs(5), "ns", "p") {
            Err(LookupFailure::Unreachable { socket, cause }) => {
                assert_eq!(socket, sock);
                assert!(cause.contains("No such file"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slow_kubelet_times_out_in_bound() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        s.set_delay(Duration::from_secs(30));
        let started = Instant::now();
        let e = allocations(s.socket(), Duration::from_millis(300), "ns", "p").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            e,
            LookupFailure::Timeout {
                socket: s.socket().to_owned(),
                after: Duration::from_millis(300)
            }
        );
    }

    #[test]
    fn a_socket_that_is_not_grpc_fails() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("plain.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::thread::spawn(move || {
            // Accept once and answer HTTP/1.1 garbage.
            use std::io::Write;
            if let Ok((mut c, _)) = listener.accept() {
                let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let e = allocations(&sock, Duration::from_secs(5), "ns", "p").unwrap_err();
        t.join().unwrap();
        assert!(
            matches!(
                e,
                LookupFailure::Failed { .. } | LookupFailure::Unreachable { .. }
            ),
            "{e:?}"
        );
    }
}
