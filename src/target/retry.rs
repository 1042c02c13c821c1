//! The retry policy: [`Retrying`] governs a target's SES session so that every
//! call is retried with backoff (exponential, equal jitter) after a throttle, a 5xx,
//! a timeout or a transport error, every attempt, retries included, holds a permit of
//! its operation's [`RateLimiter`], and every failure is logged once per change of
//! state rather than once per attempt.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::sleep;
use tracing::{debug, info, warn};

use super::limiter::RateLimiter;
use crate::aws::{Cause, Policy, Reply, SesError};
use crate::metrics::TargetTelemetry;
use crate::model::{Operation, Outcome};

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

/// The retry policy of one target's session (see [`crate::aws::Governed`]): every
/// call made with retries, every attempt through the operation's rate limiter and
/// counted.
pub struct Retrying {
    pub telemetry: TargetTelemetry,
    /// This target's limiters, once its account is known (no SES call before).
    pub limiters: HashMap<Operation, Arc<RateLimiter>>,
    pub(crate) attempt_guard: Duration,
    /// The last failure of each operation, to log once per change of state. A std
    /// mutex: it is only touched between awaits.
    error_state: Mutex<HashMap<Option<Operation>, String>>,
    /// For log lines: which target this is.
    pub account: String,
    region: String,
}

impl Retrying {
    /// `timeout` is the per-attempt timeout the SDK enforces; this keeps a backstop
    /// a little longer.
    pub fn new(
        region: String,
        telemetry: TargetTelemetry,
        timeout: Duration,
        account: String,
    ) -> Retrying {
        Retrying {
            telemetry,
            limiters: HashMap::new(),
            attempt_guard: timeout + Duration::from_secs(2),
            error_state: Mutex::new(HashMap::new()),
            account,
            region,
        }
    }

    /// Makes one request with retries; every attempt holds a permit of the
    /// operation's limiter, so retries spend the same budget as first attempts.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: Operation,
        attempt_once: F,
    ) -> Result<T, SesError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SesError>>,
    {
        let Some(limiter) = self.limiters.get(&op) else {
            return Err(SesError::Construction(Cause::from(format!(
                "no rate limiter for {}: the target's account is not known yet",
                op.as_str()
            ))));
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
                Err(_) => Err(SesError::Timeout(Cause::from(format!(
                    "no answer within {:?}",
                    self.attempt_guard
                )))),
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

impl Policy for Retrying {
    fn govern<'a, T, F>(&'a self, op: Option<Operation>, attempt: F) -> Reply<'a, T>
    where
        T: Send + 'a,
        F: FnMut() -> Reply<'a, T> + Send + 'a,
    {
        match op {
            Some(op) => Box::pin(self.call(op, attempt)),
            None => Box::pin(self.attempts(None, None, attempt)),
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
