//! A target (an AWS account and region) and its loop ([`Target`]): the schedule, its
//! account from STS, identity discovery (`ListIdentities`), and each cycle its collectors
//! side by side, every call through [`retry`] and [`limiter`] around its door to AWS.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, error, info, warn};

use crate::aws::{Aws, Operation, SesError, TargetAws, MAX_IDENTITIES_PER_CALL};
use crate::collector::{Collector, CollectorOptions, Ctx, Findings, Outlet, Plan, Scope, REGISTRY};
use crate::config::Discovery;
use crate::facts::Facts;
use crate::metrics::{TargetTelemetry, Telemetry};
use crate::model::{IdentityType, TargetId};
use crate::publish::{Publisher, Slot};
use crate::render::target_labels;
use crate::supervise::stopped;

pub mod fleet;
pub mod limiter;
pub mod retry;

pub use limiter::{min_cycle_seconds, Limiters, RateLimiter};
use retry::{CallState, Retrying};

/// A `ListIdentities` loop that has not ended after this many pages (10 at the SES
/// quota of 10,000 identities) is a server bug, not an account.
const MAX_LIST_PAGES: usize = 1000;

/// What one target is told to do.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    /// Its place in the exposition (the order targets were added in), and what
    /// the running set ([`fleet::Targets`]) removes it by.
    pub slot: Slot,
    pub region: String,
    /// The account the series are labelled with until STS answers: the role's
    /// account for a target with a role, empty otherwise.
    pub provisional_account: String,
    pub fixed: Vec<String>,
    pub discovery: Option<Discovery>,
    pub poll_interval: Duration,
    /// The ceiling: requests per second per operation, every attempt counted.
    pub rate: f64,
    /// Fraction of the poll interval over which each identity collector spreads
    /// its batches, except in the target's first cycle; 0 = as fast as `rate` allows.
    pub pacing: f64,
    /// Per-attempt timeout; the SDK enforces it, the target loop keeps a backstop.
    pub timeout: Duration,
    /// The enabled target collectors, by their position in [`REGISTRY`].
    pub collectors: Vec<usize>,
    pub options: CollectorOptions,
}

/// What every target shares with the rest of the exporter.
#[derive(Clone)]
pub struct Wiring {
    pub publisher: Arc<Publisher>,
    pub telemetry: Arc<Telemetry>,
    /// Every (account, region, operation)'s limiter, and the claims that keep two
    /// targets off one account and region.
    pub limiters: Arc<Limiters>,
    /// The identity facts the SES collectors hand the dns collector.
    pub facts: Arc<Facts>,
}

/// The target's identity, known once STS answered.
#[derive(Clone)]
struct Resolved {
    id: TargetId,
    labels: Arc<str>,
}

/// One target, polled on a schedule; its collectors publish what they learn. It owns
/// its calls' state (account, limiters, telemetry) but keeps no values itself: each
/// collector keeps its records and publishes its part.
pub struct Target {
    /// The door to AWS with this target's credentials and region, one attempt a
    /// call; [`Target::door`] puts the retries and limiters around it.
    aws: Arc<dyn TargetAws>,
    /// Its account, limiters and failure log: what the retries need.
    calls: CallState,
    /// Its health series.
    health: TargetTelemetry,
    settings: TargetSettings,
    publisher: Arc<Publisher>,
    telemetry: Arc<Telemetry>,
    all_limiters: Arc<Limiters>,
    resolved: Option<Resolved>,
    /// Who it is: provisional (the role's account, or empty) until STS answers.
    id: watch::Sender<TargetId>,
    facts: Arc<Facts>,
    /// The account STS named, while another target polls it in this region: this
    /// one does not poll, and each cycle tries to take the account over (the other
    /// may have been removed) without asking STS again.
    duplicate: Option<String>,
    /// The last successful discovery; kept when a later one fails, so a failing
    /// `ListIdentities` never drops identities.
    discovered: Option<Vec<String>>,
    /// The static list and the discovered identities, sorted and without duplicates;
    /// rebuilt only when a discovery succeeds, and without discovery it is the static
    /// list itself, so a large list is held once, not copied every cycle.
    watched: Arc<[String]>,
    /// The static list, sorted and without duplicates.
    fixed: Arc<[String]>,
    next_discovery: Option<Instant>,
    announced_count: Option<usize>,
    /// The enabled collectors, in [`REGISTRY`] order, each with its name.
    collectors: Vec<(&'static str, Box<dyn Collector>)>,
    /// What they found for each other (kept across cycles and restarts).
    findings: Findings,
}

impl Target {
    pub fn new(aws: Arc<dyn TargetAws>, mut settings: TargetSettings, wiring: &Wiring) -> Target {
        let Wiring {
            publisher,
            telemetry,
            limiters,
            facts,
        } = wiring.clone();
        let mut fixed = std::mem::take(&mut settings.fixed);
        fixed.sort_unstable();
        fixed.dedup();
        let fixed: Arc<[String]> = Arc::from(fixed);
        let collectors: Vec<(&'static str, Box<dyn Collector>)> = settings
            .collectors
            .iter()
            .filter_map(|&position| {
                let registration = REGISTRY.get(position)?;
                match registration.scope {
                    Scope::Target(new) => Some((
                        registration.name,
                        new(Outlet {
                            publisher: Arc::clone(&publisher),
                            collector: position,
                            facts: Arc::clone(&facts),
                            options: settings.options,
                        }),
                    )),
                    Scope::Exporter => None,
                }
            })
            .collect();
        let names: Vec<&'static str> = collectors.iter().map(|(name, _)| *name).collect();
        let operations = operations(settings.discovery.is_some(), &collectors);
        let target_telemetry = telemetry.target(
            &settings.provisional_account,
            &settings.region,
            &operations,
            &names,
        );
        Target {
            id: watch::Sender::new(TargetId::new(
                &settings.provisional_account,
                &settings.region,
            )),
            facts,
            watched: Arc::clone(&fixed),
            fixed,
            aws,
            calls: CallState::new(
                settings.provisional_account.clone(),
                settings.region.clone(),
                settings.timeout,
            ),
            health: target_telemetry,
            publisher,
            telemetry,
            all_limiters: limiters,
            resolved: None,
            duplicate: None,
            discovered: None,
            next_discovery: None,
            announced_count: None,
            collectors,
            findings: Findings::default(),
            settings,
        }
    }

    /// Runs cycles until `shutdown` turns true (or its sender goes away). Intervals
    /// run start to start; a cycle that overruns starts the next one at once. Takes
    /// `&mut self` so that a supervisor (see [`crate::supervise`]) can run it again
    /// after a panic with everything it knew: its records, account and renderers.
    pub async fn run(&mut self, mut shutdown: watch::Receiver<bool>) {
        let mut overrunning = false;
        loop {
            let start = Instant::now();
            tokio::select! {
                biased;
                () = stopped(&mut shutdown) => return,
                () = self.cycle() => {}
            }
            let next = start + self.settings.poll_interval;
            if Instant::now() >= next {
                self.health.poll_overruns.inc();
                // Warn when cycles start overrunning, not at every overrun after.
                if !overrunning {
                    warn!(
                        aws_account_id = %self.calls.account,
                        aws_region = %self.settings.region,
                        took = ?start.elapsed(),
                        interval = ?self.settings.poll_interval,
                        "poll cycle took longer than the poll interval; starting the next one now"
                    );
                }
                overrunning = true;
                continue;
            }
            overrunning = false;
            tokio::select! {
                biased;
                () = stopped(&mut shutdown) => return,
                () = sleep_until(next) => {}
            }
        }
    }

    /// After the task running this target failed: its values are not current until
    /// its next cycle says otherwise.
    pub fn mark_down(&self) {
        self.report_up(false);
    }

    /// Who the target is, as it learns it.
    pub fn watch_id(&self) -> watch::Receiver<TargetId> {
        self.id.subscribe()
    }

    /// After its task stopped for good: every series it had goes. Its collectors'
    /// last renders are waited for first, so none publishes after this.
    pub async fn retire(&mut self) {
        for (_, collector) in &mut self.collectors {
            collector.settle().await;
        }
        let id = self.id.borrow().clone();
        self.publisher.remove_target(self.settings.slot);
        if self.duplicate.is_some() {
            // Its series went when it found the other target, or they are the
            // other's (the same labels): nothing of its own to remove.
            self.telemetry
                .set_duplicate_targets(self.all_limiters.forget_duplicate());
        } else {
            self.facts.remove_target(&id);
            self.health.remove();
            if self.resolved.is_some() {
                self.all_limiters
                    .release(&id.account, &id.region, self.settings.slot);
            }
        }
        self.publisher.health_changed();
    }

    /// The one writer of the target's `aws_ses_exporter_up`; a scrape's health
    /// tail is rendered afresh after it.
    fn report_up(&self, up: bool) {
        self.health.up.set(i64::from(up));
        self.publisher.health_changed();
    }

    /// Learns the target's account from STS (once; retried each cycle until it
    /// answers; a duplicate keeps the account STS named), claims its account and
    /// region, and takes its rate limiters.
    async fn resolve(&mut self) -> Result<(), SesError> {
        let account = match &self.duplicate {
            Some(account) => account.clone(),
            None => {
                let who = self.door().caller_identity().await?;
                info!(aws_account_id = %who.account, aws_region = %self.settings.region, caller_arn = %who.arn, "target resolved");
                who.account
            }
        };
        let region = self.settings.region.clone();
        if let Err(holder) = self
            .all_limiters
            .claim(&account, &region, self.settings.slot)
        {
            if self.duplicate.is_none() {
                let n = self.all_limiters.count_duplicate();
                self.telemetry.set_duplicate_targets(n);
                error!(
                    target_index = self.settings.slot,
                    other_target_index = holder,
                    aws_account_id = %account,
                    aws_region = %region,
                    "this target resolves to the same account and region as another target; it is not polled"
                );
                // Its provisional labels may be the other target's (a role into the
                // account the other target already polls): those series are not its own.
                if self.calls.account != account {
                    self.health.remove();
                }
                self.duplicate = Some(account);
            }
            return Ok(());
        }
        if self.duplicate.take().is_some() {
            self.telemetry
                .set_duplicate_targets(self.all_limiters.forget_duplicate());
            info!(aws_account_id = %account, aws_region = %region, "the target that polled this account and region went; this one polls it now");
            // Its own series were removed, or were the other target's and went with
            // it: made anew under the account.
            let names: Vec<&'static str> = self.collectors.iter().map(|(n, _)| *n).collect();
            let ops = operations(self.settings.discovery.is_some(), &self.collectors);
            self.health = self.telemetry.target(&account, &region, &ops, &names);
            self.calls.account = account.clone();
        }
        // Series labelled provisionally (empty, or the role's account) move to the
        // account STS named.
        self.health.relabel(&self.telemetry, &account);
        for op in operations(self.settings.discovery.is_some(), &self.collectors) {
            self.calls.limiters.insert(
                op,
                self.all_limiters
                    .get(&account, &region, op, self.settings.rate),
            );
        }
        self.calls.account = account.clone();
        let id = TargetId::new(&account, &region);
        self.publisher.bind_target(self.settings.slot, id.clone());
        self.facts.add_target(&id);
        self.id.send_replace(id.clone());
        self.resolved = Some(Resolved {
            id,
            labels: Arc::from(target_labels(&account, &region)),
        });
        Ok(())
    }

    /// One cycle: the account when not yet known, discovery when due, then every
    /// enabled collector, side by side (each has its own operation and limiter).
    pub async fn cycle(&mut self) {
        let started = Instant::now();
        // The first cycle with the account known runs at the ceiling, so the target
        // is ready soon after start-up (or after STS finally answered).
        let at_ceiling = self.resolved.is_none();
        if self.resolved.is_none() {
            let resolved = self.resolve().await;
            if self.duplicate.is_some() {
                self.publisher.note_cycle(self.settings.slot, false);
                return;
            }
            if resolved.is_err() {
                // The STS error was logged by the retry loop, once per change.
                self.report_up(false);
                self.publisher.note_cycle(self.settings.slot, false);
                return;
            }
        }
        let Some(resolved) = self.resolved.clone() else {
            return;
        };
        let mut complete = true;
        let mut answered = false;

        if let Some(discovery) = self.settings.discovery.clone() {
            if self.next_discovery.is_none_or(|due| started >= due) {
                match self.discover(&discovery).await {
                    Ok(found) => {
                        answered = true;
                        self.discovered = Some(found);
                        self.watched = self.union();
                        self.next_discovery = Some(started + discovery.interval);
                    }
                    // Tried again next cycle; until then the last list stands.
                    Err(_) => complete = false,
                }
            }
        }

        let watched = Arc::clone(&self.watched);
        self.health.identities.set(watched.len() as i64);
        self.announce(watched.len());

        let paced = !at_ceiling;
        // From the fields, not `self.door()`: the collectors are borrowed mutably.
        let door = Retrying {
            aws: &*self.aws,
            state: &self.calls,
            telemetry: &self.health,
        };
        let ctx = context(
            &door,
            &self.health,
            &self.settings,
            &self.fixed,
            &watched,
            &resolved,
            paced,
            &self.findings,
        );
        // Side by side: each collector has its own operations and limiters.
        let ctx = &ctx;
        let progress = join_all(self.collectors.iter_mut().map(|(name, c)| {
            let name: &'static str = name;
            async move { (name, c.cycle(ctx).await) }
        }))
        .await;
        let telemetry = &self.health;
        for (name, p) in progress {
            telemetry.set_collector_success(name, p.complete);
            complete &= p.complete;
            answered |= p.answered;
        }
        telemetry.poll_duration.set(started.elapsed().as_secs_f64());
        if complete {
            telemetry.set_last_success(SystemTime::now());
        }
        // After the lines above: a tail rendered between the publish and them would
        // pair this cycle's identities with the last cycle's health for a second.
        self.report_up(complete);
        self.publisher.note_cycle(self.settings.slot, answered);
        debug!(aws_account_id = %resolved.id.account, aws_region = %self.settings.region, took = ?started.elapsed(), complete, identities = watched.len(), "poll cycle done");
    }

    /// The static list and the discovered identities, sorted and without duplicates.
    fn union(&self) -> Arc<[String]> {
        let mut all: Vec<String> = self.fixed.to_vec();
        if let Some(found) = &self.discovered {
            all.extend(found.iter().cloned());
        }
        all.sort_unstable();
        all.dedup();
        Arc::from(all)
    }

    fn announce(&mut self, count: usize) {
        if self.announced_count == Some(count) {
            return;
        }
        self.announced_count = Some(count);
        let calls = count.div_ceil(MAX_IDENTITIES_PER_CALL);
        let seconds = min_cycle_seconds(count, self.settings.rate);
        info!(
            aws_account_id = %self.calls.account,
            aws_region = %self.settings.region,
            identities = count,
            calls_per_cycle_per_collector = calls,
            collectors = ?self.collectors.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            min_cycle_seconds = format!("{seconds:.1}"),
            later_cycles_paced_over_seconds = format!(
                "{:.1}",
                self.settings.poll_interval.as_secs_f64() * self.settings.pacing
            ),
            "watching identities"
        );
        if seconds > self.settings.poll_interval.as_secs_f64() {
            warn!(
                min_cycle_seconds = format!("{seconds:.1}"),
                interval = ?self.settings.poll_interval,
                "a cycle cannot finish within the poll interval at this SES rate; cycles will overrun"
            );
        }
    }

    async fn discover(&self, discovery: &Discovery) -> Result<Vec<String>, SesError> {
        let wanted = discovery.identity_type.identity_type();
        let mut token: Option<String> = None;
        let mut found = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let door = self.door();
            let aws: &dyn Aws = &door;
            let page = aws.list_identities(wanted, token.clone()).await?;
            // The type filter is applied here too, in case a server ignores it.
            found.extend(page.identities.into_iter().filter(|id| {
                wanted.is_none_or(|t| IdentityType::of(id) == t) && discovery.admits(id)
            }));
            match page.next_token {
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(SesError::Server {
                        status: 200,
                        message: "ListIdentities returned the same NextToken twice".into(),
                    })
                }
                Some(next) => token = Some(next),
                None => {
                    found.sort_unstable();
                    found.dedup();
                    debug!(identities = found.len(), "discovery done");
                    return Ok(found);
                }
            }
        }
        Err(SesError::Server {
            status: 200,
            message: format!("ListIdentities did not end after {MAX_LIST_PAGES} pages"),
        })
    }

    /// The door with this target's retries and limiters around it.
    fn door(&self) -> Retrying<'_> {
        Retrying {
            aws: &*self.aws,
            state: &self.calls,
            telemetry: &self.health,
        }
    }

    /// The MAIL FROM records, for tests.
    #[cfg(any(test, feature = "test-support"))]
    pub fn records(&self) -> &crate::model::Snapshot {
        static EMPTY: std::sync::OnceLock<crate::model::Snapshot> = std::sync::OnceLock::new();
        self.collectors
            .iter()
            .find_map(|(_, c)| c.mail_from_records())
            .unwrap_or_else(|| EMPTY.get_or_init(crate::model::Snapshot::new))
    }
}

impl crate::supervise::Task for Target {
    fn run(
        &mut self,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send {
        Target::run(self, shutdown)
    }
}

/// What a cycle's collectors get from their target; `paced`: spread over
/// `--ses.pacing` of the interval (every cycle but the first with the account known).
// Each argument is a field of the target borrowed on its own: its collectors are
// borrowed mutably at the same time, so the target cannot be passed whole.
#[allow(clippy::too_many_arguments)]
fn context<'a>(
    aws: &'a dyn Aws,
    telemetry: &'a TargetTelemetry,
    settings: &'a TargetSettings,
    fixed: &'a [String],
    watched: &'a Arc<[String]>,
    resolved: &'a Resolved,
    paced: bool,
    findings: &'a Findings,
) -> Ctx<'a> {
    Ctx {
        aws,
        telemetry,
        watched,
        fixed,
        id: &resolved.id,
        account: &resolved.id.account,
        labels: &resolved.labels,
        region: &settings.region,
        plan: Plan {
            rate: settings.rate,
            spread: (paced && settings.pacing > 0.0)
                .then(|| settings.poll_interval.mul_f64(settings.pacing)),
            interval: settings.poll_interval,
        },
        findings,
    }
}

/// The SES operations a target calls, for its request series and limiters.
fn operations(
    discovery: bool,
    collectors: &[(&'static str, Box<dyn Collector>)],
) -> Vec<Operation> {
    let mut ops = Vec::new();
    if discovery {
        ops.push(Operation::ListIdentities);
    }
    for (_, c) in collectors {
        ops.extend_from_slice(c.operations());
    }
    ops
}

#[cfg(test)]
mod tests;
