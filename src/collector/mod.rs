//! The collectors, one module each, and what they share: the [`Collector`] trait, its
//! cycle's [`Ctx`] and [`Progress`], the [`Findings`] a target's collectors leave each
//! other, their [`CollectorOptions`], the paged listing ([`read_pages`]) and the
//! account-level publish ([`publish_account`]) several of them end with, and the one
//! list ([`REGISTRY`]) from which the target loop runs them, the exposition takes its
//! order and the flags are made.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tracing::{debug, warn};

use crate::aws::{Aws, Operation, SesError};
use crate::facts::Facts;
use crate::metrics::TargetTelemetry;
use crate::model::TargetId;
use crate::publish::{Publisher, Publishing};
use crate::render::{Family, Renderer};

pub mod identity;

/// Declares the collector modules and [`REGISTRY`] in one list: the order is the
/// exposition's and the flags'.
macro_rules! collectors {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*
        /// Every collector, in exposition order.
        pub const REGISTRY: &[Registration] = &[$($name::REGISTRATION),*];
    };
}

collectors!(
    mail_from,
    dkim,
    verification,
    identity_reasons,
    quota,
    account,
    reputation_entities,
    dns
);

/// What a collector tells the rest of the exporter about itself.
pub struct Registration {
    /// The name in `--collector.NAME` and in the `collector` label.
    pub name: &'static str,
    pub enabled_by_default: bool,
    /// The help of `--collector.NAME`.
    pub help: &'static str,
    pub scope: Scope,
}

pub enum Scope {
    /// One instance per target, made by this function and run by the target loop
    /// each cycle.
    Target(fn(Outlet) -> Box<dyn Collector>),
    /// One task for the whole exporter, started by [`crate::run`].
    Exporter,
}

impl Registration {
    /// The position of the collector called `name` in [`REGISTRY`].
    pub fn position(name: &str) -> Option<usize> {
        REGISTRY.iter().position(|r| r.name == name)
    }
}

/// One collector of one target. Each cycle it asks AWS through its [`Ctx`] (rate-limited
/// and retried by the target, so it never sees a throttle), turns the answers into
/// records and hands them, with the function that renders them, to its [`Publishing`],
/// which renders them off the async threads and publishes them.
pub trait Collector: Send + Sync {
    /// The SES operations it calls: its request series and rate limiters.
    fn operations(&self) -> &'static [Operation];

    /// One cycle: ask, record, render, publish.
    fn cycle<'a>(&'a mut self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Progress>;

    /// Waits for its render in flight: after its target stopped, before its series
    /// are removed, so no render publishes after.
    fn settle(&mut self) -> BoxFuture<'_, ()>;

    /// The MAIL FROM records, for tests of the target loop.
    #[cfg(any(test, feature = "test-support"))]
    fn mail_from_records(&self) -> Option<&crate::model::Snapshot> {
        None
    }
}

/// The [`Collector`] of a collector whose module has an `OPERATIONS` list and whose
/// type has an `async fn run_cycle(&mut self, &Ctx) -> Progress` and a `publishing`
/// field ([`Publishing`]): what account, quota, reputation_entities and
/// identity_reasons would each write out alike.
macro_rules! cycle_collector {
    ($collector:ty) => {
        impl $crate::collector::Collector for $collector {
            fn operations(&self) -> &'static [$crate::aws::Operation] {
                OPERATIONS
            }

            fn cycle<'a>(
                &'a mut self,
                ctx: &'a $crate::collector::Ctx<'a>,
            ) -> ::futures_util::future::BoxFuture<'a, $crate::collector::Progress> {
                Box::pin(self.run_cycle(ctx))
            }

            fn settle(&mut self) -> ::futures_util::future::BoxFuture<'_, ()> {
                Box::pin(self.publishing.idle())
            }
        }
    };
}
pub(crate) use cycle_collector;

/// What a collector's part of a cycle achieved.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Every request it made was answered (or refused for an invalid identity).
    pub complete: bool,
    /// SES answered at least one request.
    pub answered: bool,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            complete: true,
            answered: false,
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// What a collector's cycle gets from its target.
pub struct Ctx<'a> {
    /// AWS through the target's rate limiters and retries: every attempt is spaced
    /// and counted there.
    pub aws: &'a dyn Aws,
    pub telemetry: &'a TargetTelemetry,
    /// The identities to ask about: sorted, without duplicates.
    pub watched: &'a Arc<[String]>,
    /// The static list, sorted: an identity SES leaves out is kept as `Missing`
    /// only when it is listed here.
    pub fixed: &'a [String],
    /// Who the target is: what its parts and facts are keyed by.
    pub id: &'a TargetId,
    pub account: &'a str,
    /// The target's label pairs (see [`crate::render::target_labels`]).
    pub labels: &'a Arc<str>,
    pub region: &'a str,
    pub plan: Plan,
    /// What the target's collectors found for each other.
    pub findings: &'a Findings,
}

/// What a target collector is made with: where its parts go, the channel of
/// identity facts for the dns collector, and the collectors' options.
#[derive(Clone)]
pub struct Outlet {
    pub publisher: Arc<Publisher>,
    /// The collector's position in [`REGISTRY`].
    pub collector: usize,
    pub facts: Arc<Facts>,
    pub options: CollectorOptions,
}

/// The collectors' own flags (`--collector.NAME.OPTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorOptions {
    pub verification_source: VerificationSource,
    /// `GetEmailIdentity` calls the identity_reasons collector makes per cycle.
    pub reasons_per_cycle: usize,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions {
            verification_source: VerificationSource::Attributes,
            reasons_per_cycle: DEFAULT_REASONS_PER_CYCLE,
        }
    }
}

/// The default of `--collector.identity_reasons.calls-per-cycle`: 20 s of
/// `GetEmailIdentity`'s 1 request/second in a 5-minute cycle (see docs/semantics.md).
pub const DEFAULT_REASONS_PER_CYCLE: usize = 20;

/// Where the verification collector reads verification states
/// (`--collector.verification.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerificationSource {
    /// `GetIdentityVerificationAttributes`, 100 identities a call: the IAM action
    /// every earlier version needed.
    Attributes,
    /// SESv2 `ListEmailIdentities`, 1,000 identities a call (10 calls for 10,000):
    /// needs `ses:ListEmailIdentities`.
    List,
}

/// What a target's collectors leave each other between cycles: the identities each
/// found not healthy, for the identity_reasons collector to explain. Written at the
/// end of a collector's cycle, read at the start of another's, so a reason follows
/// its finding by at most one cycle.
#[derive(Debug, Default)]
pub struct Findings {
    unhealthy: Mutex<BTreeMap<&'static str, Arc<[String]>>>,
}

impl Findings {
    /// `collector` found these identities (sorted) not healthy; replaces its last list.
    pub fn report(&self, collector: &'static str, identities: Vec<String>) {
        self.unhealthy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(collector, Arc::from(identities));
    }

    /// Every identity some collector found not healthy: sorted, without duplicates.
    pub fn unhealthy(&self) -> Vec<String> {
        let lists: Vec<Arc<[String]>> = self
            .unhealthy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut all: Vec<String> = lists.iter().flat_map(|l| l.iter().cloned()).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

impl Outlet {
    /// The collector's render-and-publish path.
    pub fn publishing<S: Default + Send + 'static>(&self) -> Publishing<S> {
        Publishing::new(Arc::clone(&self.publisher), self.collector)
    }
}

/// How fast a cycle's identity collectors send their batches.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The ceiling, `--ses.rate`; the limiters enforce it whatever the plan says.
    pub rate: f64,
    /// The time over which each collector spreads its batches (`--ses.pacing` of
    /// the poll interval); `None`: as fast as the limiter allows.
    pub spread: Option<Duration>,
    /// The poll interval: the quota collector makes one call of each operation per
    /// cycle.
    pub interval: Duration,
}

impl Plan {
    /// The least time from the start of one planned batch to the start of the
    /// next, when paced.
    pub fn pace(&self, batches: usize) -> Option<Duration> {
        let spread = self.spread?;
        (batches > 1).then(|| spread.div_f64(batches as f64))
    }

    /// The requests per second planned for `batches`: the ceiling unless paced.
    pub fn requests_per_second(&self, batches: usize) -> f64 {
        match self.spread {
            _ if batches == 0 => 0.0,
            Some(spread) => (batches as f64 / spread.as_secs_f64()).min(self.rate),
            None => self.rate,
        }
    }
}

/// What a paged listing read: the items of the pages it read, whether it reached
/// the last page, and whether SES answered at all.
pub struct Pages<T> {
    pub items: Vec<T>,
    pub finished: bool,
    pub answered: bool,
}

/// Reads a paged listing (`page(token)`: one call through the target's door) until
/// its last page, a failure, a token SES hands out a second time, or `max_pages`
/// (the target's other collectors wait for this one's cycle); a listing stopped short
/// says so in the log. What it did not read keeps its last values: the caller's to
/// keep.
pub async fn read_pages<T, F, Fut>(
    ctx: &Ctx<'_>,
    listing: &'static str,
    max_pages: usize,
    mut page: F,
) -> Pages<T>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), SesError>>,
{
    let mut out = Pages {
        items: Vec::new(),
        finished: false,
        answered: false,
    };
    let mut token = None;
    let mut seen = HashSet::new();
    for _ in 0..max_pages {
        match page(token.take()).await {
            Ok((items, next)) => {
                out.answered = true;
                out.items.extend(items);
                match next {
                    None => {
                        out.finished = true;
                        return out;
                    }
                    Some(next) if !seen.insert(next.clone()) => {
                        warn!(aws_account_id = %ctx.account, aws_region = %ctx.region, listing, "SES handed out a page token a second time; the listing stops there");
                        return out;
                    }
                    Some(next) => token = Some(next),
                }
            }
            Err(err) => {
                debug!(listing, error = %err, "the listing stopped; what it did not read keeps its last values");
                return out;
            }
        }
    }
    warn!(aws_account_id = %ctx.account, aws_region = %ctx.region, listing, pages = max_pages, "SES kept handing out page tokens; the listing was cut short");
    out
}

/// Renders an account-level record (no identity label) off the async threads and
/// publishes it, waiting for it: the end of the quota, account and
/// reputation_entities collectors' cycles.
pub async fn publish_account<R: Send + Sync + 'static>(
    publishing: &mut Publishing<Option<Renderer<R>>>,
    ctx: &Ctx<'_>,
    families: &'static [Family<R>],
    record: R,
) {
    let (id, labels) = (ctx.id.clone(), Arc::clone(ctx.labels));
    publishing
        .start(move |renderer| {
            let renderer =
                renderer.get_or_insert_with(|| Renderer::new(families, labels.to_string()));
            vec![(id, renderer.build_account(&record))]
        })
        .await;
    publishing.idle().await;
}
