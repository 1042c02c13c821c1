//! What the poller publishes and the HTTP server reads: the rendered identity
//! exposition, readiness, and the self-metrics. Data flows one way, poller → state →
//! scrape; a scrape only ever clones an `Arc`, so it never waits for the poller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metrics::{Exposition, Telemetry};

pub struct Shared {
    /// A std lock, not a tokio one: it is held only to clone or swap an `Arc`, never
    /// across an `.await`, so scrapes and the poller never queue behind each other.
    exposition: RwLock<Arc<Exposition>>,
    /// Set after the first successful cycle; `/-/ready` answers 200 from then on.
    ready: AtomicBool,
    pub telemetry: Telemetry,
    /// The rendered self and process metrics, reused for [`TAIL_MAX_AGE`]: rendering
    /// reads /proc and gathers the registry, which would otherwise make a scrape's
    /// cost grow with the number of scrapers.
    tail: Mutex<Option<(Instant, Arc<Tail>)>>,
}

/// How long a rendered tail is served before it is rendered again.
pub const TAIL_MAX_AGE: Duration = Duration::from_secs(1);

/// The small per-scrape part of the exposition, plain and as its own gzip member.
#[derive(Debug, Default)]
pub struct Tail {
    pub plain: Bytes,
    pub gzip: Bytes,
}

impl Shared {
    pub fn new(telemetry: Telemetry) -> Shared {
        Shared {
            exposition: RwLock::new(Arc::new(Exposition::default())),
            ready: AtomicBool::new(false),
            telemetry,
            tail: Mutex::new(None),
        }
    }

    /// The cached tail if it is younger than `max_age`.
    pub fn fresh_tail(&self, max_age: Duration) -> Option<Arc<Tail>> {
        let guard = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, tail)| Arc::clone(tail))
    }

    pub fn store_tail(&self, tail: Arc<Tail>) {
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), tail));
    }

    pub fn exposition(&self) -> Arc<Exposition> {
        match self.exposition.read() {
            Ok(guard) => Arc::clone(&guard),
            // A panic while swapping an Arc cannot leave it half-written.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn publish(&self, exposition: Exposition) {
        let new = Arc::new(exposition);
        let old = match self.exposition.write() {
            Ok(mut guard) => std::mem::replace(&mut *guard, new),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), new),
        };
        // The previous body is freed here, outside the lock (or by the last scrape
        // still sending it).
        drop(old);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
