//! Retries and rate limiting around the door: [`Retrying`] is an [`Aws`] over the target's
//! [`Aws`] and its [`CallState`], every attempt (retries included) holding a permit of its
//! operation's [`RateLimiter`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::sleep;
use tracing::{debug, info, warn};

use super::limiter::RateLimiter;
use crate::aws::{
    Aws, CallerIdentity, Cause, Operation, Reply, Request, Response, Service, SesError, TargetAws,
};
use crate::metrics::TargetTelemetry;
use crate::model::Outcome;

/// Attempts of one request when SES throttles: backoffs of about 1, 2, 4, 8 and 16 s,
/// so a batch rides out half a minute of throttling before the cycle gives up.
const MAX_ATTEMPTS_THROTTLED: u32 = 6;
/// Attempts of one request after a 5xx, a timeout or a transport error.
pub(crate) const MAX_ATTEMPTS_OTHER: u32 = 3;
/// Longest single backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
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

/// What a target keeps for its calls: its account (for log lines), its limiters
/// and the last failure of each operation. It lives in the target; a [`Retrying`]
/// borrows it for a cycle.
pub struct CallState {
    /// The account the target's series and log lines carry: provisional until STS
    /// answered.
    pub account: String,
    pub region: String,
    /// This target's limiters, once its account is known (no SES call before).
    pub limiters: HashMap<Operation, Arc<RateLimiter>>,
    pub(crate) attempt_guard: Duration,
    /// The last failure of each call, to log once per change of state. A std
    /// mutex: it is only touched between awaits.
    failures: Mutex<HashMap<Of, String>>,
}

impl CallState {
    /// `timeout` is the per-attempt timeout the SDK enforces; this keeps a backstop
    /// a little longer.
    pub fn new(account: String, region: String, timeout: Duration) -> CallState {
        CallState {
            account,
            region,
            limiters: HashMap::new(),
            attempt_guard: timeout + Duration::from_secs(2),
            failures: Mutex::new(HashMap::new()),
        }
    }
}

/// The door with retries and rate limiting around it: every call made with
/// retries, every attempt of an SES operation through that operation's rate limiter,
/// and every attempt counted in the target's telemetry. A view over the target's
/// state, built for each cycle. A call is retried with backoff (exponential, equal
/// jitter) after a throttle, a 5xx, a timeout or a transport error; a failure is
/// logged once per change of state.
pub struct Retrying<'t> {
    pub aws: &'t dyn TargetAws,
    pub state: &'t CallState,
    pub telemetry: &'t TargetTelemetry,
}

impl Aws for Retrying<'_> {
    fn call<'a>(&'a self, request: Request<'a>) -> Reply<'a, Response> {
        let op = request.operation();
        Box::pin(async move {
            let Some(limiter) = self.state.limiters.get(&op) else {
                return Err(SesError::Construction(Cause::from(format!(
                    "no rate limiter for {}: the target's account is not known yet",
                    op.as_str()
                ))));
            };
            self.attempts(Of::Operation(op), Some(limiter), || {
                self.aws.call(request.clone())
            })
            .await
        })
    }
}

impl TargetAws for Retrying<'_> {
    fn region(&self) -> &str {
        self.aws.region()
    }

    fn caller_identity(&self) -> Reply<'_, CallerIdentity> {
        Box::pin(self.attempts(Of::CallerIdentity, None, || self.aws.caller_identity()))
    }
}

/// What an attempt is of: an operation of the door's table, or STS's call of a
/// target's own account (which no limiter spaces: one a cycle at most, and STS's
/// limits are not SES's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Of {
    Operation(Operation),
    CallerIdentity,
}

impl Of {
    fn name(self) -> &'static str {
        match self {
            Of::Operation(op) => op.as_str(),
            Of::CallerIdentity => "GetCallerIdentity",
        }
    }
}

impl Retrying<'_> {
    /// Makes one request with retries; every attempt holds a permit of the
    /// operation's limiter (none for STS), so retries spend the same budget as
    /// first attempts.
    async fn attempts<T, F, Fut>(
        &self,
        of: Of,
        limiter: Option<&RateLimiter>,
        mut attempt_once: F,
    ) -> Result<T, SesError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SesError>>,
    {
        let telemetry = self.telemetry;
        // Each service's calls are counted as docs/compatibility.md decides.
        let count = |outcome: Outcome| match of {
            Of::Operation(op) => match op.service() {
                Service::Ses => telemetry.count_request(op, outcome),
            },
            Of::CallerIdentity => telemetry.count_sts(outcome),
        };
        let guard = self.state.attempt_guard;
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
            let result = match tokio::time::timeout(guard, attempt_once()).await {
                Ok(result) => result,
                Err(_) => Err(SesError::Timeout(Cause::from(format!(
                    "no answer within {guard:?}"
                )))),
            };
            // The attempt is over: the next one of this operation is spaced from now,
            // and the backoff below does not hold the limiter.
            drop(permit);
            match result {
                Ok(value) => {
                    count(Outcome::Success);
                    self.note_success(of);
                    return Ok(value);
                }
                Err(err) => {
                    count(err.outcome());
                    self.note_error(of, &err);
                    let max = match err {
                        SesError::Throttled { .. } => MAX_ATTEMPTS_THROTTLED,
                        _ => MAX_ATTEMPTS_OTHER,
                    };
                    if !err.retryable() || attempt >= max {
                        return Err(err);
                    }
                    let delay = backoff(attempt, &err);
                    debug!(operation = of.name(), attempt, delay = ?delay, "retrying request");
                    sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    fn note_error(&self, of: Of, err: &SesError) {
        let (account, region) = (&self.state.account, &self.state.region);
        let key = err.state_key();
        let mut state = self
            .state
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if state.get(&of) != Some(&key) {
            match of {
                Of::Operation(op) => {
                    warn!(aws_account_id = %account, aws_region = %region, operation = op.as_str(), error = %err, "SES request failed")
                }
                Of::CallerIdentity => {
                    warn!(aws_account_id = %account, aws_region = %region, operation = "GetCallerIdentity", error = %err, "STS request failed: the target's account is not known, so it is not polled")
                }
            }
            state.insert(of, key);
        } else {
            debug!(operation = of.name(), error = %err, "request failed again");
        }
    }

    fn note_success(&self, of: Of) {
        let (account, region) = (&self.state.account, &self.state.region);
        let mut state = self
            .state
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = state.remove(&of) {
            let service = match of {
                Of::Operation(_) => "SES",
                Of::CallerIdentity => "STS",
            };
            info!(aws_account_id = %account, aws_region = %region, operation = of.name(), previous_error = %previous, "{service} requests succeed again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled() -> SesError {
        SesError::Throttled {
            code: "Throttling".into(),
            message: "Rate exceeded".into(),
        }
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
