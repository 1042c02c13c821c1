//! What the poller publishes and the HTTP server reads: the rendered identity
//! exposition, readiness, and the self-metrics. Data flows one way, poller → state →
//! scrape; a scrape only ever clones an `Arc`, so it never waits for the poller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::exposition::{Exposition, Piece};
use crate::metrics::Telemetry;

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
    tail: Mutex<TailCache>,
}

/// The cached tail and a generation bumped by every invalidation, so a tail whose
/// rendering started before an invalidation is not stored after it.
#[derive(Default)]
struct TailCache {
    generation: u64,
    tail: Option<(Instant, Arc<Tail>)>,
}

/// How long a rendered tail is served before it is rendered again.
pub const TAIL_MAX_AGE: Duration = Duration::from_secs(1);

/// The small per-scrape part of the exposition: the health and process metrics.
pub type Tail = Piece;

impl Shared {
    pub fn new(telemetry: Telemetry) -> Shared {
        Shared {
            exposition: RwLock::new(Arc::new(Exposition::default())),
            ready: AtomicBool::new(false),
            telemetry,
            tail: Mutex::new(TailCache::default()),
        }
    }

    /// The cached tail if it is younger than `max_age`; otherwise the generation to
    /// hand to [`Shared::store_tail`] with a freshly rendered one.
    pub fn fresh_tail(&self, max_age: Duration) -> Result<Arc<Tail>, u64> {
        let cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        match &cache.tail {
            Some((at, tail)) if at.elapsed() < max_age => Ok(Arc::clone(tail)),
            _ => Err(cache.generation),
        }
    }

    /// Makes the next scrape render the health metrics afresh.
    pub fn invalidate_tail(&self) {
        let mut cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.tail = None;
    }

    /// Caches a tail rendered at `generation`, unless invalidated since.
    pub fn store_tail(&self, generation: u64, tail: Arc<Tail>) {
        let mut cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if cache.generation == generation {
            cache.tail = Some((Instant::now(), tail));
        }
    }

    pub fn exposition(&self) -> Arc<Exposition> {
        match self.exposition.read() {
            Ok(guard) => Arc::clone(&guard),
            // A panic while swapping an Arc cannot leave it half-written.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Swaps in a new identity exposition and drops the cached tail, so the next
    /// scrape pairs the new identity values with the health metrics of this moment.
    pub fn publish(&self, exposition: Exposition) {
        self.invalidate_tail();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_rendered_before_an_invalidation_is_not_cached() {
        let shared = Shared::new(Telemetry::new(60.0).expect("registry"));
        let generation = shared.fresh_tail(TAIL_MAX_AGE).expect_err("nothing cached");
        shared.invalidate_tail(); // the poller published while the scrape rendered
        shared.store_tail(generation, Arc::new(Tail::default()));
        let generation = shared
            .fresh_tail(TAIL_MAX_AGE)
            .expect_err("the stale tail was dropped");
        shared.store_tail(generation, Arc::new(Tail::default()));
        assert!(shared.fresh_tail(TAIL_MAX_AGE).is_ok());
        assert!(shared.fresh_tail(Duration::ZERO).is_err(), "expires");
    }
}
