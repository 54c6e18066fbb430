//! The HTTPS transport under the kube client: HTTP/2 when the API server offers it.
//!
//! kube's own stack (`kube::Client::try_from`) speaks HTTP/1.1 only: one request at a time on
//! a connection, so an ADD's requests queue behind each other (the NAD reads one after the
//! other, the status patch behind the last Event). This stack is kube's, with ALPN offering
//! `h2` before `http/1.1`: on HTTP/2, which the Kubernetes API server always offers (and which
//! Go clients, Multus included, use), the requests of a run share one connection *and* run
//! concurrently, which takes two round trips off every ADD's critical path. A server that
//! answers `http/1.1` gets the old behaviour: the worker of [`super::client`] then runs one
//! request at a time, so that the pool never opens a second connection (and a second TLS
//! handshake) for a request that would otherwise wait.
//!
//! The layers are kube's (base URI, authentication with token refresh and exec plugins, extra
//! headers), from [`ConfigExt`]; so is the TLS configuration (CA, client certificates,
//! `insecure-skip-tls-verify`, the CA file reloaded in-cluster, `tls-server-name`). Left out:
//! kube's retry layer (plexus retries within its own budget), gzip (off in this build of kube)
//! and its per-request debug spans. Connect timeout: the connector's own; TCP_NODELAY on (see
//! [`client`]). A kubeconfig with a `proxy-url` is handed to kube's stack, which reports that
//! this build has no proxy support.
//!
//! The connection (TCP and the TLS handshake) is started when the client is built, not at its first request
//! (`Early`): plexus builds a client only to use it, and an ADD whose pod comes from the
//! runtime may not make its first request until its cluster network's delegate has run.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use tokio::sync::{Notify, oneshot};
use tower::{BoxError, Service, ServiceBuilder};

/// Whether the connection to the API server is HTTP/2: set when the early connection
/// negotiates `h2` (ALPN) or an answer comes over HTTP/2, never unset.
#[derive(Debug, Clone, Default)]
pub struct Multiplexed(Arc<Protocol>);

#[derive(Debug, Default)]
struct Protocol {
    h2: AtomicBool,
    /// An early connection is being made: its protocol is not known yet.
    pending: AtomicBool,
    known: Notify,
}

impl Multiplexed {
    /// True once the connection is known to be HTTP/2: requests may then run concurrently.
    pub fn get(&self) -> bool {
        self.0.h2.load(Ordering::Relaxed)
    }

    /// Returns once the early connection's protocol is known: at once when none is being
    /// made, else when it is made or has failed (bounded by the connect timeout and the TLS
    /// handshake). Requests queued before that moment can then run concurrently on HTTP/2
    /// instead of one after the other.
    pub async fn protocol_known(&self) {
        loop {
            let notified = self.0.known.notified();
            if !self.0.pending.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn saw(&self, version: Version) {
        if version == Version::HTTP_2 {
            self.0.h2.store(true, Ordering::Relaxed);
        }
    }

    fn connecting(&self) {
        self.0.pending.store(true, Ordering::Release);
    }

    fn connected(&self, h2: bool) {
        if h2 {
            self.0.h2.store(true, Ordering::Relaxed);
        }
        self.0.pending.store(false, Ordering::Release);
        self.0.known.notify_waiters();
    }
}

/// A connection being made ahead of the first request, and for which URI.
type Pending<T> = (Uri, oneshot::Receiver<Result<T, BoxError>>);

/// A connector that can start one connection before it is asked for one: the first call for
/// the same scheme and authority takes that connection (or its error) instead of connecting
/// again. Later calls, and a call for another server, connect as usual.
struct Early<C: Service<Uri>> {
    inner: C,
    pending: Arc<Mutex<Option<Pending<C::Response>>>>,
    multiplexed: Multiplexed,
}

impl<C: Service<Uri> + Clone> Clone for Early<C> {
    fn clone(&self) -> Self {
        Early {
            inner: self.inner.clone(),
            pending: Arc::clone(&self.pending),
            multiplexed: self.multiplexed.clone(),
        }
    }
}

impl<C> Early<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Response: Connection + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send,
{
    fn new(inner: C, multiplexed: Multiplexed) -> Self {
        Early {
            inner,
            pending: Arc::default(),
            multiplexed,
        }
    }

    /// Starts connecting to `uri` on the current runtime; [`Multiplexed`] learns its protocol
    /// as soon as it is made.
    fn start(&self, uri: Uri) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.clone();
        let target = uri.clone();
        let multiplexed = self.multiplexed.clone();
        multiplexed.connecting();
        tokio::spawn(async move {
            let conn = std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into);
            let conn = match conn {
                Ok(()) => inner.call(target).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            multiplexed.connected(
                conn.as_ref()
                    .is_ok_and(|c| c.connected().is_negotiated_h2()),
            );
            let _ = tx.send(conn);
        });
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some((uri, rx));
    }
}

fn same_server(a: &Uri, b: &Uri) -> bool {
    a.scheme() == b.scheme() && a.authority() == b.authority()
}

impl<C> Service<Uri> for Early<C>
where
    C: Service<Uri>,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let early = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .filter(|(started, _)| same_server(started, &uri));
        match early {
            Some((_, rx)) => Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err("the early connection was dropped".into()))
            }),
            None => {
                let connecting = self.inner.call(uri);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
        }
    }
}

/// Builds the client for `config` (inside a runtime: the pool spawns its connection tasks
/// there, and the connection to the server is started at once, see `Early`), and what
/// tells whether its connection is multiplexed.
pub fn client(config: kube::Config) -> Result<(kube::Client, Multiplexed), kube::Error> {
    let multiplexed = Multiplexed::default();
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config).map(|c| (c, multiplexed));
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    // HTTP/2 writes a request's HEADERS and DATA frames separately: with Nagle's algorithm the
    // DATA frame waits for the ACK of the HEADERS, which the server delays (40 ms on Linux).
    // Go's clients set TCP_NODELAY too.
    http.set_nodelay(true);
    let mut https = HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name.clone().try_into().map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        https = https.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    let https = Early::new(
        https.enable_all_versions().wrap_connector(http),
        multiplexed.clone(),
    );
    https.start(config.cluster_url.clone());
    let hyper: HyperClient<_, kube::client::Body> =
        HyperClient::builder(TokioExecutor::new()).build(https);
    let seen = multiplexed.clone();
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_response(move |res: Response<Incoming>| {
            seen.saw(res.version());
            res
        })
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok((
        kube::Client::new(service, config.default_namespace),
        multiplexed,
    ))
}
