//! The background poller of one target (an AWS account and region): the schedule,
//! identity discovery, the enabled collectors (MAIL FROM, DKIM, verification, quota)
//! each with its own batches of 100 and its own rate limiter per SES operation,
//! retries with backoff, and publishing each collector's part of the exposition.
//! It is the only writer of its target's state; scrapes read what it published.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{debug, error, info, warn};

use crate::config::{Collectors, Discovery};
use crate::exposition::{
    render_quota, target_labels, DkimFamilies, Families, MailFromFamilies, Renderer,
    VerificationFamilies,
};
use crate::metrics::TargetTelemetry;
use crate::model::{
    status_change, DkimAttributes, IdentityRecord, IdentityType, MailFromAttributes,
    MailFromStatus, Observation, Quota, Snapshot, Verification, VerificationStatus,
};
use crate::ses::{Operation, Outcome, SesApi, SesError, MAX_IDENTITIES_PER_CALL};
use crate::state::{PartKind, Shared, TargetDomains};
use crate::stopped;

/// Requests are spaced this much further apart than `1 / rate`. The spacing below
/// already holds at SES by construction; the margin keeps the gaps off the exact
/// edge of SES's limit, whose clocks (a fleet of front ends) are not ours.
const SPACING_MARGIN: f64 = 1.02;
/// Attempts of one request when SES throttles: backoffs of about 1, 2, 4, 8 and 16 s,
/// so a batch rides out half a minute of throttling before the cycle gives up.
const MAX_ATTEMPTS_THROTTLED: u32 = 6;
/// Attempts of one request after a 5xx, a timeout or a transport error.
const MAX_ATTEMPTS_OTHER: u32 = 3;
/// Longest single backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// During a long cycle, what was fetched so far is published at most this often, so
/// a large account's first values do not wait for the whole cycle. A publish
/// re-renders only the pieces whose identities changed, so it can be frequent, and
/// the publish at the end of a cycle has little left to render.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// A `ListIdentities` loop that has not ended after this many pages (10 at the SES
/// quota of 10,000 identities) is a server bug, not an account.
const MAX_LIST_PAGES: usize = 1000;

/// Spaces the requests of one (account, region, operation) at least
/// `SPACING_MARGIN / rate` apart *as SES sees them*. Letting a request go is not its
/// arrival: the SDK may first load credentials, resolve the endpoint or open a
/// connection, and a slow first packet can make one request arrive right behind
/// the next. So each attempt holds a [`Permit`] until it ends (answered, failed,
/// timed out or cancelled), and the next permit is granted no earlier than that end
/// plus the spacing. A request cannot arrive before it is let go, and the previous
/// one arrived before its answer came back, so two arrivals are always at least the
/// spacing apart; at most one attempt per limiter is in flight. The price: each
/// request costs its round trip plus the spacing (see docs/performance.md).
pub struct RateLimiter {
    spacing: Duration,
    /// When the last attempt ended; `None` before the first. A tokio mutex whose
    /// guard is the permit, held across the whole attempt on purpose: the lock is
    /// the queue, so waiters go one by one, in order, and never two at once.
    last_end: tokio::sync::Mutex<Option<Instant>>,
}

/// The right to make one HTTP attempt. Dropping it (also when the attempt is
/// cancelled or times out) records the end the next request is spaced from.
pub struct Permit<'a> {
    last_end: tokio::sync::MutexGuard<'a, Option<Instant>>,
    waited: Duration,
}

impl Permit<'_> {
    /// How long the request waited for this permit.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.last_end = Some(Instant::now());
    }
}

impl RateLimiter {
    pub fn new(rate: f64) -> RateLimiter {
        RateLimiter {
            spacing: Duration::from_secs_f64(SPACING_MARGIN / rate),
            last_end: tokio::sync::Mutex::new(None),
        }
    }

    /// The least time from the end of one attempt to the start of the next.
    pub fn spacing(&self) -> Duration {
        self.spacing
    }

    /// Waits until the previous attempt has ended and the spacing has passed since.
    /// Cancelled while waiting, nothing is recorded: nothing was sent.
    pub async fn acquire(&self) -> Permit<'_> {
        let asked = Instant::now();
        let last_end = self.last_end.lock().await;
        if let Some(end) = *last_end {
            sleep_until(end + self.spacing).await;
        }
        Permit {
            last_end,
            waited: asked.elapsed(),
        }
    }
}

/// A lower bound of the cycle for `identities` at `rate`: the first call goes at
/// once, each further one waits one limiter spacing after the previous one's answer
/// (so the real cycle adds every call's round trip). Collectors call different
/// operations with their own limiters, side by side, so this is the cycle of each.
pub fn min_cycle_seconds(identities: usize, rate: f64) -> f64 {
    let calls = identities.div_ceil(MAX_IDENTITIES_PER_CALL);
    calls.saturating_sub(1) as f64 * SPACING_MARGIN / rate
}

/// Backoff before attempt `attempt + 1`: exponential with "equal jitter" (half fixed,
/// half random), so several exporters throttled together do not retry in step.
fn backoff(attempt: u32, err: &SesError) -> Duration {
    let base = match err {
        SesError::Throttled { .. } => Duration::from_secs(1),
        _ => Duration::from_millis(500),
    };
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = exp / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

/// The rate limiters of the whole exporter: one per (account, region, operation),
/// shared by every target that resolves to the same account and region, because
/// that is the scope of SES's limit. Also records which target polls which account
/// and region, so two targets never export the same series.
#[derive(Default)]
pub struct Limiters {
    /// A std mutex: only held to look up or insert an `Arc`.
    limiters: Mutex<HashMap<(String, String, Operation), Arc<RateLimiter>>>,
    claims: Mutex<HashMap<(String, String), usize>>,
    duplicates: Mutex<usize>,
}

impl Limiters {
    pub fn get(&self, account: &str, region: &str, op: Operation, rate: f64) -> Arc<RateLimiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry((account.to_owned(), region.to_owned(), op))
                .or_insert_with(|| Arc::new(RateLimiter::new(rate))),
        )
    }

    /// Claims an account and region for `target`; `Err` names the target that holds it.
    fn claim(&self, account: &str, region: &str, target: usize) -> Result<(), usize> {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        let holder = *claims
            .entry((account.to_owned(), region.to_owned()))
            .or_insert(target);
        if holder == target {
            Ok(())
        } else {
            Err(holder)
        }
    }

    fn count_duplicate(&self) -> usize {
        let mut n = self.duplicates.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        *n
    }
}

/// What one target's poller is told to do.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// The target's position in the configuration: its key for published parts.
    pub index: usize,
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
    /// Per-attempt timeout; the SDK enforces it, the poller keeps a backstop.
    pub timeout: Duration,
    pub collectors: Collectors,
}

impl PollerSettings {
    /// The SES operations this target will call, for its request series.
    pub fn operations(&self) -> Vec<Operation> {
        let mut ops = Vec::new();
        if self.discovery.is_some() {
            ops.push(Operation::ListIdentities);
        }
        let c = &self.collectors;
        if c.mail_from {
            ops.push(Operation::GetIdentityMailFromDomainAttributes);
        }
        if c.dkim {
            ops.push(Operation::GetIdentityDkimAttributes);
        }
        if c.verification {
            ops.push(Operation::GetIdentityVerificationAttributes);
        }
        if c.quota {
            ops.push(Operation::GetSendQuota);
            ops.push(Operation::GetAccountSendingEnabled);
        }
        ops
    }
}

/// The parts a request needs: SES, the limiters, the telemetry and the error state.
struct Caller<S> {
    ses: S,
    shared: Arc<Shared>,
    telemetry: TargetTelemetry,
    /// This target's limiters, once its account is known (no SES call before).
    limiters: HashMap<Operation, Arc<RateLimiter>>,
    attempt_guard: Duration,
    /// The last failure of each operation, to log once per change of state. A std
    /// mutex: it is only touched between awaits.
    error_state: Mutex<HashMap<Option<Operation>, String>>,
    /// For log lines: which target this is.
    account: String,
    region: String,
}

impl<S: SesApi> Caller<S> {
    /// Makes one request with retries; every attempt holds a permit of the
    /// operation's limiter, so retries spend the same budget as first attempts.
    async fn call<T, F, Fut>(&self, op: Operation, attempt_once: F) -> Result<T, SesError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SesError>>,
    {
        let Some(limiter) = self.limiters.get(&op) else {
            return Err(SesError::Construction(format!(
                "no rate limiter for {}: the target's account is not known yet",
                op.as_str()
            )));
        };
        self.attempts(Some(op), Some(limiter), attempt_once).await
    }

    async fn attempts<T, F, Fut>(
        &self,
        op: Option<Operation>,
        limiter: Option<&RateLimiter>,
        mut attempt_once: F,
    ) -> Result<T, SesError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SesError>>,
    {
        let telemetry = &self.telemetry;
        let count = |outcome: Outcome| match op {
            Some(op) => telemetry.count_request(op, outcome),
            None => telemetry.count_sts(outcome),
        };
        let mut attempt = 1u32;
        loop {
            let permit = match limiter {
                Some(limiter) => {
                    let permit = limiter.acquire().await;
                    telemetry
                        .rate_limit_wait
                        .inc_by(permit.waited().as_secs_f64());
                    Some(permit)
                }
                None => None,
            };
            let result = match tokio::time::timeout(self.attempt_guard, attempt_once()).await {
                Ok(result) => result,
                Err(_) => Err(SesError::Timeout(format!(
                    "no answer within {:?}",
                    self.attempt_guard
                ))),
            };
            // The attempt is over: the next one of this operation is spaced from now,
            // and the backoff below does not hold the limiter.
            drop(permit);
            match result {
                Ok(value) => {
                    count(Outcome::Success);
                    self.note_success(op);
                    return Ok(value);
                }
                Err(err) => {
                    count(err.outcome());
                    self.note_error(op, &err);
                    let max = match err {
                        SesError::Throttled { .. } => MAX_ATTEMPTS_THROTTLED,
                        _ => MAX_ATTEMPTS_OTHER,
                    };
                    if !err.retryable() || attempt >= max {
                        return Err(err);
                    }
                    let delay = backoff(attempt, &err);
                    debug!(operation = op_name(op), attempt, delay = ?delay, "retrying request");
                    sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    fn note_error(&self, op: Option<Operation>, err: &SesError) {
        let key = err.state_key();
        let mut state = self.error_state.lock().unwrap_or_else(|p| p.into_inner());
        if state.get(&op) != Some(&key) {
            match op {
                Some(op) => {
                    warn!(aws_account_id = %self.account, aws_region = %self.region, operation = op.as_str(), error = %err, "SES request failed")
                }
                None => {
                    warn!(aws_account_id = %self.account, aws_region = %self.region, operation = "GetCallerIdentity", error = %err, "STS request failed: the target's account is not known, so it is not polled")
                }
            }
            state.insert(op, key);
        } else {
            debug!(operation = op_name(op), error = %err, "request failed again");
        }
    }

    fn note_success(&self, op: Option<Operation>) {
        let mut state = self.error_state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = state.remove(&op) {
            let service = if op.is_some() { "SES" } else { "STS" };
            info!(aws_account_id = %self.account, aws_region = %self.region, operation = op_name(op), previous_error = %previous, "{service} requests succeed again");
        }
    }
}

fn op_name(op: Option<Operation>) -> &'static str {
    op.map_or("GetCallerIdentity", Operation::as_str)
}

/// One identity collector: which SES operation it calls and what it logs. The
/// families it exports are its [`Families`] side.
pub trait Collect: Families
where
    Self::Attr: Display,
{
    /// The name in `--collector.NAME` and in the `collector` label.
    const NAME: &'static str;
    const KIND: PartKind;
    const OPERATION: Operation;
    /// What the state is called in log lines.
    const WHAT: &'static str;

    fn fetch<S: SesApi>(
        ses: &S,
        batch: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Self::Attr>, SesError>> + Send;

    /// A first observation that is healthy is logged at debug, not info.
    fn healthy(attr: &Self::Attr) -> bool;

    /// The custom MAIL FROM domain, for the dns collector (MAIL FROM only).
    fn mail_from_domain(_attr: &Self::Attr) -> Option<&str> {
        None
    }
}

impl Collect for MailFromFamilies {
    const NAME: &'static str = "mail_from";
    const KIND: PartKind = PartKind::MailFrom;
    const OPERATION: Operation = Operation::GetIdentityMailFromDomainAttributes;
    const WHAT: &'static str = "MAIL FROM state";

    fn fetch<S: SesApi>(
        ses: &S,
        batch: &[String],
    ) -> impl Future<Output = Result<HashMap<String, MailFromAttributes>, SesError>> + Send {
        ses.mail_from_attributes(batch)
    }

    fn healthy(a: &MailFromAttributes) -> bool {
        !a.configured() || a.status == Some(MailFromStatus::Success)
    }

    fn mail_from_domain(a: &MailFromAttributes) -> Option<&str> {
        a.domain.as_deref()
    }
}

impl Collect for DkimFamilies {
    const NAME: &'static str = "dkim";
    const KIND: PartKind = PartKind::Dkim;
    const OPERATION: Operation = Operation::GetIdentityDkimAttributes;
    const WHAT: &'static str = "DKIM state";

    fn fetch<S: SesApi>(
        ses: &S,
        batch: &[String],
    ) -> impl Future<Output = Result<HashMap<String, DkimAttributes>, SesError>> + Send {
        ses.dkim_attributes(batch)
    }

    fn healthy(a: &DkimAttributes) -> bool {
        a.enabled == Some(false) || a.status == VerificationStatus::Success
    }
}

impl Collect for VerificationFamilies {
    const NAME: &'static str = "verification";
    const KIND: PartKind = PartKind::Verification;
    const OPERATION: Operation = Operation::GetIdentityVerificationAttributes;
    const WHAT: &'static str = "verification state";

    fn fetch<S: SesApi>(
        ses: &S,
        batch: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Verification>, SesError>> + Send {
        ses.verification_attributes(batch)
    }

    fn healthy(a: &Verification) -> bool {
        a.status == VerificationStatus::Success
    }
}

/// The target's identity, known once STS answered.
#[derive(Clone)]
struct Resolved {
    account: String,
    labels: Arc<str>,
}

/// What a collector's part of a cycle achieved.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Every request it made was answered (or refused for an invalid identity).
    complete: bool,
    /// SES answered at least one request.
    answered: bool,
}

/// Polls one target on a schedule and publishes what it learns into [`Shared`].
pub struct Poller<S: SesApi> {
    caller: Caller<S>,
    settings: PollerSettings,
    all_limiters: Arc<Limiters>,
    resolved: Option<Resolved>,
    /// Set when another target polls the same account and region: this one stops.
    duplicate: bool,
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
    cycles: u64,
    mail_from: Option<IdentityCollector<MailFromFamilies>>,
    dkim: Option<IdentityCollector<DkimFamilies>>,
    verification: Option<IdentityCollector<VerificationFamilies>>,
    quota: Option<QuotaCollector>,
}

impl<S: SesApi> Poller<S> {
    pub fn new(
        ses: S,
        mut settings: PollerSettings,
        shared: Arc<Shared>,
        limiters: Arc<Limiters>,
    ) -> Poller<S> {
        let mut fixed = std::mem::take(&mut settings.fixed);
        fixed.sort_unstable();
        fixed.dedup();
        let fixed: Arc<[String]> = Arc::from(fixed);
        let telemetry = shared.telemetry.target(
            &settings.provisional_account,
            &settings.region,
            &settings.operations(),
            &settings.collectors.names(),
        );
        let c = settings.collectors;
        Poller {
            watched: Arc::clone(&fixed),
            fixed,
            caller: Caller {
                ses,
                shared,
                telemetry,
                limiters: HashMap::new(),
                attempt_guard: settings.timeout + Duration::from_secs(2),
                error_state: Mutex::new(HashMap::new()),
                account: settings.provisional_account.clone(),
                region: settings.region.clone(),
            },
            all_limiters: limiters,
            resolved: None,
            duplicate: false,
            discovered: None,
            next_discovery: None,
            announced_count: None,
            cycles: 0,
            mail_from: c.mail_from.then(IdentityCollector::default),
            dkim: c.dkim.then(IdentityCollector::default),
            verification: c.verification.then(IdentityCollector::default),
            quota: c.quota.then(QuotaCollector::default),
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
            if self.duplicate {
                // Nothing more to do; wait for the shutdown like the others.
                stopped(&mut shutdown).await;
                return;
            }
            let next = start + self.settings.poll_interval;
            if Instant::now() >= next {
                self.caller.telemetry.poll_overruns.inc();
                // Warn when cycles start overrunning, not at every overrun after.
                if !overrunning {
                    warn!(
                        aws_account_id = %self.caller.account,
                        aws_region = %self.caller.region,
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

    /// After the task running this poller failed: its values are not current until
    /// its next cycle says otherwise.
    pub fn mark_down(&self) {
        self.caller.telemetry.up.set(0);
        self.caller.shared.invalidate_tail();
    }

    /// Learns the target's account from STS (once; retried each cycle until it
    /// answers), claims its account and region, and takes its rate limiters.
    async fn resolve(&mut self) -> Result<(), SesError> {
        let ses = &self.caller.ses;
        let who = self
            .caller
            .attempts(None, None, || ses.caller_identity())
            .await?;
        let account = who.account;
        let region = self.settings.region.clone();
        if let Err(holder) = self
            .all_limiters
            .claim(&account, &region, self.settings.index)
        {
            let n = self.all_limiters.count_duplicate();
            self.caller.shared.telemetry.set_duplicate_targets(n);
            error!(
                target_index = self.settings.index,
                other_target_index = holder,
                aws_account_id = %account,
                aws_region = %region,
                "this target resolves to the same account and region as another target; it is not polled"
            );
            // Its provisional labels may be the other target's (a role into the
            // account the other target already polls): those series are not its own.
            if self.caller.account != account {
                self.caller.telemetry.remove();
            }
            self.duplicate = true;
            return Ok(());
        }
        // Series labelled provisionally (empty, or the role's account) move to the
        // account STS named.
        let shared = Arc::clone(&self.caller.shared);
        self.caller.telemetry.relabel(&shared.telemetry, &account);
        info!(
            aws_account_id = %account,
            aws_region = %region,
            caller_arn = %who.arn,
            "target resolved"
        );
        for op in self.settings.operations() {
            self.caller.limiters.insert(
                op,
                self.all_limiters
                    .get(&account, &region, op, self.settings.rate),
            );
        }
        self.caller.account = account.clone();
        self.resolved = Some(Resolved {
            labels: Arc::from(target_labels(&account, &region)),
            account,
        });
        Ok(())
    }

    /// One cycle: the account when not yet known, discovery when due, then every
    /// enabled collector, side by side (each has its own operation and limiter).
    pub async fn cycle(&mut self) {
        let started = Instant::now();
        let first = self.cycles == 0;
        self.cycles += 1;
        // The first cycle with the account known runs at the ceiling, so the target
        // is ready soon after start-up (or after STS finally answered).
        let at_ceiling = self.resolved.is_none();
        if self.resolved.is_none() {
            let resolved = self.resolve().await;
            if self.duplicate {
                self.caller.shared.note_cycle(first, false);
                return;
            }
            if resolved.is_err() {
                // The STS error was logged by `attempts`, once per change.
                self.caller.telemetry.up.set(0);
                self.caller.shared.invalidate_tail();
                self.caller.shared.note_cycle(first, false);
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
        self.caller.telemetry.identities.set(watched.len() as i64);
        self.announce(watched.len());

        let ctx = Ctx {
            caller: &self.caller,
            watched: &watched,
            fixed: &self.fixed,
            resolved: &resolved,
            index: self.settings.index,
            region: &self.settings.region,
            plan: Plan {
                rate: self.settings.rate,
                spread: (!at_ceiling && self.settings.pacing > 0.0)
                    .then(|| self.settings.poll_interval.mul_f64(self.settings.pacing)),
                interval: self.settings.poll_interval,
            },
        };
        let (mail_from, dkim, verification, quota) = tokio::join!(
            run_collector(self.mail_from.as_mut(), &ctx),
            run_collector(self.dkim.as_mut(), &ctx),
            run_collector(self.verification.as_mut(), &ctx),
            async {
                match self.quota.as_mut() {
                    Some(q) => Some(q.cycle(&ctx).await),
                    None => None,
                }
            },
        );
        let telemetry = &self.caller.telemetry;
        for (name, progress) in [
            (MailFromFamilies::NAME, mail_from),
            (DkimFamilies::NAME, dkim),
            (VerificationFamilies::NAME, verification),
            (QUOTA, quota),
        ] {
            if let Some(p) = progress {
                telemetry.set_collector_success(name, p.complete);
                complete &= p.complete;
                answered |= p.answered;
            }
        }
        telemetry.poll_duration.set(started.elapsed().as_secs_f64());
        telemetry.up.set(i64::from(complete));
        if complete {
            telemetry.set_last_success(SystemTime::now());
        }
        // A tail rendered between the publish and the lines above would pair this
        // cycle's identities with the last cycle's health for up to a second.
        self.caller.shared.invalidate_tail();
        self.caller.shared.note_cycle(first, answered);
        debug!(aws_account_id = %resolved.account, aws_region = %self.settings.region, took = ?started.elapsed(), complete, identities = watched.len(), "poll cycle done");
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
            aws_account_id = %self.caller.account,
            aws_region = %self.settings.region,
            identities = count,
            calls_per_cycle_per_collector = calls,
            collectors = ?self.settings.collectors.names(),
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
            let page = self
                .caller
                .call(Operation::ListIdentities, || {
                    self.caller.ses.list_identities(wanted, token.clone())
                })
                .await?;
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

    /// The MAIL FROM records, for tests.
    pub fn records(&self) -> &Snapshot {
        static EMPTY: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
        self.mail_from
            .as_ref()
            .map_or_else(|| EMPTY.get_or_init(Snapshot::new), |c| &c.records)
    }
}

impl<S: SesApi> crate::supervise::Task for Poller<S> {
    fn run(
        &mut self,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send {
        Poller::run(self, shutdown)
    }
}

/// What a collector's cycle needs from its target.
struct Ctx<'a, S> {
    caller: &'a Caller<S>,
    watched: &'a Arc<[String]>,
    /// The static list, sorted: an identity SES leaves out is kept as `Missing`
    /// only when it is listed here (see [`IdentityCollector::apply`]).
    fixed: &'a [String],
    resolved: &'a Resolved,
    index: usize,
    region: &'a str,
    plan: Plan,
}

/// How fast a cycle's identity collectors send their batches.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The ceiling, `--ses.rate`; the limiters enforce it whatever the plan says.
    rate: f64,
    /// The time over which each collector spreads its batches (`--ses.pacing` of
    /// the poll interval); `None`: as fast as the limiter allows.
    spread: Option<Duration>,
    /// The poll interval: the quota collector makes one call of each operation per
    /// cycle.
    interval: Duration,
}

impl Plan {
    /// The least time from the start of one planned batch to the start of the
    /// next, when paced.
    fn pace(&self, batches: usize) -> Option<Duration> {
        let spread = self.spread?;
        (batches > 1).then(|| spread.div_f64(batches as f64))
    }

    /// The requests per second planned for `batches`: the ceiling unless paced.
    fn requests_per_second(&self, batches: usize) -> f64 {
        match self.spread {
            _ if batches == 0 => 0.0,
            Some(spread) => (batches as f64 / spread.as_secs_f64()).min(self.rate),
            None => self.rate,
        }
    }
}

async fn run_collector<S: SesApi, F: Collect>(
    collector: Option<&mut IdentityCollector<F>>,
    ctx: &Ctx<'_, S>,
) -> Option<Progress>
where
    F::Attr: Display,
{
    match collector {
        Some(c) => Some(c.cycle(ctx).await),
        None => None,
    }
}

/// One identity collector's state within a target.
struct IdentityCollector<F: Families> {
    /// Every identity fetched at least once and still watched. Shared with a render
    /// in progress instead of copied; changed copy-on-write while one runs.
    records: Arc<Snapshot<F::Attr>>,
    /// Answers that arrived while a render still held `records`, merged in before the
    /// next render: a render running at the moment a batch lands would otherwise
    /// force a copy of every record (2 MB at 10,000 identities).
    pending: HashMap<String, IdentityRecord<F::Attr>>,
    last_publish: Option<Instant>,
    /// Keeps the pieces of the last render so the next one re-renders only what
    /// changed. Away (inside `rendering`) while a render runs.
    renderer: Option<Renderer<F>>,
    /// An intermediate publish still rendering. The cycle does not wait for it, but
    /// the final publish of the cycle waits for it, so an older snapshot never
    /// replaces a newer one.
    rendering: Option<tokio::task::JoinHandle<Renderer<F>>>,
}

impl<F: Families> Default for IdentityCollector<F> {
    fn default() -> Self {
        IdentityCollector {
            records: Arc::new(Snapshot::new()),
            pending: HashMap::new(),
            last_publish: None,
            renderer: None,
            rendering: None,
        }
    }
}

impl<F: Collect> IdentityCollector<F>
where
    F::Attr: Display,
{
    /// Every watched identity in batches of 100, then the final publish.
    async fn cycle<S: SesApi>(&mut self, ctx: &Ctx<'_, S>) -> Progress {
        let mut progress = Progress {
            complete: true,
            answered: false,
        };
        let watched = ctx.watched;
        // Identities no longer watched (deleted, filtered out) lose their series.
        if self
            .records
            .keys()
            .any(|id| watched.binary_search(id).is_err())
        {
            Arc::make_mut(&mut self.records).retain(|id, _| watched.binary_search(id).is_ok());
            self.pending
                .retain(|id, _| watched.binary_search(id).is_ok());
        }

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
        let caller = ctx.caller;
        caller
            .telemetry
            .set_planned_rate(F::OPERATION, ctx.plan.requests_per_second(work.len()));
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
            let result = caller
                .call(F::OPERATION, || F::fetch(&caller.ses, batch))
                .await;
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
                        // The error itself was logged by `call`, once per change.
                        debug!(collector = F::NAME, error = %err, "giving up on this poll cycle; identities keep their last values");
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
        self.publish(ctx).await;
        progress
    }

    /// Records one answered batch. A listed identity SES left out is `Missing` (it
    /// should exist: `aws_ses_identity_exists 0` pages). A discovered one SES leaves
    /// out was deleted since the last discovery: it is forgotten at once, as the next
    /// discovery would, rather than reported missing until then. SES may echo a
    /// domain in another case, so domains also match case-insensitively.
    fn apply<S>(
        &mut self,
        ctx: &Ctx<'_, S>,
        batch: &[String],
        found: &HashMap<String, F::Attr>,
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
                log_change::<F>(ctx, &change.before, &change.after, id);
            }
            self.store(id, observation, now);
        }
    }

    /// Drops a discovered identity SES no longer returns, with its series.
    fn forget<S>(&mut self, ctx: &Ctx<'_, S>, id: &str) {
        let held = self.pending.remove(id).is_some();
        let recorded = self.records.contains_key(id);
        if recorded {
            // Rare (a deletion), so a copy while a render holds the records is fine.
            Arc::make_mut(&mut self.records).remove(id);
        }
        if held || recorded {
            info!(aws_account_id = %ctx.resolved.account, aws_region = %ctx.region, collector = F::NAME, identity = id, "a discovered identity is no longer returned by SES (deleted); its series are dropped");
        }
    }

    /// The last observation of an identity, including one still held back.
    fn current(&self, id: &str) -> Option<&Observation<F::Attr>> {
        self.pending
            .get(id)
            .or_else(|| self.records.get(id))
            .map(|r| &r.observation)
    }

    /// Records an observation in place, or holds it back while a render has the
    /// records (see `pending`).
    fn store(&mut self, id: &str, observation: Observation<F::Attr>, now: SystemTime) {
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
    fn reject<S>(&mut self, ctx: &Ctx<'_, S>, id: &str, now: SystemTime) {
        if !matches!(self.current(id), Some(Observation::Rejected)) {
            warn!(aws_account_id = %ctx.resolved.account, aws_region = %ctx.region, collector = F::NAME, identity = id, "SES refuses this identity as invalid (InvalidParameterValue); it is asked alone from now on");
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
    /// account is megabytes of text and gzip is CPU work) and swaps them in, after any
    /// render still running.
    async fn publish<S>(&mut self, ctx: &Ctx<'_, S>) {
        self.start_render(ctx).await;
        // Waited for, so the cycle ends with its values served.
        let renderer = self.take_renderer(ctx).await;
        self.renderer = Some(renderer);
    }

    /// Publishes what was fetched so far without holding up the cycle; skipped while
    /// the previous such render is still running.
    async fn publish_in_background<S>(&mut self, ctx: &Ctx<'_, S>) {
        if self.rendering.as_ref().is_some_and(|r| !r.is_finished()) {
            return;
        }
        self.start_render(ctx).await;
    }

    /// Starts rendering the current records on the blocking pool, after any render
    /// still running, and publishes the result when done.
    async fn start_render<S>(&mut self, ctx: &Ctx<'_, S>) {
        let mut renderer = self.take_renderer(ctx).await;
        self.merge_pending();
        let snapshot = Arc::clone(&self.records);
        let shared = Arc::clone(&ctx.caller.shared);
        let index = ctx.index;
        let labels = Arc::clone(&ctx.resolved.labels);
        let region: Arc<str> = Arc::from(ctx.region);
        self.rendering = Some(tokio::task::spawn_blocking(move || {
            if F::KIND == PartKind::MailFrom {
                let domains: BTreeMap<String, String> = snapshot
                    .iter()
                    .filter_map(|(id, record)| match &record.observation {
                        Observation::Present(a) => {
                            F::mail_from_domain(a).map(|d| (id.clone(), d.to_owned()))
                        }
                        _ => None,
                    })
                    .collect();
                shared.set_mail_from_domains(
                    index,
                    TargetDomains {
                        labels,
                        region,
                        domains,
                    },
                );
            }
            shared.publish_part(F::KIND, index, renderer.build(&snapshot));
            renderer
        }));
        self.last_publish = Some(Instant::now());
    }

    /// The renderer, waiting for a render in progress to hand it back.
    async fn take_renderer<S>(&mut self, ctx: &Ctx<'_, S>) -> Renderer<F> {
        if let Some(render) = self.rendering.take() {
            match render.await {
                Ok(renderer) => return renderer,
                Err(err) => {
                    error!(error = %err, "rendering the snapshot failed; serving the previous one")
                }
            }
        }
        self.renderer
            .take()
            .unwrap_or_else(|| Renderer::new(ctx.resolved.labels.to_string()))
    }
}

/// The `quota` collector's name.
pub const QUOTA: &str = "quota";

/// The `quota` collector: `GetSendQuota` and `GetAccountSendingEnabled`, once a
/// cycle per target, each through its own operation's limiter.
#[derive(Default)]
struct QuotaCollector {
    quota: Quota,
}

impl QuotaCollector {
    async fn cycle<S: SesApi>(&mut self, ctx: &Ctx<'_, S>) -> Progress {
        let caller = ctx.caller;
        // One call of each a cycle, not paced (nothing to spread).
        let per_cycle = 1.0 / ctx.plan.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        for op in [Operation::GetSendQuota, Operation::GetAccountSendingEnabled] {
            caller
                .telemetry
                .set_planned_rate(op, per_cycle.min(ctx.plan.rate));
        }
        let (send_quota, enabled) = tokio::join!(
            caller.call(Operation::GetSendQuota, || caller.ses.send_quota()),
            caller.call(Operation::GetAccountSendingEnabled, || caller
                .ses
                .account_sending_enabled()),
        );
        let now = SystemTime::now();
        let mut progress = Progress {
            complete: true,
            answered: false,
        };
        // A failed call keeps the last answer: never a made-up 0 or "enabled".
        match send_quota {
            Ok(q) => {
                progress.answered = true;
                self.quota.send_quota = Some((q, now));
            }
            Err(_) => progress.complete = false,
        }
        match enabled {
            Ok(enabled) => {
                progress.answered = true;
                let before = self.quota.sending_enabled.map(|(e, _)| e);
                if before != Some(enabled) {
                    match enabled {
                        Some(true) => {
                            info!(aws_account_id = %ctx.resolved.account, aws_region = %ctx.region, "SES sending is enabled for the account")
                        }
                        Some(false) => {
                            warn!(aws_account_id = %ctx.resolved.account, aws_region = %ctx.region, "SES sending is DISABLED for the account: SES sends no mail in this region")
                        }
                        None => {
                            warn!(aws_account_id = %ctx.resolved.account, aws_region = %ctx.region, "GetAccountSendingEnabled answered without Enabled: whether SES sends is not known")
                        }
                    }
                }
                self.quota.sending_enabled = Some((enabled, now));
            }
            Err(_) => progress.complete = false,
        }
        let quota = self.quota.clone();
        let labels = Arc::clone(&ctx.resolved.labels);
        let shared = Arc::clone(&caller.shared);
        let index = ctx.index;
        // A few lines, but publishing assembles the whole body: off the async threads.
        let _ = tokio::task::spawn_blocking(move || {
            let mut compressor = flate2::Compress::new(flate2::Compression::default(), false);
            shared.publish_part(
                PartKind::Quota,
                index,
                render_quota(&labels, &quota, &mut compressor),
            );
        })
        .await;
        progress
    }
}

/// A first observation is news only when it is not healthy; a change always is.
fn log_change<F: Collect>(
    ctx: &Ctx<'_, impl Sized>,
    before: &Option<Observation<F::Attr>>,
    after: &Observation<F::Attr>,
    identity: &str,
) where
    F::Attr: Display,
{
    let account = &ctx.resolved.account;
    let region = ctx.region;
    match before {
        Some(before) => info!(
            aws_account_id = %account,
            aws_region = region,
            identity,
            from = %before,
            to = %after,
            "{} changed",
            F::WHAT
        ),
        None => {
            let healthy = match after {
                Observation::Present(a) => F::healthy(a),
                _ => false,
            };
            if healthy {
                debug!(aws_account_id = %account, aws_region = region, identity, state = %after, "first {}", F::WHAT);
            } else {
                info!(aws_account_id = %account, aws_region = region, identity, state = %after, "first {}", F::WHAT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Collectors;
    use crate::metrics::Telemetry;
    use crate::model::BehaviorOnMxFailure;
    use crate::ses::IdentityPage;
    use std::collections::VecDeque;

    /// A scripted SES: answers from a queue of results, records every call.
    #[derive(Default)]
    struct Script {
        answers: Mutex<VecDeque<Result<HashMap<String, MailFromAttributes>, SesError>>>,
        pages: Mutex<VecDeque<Result<IdentityPage, SesError>>>,
        calls: Mutex<Vec<(Instant, Vec<String>)>>,
        /// A batch holding this identity is refused with InvalidParameterValue.
        invalid: Mutex<Option<String>>,
        /// STS refuses this many calls (AccessDenied) before it answers.
        sts_refusals: Mutex<usize>,
    }

    impl SesApi for Arc<Script> {
        fn region(&self) -> &str {
            "us-east-1"
        }

        async fn caller_identity(&self) -> Result<crate::ses::CallerIdentity, SesError> {
            {
                let mut refusals = self.sts_refusals.lock().unwrap();
                if *refusals > 0 {
                    *refusals -= 1;
                    return Err(SesError::Client {
                        code: "AccessDenied".into(),
                        status: 403,
                        message: "not yet".into(),
                    });
                }
            }
            Ok(crate::ses::CallerIdentity {
                account: "123456789012".into(),
                arn: "arn:aws:iam::123456789012:user/test".into(),
            })
        }

        async fn dkim_attributes(
            &self,
            _identities: &[String],
        ) -> Result<HashMap<String, DkimAttributes>, SesError> {
            Ok(HashMap::new())
        }

        async fn verification_attributes(
            &self,
            _identities: &[String],
        ) -> Result<HashMap<String, Verification>, SesError> {
            Ok(HashMap::new())
        }

        async fn send_quota(&self) -> Result<crate::model::SendQuota, SesError> {
            Ok(crate::model::SendQuota {
                max_24_hour_send: Some(200.0),
                max_send_rate: Some(1.0),
                sent_last_24_hours: Some(10.0),
            })
        }

        async fn account_sending_enabled(&self) -> Result<Option<bool>, SesError> {
            Ok(Some(true))
        }

        async fn mail_from_attributes(
            &self,
            identities: &[String],
        ) -> Result<HashMap<String, MailFromAttributes>, SesError> {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), identities.to_vec()));
            if let Some(bad) = self.invalid.lock().unwrap().as_ref() {
                if identities.contains(bad) {
                    return Err(SesError::Client {
                        code: "InvalidParameterValue".into(),
                        status: 400,
                        message: format!("Invalid identity: {bad}"),
                    });
                }
            }
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Ok(HashMap::new()))
        }

        async fn list_identities(
            &self,
            _identity_type: Option<IdentityType>,
            _next_token: Option<String>,
        ) -> Result<IdentityPage, SesError> {
            self.pages
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Ok(IdentityPage::default()))
        }
    }

    fn ok(domain: &str, status: MailFromStatus) -> MailFromAttributes {
        MailFromAttributes {
            domain: Some(domain.into()),
            status: Some(status),
            behavior: BehaviorOnMxFailure::RejectMessage,
        }
    }

    fn poller(script: &Arc<Script>, fixed: &[&str]) -> (Poller<Arc<Script>>, Arc<Shared>) {
        let shared = Arc::new(Shared::new(Telemetry::new(60.0).unwrap()));
        let settings = PollerSettings {
            index: 0,
            region: "us-east-1".into(),
            provisional_account: String::new(),
            fixed: fixed.iter().map(|s| s.to_string()).collect(),
            discovery: None,
            poll_interval: Duration::from_secs(60),
            rate: 1.0,
            pacing: crate::config::DEFAULT_SES_PACING,
            timeout: Duration::from_secs(10),
            collectors: Collectors::default(),
        };
        (
            Poller::new(
                Arc::clone(script),
                settings,
                Arc::clone(&shared),
                Arc::new(Limiters::default()),
            ),
            shared,
        )
    }

    /// A per-target health value of the one target, as a scrape shows it.
    fn target_value(shared: &Shared, name: &str) -> i64 {
        let text = shared.telemetry.render();
        let prefix = format!("{name}{{aws_account_id=\"123456789012\",aws_region=\"us-east-1\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .parse()
            .expect("a number")
    }

    fn throttled() -> SesError {
        SesError::Throttled {
            code: "Throttling".into(),
            message: "Rate exceeded".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalid_identity_is_split_out_and_the_other_99_keep_updating() {
        let script = Arc::new(Script::default());
        let names: Vec<String> = (0..100).map(|i| format!("id-{i:03}.example.com")).collect();
        let bad = names[37].clone();
        *script.invalid.lock().unwrap() = Some(bad.clone());
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (mut p, shared) = poller(&script, &refs);

        p.cycle().await;
        let calls = script.calls.lock().unwrap().len();
        assert!(
            calls <= 1 + 2 * 7,
            "{calls} calls to find one identity in 100"
        );
        assert_eq!(p.records()[&bad].observation, Observation::Rejected);
        let others = p.records().iter().filter(|(id, _)| **id != bad).count();
        assert_eq!(others, 99, "the other 99 were fetched");
        assert_eq!(
            target_value(&shared, "aws_ses_exporter_up"),
            1,
            "a rejected name is not an outage"
        );
        let text = shared.exposition().text();
        assert!(text.contains(&format!(
            "aws_ses_identity_rejected{{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"{bad}\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "aws_ses_identity_exists{{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"{bad}\"}} 0\n"
        )));

        // Next cycle: the bad one alone, the 99 in one batch.
        script.calls.lock().unwrap().clear();
        p.cycle().await;
        let calls = script.calls.lock().unwrap().clone();
        let sizes: Vec<usize> = calls.iter().map(|(_, b)| b.len()).collect();
        assert_eq!(sizes, vec![1, 99]);

        // Fixed at SES: it recovers by itself.
        *script.invalid.lock().unwrap() = None;
        script.answers.lock().unwrap().push_back(Ok([(
            bad.clone(),
            ok("mail.x", MailFromStatus::Success),
        )]
        .into()));
        p.cycle().await;
        assert!(matches!(
            p.records()[&bad].observation,
            Observation::Present(_)
        ));
        assert!(!shared
            .exposition()
            .text()
            .contains("aws_ses_identity_rejected"));
    }

    #[tokio::test]
    async fn answers_landing_during_a_render_wait_and_are_not_lost() {
        let script = Arc::new(Script::default());
        let (mut p, shared) = poller(&script, &["a.example.com", "b.example.com"]);
        p.cycle().await; // resolves the account; both identities come back Missing
        let resolved = p.resolved.clone().expect("resolved");
        let watched = Arc::clone(&p.watched);
        let Poller {
            caller,
            mail_from,
            settings,
            fixed,
            ..
        } = &mut p;
        let ctx = Ctx {
            caller,
            watched: &watched,
            fixed,
            resolved: &resolved,
            index: 0,
            region: &settings.region,
            plan: Plan {
                rate: settings.rate,
                spread: None,
                interval: settings.poll_interval,
            },
        };
        let c = mail_from.as_mut().expect("mail_from on");
        let batch = ["a.example.com".to_string(), "b.example.com".to_string()];
        let first: HashMap<_, _> = [(
            "a.example.com".to_string(),
            ok("m.a", MailFromStatus::Success),
        )]
        .into();
        c.apply(&ctx, &batch, &first, SystemTime::now());
        assert!(c.pending.is_empty(), "no render: written in place");

        // A render holds the records: the next answers wait instead of copying them.
        let render = Arc::clone(&c.records);
        let second: HashMap<_, _> = [(
            "a.example.com".to_string(),
            ok("m.a", MailFromStatus::Failed),
        )]
        .into();
        c.apply(&ctx, &batch, &second, SystemTime::now());
        assert_eq!(c.pending.len(), 2);
        assert!(Arc::ptr_eq(&render, &c.records), "not copied");
        drop(render);

        c.publish(&ctx).await;
        assert!(c.pending.is_empty());
        let a = &c.records["a.example.com"].observation;
        assert!(matches!(a, Observation::Present(x) if x.status == Some(MailFromStatus::Failed)));
        assert_eq!(c.records["b.example.com"].observation, Observation::Missing);
        assert!(shared.exposition().text().contains(
            "aws_ses_identity_mail_from_status{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"a.example.com\",status=\"Failed\"} 1"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests_evenly() {
        let limiter = RateLimiter::new(2.0);
        let mut times = Vec::new();
        for _ in 0..5 {
            drop(limiter.acquire().await);
            times.push(Instant::now());
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(500));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_takes_300_ms_pushes_the_next_grant_to_its_end_plus_spacing() {
        let limiter = RateLimiter::new(1.0);
        assert_eq!(limiter.spacing(), Duration::from_millis(1020));
        let permit = limiter.acquire().await;
        assert_eq!(permit.waited(), Duration::ZERO, "the first goes at once");
        sleep(Duration::from_millis(300)).await;
        drop(permit);
        let ended = Instant::now();
        let next = limiter.acquire().await;
        assert_eq!(Instant::now() - ended, limiter.spacing());
        assert_eq!(next.waited(), limiter.spacing());
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_permit_keeps_the_next_one_waiting_however_long_the_attempt_takes() {
        let limiter = RateLimiter::new(1.0);
        let held = limiter.acquire().await;
        // Ten times the spacing later, still no second permit: one attempt in flight.
        let second = tokio::time::timeout(Duration::from_millis(10_200), limiter.acquire()).await;
        assert!(second.is_err(), "a second permit while the first is held");
        drop(held);
        let ended = Instant::now();
        // The waiter given up above recorded nothing: the next one counts from `ended`.
        drop(limiter.acquire().await);
        assert_eq!(Instant::now() - ended, limiter.spacing());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_attempt_still_records_its_end() {
        let limiter = RateLimiter::new(1.0);
        let attempt = async {
            let _permit = limiter.acquire().await;
            sleep(Duration::from_secs(60)).await;
        };
        assert!(tokio::time::timeout(Duration::from_millis(300), attempt)
            .await
            .is_err());
        let cancelled = Instant::now();
        drop(limiter.acquire().await);
        assert_eq!(Instant::now() - cancelled, limiter.spacing());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_spaced_from_the_end_of_the_attempt_before_timed_out_ones_too() {
        let script = Arc::new(Script::default());
        let (mut p, _) = poller(&script, &["example.com"]);
        p.cycle().await; // resolves the account: the limiters exist
        let starts = Arc::new(Mutex::new(Vec::new()));
        let result = p
            .caller
            .call(Operation::GetIdentityMailFromDomainAttributes, || {
                let starts = Arc::clone(&starts);
                async move {
                    let n = {
                        let mut s = starts.lock().unwrap();
                        s.push(Instant::now());
                        s.len()
                    };
                    match n {
                        // 300 ms, then a 503: retried after a backoff shorter than the
                        // spacing, so the limiter decides when.
                        1 => {
                            sleep(Duration::from_millis(300)).await;
                            Err(SesError::Server {
                                status: 503,
                                message: "unavailable".into(),
                            })
                        }
                        // No answer: the poller's guard gives up on it.
                        2 => std::future::pending().await,
                        _ => Ok(()),
                    }
                }
            })
            .await;
        assert!(result.is_ok());
        let starts = starts.lock().unwrap().clone();
        assert_eq!(starts.len(), 3);
        let spacing = Duration::from_millis(1020);
        let guard = p.caller.attempt_guard;
        assert_eq!(starts[1] - starts[0], Duration::from_millis(300) + spacing);
        assert_eq!(starts[2] - starts[1], guard + spacing);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_hold_at_most_100_and_retries_pass_the_limiter() {
        let script = Arc::new(Script::default());
        let ids: Vec<String> = (0..250).map(|i| format!("d{i:03}.example.com")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        {
            let mut answers = script.answers.lock().unwrap();
            answers.push_back(Ok(HashMap::new()));
            answers.push_back(Err(throttled()));
            answers.push_back(Ok(HashMap::new()));
            answers.push_back(Ok(HashMap::new()));
        }
        let (mut p, shared) = poller(&script, &refs);
        p.cycle().await;
        let calls = script.calls.lock().unwrap();
        assert_eq!(
            calls.iter().map(|c| c.1.len()).collect::<Vec<_>>(),
            vec![100, 100, 100, 50]
        );
        for pair in calls.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= Duration::from_secs(1));
        }
        // The throttled batch was retried in the same cycle: every identity is fresh.
        assert_eq!(p.records().len(), 250);
        assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);
        assert!(shared.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_batch_keeps_the_last_values() {
        let script = Arc::new(Script::default());
        let mut first = HashMap::new();
        first.insert(
            "example.com".to_string(),
            ok("mail.example.com", MailFromStatus::Failed),
        );
        script.answers.lock().unwrap().push_back(Ok(first));
        let (mut p, shared) = poller(&script, &["example.com"]);
        p.cycle().await;
        let before = p.records().clone();
        assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);

        for _ in 0..MAX_ATTEMPTS_OTHER {
            script
                .answers
                .lock()
                .unwrap()
                .push_back(Err(SesError::Server {
                    status: 503,
                    message: "unavailable".into(),
                }));
        }
        p.cycle().await;
        assert_eq!(p.records(), &before, "values and refresh time kept");
        assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 0);
        let text = shared.exposition().text();
        assert!(text.contains(
            "aws_ses_identity_mail_from_status{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"example.com\",status=\"Failed\"} 1"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn omitted_identities_are_missing_and_domains_match_any_case() {
        let script = Arc::new(Script::default());
        let mut answer = HashMap::new();
        answer.insert(
            "Example.COM".to_string(),
            ok("mail.example.com", MailFromStatus::Success),
        );
        script.answers.lock().unwrap().push_back(Ok(answer));
        let (mut p, _) = poller(&script, &["example.com", "gone.example.org"]);
        p.cycle().await;
        assert!(matches!(
            p.records()["example.com"].observation,
            Observation::Present(_)
        ));
        assert_eq!(
            p.records()["gone.example.org"].observation,
            Observation::Missing
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_discovered_identity_ses_leaves_out_is_dropped_a_listed_one_is_missing() {
        let script = Arc::new(Script::default());
        script.pages.lock().unwrap().push_back(Ok(IdentityPage {
            identities: vec!["found.example.com".into(), "gone.example.com".into()],
            next_token: None,
        }));
        let both: HashMap<_, _> = [
            (
                "found.example.com".to_string(),
                ok("m.found", MailFromStatus::Success),
            ),
            (
                "gone.example.com".to_string(),
                ok("m.gone", MailFromStatus::Success),
            ),
        ]
        .into();
        let found_only: HashMap<_, _> = [(
            "found.example.com".to_string(),
            ok("m.found", MailFromStatus::Success),
        )]
        .into();
        {
            let mut answers = script.answers.lock().unwrap();
            answers.push_back(Ok(both));
            answers.push_back(Ok(found_only));
        }
        let (mut p, shared) = poller(&script, &["listed.example.com"]);
        p.settings.discovery = Some(Discovery {
            identity_type: crate::config::DiscoveryType::All,
            include: Vec::new(),
            exclude: Vec::new(),
            interval: Duration::from_secs(3600),
        });
        p.cycle().await;
        assert!(p.records().contains_key("gone.example.com"));
        // Deleted at SES before the next discovery is due.
        p.cycle().await;
        assert!(
            !p.records().contains_key("gone.example.com"),
            "dropped at once"
        );
        assert_eq!(
            p.records()["listed.example.com"].observation,
            Observation::Missing,
            "a listed identity SES leaves out is reported missing"
        );
        let text = shared.exposition().text();
        assert!(!text.contains("identity=\"gone.example.com\""), "{text}");
        assert!(text.contains("aws_ses_identity_exists{aws_account_id=\"123456789012\",aws_region=\"us-east-1\",identity=\"listed.example.com\"} 0\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_are_not_retried() {
        let script = Arc::new(Script::default());
        script
            .answers
            .lock()
            .unwrap()
            .push_back(Err(SesError::Client {
                code: "AccessDenied".into(),
                status: 403,
                message: "no".into(),
            }));
        let (mut p, shared) = poller(&script, &["example.com"]);
        p.cycle().await;
        assert_eq!(script.calls.lock().unwrap().len(), 1);
        assert!(p.records().is_empty(), "never fetched, so no series");
        assert!(!shared.is_ready());
        assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_overrunning_cycle_starts_the_next_at_once_and_is_counted() {
        let script = Arc::new(Script::default());
        // 250 identities at 1 request/s: a cycle takes about 3 s, the interval is 1 s.
        let ids: Vec<String> = (0..250).map(|i| format!("d{i:03}.example.com")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (mut p, shared) = poller(&script, &refs);
        p.settings.poll_interval = Duration::from_secs(1);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move { p.run(rx).await });
        sleep(Duration::from_secs(20)).await;
        tx.send(true).unwrap();
        task.await.unwrap();
        let calls = script.calls.lock().unwrap();
        // Back to back: every call about 1.02 s after the previous, no idle gap.
        for pair in calls.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(
                gap >= Duration::from_secs(1) && gap < Duration::from_millis(1100),
                "{gap:?}"
            );
        }
        assert!(calls.len() >= 18, "{} calls in 20 s", calls.len());
        assert!(target_value(&shared, "aws_ses_exporter_poll_overruns_total") >= 5);
    }

    #[tokio::test(start_paused = true)]
    async fn cycles_run_start_to_start() {
        let script = Arc::new(Script::default());
        let (mut p, shared) = poller(&script, &["example.com"]);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move { p.run(rx).await });
        sleep(Duration::from_secs(185)).await;
        tx.send(true).unwrap();
        task.await.unwrap();
        let calls = script.calls.lock().unwrap();
        // Cycles at 0, 60, 120 and 180 s.
        assert_eq!(calls.len(), 4);
        for pair in calls.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(
                gap >= Duration::from_secs(60) && gap < Duration::from_millis(60_100),
                "{gap:?}"
            );
        }
        assert_eq!(
            target_value(&shared, "aws_ses_exporter_poll_overruns_total"),
            0
        );
    }

    #[test]
    fn one_limiter_per_account_region_and_operation_and_one_target_per_account_region() {
        let l = Limiters::default();
        let op = Operation::GetIdentityDkimAttributes;
        let a = l.get("111111111111", "eu-west-1", op, 1.0);
        assert!(Arc::ptr_eq(
            &a,
            &l.get("111111111111", "eu-west-1", op, 1.0)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &l.get("111111111111", "us-east-1", op, 1.0)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &l.get("222222222222", "eu-west-1", op, 1.0)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &l.get("111111111111", "eu-west-1", Operation::GetSendQuota, 1.0)
        ));
        assert_eq!(l.claim("111111111111", "eu-west-1", 0), Ok(()));
        assert_eq!(
            l.claim("111111111111", "eu-west-1", 0),
            Ok(()),
            "idempotent"
        );
        assert_eq!(l.claim("111111111111", "us-east-1", 1), Ok(()));
        assert_eq!(l.claim("111111111111", "eu-west-1", 2), Err(0));
    }

    #[tokio::test(start_paused = true)]
    async fn collectors_of_a_target_run_side_by_side_each_on_its_own_limiter() {
        let script = Arc::new(Script::default());
        let ids: Vec<String> = (0..300).map(|i| format!("d{i:03}.example.com")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (mut p, shared) = poller(&script, &refs);
        p.settings.collectors = Collectors {
            mail_from: true,
            dkim: true,
            verification: true,
            quota: true,
        };
        p.dkim = Some(IdentityCollector::default());
        p.verification = Some(IdentityCollector::default());
        p.quota = Some(QuotaCollector::default());
        let started = Instant::now();
        p.cycle().await;
        // 3 batches per identity collector: about 2 s at 1 request/s, not 6 s.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        let text = shared.exposition().text();
        assert!(text.contains("aws_ses_send_quota_max_emails{aws_account_id=\"123456789012\",aws_region=\"us-east-1\"} 200\n"));
        assert!(text.contains("aws_ses_account_sending_enabled{aws_account_id=\"123456789012\",aws_region=\"us-east-1\"} 1\n"));
        // The quota collector plans one call of each operation per 60 s cycle.
        let quota_plan = planned(&shared, "123456789012", Operation::GetSendQuota)
            .expect("a planned rate for GetSendQuota");
        assert!((quota_plan - 1.0 / 60.0).abs() < 1e-9, "{quota_plan}");
        assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);
    }

    /// The planned request rate of the one target's MAIL FROM operation.
    fn planned_rate(shared: &Shared) -> f64 {
        planned(
            shared,
            "123456789012",
            Operation::GetIdentityMailFromDomainAttributes,
        )
        .expect("a planned rate of the resolved target")
    }

    /// The planned request rate of `op` of the one target under `account`, if exported.
    fn planned(shared: &Shared, account: &str, op: Operation) -> Option<f64> {
        let prefix = format!(
            "aws_ses_exporter_ses_planned_request_rate{{aws_account_id=\"{account}\",aws_region=\"us-east-1\",operation=\"{}\"}} ",
            op.as_str()
        );
        shared
            .telemetry
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
            .map(|v| v.parse().expect("a number"))
    }

    /// Runs one cycle and returns the gaps between the starts of its calls.
    async fn cycle_gaps(p: &mut Poller<Arc<Script>>, script: &Script) -> Vec<Duration> {
        script.calls.lock().unwrap().clear();
        p.cycle().await;
        let calls = script.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }

    /// Runs the poller on its schedule for `seconds` and returns the gaps between the
    /// starts of the calls of each cycle (cycles start every 60 s).
    async fn gaps_per_cycle(
        mut p: Poller<Arc<Script>>,
        script: &Script,
        seconds: u64,
    ) -> Vec<Vec<Duration>> {
        let t0 = Instant::now();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move { p.run(rx).await });
        sleep(Duration::from_secs(seconds)).await;
        tx.send(true).unwrap();
        task.await.unwrap();
        let calls = script.calls.lock().unwrap();
        let mut cycles: Vec<Vec<Instant>> = vec![Vec::new(); seconds.div_ceil(60) as usize];
        for (at, _) in calls.iter() {
            cycles[((*at - t0).as_secs() / 60) as usize].push(*at);
        }
        cycles
            .iter()
            .map(|c| c.windows(2).map(|w| w[1] - w[0]).collect())
            .collect()
    }

    fn assert_about(gaps: &[Duration], expected: Duration, what: &str) {
        // A paused clock still wakes timers on whole milliseconds.
        let slack = Duration::from_millis(5);
        assert!(
            gaps.iter()
                .all(|g| *g >= expected && *g <= expected + slack),
            "{what}: gaps {gaps:?}, expected {expected:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_pacing_the_batches_of_later_cycles_spread_over_most_of_the_interval() {
        let script = Arc::new(Script::default());
        let ids: Vec<String> = (0..500).map(|i| format!("d{i:03}.example.com")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (p, shared) = poller(&script, &refs);
        assert_eq!(p.settings.pacing, 0.8);
        assert_eq!(p.settings.poll_interval, Duration::from_secs(60));
        let ceiling = Duration::from_millis(1020);
        {
            // The second cycle's second batch is throttled once.
            let mut answers = script.answers.lock().unwrap();
            for _ in 0..6 {
                answers.push_back(Ok(HashMap::new()));
            }
            answers.push_back(Err(throttled()));
        }
        let planned = Arc::clone(&shared);
        let watch_plan = tokio::spawn(async move {
            // Halfway through each cycle, what the metric says.
            sleep(Duration::from_secs(30)).await;
            let first = planned_rate(&planned);
            sleep(Duration::from_secs(60)).await;
            (first, planned_rate(&planned))
        });
        let cycles = gaps_per_cycle(p, &script, 110).await;

        // The first cycle: at the ceiling, so the exporter is ready in about 4 s.
        assert_eq!(cycles[0].len(), 4, "5 batches");
        assert_about(&cycles[0], ceiling, "first cycle");

        // The second: 5 batches over 0.8 x 60 s, 9.6 s apart. The throttled batch is
        // retried after its backoff, through the limiter only, and does not move the
        // plan of the batches after it.
        let gaps = &cycles[1];
        assert_eq!(gaps.len(), 5, "5 batches and one retry: {gaps:?}");
        let retry = gaps[1];
        assert!(
            retry >= ceiling && retry < Duration::from_secs(2),
            "the retry waits for its backoff and the limiter, not the plan: {retry:?}"
        );
        let planned: Vec<Duration> = [gaps[0], gaps[1] + gaps[2], gaps[3], gaps[4]].into();
        assert_about(&planned, Duration::from_millis(9600), "second cycle");

        let (first, second) = watch_plan.await.unwrap();
        assert_eq!(first, 1.0, "the ceiling, --ses.rate");
        assert!((second - 5.0 / 48.0).abs() < 1e-9, "{second}");
        assert_eq!(target_value(&shared, "aws_ses_exporter_up"), 1);
        assert_eq!(
            target_value(&shared, "aws_ses_exporter_poll_overruns_total"),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_pacing_every_cycle_runs_at_the_ceiling() {
        let script = Arc::new(Script::default());
        let ids: Vec<String> = (0..500).map(|i| format!("d{i:03}.example.com")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (mut p, shared) = poller(&script, &refs);
        p.settings.pacing = 0.0;
        for cycle in ["first", "second", "third"] {
            let gaps = cycle_gaps(&mut p, &script).await;
            assert_eq!(gaps.len(), 4);
            assert_about(&gaps, Duration::from_millis(1020), cycle);
            assert_eq!(planned_rate(&shared), 1.0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_cycle_after_the_account_resolves_runs_at_the_ceiling() {
        let script = Arc::new(Script::default());
        *script.sts_refusals.lock().unwrap() = 1;
        let ids: Vec<String> = (0..300).map(|i| format!("d{i:03}.example.com")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (p, shared) = poller(&script, &refs);
        assert_eq!(planned_rate_or_zero(&shared), 0.0, "nothing planned yet");
        let cycles = gaps_per_cycle(p, &script, 170).await;
        assert!(cycles[0].is_empty(), "STS refused: no SES call");
        assert_eq!(cycles[1].len(), 2);
        assert_about(
            &cycles[1],
            Duration::from_millis(1020),
            "first cycle with the account",
        );
        assert_eq!(cycles[2].len(), 2);
        assert_about(&cycles[2], Duration::from_secs(16), "paced: 0.8 x 60 s / 3");
        assert!((planned_rate(&shared) - 3.0 / 48.0).abs() < 1e-9);
    }

    /// The planned rate under the provisional (empty) account, before STS answered.
    fn planned_rate_or_zero(shared: &Shared) -> f64 {
        planned(shared, "", Operation::GetIdentityMailFromDomainAttributes).unwrap_or(0.0)
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let t = throttled();
        for attempt in 1..10 {
            let d = backoff(attempt, &t);
            assert!(d <= MAX_BACKOFF);
            let floor = Duration::from_secs(1)
                .saturating_mul(1 << (attempt - 1))
                .min(MAX_BACKOFF)
                / 2;
            assert!(d >= floor, "attempt {attempt}: {d:?} < {floor:?}");
        }
    }
}
