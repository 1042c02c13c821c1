//! What the poller publishes and the HTTP server reads: the rendered identity
//! exposition, readiness, and the self-metrics. Data flows one way, poller → state →
//! scrape; a scrape only ever clones an `Arc`, so it never waits for the poller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::exposition::{Assembler, Exposition, Piece, Rendered};
use crate::metrics::Telemetry;

/// Which collector a rendered part belongs to; the order is the exposition's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartKind {
    MailFrom,
    Dkim,
    Verification,
    Quota,
}

/// The MAIL FROM domains of one target, as of its poller's last render: what the dns
/// collector checks, and the labels and region to check them with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDomains {
    /// The target's label pairs (see [`crate::exposition::target_labels`]).
    pub labels: Arc<str>,
    pub region: Arc<str>,
    /// Identity → custom MAIL FROM domain.
    pub domains: BTreeMap<String, String>,
}

/// Every collector's latest part of every target, and what assembles them.
#[derive(Default)]
struct Parts {
    parts: BTreeMap<(PartKind, usize), Arc<Rendered>>,
    assembler: Assembler,
}

pub struct Shared {
    /// A std lock, not a tokio one: it is held only to clone or swap an `Arc`, never
    /// across an `.await`, so scrapes and the poller never queue behind each other.
    exposition: RwLock<Arc<Exposition>>,
    /// The rendered parts the exposition is assembled from.
    parts: Mutex<Parts>,
    /// Targets that have not yet finished a first cycle (successful or not).
    first_cycles_pending: AtomicUsize,
    /// Set once any target's cycle got an answer from SES.
    answered: AtomicBool,
    pub telemetry: Telemetry,
    /// The rendered self and process metrics, reused for [`TAIL_MAX_AGE`]: rendering
    /// reads /proc and gathers the registry, which would otherwise make a scrape's
    /// cost grow with the number of scrapers.
    tail: Mutex<TailCache>,
    /// Target index → its MAIL FROM domains, as of each poller's last render: what
    /// the dns collector checks. Maps of names, not the records, so it never holds a
    /// poller's records alive (that would make the poller copy them).
    mail_from_domains: RwLock<Arc<BTreeMap<usize, Arc<TargetDomains>>>>,
    /// The dns collector's families as pieces, rendered when its results change.
    dns: RwLock<Arc<Vec<Arc<Piece>>>>,
}

/// The cached tail and a generation bumped by every invalidation, so a tail whose
/// rendering started before an invalidation is not stored after it.
#[derive(Default)]
struct TailCache {
    generation: u64,
    tail: Option<(Instant, Arc<Tail>)>,
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
    pub fn new(telemetry: Telemetry) -> Shared {
        Shared {
            exposition: RwLock::new(Arc::new(Exposition::default())),
            parts: Mutex::new(Parts::default()),
            first_cycles_pending: AtomicUsize::new(1),
            answered: AtomicBool::new(false),
            telemetry,
            tail: Mutex::new(TailCache::default()),
            mail_from_domains: RwLock::new(Arc::new(BTreeMap::new())),
            dns: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// The cached tail, and whether this scrape should render the next one. Once the
    /// tail has expired exactly one scrape is told to refresh it while the others
    /// keep sending the expired one: rendering reads /proc, and ten scrapers each
    /// rendering at the same moment stalled every response in flight.
    pub fn tail(&self, max_age: Duration) -> TailLookup {
        let mut cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let generation = cache.generation;
        let refreshing = cache
            .refreshing
            .is_some_and(|since| since.elapsed() < REFRESH_GIVE_UP);
        match &cache.tail {
            Some((at, tail)) if at.elapsed() < max_age => TailLookup::Fresh(Arc::clone(tail)),
            Some((_, tail)) => {
                let tail = Arc::clone(tail);
                if refreshing {
                    TailLookup::Stale(tail, None)
                } else {
                    cache.refreshing = Some(Instant::now());
                    TailLookup::Stale(tail, Some(generation))
                }
            }
            None => TailLookup::Missing(generation),
        }
    }

    /// Makes the next scrape render the health metrics afresh.
    pub fn invalidate_tail(&self) {
        let mut cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.tail = None;
        cache.refreshing = None;
    }

    /// Caches a tail rendered at `generation`, unless invalidated since.
    pub fn store_tail(&self, generation: u64, tail: Arc<Tail>) {
        let mut cache = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if cache.generation == generation {
            cache.tail = Some((Instant::now(), tail));
            cache.refreshing = None;
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

    /// Replaces one collector's part of one target and publishes the exposition
    /// assembled from every part. Called from the blocking pool: the assembly copies
    /// the compressed body once.
    pub fn publish_part(&self, kind: PartKind, target: usize, part: Rendered) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.parts.insert((kind, target), Arc::new(part));
        let exposition = {
            let Parts { parts, assembler } = &mut *parts;
            let mut groups: Vec<Vec<Arc<Rendered>>> = Vec::new();
            let mut last = None;
            for ((kind, _), part) in parts.iter() {
                if last != Some(*kind) {
                    groups.push(Vec::new());
                    last = Some(*kind);
                }
                if let Some(group) = groups.last_mut() {
                    group.push(Arc::clone(part));
                }
            }
            let slices: Vec<&[Arc<Rendered>]> = groups.iter().map(Vec::as_slice).collect();
            assembler.assemble(&slices)
        };
        // Published under the parts lock, so an older assembly never replaces a newer.
        self.publish(exposition);
    }

    /// How many targets must finish a first cycle before `/-/ready`.
    pub fn expect_targets(&self, n: usize) {
        self.first_cycles_pending.store(n, Ordering::Release);
    }

    /// A target finished a cycle; `first` for its first one, `answered` when SES
    /// answered any of it.
    pub fn note_cycle(&self, first: bool, answered: bool) {
        if answered {
            self.answered.store(true, Ordering::Release);
        }
        if first {
            let _ =
                self.first_cycles_pending
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }

    pub fn set_mail_from_domains(&self, target: usize, domains: TargetDomains) {
        let mut guard = self
            .mail_from_domains
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if guard.get(&target).is_some_and(|d| **d == domains) {
            return;
        }
        let mut next = (**guard).clone();
        next.insert(target, Arc::new(domains));
        *guard = Arc::new(next);
    }

    pub fn mail_from_domains(&self) -> Arc<BTreeMap<usize, Arc<TargetDomains>>> {
        Arc::clone(
            &self
                .mail_from_domains
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    pub fn publish_dns(&self, pieces: Vec<Arc<Piece>>) {
        *self.dns.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pieces);
    }

    pub fn dns(&self) -> Arc<Vec<Arc<Piece>>> {
        Arc::clone(&self.dns.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Ready once every target has finished a first cycle (so a scrape right after
    /// shows every target, failing ones included) and SES answered at least one: a
    /// target that keeps failing must not keep the others' data out of service.
    pub fn is_ready(&self) -> bool {
        self.answered.load(Ordering::Acquire)
            && self.first_cycles_pending.load(Ordering::Acquire) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(lookup: TailLookup) -> Option<u64> {
        match lookup {
            TailLookup::Missing(g) | TailLookup::Stale(_, Some(g)) => Some(g),
            _ => None,
        }
    }

    #[test]
    fn a_tail_rendered_before_an_invalidation_is_not_cached() {
        let shared = Shared::new(Telemetry::new(60.0).expect("registry"));
        let first = generation(shared.tail(TAIL_MAX_AGE)).expect("nothing cached");
        shared.invalidate_tail(); // the poller published while the scrape rendered
        shared.store_tail(first, Arc::new(Tail::default()));
        let TailLookup::Missing(second) = shared.tail(TAIL_MAX_AGE) else {
            panic!("the stale tail was dropped");
        };
        shared.store_tail(second, Arc::new(Tail::default()));
        assert!(matches!(shared.tail(TAIL_MAX_AGE), TailLookup::Fresh(_)));
    }

    #[test]
    fn one_scrape_refreshes_an_expired_tail_while_the_others_serve_it() {
        let shared = Shared::new(Telemetry::new(60.0).expect("registry"));
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
