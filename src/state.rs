//! What the poller publishes and the HTTP server reads: the rendered identity
//! exposition, readiness, and the self-metrics. Data flows one way, poller → state →
//! scrape; a scrape only ever clones an `Arc`, so it never waits for the poller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::metrics::{Exposition, Telemetry};

pub struct Shared {
    /// A std lock, not a tokio one: it is held only to clone or swap an `Arc`, never
    /// across an `.await`, so scrapes and the poller never queue behind each other.
    exposition: RwLock<Arc<Exposition>>,
    /// Set after the first successful cycle; `/-/ready` answers 200 from then on.
    ready: AtomicBool,
    pub telemetry: Telemetry,
}

impl Shared {
    pub fn new(telemetry: Telemetry) -> Shared {
        Shared {
            exposition: RwLock::new(Arc::new(Exposition::default())),
            ready: AtomicBool::new(false),
            telemetry,
        }
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
