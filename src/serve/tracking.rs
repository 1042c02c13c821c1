//! What each open connection is doing, for the limits that keep clients from holding the
//! server: the [`Registry`] of open connections (and which one to evict at the cap), each
//! one's [`ConnState`] and [`Tracker`]s, and the [`Guarded`] socket.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// A client that sends more than this before getting a response (a request is a few
/// hundred bytes) is disconnected, as nginx's 4 x 8k header buffers do; otherwise
/// hyper would buffer up to ~400 KB per connection. Not hyper's own `max_buf_size`:
/// that also bounds the write queue, and at 16 KiB it made 10 MB scrapes 2x slower.
pub(super) const MAX_REQUEST_BYTES: usize = 32 * 1024;

/// The accepted socket, counting what the client sends between two responses and
/// timing how long a write has been waiting for the client to read.
pub(super) struct Guarded {
    inner: TcpStream,
    read_since_write: usize,
    conn: Arc<ConnState>,
    send_timeout: Duration,
    /// Running while a write is blocked (the client does not read): when it fires
    /// before a write succeeds, the connection is closed (nginx's `send_timeout`).
    blocked: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    pub(super) fn new(inner: TcpStream, conn: Arc<ConnState>, send_timeout: Duration) -> Guarded {
        Guarded {
            inner,
            read_since_write: 0,
            conn,
            send_timeout,
            blocked: None,
        }
    }

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
pub(super) struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<ConnState>>>,
    next: AtomicU64,
    /// Woken when a connection's last request ends: the acceptor, waiting at the
    /// cap with every connection busy, looks again.
    pub(super) became_idle: Arc<Notify>,
}

impl Registry {
    pub(super) fn new() -> Registry {
        Registry {
            conns: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            became_idle: Arc::new(Notify::new()),
        }
    }

    pub(super) fn add(&self) -> (u64, Arc<ConnState>) {
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
    pub(super) fn evict_oldest_idle(&self) -> bool {
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
pub(super) struct Registered {
    pub(super) registry: Arc<Registry>,
    pub(super) id: u64,
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
pub(super) struct ConnState {
    activity: Mutex<Activity>,
    evict: Notify,
    /// Wakes the watch to look again (the connection turned out to be HTTP/2, or a
    /// request began: its deadline may be earlier than the one the watch waits for).
    pub(super) rewatch: Notify,
    became_idle: Arc<Notify>,
    /// Set by the socket when a write waited longer than the send timeout.
    pub(super) send_timed_out: AtomicBool,
    /// HTTP/2: closed after the idle timeout without a request (HTTP/1.1 has
    /// hyper's keep-alive timeout).
    pub(super) h2: AtomicBool,
    /// Asks an HTTP/2 connection to send GOAWAY and finish (idle or evicted): a
    /// client retries a request the GOAWAY refused, not one on a dropped socket.
    pub(super) goaway: Notify,
    born: Instant,
    /// Milliseconds from `born` to the last successful write to the socket (any
    /// response's), `u64::MAX` before the first: a response whose chunk is large or
    /// whose HTTP/2 frames are still leaving is moving as long as writes succeed.
    last_write_ms: AtomicU64,
}

/// A connection that wrote within this long is not evicted even with no request
/// in flight: its last response may still be leaving (hyper hands the end of an
/// HTTP/2 response to h2, which may still hold several hundred KB of it).
pub(super) const EVICT_QUIET: Duration = Duration::from_secs(1);

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
pub(super) enum Close {
    Evicted,
    StreamStalled,
    Idle,
}

impl Close {
    pub(super) fn reason(self) -> &'static str {
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
    pub(super) fn begin(self: &Arc<Self>) -> Option<Tracker> {
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
    pub(super) async fn watch(&self, send_timeout: Duration, idle_timeout: Duration) -> Close {
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
pub(super) struct Tracker {
    conn: Arc<ConnState>,
    id: u64,
}

impl Tracker {
    pub(super) fn progress(&self) {
        self.conn.progress(self.id);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.conn.end(self.id);
    }
}
