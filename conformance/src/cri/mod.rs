//! A CRI client for the rig: what the kubelet asks a container runtime, over its unix socket.
//!
//! [`Cri`] calls `runtime.v1.RuntimeService` and `ImageService` methods with the messages of
//! [`api`] (hand-derived prost messages, only the fields the rig uses), over HTTP/2 from hyper
//! and tonic's core (codec, status, unary call) without tonic's transport: the same pattern as
//! plexus's PodResources client (`src/devices/podresources.rs`).
//!
//! **Decision: one connection per call.** A call opens the socket, does the HTTP/2 handshake
//! (a fraction of a millisecond on a unix socket), makes the call and drops the connection. A
//! kubelet keeps one connection, but a connection kept across a runtime restart (a test
//! kills containerd and starts it again) would fail the next call for no reason of the
//! runtime's; per call, a restarted runtime is simply reached again. The benchmark measures
//! both sides with the same client, so this costs both the same.
//!
//! Every call is bounded by [`Cri::timeout`] (a deadline on connect + call). Errors are
//! [`tonic::Status`]: the runtime's own code and message (RunPodSandbox's message carries the
//! CNI plugin's error text), or `Unavailable` when the socket does not answer, or
//! `DeadlineExceeded` after the timeout. The client is `Sync`: threads may call it at once
//! (the benchmark and the concurrency test do), each call on the client's own runtime.

pub mod api;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::PathAndQuery;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::Status;
use tonic::client::Grpc;
use tonic_prost::ProstCodec;

/// The longest message accepted from the runtime.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Default deadline of one call: RunPodSandbox runs every CNI plugin of the pod.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A CRI client on one socket. See the [module docs](self).
pub struct Cri {
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
    /// The deadline of each call.
    pub timeout: Duration,
}

impl Cri {
    /// A client of the runtime listening on `socket` (nothing is connected yet).
    pub fn new(socket: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cri-client")
            .enable_all()
            .build()
            .map_err(|e| format!("CRI client runtime: {e}"))?;
        Ok(Cri {
            socket: socket.to_owned(),
            rt,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The socket it calls.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One unary call of `path` with `req`.
    pub fn call<Req, Res>(&self, path: &'static str, req: Req) -> Result<Res, Status>
    where
        Req: prost::Message + Send + 'static,
        Res: prost::Message + Default + Send + 'static,
    {
        let socket = self.socket.clone();
        let timeout = self.timeout;
        self.rt.block_on(async move {
            match tokio::time::timeout(timeout, unary(&socket, path, req)).await {
                Ok(res) => res,
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "{path}: no answer from {} within {timeout:?}",
                    socket.display()
                ))),
            }
        })
    }

    /// `Version`: the runtime's name and version.
    pub fn version(&self) -> Result<api::VersionResponse, Status> {
        self.call(
            api::VERSION,
            api::VersionRequest {
                version: "v1".into(),
            },
        )
    }

    /// `Status`, verbose: the runtime's `info` (containerd's `cniconfig`, `lastCNILoadStatus`).
    pub fn status(&self) -> Result<api::StatusResponse, Status> {
        self.call(api::STATUS, api::StatusRequest { verbose: true })
    }

    /// `RunPodSandbox`: the new sandbox's ID.
    pub fn run_pod_sandbox(&self, config: &api::PodSandboxConfig) -> Result<String, Status> {
        let res: api::RunPodSandboxResponse = self.call(
            api::RUN_POD_SANDBOX,
            api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            },
        )?;
        Ok(res.pod_sandbox_id)
    }

    /// `StopPodSandbox`.
    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let _: api::Empty = self.call(api::STOP_POD_SANDBOX, sandbox_id(id))?;
        Ok(())
    }

    /// `RemovePodSandbox`.
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let _: api::Empty = self.call(api::REMOVE_POD_SANDBOX, sandbox_id(id))?;
        Ok(())
    }

    /// `PodSandboxStatus` (verbose: with the runtime's `info`).
    pub fn pod_sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse, Status> {
        self.call(
            api::POD_SANDBOX_STATUS,
            api::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_owned(),
                verbose,
            },
        )
    }

    /// `ListPodSandbox`: every sandbox.
    pub fn list_pod_sandbox(&self) -> Result<Vec<api::PodSandbox>, Status> {
        let res: api::ListPodSandboxResponse =
            self.call(api::LIST_POD_SANDBOX, api::ListPodSandboxRequest {})?;
        Ok(res.items)
    }

    /// `CreateContainer` in sandbox `sandbox` (created with `sandbox_config`).
    pub fn create_container(
        &self,
        sandbox: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String, Status> {
        let res: api::CreateContainerResponse = self.call(
            api::CREATE_CONTAINER,
            api::CreateContainerRequest {
                pod_sandbox_id: sandbox.to_owned(),
                config: Some(config.clone()),
                sandbox_config: Some(sandbox_config.clone()),
            },
        )?;
        Ok(res.container_id)
    }

    /// `StartContainer`.
    pub fn start_container(&self, id: &str) -> Result<(), Status> {
        let _: api::Empty = self.call(api::START_CONTAINER, container_id(id))?;
        Ok(())
    }

    /// `StopContainer` with a grace period of `timeout_s` seconds.
    pub fn stop_container(&self, id: &str, timeout_s: i64) -> Result<(), Status> {
        let _: api::Empty = self.call(
            api::STOP_CONTAINER,
            api::StopContainerRequest {
                container_id: id.to_owned(),
                timeout: timeout_s,
            },
        )?;
        Ok(())
    }

    /// `RemoveContainer`.
    pub fn remove_container(&self, id: &str) -> Result<(), Status> {
        let _: api::Empty = self.call(api::REMOVE_CONTAINER, container_id(id))?;
        Ok(())
    }

    /// `ContainerStatus`.
    pub fn container_status(&self, id: &str) -> Result<api::ContainerStatus, Status> {
        let res: api::ContainerStatusResponse = self.call(
            api::CONTAINER_STATUS,
            api::ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            },
        )?;
        res.status
            .ok_or_else(|| Status::internal(format!("ContainerStatus of {id}: no status")))
    }

    /// `ImageStatus`: the image, `None` when the runtime does not have it.
    pub fn image_status(&self, image: &str) -> Result<Option<api::Image>, Status> {
        let res: api::ImageStatusResponse = self.call(
            api::IMAGE_STATUS,
            api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: image.to_owned(),
                }),
            },
        )?;
        Ok(res.image)
    }
}

fn sandbox_id(id: &str) -> api::PodSandboxIdRequest {
    api::PodSandboxIdRequest {
        pod_sandbox_id: id.to_owned(),
    }
}

fn container_id(id: &str) -> api::ContainerIdRequest {
    api::ContainerIdRequest {
        container_id: id.to_owned(),
    }
}

async fn unary<Req, Res>(socket: &Path, path: &'static str, req: Req) -> Result<Res, Status>
where
    Req: prost::Message + Send + 'static,
    Res: prost::Message + Default + Send + 'static,
{
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| Status::unavailable(format!("connecting to {}: {e}", socket.display())))?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| Status::unavailable(format!("HTTP/2 handshake: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = Grpc::with_origin(Http2(send), Uri::from_static("http://localhost"))
        .max_decoding_message_size(MAX_MESSAGE);
    let res = async {
        client
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
        let codec: ProstCodec<Req, Res> = ProstCodec::default();
        client
            .unary(
                tonic::Request::new(req),
                PathAndQuery::from_static(path),
                codec,
            )
            .await
    }
    .await;
    driver.abort();
    res.map(tonic::Response::into_inner)
}

/// hyper's HTTP/2 sender as the service tonic's client calls.
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
