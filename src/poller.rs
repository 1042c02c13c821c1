//! The background poller: the schedule, identity discovery, batches of 100, one rate
//! limiter per SES operation, retries with backoff, and publishing a new snapshot.
//! It is the only writer of identity state; scrapes read what it published.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{debug, error, info, warn};

use crate::config::Discovery;
use crate::exposition::Renderer;
use crate::model::{
    status_change, IdentityRecord, IdentityType, MailFromAttributes, MailFromStatus, Observation,
    Snapshot,
};
use crate::ses::{Operation, SesApi, SesError, MAX_IDENTITIES_PER_CALL};
use crate::state::Shared;
use crate::stopped;

/// Requests are planned this much further apart than `1 / rate`, so the sliding
/// window (see [`RateLimiter`]) rarely has to hold one back.
const SPACING_MARGIN: f64 = 1.02;
/// Added to the limiter's window: the time from letting a request go to its arrival
/// at SES varies by a few milliseconds, and must not fit an extra request in.
const WINDOW_MARGIN: Duration = Duration::from_millis(5);
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

/// Lets at most `rate` requests a second through: a sliding-window limit, so no
/// window of one second ever holds more than `rate` requests let go, with requests
/// planned evenly `SPACING_MARGIN / rate` apart (no bursts).
pub struct RateLimiter {
    /// The planned spacing.
    interval: Duration,
    /// At most `capacity` requests in any `window` (`capacity / rate` seconds plus
    /// [`WINDOW_MARGIN`]).
    capacity: usize,
    window: Duration,
    /// A tokio mutex held across the sleep on purpose: the lock is the queue, so
    /// waiters go one by one, in order.
    state: tokio::sync::Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    /// The planned slot of the next request.
    next: Option<Instant>,
    /// When the last `capacity` requests were let go.
    recent: std::collections::VecDeque<Instant>,
}

impl RateLimiter {
    pub fn new(rate: f64) -> RateLimiter {
        // With a rate below 1 the window is longer than a second and holds one request.
        let capacity = (rate.floor() as usize).max(1);
        RateLimiter {
            interval: Duration::from_secs_f64(SPACING_MARGIN / rate),
            capacity,
            window: Duration::from_secs_f64(capacity as f64 / rate) + WINDOW_MARGIN,
            state: tokio::sync::Mutex::new(LimiterState::default()),
        }
    }

    /// Waits for this request's slot and returns how long that took.
    pub async fn acquire(&self) -> Duration {
        let mut state = self.state.lock().await;
        let asked = Instant::now();
        let mut slot = state.next.map_or(asked, |next| next.max(asked));
        if state.recent.len() == self.capacity {
            if let Some(oldest) = state.recent.front() {
                slot = slot.max(*oldest + self.window);
            }
        }
        sleep_until(slot).await;
        // The window counts the moments requests really went (a timer wakes up to a
        // millisecond late); the plan counts from the planned slot, so that lateness
        // does not add up over a thousand requests.
        let granted = Instant::now();
        state.recent.push_back(granted);
        if state.recent.len() > self.capacity {
            state.recent.pop_front();
        }
        state.next = Some(slot + self.interval);
        granted - asked
    }
}

/// The shortest possible cycle for `identities` at `rate`: the first call goes at
/// once, each further one waits one limiter interval.
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

/// What the poller is told to do.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    pub fixed: Vec<String>,
    pub discovery: Option<Discovery>,
    pub poll_interval: Duration,
    pub rate: f64,
    /// Per-attempt timeout; the SDK enforces it, the poller keeps a backstop.
    pub timeout: Duration,
}

/// The parts a request needs: SES, the limiters, the telemetry and the error state.
struct Caller<S> {
    ses: S,
    shared: Arc<Shared>,
    list_limiter: RateLimiter,
    get_limiter: RateLimiter,
    attempt_guard: Duration,
    /// The last failure of each operation, to log once per change of state. A std
    /// mutex: it is only touched between awaits.
    error_state: Mutex<HashMap<Operation, String>>,
}

impl<S: SesApi> Caller<S> {
    fn limiter(&self, op: Operation) -> &RateLimiter {
        match op {
            Operation::ListIdentities => &self.list_limiter,
            Operation::GetIdentityMailFromDomainAttributes => &self.get_limiter,
        }
    }

    /// Makes one request with retries; every attempt waits for the operation's
    /// limiter first, so retries spend the same budget as first attempts.
    async fn call<T, F, Fut>(&self, op: Operation, mut attempt_once: F) -> Result<T, SesError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SesError>>,
    {
        let telemetry = &self.shared.telemetry;
        let mut attempt = 1u32;
        loop {
            let waited = self.limiter(op).acquire().await;
            telemetry.rate_limit_wait.inc_by(waited.as_secs_f64());
            let result = match tokio::time::timeout(self.attempt_guard, attempt_once()).await {
                Ok(result) => result,
                Err(_) => Err(SesError::Timeout(format!(
                    "no answer within {:?}",
                    self.attempt_guard
                ))),
            };
            match result {
                Ok(value) => {
                    telemetry.count_request(op, crate::ses::Outcome::Success);
                    self.note_success(op);
                    return Ok(value);
                }
                Err(err) => {
                    telemetry.count_request(op, err.outcome());
                    self.note_error(op, &err);
                    let max = match err {
                        SesError::Throttled { .. } => MAX_ATTEMPTS_THROTTLED,
                        _ => MAX_ATTEMPTS_OTHER,
                    };
                    if !err.retryable() || attempt >= max {
                        return Err(err);
                    }
                    let delay = backoff(attempt, &err);
                    debug!(operation = op.as_str(), attempt, delay = ?delay, "retrying SES request");
                    sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    fn note_error(&self, op: Operation, err: &SesError) {
        let key = err.state_key();
        let mut state = self.error_state.lock().unwrap_or_else(|p| p.into_inner());
        if state.get(&op) != Some(&key) {
            warn!(operation = op.as_str(), error = %err, "SES request failed");
            state.insert(op, key);
        } else {
            debug!(operation = op.as_str(), error = %err, "SES request failed again");
        }
    }

    fn note_success(&self, op: Operation) {
        let mut state = self.error_state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = state.remove(&op) {
            info!(operation = op.as_str(), previous_error = %previous, "SES requests succeed again");
        }
    }
}

/// Polls SES on a schedule and publishes what it learns into [`Shared`].
pub struct Poller<S> {
    caller: Caller<S>,
    settings: PollerSettings,
    /// Every identity fetched at least once and still watched. Shared with a render
    /// in progress instead of copied; changed copy-on-write while one runs.
    records: Arc<Snapshot>,
    /// Answers that arrived while a render still held `records`, merged in before the
    /// next render: a render running at the moment a batch lands would otherwise
    /// force a copy of every record (2 MB at 10,000 identities).
    pending: HashMap<String, IdentityRecord>,
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
    last_publish: Option<Instant>,
    /// Keeps the pieces of the last exposition so the next one re-renders only what
    /// changed. Away (inside `rendering`) while a render runs.
    renderer: Option<Renderer>,
    /// An intermediate publish still rendering. The cycle does not wait for it, but
    /// the final publish of the cycle waits for it, so an older snapshot never
    /// replaces a newer one.
    rendering: Option<tokio::task::JoinHandle<Renderer>>,
    announced_count: Option<usize>,
}

impl<S: SesApi> Poller<S> {
    pub fn new(ses: S, mut settings: PollerSettings, shared: Arc<Shared>) -> Poller<S> {
        let mut fixed = std::mem::take(&mut settings.fixed);
        fixed.sort_unstable();
        fixed.dedup();
        let fixed: Arc<[String]> = Arc::from(fixed);
        Poller {
            watched: Arc::clone(&fixed),
            fixed,
            caller: Caller {
                ses,
                shared,
                list_limiter: RateLimiter::new(settings.rate),
                get_limiter: RateLimiter::new(settings.rate),
                attempt_guard: settings.timeout + Duration::from_secs(2),
                error_state: Mutex::new(HashMap::new()),
            },
            settings,
            records: Arc::new(Snapshot::new()),
            pending: HashMap::new(),
            discovered: None,
            next_discovery: None,
            last_publish: None,
            renderer: Some(Renderer::default()),
            rendering: None,
            announced_count: None,
        }
    }

    /// Runs cycles until `shutdown` turns true (or its sender goes away). Intervals
    /// run start to start; a cycle that overruns starts the next one at once.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
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
                self.caller.shared.telemetry.poll_overruns.inc();
                // Warn when cycles start overrunning, not at every overrun after.
                if !overrunning {
                    warn!(
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

    /// One cycle: discovery when due, then every watched identity in batches of 100.
    pub async fn cycle(&mut self) {
        let started = Instant::now();
        let telemetry = &self.caller.shared.telemetry;
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
        telemetry.identities.set(watched.len() as i64);
        self.announce(watched.len());

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
        // A stack of batches, first batch on top.
        let mut work: Vec<&[String]> = alone
            .chunks(1)
            .chain(batched.chunks(MAX_IDENTITIES_PER_CALL))
            .rev()
            .collect();
        while let Some(batch) = work.pop() {
            let result = self
                .caller
                .call(Operation::GetIdentityMailFromDomainAttributes, || {
                    self.caller.ses.mail_from_attributes(batch)
                })
                .await;
            match result {
                Ok(found) => {
                    answered = true;
                    self.apply(batch, &found, SystemTime::now());
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
                    work.push(second);
                    work.push(first);
                }
                Err(err) if err.is_invalid_parameter() => {
                    answered = true;
                    self.reject(&batch[0], SystemTime::now());
                }
                Err(err) => {
                    complete = false;
                    // A refusal can be about this batch (an IAM policy on some
                    // identities): go on with the others. After exhausted retries of
                    // throttling, 5xx or network errors the other batches would fare no
                    // better; stop spending budget.
                    if err.retryable() {
                        // The error itself was logged by `call`, once per change.
                        debug!(error = %err, "giving up on this poll cycle; identities keep their last values");
                        break;
                    }
                }
            }
            if self
                .last_publish
                .is_none_or(|at| at.elapsed() >= PUBLISH_EVERY)
            {
                self.publish_in_background().await;
            }
        }
        self.publish().await;
        let telemetry = &self.caller.shared.telemetry;
        telemetry.poll_duration.set(started.elapsed().as_secs_f64());
        telemetry.up.set(i64::from(complete));
        if complete {
            telemetry.set_last_success(SystemTime::now());
        }
        // A tail rendered between the publish and the lines above would pair this
        // cycle's identities with the last cycle's health for up to a second.
        self.caller.shared.invalidate_tail();
        if answered {
            self.caller.shared.set_ready();
        }
        debug!(took = ?started.elapsed(), complete, identities = watched.len(), "poll cycle done");
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
            identities = count,
            calls_per_cycle = calls,
            min_cycle_seconds = format!("{seconds:.1}"),
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

    /// Records one answered batch. An identity SES left out is `Missing`; SES may
    /// echo a domain in another case, so domains also match case-insensitively.
    fn apply(
        &mut self,
        batch: &[String],
        found: &HashMap<String, MailFromAttributes>,
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
                None => Observation::Missing,
            };
            if let Some(change) = status_change(self.current(id), &observation) {
                log_change(&change.before, &change.after, id);
            }
            self.store(id, observation, now);
        }
    }

    /// The last observation of an identity, including one still held back.
    fn current(&self, id: &str) -> Option<&Observation> {
        self.pending
            .get(id)
            .or_else(|| self.records.get(id))
            .map(|r| &r.observation)
    }

    /// Records an observation in place, or holds it back while a render has the
    /// records (see `pending`).
    fn store(&mut self, id: &str, observation: Observation, now: SystemTime) {
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
    fn reject(&mut self, id: &str, now: SystemTime) {
        if !matches!(self.current(id), Some(Observation::Rejected)) {
            warn!(identity = id, "SES refuses this identity as invalid (InvalidParameterValue); it is asked alone from now on");
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
    async fn publish(&mut self) {
        self.start_render().await;
        // Waited for, so the cycle ends with its values served.
        let renderer = self.take_renderer().await;
        self.renderer = Some(renderer);
    }

    /// Publishes what was fetched so far without holding up the cycle; skipped while
    /// the previous such render is still running.
    async fn publish_in_background(&mut self) {
        if self.rendering.as_ref().is_some_and(|r| !r.is_finished()) {
            return;
        }
        self.start_render().await;
    }

    /// Starts rendering the current records on the blocking pool, after any render
    /// still running, and publishes the result when done.
    async fn start_render(&mut self) {
        let mut renderer = self.take_renderer().await;
        self.merge_pending();
        let snapshot = Arc::clone(&self.records);
        let shared = Arc::clone(&self.caller.shared);
        self.rendering = Some(tokio::task::spawn_blocking(move || {
            shared.set_mail_from_domains(
                snapshot
                    .iter()
                    .filter_map(|(id, record)| match &record.observation {
                        Observation::Present(a) => a.domain.clone().map(|d| (id.clone(), d)),
                        _ => None,
                    })
                    .collect(),
            );
            shared.publish(renderer.build(&snapshot));
            renderer
        }));
        self.last_publish = Some(Instant::now());
    }

    /// The renderer, waiting for a render in progress to hand it back.
    async fn take_renderer(&mut self) -> Renderer {
        if let Some(render) = self.rendering.take() {
            match render.await {
                Ok(renderer) => return renderer,
                Err(err) => {
                    error!(error = %err, "rendering the snapshot failed; serving the previous one")
                }
            }
        }
        self.renderer.take().unwrap_or_default()
    }

    /// The current records, for tests.
    pub fn records(&self) -> &Snapshot {
        &self.records
    }
}

/// A first observation is news only when it is not healthy; a change always is.
fn log_change(before: &Option<Observation>, after: &Observation, identity: &str) {
    match before {
        Some(before) => info!(
            identity,
            from = %before,
            to = %after,
            "MAIL FROM state changed"
        ),
        None => {
            let healthy = matches!(
                after,
                Observation::Present(MailFromAttributes { domain: None, .. })
                    | Observation::Present(MailFromAttributes {
                        status: MailFromStatus::Success,
                        ..
                    })
            );
            if healthy {
                debug!(identity, state = %after, "first MAIL FROM state");
            } else {
                info!(identity, state = %after, "first MAIL FROM state");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }

    impl SesApi for Arc<Script> {
        fn region(&self) -> &str {
            "us-east-1"
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
            status,
            behavior: BehaviorOnMxFailure::RejectMessage,
        }
    }

    fn poller(script: &Arc<Script>, fixed: &[&str]) -> (Poller<Arc<Script>>, Arc<Shared>) {
        let shared = Arc::new(Shared::new(Telemetry::new(60.0).unwrap()));
        let settings = PollerSettings {
            fixed: fixed.iter().map(|s| s.to_string()).collect(),
            discovery: None,
            poll_interval: Duration::from_secs(60),
            rate: 1.0,
            timeout: Duration::from_secs(10),
        };
        (
            Poller::new(Arc::clone(script), settings, Arc::clone(&shared)),
            shared,
        )
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
            shared.telemetry.up.get(),
            1,
            "a rejected name is not an outage"
        );
        let text = shared.exposition().text();
        assert!(text.contains(&format!(
            "aws_ses_identity_rejected{{identity=\"{bad}\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "aws_ses_identity_exists{{identity=\"{bad}\"}} 0\n"
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
        let batch = ["a.example.com".to_string(), "b.example.com".to_string()];
        let first: HashMap<_, _> = [(
            "a.example.com".to_string(),
            ok("m.a", MailFromStatus::Success),
        )]
        .into();
        p.apply(&batch, &first, SystemTime::now());
        assert!(p.pending.is_empty(), "no render: written in place");

        // A render holds the records: the next answers wait instead of copying them.
        let render = Arc::clone(&p.records);
        let second: HashMap<_, _> = [(
            "a.example.com".to_string(),
            ok("m.a", MailFromStatus::Failed),
        )]
        .into();
        p.apply(&batch, &second, SystemTime::now());
        assert_eq!(p.pending.len(), 2);
        assert!(Arc::ptr_eq(&render, &p.records), "not copied");
        drop(render);

        p.publish().await;
        assert!(p.pending.is_empty());
        let a = &p.records()["a.example.com"].observation;
        assert!(matches!(a, Observation::Present(x) if x.status == MailFromStatus::Failed));
        assert_eq!(
            p.records()["b.example.com"].observation,
            Observation::Missing
        );
        assert!(shared.exposition().text().contains(
            "aws_ses_identity_mail_from_status{identity=\"a.example.com\",status=\"Failed\"} 1"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests_evenly() {
        let limiter = RateLimiter::new(2.0);
        let mut times = Vec::new();
        for _ in 0..5 {
            limiter.acquire().await;
            times.push(Instant::now());
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(500));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_holds_back_a_request_the_plan_would_let_go() {
        let limiter = RateLimiter::new(3.0);
        let first = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        // As after late timer wake-ups: the plan says "now", the window says no.
        limiter.state.lock().await.next = Some(Instant::now());
        limiter.acquire().await;
        assert!(Instant::now() - first >= Duration::from_secs(1) + WINDOW_MARGIN);
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
        assert_eq!(shared.telemetry.up.get(), 1);
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
        assert_eq!(shared.telemetry.up.get(), 1);

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
        assert_eq!(shared.telemetry.up.get(), 0);
        let text = shared.exposition().text();
        assert!(text.contains(
            "aws_ses_identity_mail_from_status{identity=\"example.com\",status=\"Failed\"} 1"
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
        assert_eq!(shared.telemetry.up.get(), 0);
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
        let task = tokio::spawn(p.run(rx));
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
        assert!(shared.telemetry.poll_overruns.get() >= 5);
    }

    #[tokio::test(start_paused = true)]
    async fn cycles_run_start_to_start() {
        let script = Arc::new(Script::default());
        let (p, shared) = poller(&script, &["example.com"]);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(p.run(rx));
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
        assert_eq!(shared.telemetry.poll_overruns.get(), 0);
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
