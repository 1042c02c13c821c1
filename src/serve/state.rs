//! What the HTTP server reads, and the one thing it keeps itself: the publisher's
//! body and readiness (through a [`Subscriber`]), the self-metrics, and the cache of
//! the rendered health tail. Data flows one way, publisher → here → scrape; a scrape
//! only ever clones an `Arc`, so it never waits for a collector.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Telemetry;
use crate::publish::Subscriber;
use crate::render::{Exposition, Piece};

pub struct Shared {
    subscriber: Subscriber,
    pub telemetry: Arc<Telemetry>,
    /// The rendered self and process metrics, reused for [`TAIL_MAX_AGE`]: rendering
    /// reads /proc and gathers the registry, which would otherwise make a scrape's
    /// cost grow with the number of scrapers.
    tail: Mutex<TailCache>,
}

/// The cached tail and the publisher's generation it was rendered at: a publish or a
/// health change moves the generation, and a tail of an older one is not served.
#[derive(Default)]
struct TailCache {
    tail: Option<(u64, Instant, Arc<Tail>)>,
    /// Since when a scrape is refreshing an expired tail; the others keep serving it
    /// meanwhile. A refresh that never reports back is given up after
    /// [`REFRESH_GIVE_UP`], so one lost render cannot freeze the health metrics.
    refreshing: Option<Instant>,
}

/// What a scrape finds in the tail cache.
pub enum TailLookup {
    Fresh(Arc<Tail>),
    /// Older than the maximum age: serve it; if a generation is given, this scrape
    /// was chosen to render the next one (in the background) and hand it to
    /// [`Shared::store_tail`].
    Stale(Arc<Tail>, Option<u64>),
    /// None since a publish: render one now, for this generation.
    Missing(u64),
}

/// How long a rendered tail is served before it is rendered again.
pub const TAIL_MAX_AGE: Duration = Duration::from_secs(1);
const REFRESH_GIVE_UP: Duration = Duration::from_secs(10);

/// The small per-scrape part of the exposition: the health and process metrics.
pub type Tail = Piece;

impl Shared {
    pub fn new(subscriber: Subscriber, telemetry: Arc<Telemetry>) -> Shared {
        Shared {
            subscriber,
            telemetry,
            tail: Mutex::new(TailCache::default()),
        }
    }

    /// The cached tail, and whether this scrape should render the next one. Once the
    /// tail has expired exactly one scrape is told to refresh it while the others
    /// keep sending the expired one: rendering reads /proc, and ten scrapers each
    /// rendering at the same moment stalled every response in flight.
    pub fn tail(&self, max_age: Duration) -> TailLookup {
        let generation = self.subscriber.body().generation;
        let mut cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let refreshing = cache
            .refreshing
            .is_some_and(|since| since.elapsed() < REFRESH_GIVE_UP);
        match &cache.tail {
            Some((g, at, tail)) if *g == generation && at.elapsed() < max_age => {
                TailLookup::Fresh(Arc::clone(tail))
            }
            Some((g, _, tail)) if *g == generation => {
                let tail = Arc::clone(tail);
                if refreshing {
                    TailLookup::Stale(tail, None)
                } else {
                    cache.refreshing = Some(Instant::now());
                    TailLookup::Stale(tail, Some(generation))
                }
            }
            _ => {
                cache.tail = None;
                cache.refreshing = None;
                TailLookup::Missing(generation)
            }
        }
    }

    /// Caches a tail rendered at `generation`, unless the publisher moved on since.
    pub fn store_tail(&self, generation: u64, tail: Arc<Tail>) {
        if self.subscriber.body().generation != generation {
            return;
        }
        let mut cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        cache.tail = Some((generation, Instant::now(), tail));
        cache.refreshing = None;
    }

    pub fn exposition(&self) -> Arc<Exposition> {
        self.subscriber.body().exposition
    }

    pub fn is_ready(&self) -> bool {
        self.subscriber.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Publisher;

    fn generation(lookup: TailLookup) -> Option<u64> {
        match lookup {
            TailLookup::Missing(g) | TailLookup::Stale(_, Some(g)) => Some(g),
            _ => None,
        }
    }

    fn shared() -> (Arc<Publisher>, Shared) {
        let publisher = Arc::new(Publisher::new());
        let telemetry = Arc::new(Telemetry::new(60.0).expect("registry"));
        let shared = Shared::new(publisher.subscribe(), telemetry);
        (publisher, shared)
    }

    #[test]
    fn a_tail_rendered_before_an_invalidation_is_not_cached() {
        let (publisher, shared) = shared();
        let first = generation(shared.tail(TAIL_MAX_AGE)).expect("nothing cached");
        publisher.health_changed(); // a target's cycle ended while the scrape rendered
        shared.store_tail(first, Arc::new(Tail::default()));
        let TailLookup::Missing(second) = shared.tail(TAIL_MAX_AGE) else {
            panic!("the stale tail was dropped");
        };
        shared.store_tail(second, Arc::new(Tail::default()));
        assert!(matches!(shared.tail(TAIL_MAX_AGE), TailLookup::Fresh(_)));
    }

    #[test]
    fn one_scrape_refreshes_an_expired_tail_while_the_others_serve_it() {
        let (_publisher, shared) = shared();
        let g = generation(shared.tail(TAIL_MAX_AGE)).expect("empty");
        shared.store_tail(g, Arc::new(Tail::default()));
        let chosen = generation(shared.tail(Duration::ZERO)).expect("first is chosen");
        for _ in 0..5 {
            assert!(
                matches!(shared.tail(Duration::ZERO), TailLookup::Stale(_, None)),
                "the others only serve it"
            );
        }
        shared.store_tail(chosen, Arc::new(Tail::default()));
        assert!(matches!(shared.tail(TAIL_MAX_AGE), TailLookup::Fresh(_)));
        assert!(
            generation(shared.tail(Duration::ZERO)).is_some(),
            "after a refresh the next expiry chooses again"
        );
    }
}
