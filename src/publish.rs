//! The one writer of what scrapes read. Collectors hand it their rendered part of a
//! target ([`Publisher::publish_part`]); it keeps the latest part of every
//! (collector, target), assembles them into one body and hands the body to HTTP
//! through a `watch` channel ([`Subscriber`]), with a generation that also moves when
//! a target's health changes, so HTTP knows when its cached health metrics are
//! stale. Nothing here calls back into a collector or into HTTP.
//!
//! It also carries the MAIL FROM domains from the MAIL FROM collectors to the dns
//! collector ([`Publisher::publish_domains`], [`Publisher::subscribe_domains`]), and
//! readiness: every target finished a first cycle and SES answered one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::model::TargetDomains;
use crate::render::{Assembler, Exposition, Rendered};

/// What a scrape sends besides the health metrics, and the generation it belongs to.
#[derive(Clone, Default)]
pub struct Body {
    pub exposition: Arc<Exposition>,
    /// Moves with every publish and every health change.
    pub generation: u64,
}

/// Every collector's latest part of every target, and what assembles them.
#[derive(Default)]
struct Parts {
    /// (collector position in the registry, target index) → part: the map's order
    /// is the exposition's.
    parts: BTreeMap<(usize, usize), Arc<Rendered>>,
    assembler: Assembler,
}

pub struct Publisher {
    parts: Mutex<Parts>,
    body: watch::Sender<Body>,
    /// Target index → its MAIL FROM domains, as of its MAIL FROM collector's last
    /// render.
    domains: watch::Sender<Arc<BTreeMap<usize, Arc<TargetDomains>>>>,
    /// Targets that have not yet finished a first cycle (successful or not).
    first_cycles_pending: AtomicUsize,
    /// Set once any target's cycle got an answer from SES.
    answered: AtomicBool,
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
            domains: watch::Sender::new(Arc::new(BTreeMap::new())),
            first_cycles_pending: AtomicUsize::new(1),
            answered: AtomicBool::new(false),
        }
    }

    /// Replaces one collector's part of one target and publishes the body assembled
    /// from every part. Called from the blocking pool: the assembly copies the
    /// compressed body once.
    pub fn publish_part(&self, collector: usize, target: usize, part: Rendered) {
        self.publish_parts(collector, vec![(target, part)]);
    }

    /// [`Publisher::publish_part`] for several targets of one collector, assembled once.
    pub fn publish_parts(&self, collector: usize, parts: Vec<(usize, Rendered)>) {
        let mut guard = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        for (target, part) in parts {
            guard.parts.insert((collector, target), Arc::new(part));
        }
        let exposition = {
            let Parts { parts, assembler } = &mut *guard;
            let mut groups: Vec<Vec<Arc<Rendered>>> = Vec::new();
            let mut last = None;
            for ((collector, _), part) in parts.iter() {
                if last != Some(*collector) {
                    groups.push(Vec::new());
                    last = Some(*collector);
                }
                if let Some(group) = groups.last_mut() {
                    group.push(Arc::clone(part));
                }
            }
            let slices: Vec<&[Arc<Rendered>]> = groups.iter().map(Vec::as_slice).collect();
            assembler.assemble(&slices)
        };
        // Sent under the parts lock, so an older assembly never replaces a newer.
        // The previous body is freed by the last scrape still sending it.
        let exposition = Arc::new(exposition);
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

    /// Replaces one target's MAIL FROM domains, if they changed.
    pub fn publish_domains(&self, target: usize, domains: TargetDomains) {
        self.domains.send_if_modified(|all| {
            if all.get(&target).is_some_and(|d| **d == domains) {
                return false;
            }
            let mut next = (**all).clone();
            next.insert(target, Arc::new(domains));
            *all = Arc::new(next);
            true
        });
    }

    /// The MAIL FROM domains of every target, for the dns collector.
    pub fn subscribe_domains(&self) -> watch::Receiver<Arc<BTreeMap<usize, Arc<TargetDomains>>>> {
        self.domains.subscribe()
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

    fn is_ready(&self) -> bool {
        self.answered.load(Ordering::Acquire)
            && self.first_cycles_pending.load(Ordering::Acquire) == 0
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
    use crate::render::{Header, Kind, Piece, RenderedFamily};
    use flate2::Compression;

    /// A part of one family holding `text`.
    fn part(name: &'static str, text: &str) -> Rendered {
        Rendered {
            families: vec![RenderedFamily {
                header: Header {
                    name,
                    help: "h",
                    kind: Kind::Gauge,
                    cached: false,
                },
                pieces: vec![Piece::new(text, Compression::fast())],
            }],
        }
    }

    #[test]
    fn parts_are_served_in_collector_then_target_order_and_replaced_whole() {
        let p = Arc::new(Publisher::new());
        let http = p.subscribe();
        let g0 = http.body().generation;
        p.publish_part(1, 0, part("b", "b{t=\"0\"} 1\n"));
        p.publish_part(0, 1, part("a", "a{t=\"1\"} 1\n"));
        p.publish_part(0, 0, part("a", "a{t=\"0\"} 1\n"));
        assert_eq!(
            http.body().exposition.text(),
            "# HELP a h\n# TYPE a gauge\na{t=\"0\"} 1\na{t=\"1\"} 1\n# HELP b h\n# TYPE b gauge\nb{t=\"0\"} 1\n"
        );
        let g3 = http.body().generation;
        assert_eq!(g3, g0 + 3, "every publish moves the generation");
        p.publish_part(0, 1, part("a", "a{t=\"1\"} 0\n"));
        let text = http.body().exposition.text();
        assert!(text.contains("a{t=\"1\"} 0\n") && !text.contains("a{t=\"1\"} 1\n"));
        p.health_changed();
        assert_eq!(
            http.body().generation,
            g3 + 2,
            "a health change moves it too"
        );
    }

    #[test]
    fn ready_once_every_target_cycled_and_ses_answered_one() {
        let p = Arc::new(Publisher::new());
        let http = p.subscribe();
        p.expect_targets(2);
        p.note_cycle(true, false);
        assert!(!http.is_ready(), "one target still in its first cycle");
        p.note_cycle(true, false);
        assert!(!http.is_ready(), "SES never answered");
        p.note_cycle(false, true);
        assert!(http.is_ready());
    }

    #[test]
    fn unchanged_domains_do_not_wake_the_dns_collector() {
        let p = Publisher::new();
        let mut rx = p.subscribe_domains();
        let domains = TargetDomains {
            labels: Arc::from(""),
            region: Arc::from("us-east-1"),
            domains: [("a.example.com".to_owned(), "m.a.example.com".to_owned())].into(),
        };
        p.publish_domains(0, domains.clone());
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        p.publish_domains(0, domains);
        assert!(!rx.has_changed().unwrap());
    }
}
