//! The only module that touches hyper: connections (plain or TLS, HTTP/1.1 or
//! HTTP/2 by ALPN) and what keeps clients from holding them (the connection cap with
//! eviction of the oldest connection that has no request in flight, the send
//! timeout, the HTTP/2 idle timeout), the web config's rate limit, basic auth and
//! headers, the routes (`/`, the telemetry path, `/-/healthy`, `/-/ready`), content
//! negotiation and gzip, and graceful shutdown. A scrape reads what the poller
//! published and never calls AWS.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use crate::exposition::Piece;
use crate::state::{Shared, TailLookup, TAIL_MAX_AGE};
use crate::stopped;
use auth::Verdict;
use web_config::{WebConfig, WebState};

pub mod auth;
pub mod healthcheck;
pub mod tls;
pub mod web_config;

/// The text exposition format version 0.0.4, which every Prometheus understands.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// In-flight requests get this long after a shutdown signal (under the 10 s a
/// Kubernetes or systemd stop allows by default, with room for the rest).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// A response body of ready-made chunks: the cached identity body and the per-scrape
/// tail go out as they are, without being copied into one buffer.
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    /// Bytes handed out since this body last let other connections run.
    since_yield: usize,
    /// The request this body answers, for the connection's watch: each chunk taken
    /// is progress, and the request ends when the body is dropped.
    tracker: Option<Tracker>,
}

/// After this many bytes a body steps back once (wakes itself and returns `Pending`),
/// so the other connections on the worker get their turn: without it one scraper of
/// a 10 MB plain body can send whole responses back to back while the others wait.
/// nginx does the same with `sendfile_max_chunk` (2 MB).
const YIELD_EVERY: usize = 1 << 20;

impl Chunks {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Chunks {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            chunks,
            remaining,
            since_yield: 0,
            tracker: None,
        }
    }

    fn track(&mut self, tracker: Tracker) {
        self.tracker = Some(tracker);
    }

    fn text(s: impl Into<Bytes>) -> Chunks {
        Chunks::new([s.into()])
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.since_yield >= YIELD_EVERY && !self.chunks.is_empty() {
            self.since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = self.chunks.pop_front();
        if let Some(chunk) = &next {
            self.remaining -= chunk.len() as u64;
            self.since_yield += chunk.len();
        }
        // hyper asks for the next chunk only when the previous one has room to go
        // (HTTP/1.1: its write buffer drained; HTTP/2: the stream has window), so
        // a chunk taken is the response moving.
        if let Some(tracker) = &self.tracker {
            tracker.progress();
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

struct Router {
    shared: Arc<Shared>,
    web: Arc<WebState>,
    telemetry_path: String,
    landing: Bytes,
}

/// What the server is told by flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub telemetry_path: String,
    pub max_connections: usize,
    pub read_header_timeout: Duration,
    /// `--web.send-timeout`: longest a response may go without progress.
    pub send_timeout: Duration,
}

/// A client that sends more than this before getting a response (a request is a few
/// hundred bytes) is disconnected, as nginx's 4 x 8k header buffers do; otherwise
/// hyper would buffer up to ~400 KB per connection. Not hyper's own `max_buf_size`:
/// that also bounds the write queue, and at 16 KiB it made 10 MB scrapes 2x slower.
const MAX_REQUEST_BYTES: usize = 32 * 1024;
/// More header fields than this are refused with 431.
const MAX_HEADERS: usize = 64;
/// Streams one HTTP/2 connection may run at once: a scraper needs one.
const MAX_H2_STREAMS: u32 = 16;
/// What a 401 asks for (RFC 7617).
const AUTHENTICATE: &str = "Basic realm=\"ses-identity-exporter\", charset=\"UTF-8\"";

/// The accepted socket, counting what the client sends between two responses and
/// timing how long a write has been waiting for the client to read.
struct Guarded {
    inner: TcpStream,
    read_since_write: usize,
    conn: Arc<ConnState>,
    send_timeout: Duration,
    /// Running while a write is blocked (the client does not read): when it fires
    /// before a write succeeds, the connection is closed (nginx's `send_timeout`).
    blocked: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    /// Passes a write's outcome through, starting the send timeout when the write
    /// has to wait and failing the write when it has waited too long.
    fn timed(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        if polled.is_ready() {
            self.blocked = None;
            if let Poll::Ready(Ok(n)) = polled {
                if n > 0 {
                    self.conn.wrote();
                }
            }
            return polled;
        }
        let timeout = self.send_timeout;
        let blocked = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if blocked.as_mut().poll(cx).is_ready() {
            self.blocked = None;
            self.conn.send_timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing for --web.send-timeout",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.read_since_write > MAX_REQUEST_BYTES {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request larger than 32 KiB",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.read_since_write += buf.filled().len() - before;
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.read_since_write = 0;
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.read_since_write = 0;
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, polled)
    }

    // Keeps hyper's writev path: a response is one syscall.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// hyper (and rustls above it) flush only once everything they buffered is
    /// written: from here on the responses that ended are in the kernel's hands.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.conn.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Every open connection, in the order they were accepted, so that at the cap the
/// oldest one without a request in flight can be closed to admit a new one.
struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<ConnState>>>,
    next: AtomicU64,
    /// Woken when a connection's last request ends: the acceptor, waiting at the
    /// cap with every connection busy, looks again.
    became_idle: Arc<Notify>,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            conns: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            became_idle: Arc::new(Notify::new()),
        }
    }

    fn add(&self) -> (u64, Arc<ConnState>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(ConnState::new(Arc::clone(&self.became_idle)));
        lock(&self.conns).insert(id, Arc::clone(&conn));
        (id, conn)
    }

    fn remove(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    /// Closes the oldest connection that has no request in flight; false when every
    /// connection has one.
    fn evict_oldest_idle(&self) -> bool {
        let conns = lock(&self.conns);
        let now = Instant::now();
        match conns.values().find(|conn| conn.claim_for_eviction(now)) {
            Some(conn) => {
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the registry, given up when its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one connection is doing, shared by its requests (which report progress),
/// its socket (which reports flushes and write stalls), its watch (which closes it
/// when a response stalls or an HTTP/2 connection idles) and the acceptor (which
/// may evict it).
struct ConnState {
    activity: Mutex<Activity>,
    evict: Notify,
    /// Wakes the watch to look again (the connection turned out to be HTTP/2, or a
    /// request began: its deadline may be earlier than the one the watch waits for).
    rewatch: Notify,
    became_idle: Arc<Notify>,
    /// Set by the socket when a write waited longer than the send timeout.
    send_timed_out: AtomicBool,
    /// HTTP/2: closed after the idle timeout without a request (HTTP/1.1 has
    /// hyper's keep-alive timeout).
    h2: AtomicBool,
    /// Asks an HTTP/2 connection to send GOAWAY and finish (idle or evicted): a
    /// client retries a request the GOAWAY refused, not one on a dropped socket.
    goaway: Notify,
    born: Instant,
    /// Milliseconds from `born` to the last successful write to the socket (any
    /// response's), `u64::MAX` before the first: a response whose chunk is large or
    /// whose HTTP/2 frames are still leaving is moving as long as writes succeed.
    last_write_ms: AtomicU64,
}

/// A connection that wrote within this long is not evicted even with no request
/// in flight: its last response may still be leaving (hyper hands the end of an
/// HTTP/2 response to h2, which may still hold several hundred KB of it).
const EVICT_QUIET: Duration = Duration::from_secs(1);
/// How long an HTTP/2 connection asked to go away (idle or evicted) has to finish
/// before it is dropped.
const GOAWAY_GRACE: Duration = Duration::from_secs(5);

struct Activity {
    /// Requests whose response is not yet fully handed to hyper, with the time of
    /// their last progress.
    open: Vec<(u64, Instant)>,
    next: u64,
    /// Responses handed to hyper but not yet flushed to the socket: the connection
    /// still has a response in flight.
    draining: bool,
    idle_since: Instant,
    /// Picked for eviction: no request may start on it any more.
    closing: bool,
}

/// Why a connection's watch closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Evicted,
    StreamStalled,
    Idle,
}

impl Close {
    fn reason(self) -> &'static str {
        match self {
            Close::Evicted => "evicted",
            Close::StreamStalled => "stream_stalled",
            Close::Idle => "idle",
        }
    }
}

impl ConnState {
    fn new(became_idle: Arc<Notify>) -> ConnState {
        ConnState {
            activity: Mutex::new(Activity {
                open: Vec::new(),
                next: 0,
                draining: false,
                idle_since: Instant::now(),
                closing: false,
            }),
            evict: Notify::new(),
            rewatch: Notify::new(),
            became_idle,
            send_timed_out: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            goaway: Notify::new(),
            born: Instant::now(),
            last_write_ms: AtomicU64::new(u64::MAX),
        }
    }

    fn wrote(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_write_ms.store(ms, Ordering::Relaxed);
    }

    fn last_write(&self) -> Option<Instant> {
        match self.last_write_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(self.born + Duration::from_millis(ms)),
        }
    }

    /// A request arrives; `None` when the HTTP/1.1 connection is being evicted (an
    /// HTTP/2 one sends GOAWAY and serves what arrived before it).
    fn begin(self: &Arc<Self>) -> Option<Tracker> {
        let mut activity = lock(&self.activity);
        if activity.closing && !self.h2.load(Ordering::Relaxed) {
            return None;
        }
        let id = activity.next;
        activity.next += 1;
        activity.open.push((id, Instant::now()));
        drop(activity);
        // The watch may be waiting for a later deadline (an HTTP/2 idle timeout).
        self.rewatch.notify_one();
        Some(Tracker {
            conn: Arc::clone(self),
            id,
        })
    }

    fn progress(&self, id: u64) {
        let mut activity = lock(&self.activity);
        if let Some(entry) = activity.open.iter_mut().find(|(open, _)| *open == id) {
            entry.1 = Instant::now();
        }
    }

    fn end(&self, id: u64) {
        let mut activity = lock(&self.activity);
        activity.open.retain(|(open, _)| *open != id);
        activity.draining = true;
    }

    fn flushed(&self) {
        let mut activity = lock(&self.activity);
        if activity.draining && activity.open.is_empty() {
            activity.draining = false;
            activity.idle_since = Instant::now();
            drop(activity);
            self.became_idle.notify_waiters();
        }
    }

    /// Marks the connection as closing if it has no request in flight and wrote
    /// nothing for [`EVICT_QUIET`].
    fn claim_for_eviction(&self, now: Instant) -> bool {
        let mut activity = lock(&self.activity);
        let quiet = self.last_write().is_none_or(|at| now >= at + EVICT_QUIET);
        if activity.closing || !activity.open.is_empty() || activity.draining || !quiet {
            return false;
        }
        activity.closing = true;
        true
    }

    /// Whether the connection must close now, and else when to look again.
    fn check(
        &self,
        now: Instant,
        send_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Instant, Close> {
        let activity = lock(&self.activity);
        let last_write = self.last_write();
        // Progress is a chunk taken by hyper or a successful write, whichever is later:
        // one chunk can be megabytes, written to a slow reader for a long time.
        let moved = |at: Instant| last_write.map_or(at, |w| w.max(at));
        if let Some(oldest) = activity.open.iter().map(|(_, at)| *at).min() {
            let deadline = moved(oldest) + send_timeout;
            return if now >= deadline {
                Err(Close::StreamStalled)
            } else {
                Ok(deadline)
            };
        }
        if self.h2.load(Ordering::Relaxed) && !activity.draining {
            // Not moved by writes: the server's own keep-alive PINGs are writes.
            let deadline = activity.idle_since + idle_timeout;
            return if now >= deadline {
                Err(Close::Idle)
            } else {
                Ok(deadline)
            };
        }
        Ok(now + send_timeout)
    }

    /// Resolves when the connection has to close: evicted, a response that made
    /// no progress for `send_timeout`, or (HTTP/2) no request for `idle_timeout`.
    async fn watch(&self, send_timeout: Duration, idle_timeout: Duration) -> Close {
        loop {
            let next = match self.check(Instant::now(), send_timeout, idle_timeout) {
                Ok(next) => next,
                Err(close) => return close,
            };
            tokio::select! {
                () = self.evict.notified() => return Close::Evicted,
                () = self.rewatch.notified() => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

/// One request in flight; dropped with its response body (or with the request,
/// when the client goes away first).
struct Tracker {
    conn: Arc<ConnState>,
    id: u64,
}

impl Tracker {
    fn progress(&self) {
        self.conn.progress(self.id);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.conn.end(self.id);
    }
}

/// Serves HTTP on `listener` until `shutdown` turns true, then stops accepting and
/// gives in-flight requests [`DRAIN_TIMEOUT`] to finish.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    web: Arc<WebState>,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = Arc::new(Router {
        landing: Bytes::from(landing_page(&settings.telemetry_path)),
        shared,
        web,
        telemetry_path: settings.telemetry_path.clone(),
    });
    let graceful = GracefulShutdown::new();
    // A permit per open connection. At the cap a new connection is accepted (one at
    // a time, so the rest wait in the kernel's backlog, costing nothing here) and
    // the oldest connection with no request in flight is closed to make room, as
    // nginx reuses idle keep-alive connections: idle or slow clients cannot keep a
    // scrape waiting.
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let registry = Arc::new(Registry::new());
    let mut warned_full: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: pause instead of spinning,
                // the condition clears as other connections close.
                warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Once a minute at most: whoever fills the cap can repeat it.
                if warned_full.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    warn!(
                        max_connections = settings.max_connections,
                        "connection limit reached; the oldest connections without a request in flight are closed to admit new ones"
                    );
                    warned_full = Some(Instant::now());
                }
                let admitted = tokio::select! {
                    biased;
                    () = stopped(&mut shutdown) => None,
                    permit = admit(&slots, &registry, &router.shared) => permit,
                };
                match admitted {
                    Some(permit) => permit,
                    None => break,
                }
            }
        };
        // Without TCP_NODELAY the last partial segment of a response waits for the
        // client's delayed ACK (about 40 ms on Linux): a p99 cliff under load.
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        // The web config in force when the connection arrives decides plain or TLS;
        // a reload applies to new connections (and to every request's auth).
        let web = router.web.current();
        let (id, state) = registry.add();
        let conn = Connection {
            router: Arc::clone(&router),
            watcher: graceful.watcher(),
            read_header_timeout: settings.read_header_timeout,
            send_timeout: settings.send_timeout,
            peer,
            state: Arc::clone(&state),
            shutdown: shutdown.clone(),
        };
        let io = Guarded {
            inner: stream,
            read_since_write: 0,
            conn: Arc::clone(&state),
            send_timeout: settings.send_timeout,
            blocked: None,
        };
        let registered = Registered {
            registry: Arc::clone(&registry),
            id,
        };
        tokio::spawn(async move {
            // Dropped however the task ends, a panicking handler included.
            let _registered = registered;
            let _permit = permit;
            conn.run(io, &web).await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => info!("HTTP server stopped"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => warn!("HTTP requests still running at shutdown were cut off"),
    }
}

/// A slot for a connection accepted at the cap: the oldest connection without a
/// request in flight is evicted to free one; while every connection has a request
/// in flight, waits for one to close or to finish its request.
async fn admit(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    shared: &Shared,
) -> Option<OwnedSemaphorePermit> {
    loop {
        let became_idle = registry.became_idle.notified();
        tokio::pin!(became_idle);
        // Registered before looking, so a request ending meanwhile is not missed.
        became_idle.as_mut().enable();
        if registry.evict_oldest_idle() {
            shared
                .telemetry
                .count_connection_closed(Close::Evicted.reason());
            return Arc::clone(slots).acquire_owned().await.ok();
        }
        // Also look again when a connection that just wrote has been quiet long enough.
        tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => return permit.ok(),
            () = &mut became_idle => {}
            () = tokio::time::sleep(EVICT_QUIET) => {}
        }
    }
}

/// One accepted connection: a TLS handshake if the web config asks for it, then
/// HTTP/1.1, or HTTP/2 where ALPN chose it.
struct Connection {
    router: Arc<Router>,
    watcher: Watcher,
    read_header_timeout: Duration,
    send_timeout: Duration,
    peer: SocketAddr,
    state: Arc<ConnState>,
    /// The process's shutdown signal: an HTTP/2 connection sends GOAWAY on it.
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection until it ends or its watch closes it (dropping hyper's
    /// connection closes the socket).
    async fn run(self, io: Guarded, web: &WebConfig) {
        let state = Arc::clone(&self.state);
        let (send_timeout, idle_timeout) = (self.send_timeout, self.read_header_timeout);
        let peer = self.peer;
        let router = Arc::clone(&self.router);
        let telemetry = &router.shared.telemetry;
        let serve = self.serve(io, web);
        tokio::pin!(serve);
        let close = tokio::select! {
            () = &mut serve => None,
            close = state.watch(send_timeout, idle_timeout) => Some(close),
        };
        match close {
            None => {
                if state.send_timed_out.load(Ordering::Relaxed) {
                    telemetry.count_connection_closed("send_timeout");
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
                    telemetry.count_connection_closed(close.reason());
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

impl Router {
    /// Every response carries the web config's headers.
    async fn handle(&self, req: Request<Incoming>, peer: IpAddr) -> Response<Chunks> {
        let web = self.web.current();
        let mut resp = self.guarded(req, &web, peer).await;
        let headers = resp.headers_mut();
        for (name, value) in &web.headers {
            headers.insert(name.clone(), value.clone());
        }
        resp
    }

    /// The rate limit and basic auth, for every path but the probes: /-/healthy and
    /// /-/ready reveal nothing, and a probe that needed credentials would restart a
    /// healthy pod the day the password changes.
    ///
    /// With basic auth, the rate limit counts authenticated requests apart from the
    /// others (exporter-toolkit spends one bucket on every request, so a client
    /// without credentials could get Prometheus's scrapes answered 429): refused
    /// requests spend a bucket of their own, of the same size.
    async fn guarded(
        &self,
        req: Request<Incoming>,
        web: &WebConfig,
        peer: IpAddr,
    ) -> Response<Chunks> {
        let path = req.uri().path();
        if path != "/-/healthy" && path != "/-/ready" {
            let bucket = match &web.users {
                None => web.rate_limit.as_ref(),
                Some(users) => match users
                    .check(req.headers().get(header::AUTHORIZATION), peer)
                    .await
                {
                    Verdict::Allowed => web.rate_limit.as_ref(),
                    Verdict::Denied => {
                        if web
                            .rate_limit_refused
                            .as_ref()
                            .is_some_and(|limit| !limit.allow())
                        {
                            return self.too_many();
                        }
                        let mut resp = plain(StatusCode::UNAUTHORIZED, "401 unauthorized\n");
                        resp.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            HeaderValue::from_static(AUTHENTICATE),
                        );
                        return resp;
                    }
                    Verdict::AddressBusy => {
                        self.shared
                            .telemetry
                            .count_request_refused("auth_address_busy");
                        return retry_later(
                            StatusCode::TOO_MANY_REQUESTS,
                            "429 too many password checks from this address\n",
                        );
                    }
                    Verdict::Busy => {
                        self.shared.telemetry.count_request_refused("auth_busy");
                        return retry_later(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "503 password checks are busy\n",
                        );
                    }
                },
            };
            if bucket.is_some_and(|limit| !limit.allow()) {
                return self.too_many();
            }
        }
        self.route(req).await
    }

    fn too_many(&self) -> Response<Chunks> {
        self.shared.telemetry.count_request_refused("rate_limit");
        plain(StatusCode::TOO_MANY_REQUESTS, "429 too many requests\n")
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Chunks> {
        let path = req.uri().path();
        let page = if path == self.telemetry_path {
            Page::Metrics
        } else {
            match path {
                "/" => Page::Landing,
                "/-/healthy" => Page::Healthy,
                "/-/ready" => Page::Ready,
                _ => return plain(StatusCode::NOT_FOUND, "404 page not found\n"),
            }
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        // For HEAD hyper sends the headers of this response, Content-Length
        // included, and leaves the body out.
        match page {
            Page::Metrics => self.metrics(accepts_gzip(&req)).await,
            Page::Landing => {
                let mut resp = Response::new(Chunks::new([self.landing.clone()]));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                resp
            }
            Page::Healthy => plain(StatusCode::OK, "Healthy\n"),
            Page::Ready if self.shared.is_ready() => plain(StatusCode::OK, "Ready\n"),
            Page::Ready => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready: not every target has finished a first poll cycle, or SES has answered none\n",
            ),
        }
    }

    async fn metrics(&self, gzip: bool) -> Response<Chunks> {
        let cached = self.shared.exposition();
        let tail = match self.shared.tail(TAIL_MAX_AGE) {
            TailLookup::Fresh(tail) | TailLookup::Stale(tail, None) => tail,
            TailLookup::Stale(tail, Some(generation)) => {
                // Refreshed in the background; this scrape sends the one it has.
                let shared = Arc::clone(&self.shared);
                tokio::task::spawn_blocking(move || render_tail(&shared, generation));
                tail
            }
            TailLookup::Missing(generation) => {
                let shared = Arc::clone(&self.shared);
                // The process metrics read /proc: file I/O, so off the async threads.
                tokio::task::spawn_blocking(move || render_tail(&shared, generation))
                    .await
                    .unwrap_or_default()
            }
        };
        let dns = self.shared.dns();
        let mut tails: Vec<&Piece> = dns.iter().map(|p| &**p).collect();
        tails.push(&tail);
        let body = if gzip {
            Chunks::new(cached.gzip_with(&tails))
        } else {
            Chunks::new(cached.plain_with(&tails))
        };
        let mut resp = Response::new(body);
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        resp
    }
}

/// Renders the health and process metrics and caches them for `generation`.
fn render_tail(shared: &Shared, generation: u64) -> Arc<Piece> {
    // Fast compression: it is a few KB, rendered at most about once a second.
    let tail = Arc::new(Piece::new(
        &shared.telemetry.render(),
        flate2::Compression::fast(),
    ));
    shared.store_tail(generation, Arc::clone(&tail));
    tail
}

enum Page {
    Metrics,
    Landing,
    Healthy,
    Ready,
}

/// A refusal the client may retry in a second.
fn retry_later(status: StatusCode, text: &'static str) -> Response<Chunks> {
    let mut resp = plain(status, text);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Chunks> {
    let mut resp = Response::new(Chunks::text(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Whether `Accept-Encoding` allows gzip: listed (or `*`) with a q-value above 0.
pub fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let wanted = coding.eq_ignore_ascii_case("gzip") || coding == "*";
            let q_zero = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            wanted && !q_zero
        })
}

fn landing_page(telemetry_path: &str) -> String {
    let path = telemetry_path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>SES Identity Exporter</title></head>
<body>
<h1>SES Identity Exporter</h1>
<p>Custom MAIL FROM state of Amazon SES identities, for Prometheus. Version {version} (revision {revision}).</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body>
</html>
"#,
        version = crate::build::VERSION,
        revision = crate::build::REVISION,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> Request<()> {
        Request::builder()
            .header(header::ACCEPT_ENCODING, value)
            .body(())
            .unwrap()
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&with("gzip")));
        assert!(accepts_gzip(&with("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&Request::new(())));
    }

    #[test]
    fn chunks_report_their_exact_size() {
        let body = Chunks::new([
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
    }

    #[test]
    fn a_large_body_steps_back_between_chunks_and_loses_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let chunk = Bytes::from(vec![b'x'; YIELD_EVERY / 2 + 1]);
        let mut body = Chunks::new(std::iter::repeat_n(chunk, 6));
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let (mut bytes, mut pending) = (0, 0);
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => bytes += frame.into_data().map_or(0, |d| d.len()),
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Pending => pending += 1,
            }
        }
        assert_eq!(bytes, 6 * (YIELD_EVERY / 2 + 1));
        assert_eq!(
            pending, 2,
            "one step back after every 2 chunks but the last"
        );
        assert_eq!(wakes.0.load(Ordering::SeqCst), pending, "woken every time");
    }
}
