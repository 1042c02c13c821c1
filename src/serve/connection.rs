//! One accepted connection as hyper serves it ([`Connection`]): a TLS handshake
//! (tokio-rustls) when the web config asks for it, then HTTP/1.1, or HTTP/2 where ALPN
//! chose it; its requests go to the [`Router`]. Its watch closes it (HTTP/2: GOAWAY first).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::debug;

use super::body::Chunks;
use super::router::{plain, Router};
use super::tracking::{Close, ConnState, Guarded, MAX_REQUEST_BYTES};
use super::web_config::WebConfig;
use crate::supervise::stopped;

/// More header fields than this are refused with 431.
const MAX_HEADERS: usize = 64;
/// Streams one HTTP/2 connection may run at once: a scraper needs one.
const MAX_H2_STREAMS: u32 = 16;
/// How long an HTTP/2 connection asked to go away (idle or evicted) has to finish
/// before it is dropped.
const GOAWAY_GRACE: Duration = Duration::from_secs(5);

/// One accepted connection: a TLS handshake if the web config asks for it, then
/// HTTP/1.1, or HTTP/2 where ALPN chose it.
pub(super) struct Connection {
    pub(super) router: Arc<Router>,
    pub(super) watcher: Watcher,
    pub(super) read_header_timeout: Duration,
    pub(super) send_timeout: Duration,
    pub(super) peer: SocketAddr,
    pub(super) state: Arc<ConnState>,
    /// The process's shutdown signal: an HTTP/2 connection sends GOAWAY on it.
    pub(super) shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection until it ends or its watch closes it (dropping hyper's
    /// connection closes the socket). A close is counted by why; evictions are counted
    /// by the acceptor, which chose them.
    pub(super) async fn run(self, io: Guarded, web: &WebConfig) {
        let state = Arc::clone(&self.state);
        let (send_timeout, idle_timeout) = (self.send_timeout, self.read_header_timeout);
        let peer = self.peer;
        let router = Arc::clone(&self.router);
        let serve = self.serve(io, web);
        tokio::pin!(serve);
        let close = tokio::select! {
            () = &mut serve => None,
            close = state.watch(send_timeout, idle_timeout) => Some(close),
        };
        match close {
            None => {
                if state.send_timed_out.load(Ordering::Relaxed) {
                    router.count_connection_closed("send_timeout");
                }
            }
            Some(close) => {
                debug!(%peer, reason = close.reason(), "closing the connection");
                // HTTP/2 without a stalled stream: GOAWAY, so the client retries
                // anything it sent meanwhile on a new connection. The rest (HTTP/1.1
                // with no request in flight, stalled streams) is dropped.
                if close != Close::StreamStalled && state.h2.load(Ordering::Relaxed) {
                    state.goaway.notify_one();
                    let _ = tokio::time::timeout(GOAWAY_GRACE, &mut serve).await;
                }
                // Evictions are counted by the acceptor, which chose them.
                if close != Close::Evicted {
                    router.count_connection_closed(close.reason());
                }
            }
        }
    }

    async fn serve(self, io: Guarded, web: &WebConfig) {
        let Some(tls) = &web.tls else {
            return self.http1(io).await;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
        // A client that stalls the handshake is evicted as one that stalls its
        // request headers would be.
        let stream = match tokio::time::timeout(self.read_header_timeout, acceptor.accept(io)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                // Debug only: anyone can make a handshake fail, so at info this would
                // let them write the logs.
                debug!(peer = %self.peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(peer = %self.peer, "TLS handshake timed out");
                return;
            }
        };
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            self.http2(stream).await;
        } else {
            self.http1(stream).await;
        }
    }

    /// The service both protocols run: every request goes to [`Router::handle`],
    /// tracked from its arrival to its response's last byte.
    fn service(
        &self,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Chunks>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Chunks>, Infallible>> + Send + 'static,
    > + Clone
           + Send
           + 'static {
        let router = Arc::clone(&self.router);
        let state = Arc::clone(&self.state);
        let peer = self.peer.ip();
        service_fn(move |req| {
            let router = Arc::clone(&router);
            // Taken now, so a request that is cancelled still ends (the tracker
            // drops with the future).
            let tracker = state.begin();
            async move {
                let Some(tracker) = tracker else {
                    // The connection was picked for eviction as this request arrived.
                    return Ok(plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "503 connection closing\n",
                    ));
                };
                let mut resp = router.handle(req, peer).await;
                resp.body_mut().track(tracker);
                Ok::<_, Infallible>(resp)
            }
        })
    }

    async fn http1<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = self.service();
        // hyper (>= 1.6) also starts this timeout when a keep-alive connection goes
        // idle after a response, so idle and slow clients are both evicted.
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.read_header_timeout)
            .max_headers(MAX_HEADERS)
            .serve_connection(TokioIo::new(io), service);
        if let Err(err) = self.watcher.watch(conn).await {
            debug!(peer = %self.peer, error = %err, "HTTP connection ended with an error");
        }
    }

    async fn http2<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.state.h2.store(true, Ordering::Relaxed);
        self.state.rewatch.notify_one();
        let service = self.service();
        // The header list limit matches what HTTP/1.1 connections may send; pings
        // close a connection whose peer has gone.
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_REQUEST_BYTES as u32)
            .max_concurrent_streams(MAX_H2_STREAMS)
            .keep_alive_interval(Some(self.read_header_timeout))
            .keep_alive_timeout(self.read_header_timeout)
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        // GOAWAY on shutdown (as the graceful watcher does for HTTP/1.1) and when the
        // connection's watch asks for it; the watcher is held so the drain at
        // shutdown waits for this connection too.
        let _counted = self.watcher;
        let mut shutdown = self.shutdown;
        let mut going_away = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(err) = ended {
                        debug!(peer = %self.peer, error = %err, "HTTP/2 connection ended with an error");
                    }
                    return;
                }
                () = stopped(&mut shutdown), if !going_away => {
                    going_away = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = self.state.goaway.notified(), if !going_away => {
                    going_away = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
