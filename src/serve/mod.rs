//! The HTTP server, the only code of the exporter that uses hyper or rustls: this file
//! accepts on every listener, keeps the connection cap and shuts down gracefully
//! ([`serve`]); its submodules own connections, requests, the web config, TLS and auth.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::serve::state::Shared;
use crate::supervise::stopped;
use connection::Connection;
use router::Router;
use tracking::{Close, Guarded, Registered, Registry, EVICT_QUIET};
use web_config::WebState;

pub mod auth;
mod body;
mod connection;
pub mod healthcheck;
pub mod listen;
mod router;
pub mod state;
pub mod tls;
mod tracking;
pub mod web_config;

pub use body::Chunks;
pub use router::{accepts_gzip, CONTENT_TYPE};

/// In-flight requests get this long after a shutdown signal (under the 10 s a
/// Kubernetes or systemd stop allows by default, with room for the rest).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// What the server is told by flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub telemetry_path: String,
    pub max_connections: usize,
    pub read_header_timeout: Duration,
    /// `--web.send-timeout`: longest a response may go without progress.
    pub send_timeout: Duration,
}

/// Serves HTTP on every one of `listeners` (at least one) until `shutdown` turns
/// true, then stops accepting and gives in-flight requests [`DRAIN_TIMEOUT`] to
/// finish. The connection cap is shared by all of them.
pub async fn serve(
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    web: Arc<WebState>,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = Arc::new(Router::new(shared, web, &settings.telemetry_path));
    let graceful = GracefulShutdown::new();
    // A permit per open connection. At the cap a new connection is accepted (one at
    // a time, so the rest wait in the kernel's backlog, costing nothing here) and
    // the oldest connection with no request in flight is closed to make room, as
    // nginx reuses idle keep-alive connections: idle or slow clients cannot keep a
    // scrape waiting.
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let registry = Arc::new(Registry::new());
    let mut warned_full: Option<Instant> = None;
    let mut next_listener = 0;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            accepted = listen::accept_any(&listeners, &mut next_listener) => accepted,
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
                    permit = admit(&slots, &registry, &router) => permit,
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
        let io = Guarded::new(stream, Arc::clone(&state), settings.send_timeout);
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
    drop(listeners);
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
    router: &Router,
) -> Option<OwnedSemaphorePermit> {
    loop {
        let became_idle = registry.became_idle.notified();
        tokio::pin!(became_idle);
        // Registered before looking, so a request ending meanwhile is not missed.
        became_idle.as_mut().enable();
        if registry.evict_oldest_idle() {
            router.count_connection_closed(Close::Evicted.reason());
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
