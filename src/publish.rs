//! The one writer of what scrapes read: [`Publisher`] keeps the latest part of every
//! (collector, target), assembles them into one body and hands it to HTTP through a `watch`
//! channel ([`Subscriber`]); collectors hand it their parts through a [`Publishing`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::error;

use crate::model::TargetId;
use crate::render::{Assembler, Exposition, Rendered};

/// What a scrape sends besides the health metrics, and the generation it belongs to.
#[derive(Clone, Default)]
pub struct Body {
    pub exposition: Arc<Exposition>,
    /// Moves with every publish and every health change.
    pub generation: u64,
}

/// Where a target sits in the exposition: the order it was added in.
pub type Slot = u64;

/// Every collector's latest part of every target, and what assembles them.
#[derive(Default)]
struct Parts {
    /// Slot → the target in it, once its account is known.
    slots: BTreeMap<Slot, Option<TargetId>>,
    /// (collector position in the registry, target) → part.
    parts: HashMap<(usize, TargetId), Arc<Rendered>>,
    assembler: Assembler,
}

/// The latest parts and the body they make. Parts are keyed by the target's
/// [`TargetId`] and ordered by its [`Slot`] (the order targets were added), so a target
/// can come and go while the exporter runs; it also keeps readiness. Nothing here calls
/// back into a collector or into HTTP.
pub struct Publisher {
    parts: Mutex<Parts>,
    body: watch::Sender<Body>,
    readiness: Mutex<Readiness>,
    /// Set once any target's cycle got an answer from SES.
    answered: AtomicBool,
}

/// Readiness: the targets present at start-up that have not finished a first cycle.
struct Readiness {
    /// Until every start-up target is added ([`Publisher::started`]): one that
    /// finished its first cycle before the next was added must not make it ready.
    starting: bool,
    pending: BTreeSet<Slot>,
    /// Latched: a target added later does not take the exporter out of service.
    ready: bool,
}

impl Readiness {
    fn update(&mut self, answered: bool) {
        self.ready |= !self.starting && self.pending.is_empty() && answered;
    }
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher::new()
    }
}

impl Publisher {
    pub fn new() -> Publisher {
        Publisher {
            parts: Mutex::new(Parts::default()),
            body: watch::Sender::new(Body::default()),
            readiness: Mutex::new(Readiness {
                starting: true,
                pending: BTreeSet::new(),
                ready: false,
            }),
            answered: AtomicBool::new(false),
        }
    }

    fn parts(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn readiness(&self) -> std::sync::MutexGuard<'_, Readiness> {
        self.readiness.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A target is added in `slot`; before the exporter is ready, `/-/ready` waits
    /// for its first cycle too.
    pub fn add_target(&self, slot: Slot) {
        self.parts().slots.insert(slot, None);
        let mut readiness = self.readiness();
        if !readiness.ready {
            readiness.pending.insert(slot);
        }
    }

    /// The target in `slot` learnt who it is: its parts are published under `id`.
    pub fn bind_target(&self, slot: Slot, id: TargetId) {
        if let Some(bound) = self.parts().slots.get_mut(&slot) {
            *bound = Some(id);
        }
    }

    /// The target in `slot` went: every part of it, every collector's, goes too.
    pub fn remove_target(&self, slot: Slot) {
        let mut guard = self.parts();
        if let Some(Some(id)) = guard.slots.remove(&slot) {
            guard.parts.retain(|(_, target), _| *target != id);
        }
        self.assemble(guard);
        let mut readiness = self.readiness();
        readiness.pending.remove(&slot);
        readiness.update(self.answered.load(Ordering::Acquire));
    }

    /// Every target present at start-up has been added.
    pub fn started(&self) {
        let mut readiness = self.readiness();
        readiness.starting = false;
        readiness.update(self.answered.load(Ordering::Acquire));
    }

    /// Replaces one collector's parts of some targets and publishes the body
    /// assembled from every part. A part of a target that is not (or no longer) in a
    /// slot is dropped: a late render of a removed target cannot bring it back.
    /// Called from the blocking pool: the assembly copies the compressed body once.
    pub fn publish_parts(&self, collector: usize, parts: Vec<(TargetId, Rendered)>) {
        let mut guard = self.parts();
        for (target, part) in parts {
            if guard.slots.values().any(|t| t.as_ref() == Some(&target)) {
                guard.parts.insert((collector, target), Arc::new(part));
            }
        }
        self.assemble(guard);
    }

    /// Assembles the body from every part, collector by collector, targets in slot
    /// order, and sends it, under the parts lock, so an older assembly never
    /// replaces a newer. The previous body is freed by the last scrape sending it.
    fn assemble(&self, mut guard: std::sync::MutexGuard<'_, Parts>) {
        let Parts {
            slots,
            parts,
            assembler,
        } = &mut *guard;
        let mut collectors: Vec<usize> = parts.keys().map(|(c, _)| *c).collect();
        collectors.sort_unstable();
        collectors.dedup();
        let groups: Vec<Vec<Arc<Rendered>>> = collectors
            .iter()
            .map(|&c| {
                slots
                    .values()
                    .flatten()
                    .filter_map(|id| parts.get(&(c, id.clone())).map(Arc::clone))
                    .collect()
            })
            .collect();
        let slices: Vec<&[Arc<Rendered>]> = groups.iter().map(Vec::as_slice).collect();
        let exposition = Arc::new(assembler.assemble(&slices));
        self.body.send_modify(|body| {
            body.exposition = exposition;
            body.generation += 1;
        });
    }

    /// A target's health changed (a cycle ended, a task failed): the health metrics
    /// a scrape pairs with the body must be rendered afresh.
    pub fn health_changed(&self) {
        self.body.send_modify(|body| body.generation += 1);
    }

    /// What HTTP reads.
    pub fn subscribe(self: &Arc<Self>) -> Subscriber {
        Subscriber {
            body: self.body.subscribe(),
            publisher: Arc::clone(self),
        }
    }

    /// The target in `slot` finished a cycle; `answered` when SES answered any of it.
    pub fn note_cycle(&self, slot: Slot, answered: bool) {
        if answered {
            self.answered.store(true, Ordering::Release);
        }
        let mut readiness = self.readiness();
        readiness.pending.remove(&slot);
        readiness.update(self.answered.load(Ordering::Acquire));
    }

    fn is_ready(&self) -> bool {
        self.readiness().ready
    }
}

/// One collector's render-and-publish path: the state its renders keep (its
/// renderers, with the pieces to reuse) and the one render in flight on the blocking
/// pool. A render started after another waits for it, so an older render is never
/// published after a newer one; a collector waits ([`Publishing::idle`]) for the
/// final publish of its cycle, so the cycle ends with its values served.
pub struct Publishing<S: Send + 'static> {
    publisher: Arc<Publisher>,
    /// The collector's position in the registry: where its parts go.
    collector: usize,
    /// Away, inside `rendering`, while a render runs.
    state: Option<S>,
    rendering: Option<JoinHandle<S>>,
}

impl<S: Default + Send + 'static> Publishing<S> {
    pub fn new(publisher: Arc<Publisher>, collector: usize) -> Publishing<S> {
        Publishing {
            publisher,
            collector,
            state: Some(S::default()),
            rendering: None,
        }
    }

    /// A render is running.
    pub fn busy(&self) -> bool {
        self.rendering.as_ref().is_some_and(|r| !r.is_finished())
    }

    /// Waits for the render in flight, if any, and takes its state back.
    pub async fn idle(&mut self) {
        // Awaited in place and taken after: a caller dropped mid-wait (a stopped
        // target's cycle) leaves the handle here, so the next `idle` (its `settle`)
        // still waits for that render.
        if let Some(render) = self.rendering.as_mut() {
            let result = render.await;
            self.rendering = None;
            self.state = Some(match result {
                Ok(state) => state,
                Err(err) => {
                    // Nothing to reuse: the next render starts afresh.
                    error!(error = %err, "rendering failed; serving the previous body");
                    S::default()
                }
            });
        }
    }

    /// Renders with `job` on the blocking pool, after the render in flight, and
    /// publishes the parts it returns. Does not wait for it: [`Publishing::idle`]
    /// does.
    pub async fn start<F>(&mut self, job: F)
    where
        F: FnOnce(&mut S) -> Vec<(TargetId, Rendered)> + Send + 'static,
    {
        self.idle().await;
        let mut state = self.state.take().unwrap_or_default();
        let (publisher, collector) = (Arc::clone(&self.publisher), self.collector);
        self.rendering = Some(tokio::task::spawn_blocking(move || {
            let parts = job(&mut state);
            publisher.publish_parts(collector, parts);
            state
        }));
    }
}

/// HTTP's read-only side of the [`Publisher`].
#[derive(Clone)]
pub struct Subscriber {
    body: watch::Receiver<Body>,
    publisher: Arc<Publisher>,
}

impl Subscriber {
    /// The current body; a clone of two `Arc`s, so a scrape never waits for a
    /// collector.
    pub fn body(&self) -> Body {
        self.body.borrow().clone()
    }

    /// Ready once every target has finished a first cycle (so a scrape right after
    /// shows every target, failing ones included) and SES answered at least one: a
    /// target that keeps failing must not keep the others' data out of service.
    pub fn is_ready(&self) -> bool {
        self.publisher.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Header, MetricType, Piece, RenderedFamily};
    use flate2::Compression;

    /// A part of one family holding `text`.
    fn part(name: &'static str, text: &str) -> Rendered {
        Rendered {
            families: vec![RenderedFamily {
                header: Header {
                    name,
                    help: "h",
                    kind: MetricType::Gauge,
                    cached: false,
                },
                pieces: vec![Piece::new(text, Compression::fast())],
            }],
        }
    }

    fn id(region: &str) -> TargetId {
        TargetId::new("111111111111", region)
    }

    #[test]
    fn parts_are_served_by_collector_then_slot_and_replaced_whole() {
        let p = Arc::new(Publisher::new());
        let http = p.subscribe();
        let (west, east) = (id("eu-west-1"), id("us-east-1"));
        // Slot order, not the targets' names: the order they were added in.
        p.add_target(0);
        p.add_target(1);
        p.bind_target(0, west.clone());
        p.bind_target(1, east.clone());
        let g0 = http.body().generation;
        p.publish_parts(1, vec![(west.clone(), part("b", "b{t=\"w\"} 1\n"))]);
        p.publish_parts(0, vec![(east.clone(), part("a", "a{t=\"e\"} 1\n"))]);
        p.publish_parts(0, vec![(west.clone(), part("a", "a{t=\"w\"} 1\n"))]);
        assert_eq!(
            http.body().exposition.text(),
            "# HELP a h\n# TYPE a gauge\na{t=\"w\"} 1\na{t=\"e\"} 1\n# HELP b h\n# TYPE b gauge\nb{t=\"w\"} 1\n"
        );
        let g3 = http.body().generation;
        assert_eq!(g3, g0 + 3, "every publish moves the generation");
        p.publish_parts(0, vec![(east.clone(), part("a", "a{t=\"e\"} 0\n"))]);
        let text = http.body().exposition.text();
        assert!(text.contains("a{t=\"e\"} 0\n") && !text.contains("a{t=\"e\"} 1\n"));
        p.health_changed();
        assert_eq!(
            http.body().generation,
            g3 + 2,
            "a health change moves it too"
        );
    }

    #[test]
    fn a_removed_target_loses_every_part_and_a_late_one_is_dropped() {
        let p = Arc::new(Publisher::new());
        let http = p.subscribe();
        let (west, east) = (id("eu-west-1"), id("us-east-1"));
        for (slot, t) in [(0, &west), (1, &east)] {
            p.add_target(slot);
            p.bind_target(slot, t.clone());
            p.publish_parts(
                0,
                vec![(t.clone(), part("a", &format!("a{{t=\"{slot}\"}} 1\n")))],
            );
            p.publish_parts(
                4,
                vec![(t.clone(), part("d", &format!("d{{t=\"{slot}\"}} 1\n")))],
            );
        }
        p.remove_target(0);
        let text = http.body().exposition.text();
        assert!(!text.contains("t=\"0\""), "{text}");
        assert!(text.contains("a{t=\"1\"} 1\n") && text.contains("d{t=\"1\"} 1\n"));
        // A render of the removed target that finishes after: not served.
        p.publish_parts(4, vec![(west, part("d", "d{t=\"0\"} 1\n"))]);
        assert!(!http.body().exposition.text().contains("t=\"0\""));
        // Nor is a part of a target that never resolved into a slot.
        p.publish_parts(0, vec![(id("ap-south-1"), part("a", "a{t=\"x\"} 1\n"))]);
        assert!(!http.body().exposition.text().contains("t=\"x\""));
    }

    #[test]
    fn ready_once_every_target_cycled_and_ses_answered_one_and_it_stays_ready() {
        let p = Arc::new(Publisher::new());
        let http = p.subscribe();
        assert!(!http.is_ready(), "no target, no answer");
        p.add_target(0);
        p.note_cycle(0, true);
        assert!(
            !http.is_ready(),
            "the start-up targets are not all added yet"
        );
        p.add_target(1);
        p.started();
        assert!(!http.is_ready(), "one target still in its first cycle");
        p.note_cycle(1, false);
        assert!(http.is_ready());
        p.add_target(2);
        assert!(http.is_ready(), "a target added later does not take it out");
        // Every target cycled, but SES never answered: not ready.
        let silent = Arc::new(Publisher::new());
        silent.add_target(0);
        silent.started();
        silent.note_cycle(0, false);
        assert!(!silent.subscribe().is_ready());
    }
}
