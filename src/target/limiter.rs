//! The rate limiters: [`RateLimiter`] spaces the HTTP attempts of one (account,
//! region, operation) as SES sees them, and [`Limiters`] holds one per (account,
//! region, operation) for the whole exporter, with the claims that keep two targets
//! from polling the same account and region.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::aws::Operation;
use crate::aws::MAX_IDENTITIES_PER_CALL;
use crate::publish::Slot;

/// Requests are spaced this much further apart than `1 / rate`. The spacing below
/// already holds at SES by construction; the margin keeps the gaps off the exact
/// edge of SES's limit, whose clocks (a fleet of front ends) are not ours.
const SPACING_MARGIN: f64 = 1.02;
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

/// The rate limiters of the whole exporter: one per (account, region, operation),
/// shared by every target that resolves to the same account and region, because
/// that is the scope of SES's limit. Also records which target polls which account
/// and region, so two targets never export the same series.
#[derive(Default)]
pub struct Limiters {
    /// A std mutex: only held to look up or insert an `Arc`.
    limiters: Mutex<HashMap<(String, String, Operation), Arc<RateLimiter>>>,
    claims: Mutex<HashMap<(String, String), Slot>>,
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
    pub fn claim(&self, account: &str, region: &str, target: Slot) -> Result<(), Slot> {
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

    /// A target went: its account and region are free for another.
    pub fn release(&self, account: &str, region: &str, target: Slot) {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        let key = (account.to_owned(), region.to_owned());
        if claims.get(&key) == Some(&target) {
            claims.remove(&key);
        }
    }

    /// A duplicate target went; the count left.
    pub fn forget_duplicate(&self) -> usize {
        let mut n = self.duplicates.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        *n
    }

    pub fn count_duplicate(&self) -> usize {
        let mut n = self.duplicates.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        *n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::sleep;

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
}
