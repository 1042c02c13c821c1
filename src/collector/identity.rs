//! The batching every identity collector shares ([`Batched`]): the watched identities asked
//! in batches of [`MAX_IDENTITIES_PER_CALL`], paced over the cycle, or, for a collector
//! with a [`Listing`] chosen, the account's identities listed page by page; their records
//! published while it runs, and the unhealthy ones reported as [`super::Findings`]. What
//! differs between MAIL FROM, DKIM and verification is a [`Kind`].

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use super::{read_pages, Collector, CollectorOptions, Ctx, Outlet, Progress, Registration, Scope};
use crate::aws::{Aws, Operation, SesError, MAX_IDENTITIES_PER_CALL};
use crate::facts::Facts;
use crate::model::{
    status_change, IdentityRecord, IdentityType, Observation, Snapshot, TargetId,
    VerificationStatus,
};
use crate::publish::Publishing;
use crate::render::{state_set, unix_millis, Family, Renderer, Samples};

/// During a long cycle, what was fetched so far is published at most this often, so
/// a large account's first values do not wait for the whole cycle. A publish
/// re-renders only the pieces whose identities changed, so it can be frequent, and
/// the publish at the end of a cycle has little left to render.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

/// One identity collector: which SES operation it calls, what it records per
/// identity, which families it renders and what it logs.
pub trait Kind: Send + Sync + 'static {
    /// What the operation returns per identity.
    type Attr: Clone + PartialEq + Display + Send + Sync + 'static;
    /// The name in `--collector.NAME` and in the `collector` label.
    const NAME: &'static str;
    const OPERATION: Operation;
    /// `[OPERATION]`, for [`Collector::operations`].
    const OPERATIONS: &'static [Operation];
    /// What the state is called in log lines.
    const WHAT: &'static str;
    /// The families it exports, in exposition order.
    const FAMILIES: &'static [Family<IdentityRecord<Self::Attr>>];

    fn fetch<'a>(
        aws: &'a dyn Aws,
        batch: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, Self::Attr>, SesError>>;

    /// A first observation that is healthy is logged at debug, not info.
    fn healthy(attr: &Self::Attr) -> bool;

    /// Runs on the blocking pool before each render, with the records rendered:
    /// the identity facts the collector hands the dns collector, if any.
    fn facts(_facts: &Facts, _target: &TargetId, _records: &Snapshot<Self::Attr>) {}

    /// Whether its unhealthy identities are reported for the identity_reasons
    /// collector to explain (verification and DKIM: SES's `ErrorType` says why).
    const EXPLAINED: bool = false;

    /// The listing it uses instead of batches under these options, if any.
    fn listing(_options: &CollectorOptions) -> Option<&'static Listing<Self::Attr>> {
        None
    }
}

/// How a collector lists every identity of the account in pages instead of asking
/// for the watched ones in batches: its operation and one page's call.
pub struct Listing<A: 'static> {
    /// `[operation]`, for [`Collector::operations`].
    pub operations: &'static [Operation],
    /// One page: the identities on it with their attributes, and the next token.
    #[allow(clippy::type_complexity)]
    pub page: for<'a> fn(
        &'a dyn Aws,
        Option<String>,
    )
        -> BoxFuture<'a, Result<(Vec<(String, A)>, Option<String>), SesError>>,
}

/// Ten times the pages of SES's 10,000 identities per region: a server that keeps
/// handing out new tokens is not followed for long (the target's other collectors
/// wait for this one's cycle), and one that repeats a token is stopped at once.
const MAX_PAGES: usize = 100;

/// Declares an identity collector from what differs between them: its `Kind` (the
/// record type, name, operation and the door's method that calls it, what its
/// state is called in logs, when an observation is healthy, and optional items such
/// as [`Kind::facts`]) and its `REGISTRATION`. The module holds its `FAMILIES`.
macro_rules! identity_collector {
    (
        $kind:ident($attr:ty): $name:literal, $op:ident via $method:ident,
        logs $what:literal, on by default $on:literal,
        healthy $healthy:expr,
        help $help:literal
        $(, also { $($extra:item)* })? $(,)?
    ) => {
        pub struct $kind;

        impl $crate::collector::identity::Kind for $kind {
            type Attr = $attr;
            const NAME: &'static str = $name;
            const OPERATION: $crate::aws::Operation = $crate::aws::Operation::$op;
            const OPERATIONS: &'static [$crate::aws::Operation] = &[$crate::aws::Operation::$op];
            const WHAT: &'static str = $what;
            const FAMILIES: &'static [$crate::render::Family<$crate::model::IdentityRecord<$attr>>] =
                FAMILIES;

            fn fetch<'a>(
                aws: &'a dyn $crate::aws::Aws,
                batch: &'a [String],
            ) -> futures_util::future::BoxFuture<
                'a,
                Result<std::collections::HashMap<String, $attr>, $crate::aws::SesError>,
            > {
                Box::pin(aws.$method(batch))
            }

            fn healthy(a: &$attr) -> bool {
                let healthy: fn(&$attr) -> bool = $healthy;
                healthy(a)
            }

            $($($extra)*)?
        }

        pub const REGISTRATION: $crate::collector::Registration =
            $crate::collector::identity::register::<$kind>($on, $help);
    };
}
pub(crate) use identity_collector;

/// The registration of an identity collector `K`: its name, default and help.
pub const fn register<K: Kind>(enabled_by_default: bool, help: &'static str) -> Registration {
    Registration {
        name: K::NAME,
        enabled_by_default,
        help,
        scope: Scope::Target(boxed::<K>),
    }
}

fn boxed<K: Kind>(outlet: Outlet) -> Box<dyn Collector> {
    Box::new(Batched::<K>::new(outlet))
}

/// The record's attributes, when SES returned the identity.
pub fn present<A>(record: &IdentityRecord<A>) -> Option<&A> {
    match &record.observation {
        Observation::Present(a) => Some(a),
        _ => None,
    }
}

/// When SES last answered for the identity: every identity collector's
/// `..._last_refresh_timestamp_seconds`.
pub fn refreshed<A>(record: &IdentityRecord<A>) -> Option<u64> {
    Some(unix_millis(record.refreshed_at))
}

/// A `VerificationStatus` as a state set (DKIM and verification status).
pub fn verification_status(samples: &mut Samples<'_>, status: &VerificationStatus) {
    state_set(
        samples,
        "status",
        &VerificationStatus::ALL,
        *status,
        VerificationStatus::as_str,
    );
}

/// One identity collector of one target: its records and its render-and-publish
/// path. A batch SES refuses for one invalid identity is split until the offender is
/// found; missing, deleted and rejected identities are recorded too.
pub struct Batched<K: Kind> {
    facts: Arc<Facts>,
    /// The listing chosen by the options, if any: then it lists instead of batching.
    listing: Option<&'static Listing<K::Attr>>,
    /// Every identity fetched at least once and still watched. Shared with a render
    /// in progress instead of copied; changed copy-on-write while one runs.
    pub(crate) records: Arc<Snapshot<K::Attr>>,
    /// Answers that arrived while a render still held `records`, merged in before the
    /// next render: a render running at the moment a batch lands would otherwise
    /// force a copy of every record (2 MB at 10,000 identities).
    pub(crate) pending: HashMap<String, IdentityRecord<K::Attr>>,
    last_publish: Option<Instant>,
    /// The renderer keeps the pieces of the last render, so the next one re-renders
    /// only what changed. An intermediate publish is not waited for; the final one
    /// of the cycle is.
    publishing: Publishing<Option<Renderer<IdentityRecord<K::Attr>>>>,
}

impl<K: Kind> Batched<K> {
    pub fn new(outlet: Outlet) -> Batched<K> {
        Batched {
            facts: Arc::clone(&outlet.facts),
            listing: K::listing(&outlet.options),
            publishing: outlet.publishing(),
            records: Arc::new(Snapshot::new()),
            pending: HashMap::new(),
            last_publish: None,
        }
    }

    /// The records, for tests.
    pub fn records(&self) -> &Snapshot<K::Attr> {
        &self.records
    }

    /// Identities no longer watched (deleted, filtered out) lose their series.
    fn forget_unwatched(&mut self, watched: &[String]) {
        if self
            .records
            .keys()
            .any(|id| watched.binary_search(id).is_err())
        {
            Arc::make_mut(&mut self.records).retain(|id, _| watched.binary_search(id).is_ok());
            self.pending
                .retain(|id, _| watched.binary_search(id).is_ok());
        }
    }

    /// One cycle: listed or batched, then the final publish and the findings.
    async fn run_cycle(&mut self, ctx: &Ctx<'_>) -> Progress {
        self.forget_unwatched(ctx.watched);
        let progress = match self.listing {
            Some(listing) => self.list(ctx, listing).await,
            None => self.batches(ctx).await,
        };
        self.publish(ctx).await;
        if K::EXPLAINED {
            self.report_unhealthy(ctx);
        }
        progress
    }

    /// The identities whose last answer is not healthy, for identity_reasons.
    fn report_unhealthy(&self, ctx: &Ctx<'_>) {
        let unhealthy = self
            .records
            .iter()
            .filter(|(_, r)| matches!(&r.observation, Observation::Present(a) if !K::healthy(a)))
            .map(|(id, _)| id.clone())
            .collect();
        ctx.findings.report(K::NAME, unhealthy);
    }

    /// Every identity of the account, page by page (not paced: a handful of calls,
    /// each spaced by the limiter). A page that fails ends the listing: identities
    /// on the pages read are updated, the others keep their last values, and none
    /// is taken for missing from a listing that did not finish.
    async fn list(&mut self, ctx: &Ctx<'_>, listing: &'static Listing<K::Attr>) -> Progress {
        let mut progress = Progress::new();
        // Back to back: at the ceiling while it lists.
        for &op in listing.operations {
            ctx.telemetry.set_planned_rate(op, ctx.plan.rate);
        }
        let aws = ctx.aws;
        let name = listing.operations.first().map_or(K::NAME, |op| op.as_str());
        let read = read_pages(ctx, name, MAX_PAGES, |token| (listing.page)(aws, token)).await;
        progress.answered = read.answered;
        progress.complete = read.finished;
        let finished = read.finished;
        let mut found: HashMap<String, K::Attr> = read.items.into_iter().collect();
        // A watched domain SES lists in another case: matched once here through a
        // lower-case index, not by a scan of the whole listing per domain in `apply`.
        let unmatched: Vec<&String> = ctx
            .watched
            .iter()
            .filter(|id| !found.contains_key(*id) && IdentityType::of(id) == IdentityType::Domain)
            .collect();
        if !unmatched.is_empty() {
            let lower: HashMap<String, &String> =
                found.keys().map(|k| (k.to_ascii_lowercase(), k)).collect();
            let renamed: Vec<(String, String)> = unmatched
                .into_iter()
                .filter_map(|id| {
                    lower
                        .get(&id.to_ascii_lowercase())
                        .map(|k| ((*k).clone(), id.clone()))
                })
                .collect();
            for (listed, watched) in renamed {
                if let Some(attr) = found.get(&listed).cloned() {
                    found.insert(watched, attr);
                }
            }
        }
        let now = SystemTime::now();
        if finished {
            self.apply(ctx, ctx.watched, &found, now);
        } else {
            let listed: Vec<String> = ctx
                .watched
                .iter()
                .filter(|id| found.contains_key(*id))
                .cloned()
                .collect();
            self.apply(ctx, &listed, &found, now);
        }
        progress
    }

    /// Every watched identity in batches of 100.
    async fn batches(&mut self, ctx: &Ctx<'_>) -> Progress {
        let mut progress = Progress::new();
        let watched = ctx.watched;

        // Identities SES refused as invalid are asked alone, so one bad name costs one
        // call per cycle instead of failing the batch of 99 good ones with it.
        let is_rejected = |id: &String| {
            matches!(
                self.records.get(id).map(|r| &r.observation),
                Some(Observation::Rejected)
            )
        };
        let alone: Vec<String> = watched
            .iter()
            .filter(|id| is_rejected(id))
            .cloned()
            .collect();
        // Usually none are rejected: then the watched list is batched as it is, uncopied.
        let batched: std::borrow::Cow<[String]> = if alone.is_empty() {
            std::borrow::Cow::Borrowed(&watched[..])
        } else {
            watched
                .iter()
                .filter(|id| !is_rejected(id))
                .cloned()
                .collect()
        };
        // A stack of batches, first batch on top; `true` for the planned ones, which
        // are paced, `false` for halves of a split batch, which only the limiter spaces.
        let mut work: Vec<(&[String], bool)> = alone
            .chunks(1)
            .chain(batched.chunks(MAX_IDENTITIES_PER_CALL))
            .rev()
            .map(|batch| (batch, true))
            .collect();
        ctx.telemetry
            .set_planned_rate(K::OPERATION, ctx.plan.requests_per_second(work.len()));
        let pace = ctx.plan.pace(work.len());
        // When the next planned batch may start: `pace` after the previous one
        // started, never sooner (a late batch pushes the rest back rather than
        // letting them catch up at the ceiling).
        let mut next_planned: Option<Instant> = None;
        while let Some((batch, planned)) = work.pop() {
            if planned {
                if let Some(pace) = pace {
                    if let Some(at) = next_planned {
                        sleep_until(at).await;
                    }
                    next_planned = Some(Instant::now() + pace);
                }
            }
            let result = K::fetch(ctx.aws, batch).await;
            match result {
                Ok(found) => {
                    progress.answered = true;
                    self.apply(ctx, batch, &found, SystemTime::now());
                }
                // One identity SES does not accept fails its whole batch: halve the
                // batch so the others are fetched and the offender is found, in about
                // 2 x log2(100) = 14 more calls, each through the rate limiter.
                Err(err) if err.is_invalid_parameter() && batch.len() > 1 => {
                    let (first, second) = batch.split_at(batch.len() / 2);
                    debug!(
                        identities = batch.len(),
                        "SES refused a parameter of this batch; splitting it"
                    );
                    work.push((second, false));
                    work.push((first, false));
                }
                Err(err) if err.is_invalid_parameter() => {
                    progress.answered = true;
                    self.reject(ctx, &batch[0], SystemTime::now());
                }
                Err(err) => {
                    progress.complete = false;
                    // A refusal can be about this batch (an IAM policy on some
                    // identities): go on with the others. After exhausted retries of
                    // throttling, 5xx or network errors the other batches would fare no
                    // better; stop spending budget.
                    if err.retryable() {
                        // The error itself was logged by the target's retry loop,
                        // once per change.
                        debug!(collector = K::NAME, error = %err, "giving up on this poll cycle; identities keep their last values");
                        break;
                    }
                }
            }
            if self
                .last_publish
                .is_none_or(|at| at.elapsed() >= PUBLISH_EVERY)
            {
                self.publish_in_background(ctx).await;
            }
        }
        progress
    }

    /// Records one answered batch. A listed identity SES left out is `Missing` (it
    /// should exist: `aws_ses_identity_exists 0` pages). A discovered one SES leaves
    /// out was deleted since the last discovery: it is forgotten at once, as the next
    /// discovery would, rather than reported missing until then. SES may echo a
    /// domain in another case, so domains also match case-insensitively.
    pub(crate) fn apply(
        &mut self,
        ctx: &Ctx<'_>,
        batch: &[String],
        found: &HashMap<String, K::Attr>,
        now: SystemTime,
    ) {
        for id in batch {
            let attrs = found.get(id).or_else(|| match IdentityType::of(id) {
                IdentityType::Domain => found
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(id))
                    .map(|(_, v)| v),
                IdentityType::EmailAddress => None,
            });
            let observation = match attrs {
                Some(a) => Observation::Present(a.clone()),
                None if ctx.fixed.binary_search(id).is_err() => {
                    self.forget(ctx, id);
                    continue;
                }
                None => Observation::Missing,
            };
            if let Some(change) = status_change(self.current(id), &observation) {
                log_change::<K>(ctx, &change.before, &change.after, id);
            }
            self.store(id, observation, now);
        }
    }

    /// Drops a discovered identity SES no longer returns, with its series.
    fn forget(&mut self, ctx: &Ctx<'_>, id: &str) {
        let held = self.pending.remove(id).is_some();
        let recorded = self.records.contains_key(id);
        if recorded {
            // Rare (a deletion), so a copy while a render holds the records is fine.
            Arc::make_mut(&mut self.records).remove(id);
        }
        if held || recorded {
            info!(aws_account_id = %ctx.account, aws_region = %ctx.region, collector = K::NAME, identity = id, "a discovered identity is no longer returned by SES (deleted); its series are dropped");
        }
    }

    /// The last observation of an identity, including one still held back.
    fn current(&self, id: &str) -> Option<&Observation<K::Attr>> {
        self.pending
            .get(id)
            .or_else(|| self.records.get(id))
            .map(|r| &r.observation)
    }

    /// Records an observation in place, or holds it back while a render has the
    /// records (see `pending`).
    fn store(&mut self, id: &str, observation: Observation<K::Attr>, now: SystemTime) {
        let record = IdentityRecord {
            observation,
            refreshed_at: now,
        };
        match Arc::get_mut(&mut self.records) {
            Some(records) => {
                records.insert(id.to_owned(), record);
            }
            None => {
                self.pending.insert(id.to_owned(), record);
            }
        }
    }

    /// Records an identity SES refused on its own as not a valid identity.
    fn reject(&mut self, ctx: &Ctx<'_>, id: &str, now: SystemTime) {
        if !matches!(self.current(id), Some(Observation::Rejected)) {
            warn!(aws_account_id = %ctx.account, aws_region = %ctx.region, collector = K::NAME, identity = id, "SES refuses this identity as invalid (InvalidParameterValue); it is asked alone from now on");
        }
        self.store(id, Observation::Rejected, now);
    }

    /// Moves the answers held back during a render into `records`; called when no
    /// render holds them any more.
    fn merge_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // No render runs here, so this does not copy; if one somehow did, copying is
        // still correct.
        let records = Arc::make_mut(&mut self.records);
        records.extend(self.pending.drain());
    }

    /// Renders the current records off the async threads (the first render of a large
    /// account is megabytes of text and gzip is CPU work) and publishes them, after
    /// any render still running; waits for it, so the cycle ends with its values
    /// served.
    pub(crate) async fn publish(&mut self, ctx: &Ctx<'_>) {
        self.start_render(ctx).await;
        self.publishing.idle().await;
    }

    /// Publishes what was fetched so far without holding up the cycle; skipped while
    /// the previous such render is still running.
    async fn publish_in_background(&mut self, ctx: &Ctx<'_>) {
        if self.publishing.busy() {
            return;
        }
        self.start_render(ctx).await;
    }

    async fn start_render(&mut self, ctx: &Ctx<'_>) {
        // The render in flight holds the records: merged after it.
        self.publishing.idle().await;
        self.merge_pending();
        let records = Arc::clone(&self.records);
        let facts = Arc::clone(&self.facts);
        let (id, labels) = (ctx.id.clone(), Arc::clone(ctx.labels));
        self.publishing
            .start(move |renderer| {
                K::facts(&facts, &id, &records);
                let renderer =
                    renderer.get_or_insert_with(|| Renderer::new(K::FAMILIES, labels.to_string()));
                vec![(
                    id,
                    renderer.build(records.iter().map(|(id, r)| (id.as_str(), r))),
                )]
            })
            .await;
        self.last_publish = Some(Instant::now());
    }
}

impl<K: Kind> Collector for Batched<K> {
    fn operations(&self) -> &'static [Operation] {
        self.listing.map_or(K::OPERATIONS, |l| l.operations)
    }

    fn cycle<'a>(&'a mut self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Progress> {
        Box::pin(self.run_cycle(ctx))
    }

    fn settle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.publishing.idle())
    }

    #[cfg(any(test, feature = "test-support"))]
    fn mail_from_records(&self) -> Option<&Snapshot> {
        // Only the MAIL FROM collector's records are `Snapshot`s (the default type).
        (&*self.records as &dyn std::any::Any).downcast_ref::<Snapshot>()
    }
}

/// A first observation is news only when it is not healthy; a change always is.
fn log_change<K: Kind>(
    ctx: &Ctx<'_>,
    before: &Option<Observation<K::Attr>>,
    after: &Observation<K::Attr>,
    identity: &str,
) {
    let account = ctx.account;
    let region = ctx.region;
    match before {
        Some(before) => info!(
            aws_account_id = %account,
            aws_region = region,
            identity,
            from = %before,
            to = %after,
            "{} changed",
            K::WHAT
        ),
        None => {
            let healthy = match after {
                Observation::Present(a) => K::healthy(a),
                _ => false,
            };
            if healthy {
                debug!(aws_account_id = %account, aws_region = region, identity, state = %after, "first {}", K::WHAT);
            } else {
                info!(aws_account_id = %account, aws_region = region, identity, state = %after, "first {}", K::WHAT);
            }
        }
    }
}
