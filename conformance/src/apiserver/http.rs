//! The HTTPS transport: the accept loop (which can stop and resume listening), TLS, and HTTP/2
//! or HTTP/1.1 with keep-alive (as ALPN chose) through hyper.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::Shared;
use super::api::{self, Request, Response};
use super::faults::RequestRecord;
use super::status::ApiError;
use super::util::lock;

/// Largest request body accepted (the real server's limit is 3 MiB for most objects).
const MAX_BODY: usize = 16 << 20;
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests from the [`super::ApiServer`] handle to the server thread.
pub(crate) enum Control {
    /// Stop (`true`) or resume (`false`) listening; answered once done.
    Refuse(bool, std::sync::mpsc::Sender<Result<(), String>>),
    /// Stop serving.
    Shutdown,
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Binds `127.0.0.1:port` again after `refuse_connections(true)`; retries for a bounded time
/// while the port is still held (e.g. by another process that raced for it).
async fn rebind(port: u16) -> Result<TcpListener, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => {
                l.set_nonblocking(true)
                    .map_err(|e| format!("re-binding 127.0.0.1:{port}: {e}"))?;
                return TcpListener::from_std(l)
                    .map_err(|e| format!("re-binding 127.0.0.1:{port}: {e}"));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(format!("re-binding 127.0.0.1:{port}: {e}")),
        }
    }
}

/// The accept loop: runs until [`Control::Shutdown`] (or the handle is gone).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    listener: TcpListener,
    mut control: UnboundedReceiver<Control>,
) {
    let port = shared.port;
    let mut listener = Some(listener);
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        tokio::select! {
            cmd = control.recv() => match cmd {
                None | Some(Control::Shutdown) => break,
                Some(Control::Refuse(true, ack)) => {
                    // Close the listening socket (connects now get ECONNREFUSED) and every open
                    // connection, as a server that went away would.
                    listener = None;
                    conns.abort_all();
                    while conns.join_next().await.is_some() {}
                    let _ = ack.send(Ok(()));
                }
                Some(Control::Refuse(false, ack)) => {
                    let result = if listener.is_some() {
                        Ok(())
                    } else {
                        rebind(port).await.map(|l| listener = Some(l))
                    };
                    let _ = ack.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(tcp) => {
                    conns.spawn(serve_connection(shared.clone(), acceptor.clone(), tcp));
                }
                // Out of file descriptors or the like: give the system a moment.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(shared: Arc<Shared>, acceptor: TlsAcceptor, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let handshake = lock(&shared.faults).latency.handshake;
    if !handshake.is_zero() {
        tokio::time::sleep(handshake).await;
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    let protocol = match tls.get_ref().1.alpn_protocol() {
        Some(p) => String::from_utf8_lossy(p).into_owned(),
        None => "none".to_owned(),
    };
    *lock(&shared.log)
        .connections
        .entry(protocol.clone())
        .or_default() += 1;
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(shared, req).await) }
    });
    let io = TokioIo::new(tls);
    let _ = if protocol == "h2" {
        http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(io, service)
            .await
    } else {
        http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .serve_connection(io, service)
            .await
    };
}

/// Counts a request as being answered until dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn start(shared: &Arc<Shared>) -> InFlight {
        let mut log = lock(&shared.log);
        log.in_flight += 1;
        log.max_in_flight = log.max_in_flight.max(log.in_flight);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.0.log).in_flight -= 1;
    }
}

async fn respond(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let _answering = InFlight::start(&shared);
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec());
    let too_large = body.is_err();
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.unwrap_or_default(),
    };
    let route = api::route(&request.path, shared.port);
    let key = api::counter_key(&request, &route);
    lock(&shared.log).count(&key);

    let latency = {
        let faults = lock(&shared.faults);
        faults
            .delays
            .get(&key)
            .copied()
            .unwrap_or_else(|| faults.latency.of(&request.method))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let injected = lock(&shared.faults).take_failure(&key);
    let resp = match injected {
        Some(r) => r,
        None if too_large => Response::error(&ApiError::new(413, "the request body is too large")),
        None => api::handle(&shared, &request, &route),
    };

    let status = resp.status;
    let mut builder = hyper::Response::builder()
        .status(status)
        .header("content-type", resp.content_type.as_str())
        .header("cache-control", "no-cache, private");
    for (k, v) in &resp.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let content_type = request.header("content-type").map(str::to_owned);
    lock(&shared.log).record(RequestRecord {
        method: request.method,
        path: request.path,
        query: request.query,
        content_type,
        headers: request.headers,
        body: request.body,
        key,
        status,
    });
    builder
        .body(Full::new(Bytes::from(resp.body)))
        .unwrap_or_else(|e| {
            let mut r = hyper::Response::new(Full::new(Bytes::from(format!(
                "plexus API stand-in: cannot build the response: {e}"
            ))));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}
