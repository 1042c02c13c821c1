//! The `identity_reasons` collector (off by default: it needs ses:GetEmailIdentity):
//! SES's own reason for the few identities the verification and dkim collectors find
//! not healthy (their [`super::Findings`]), from SESv2 `GetEmailIdentity`, one identity
//! a call: the verification `ErrorType`, when SES last checked and last succeeded, and
//! the DKIM signing origin.
//!
//! The budget: at most `--collector.identity_reasons.calls-per-cycle` calls (default
//! 20) per target and cycle, paced like the identity collectors' batches, and never
//! more than fit in the cycle at `--ses.rate`. Identities never asked go first, then
//! those asked longest ago (whatever SES answered: one SES refuses does not hold the
//! others back), so with U unhealthy identities and a budget of N each is explained
//! again within ceil(U / N) cycles (one cycle more for a finding made in the cycle
//! that is running). An identity that becomes healthy, or is no longer watched, loses
//! its reason. SES refusing one identity (`NotFoundException`: deleted since;
//! `BadRequestException`) is that identity's answer, not a failed cycle; a refusal
//! of the call itself (AccessDenied), throttling or an outage ends the cycle's calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use super::identity::{present, refreshed};
use super::{Collector, Ctx, Outlet, Progress, Registration, Scope};
use crate::aws::{Operation, SesError};
use crate::model::{EmailIdentity, IdentityRecord, Observation, Snapshot, VerificationErrorType};
use crate::publish::Publishing;
use crate::render::{ses_gauge, state_set, timestamp, Derived, Family, Renderer, Samples};

pub const REGISTRATION: Registration = Registration {
    name: "identity_reasons",
    enabled_by_default: false,
    help: "The identity_reasons collector: SESv2 GetEmailIdentity for the identities whose verification or DKIM is not Success (needs the verification or dkim collector), SES's error type and last check (off by default: it needs ses:GetEmailIdentity).",
    scope: Scope::Target(|outlet| Box::new(ReasonsCollector::new(outlet))),
};

const OPERATIONS: &[Operation] = &[Operation::GetEmailIdentity];

pub struct ReasonsCollector {
    per_cycle: usize,
    records: Arc<Snapshot<EmailIdentity>>,
    /// When each unhealthy identity was last asked about, answered or not: the
    /// rotation's order.
    asked: HashMap<String, Instant>,
    /// Error types this build does not know, logged once each.
    unknown_logged: HashSet<String>,
    publishing: Publishing<Option<Renderer<IdentityRecord<EmailIdentity>>>>,
}

impl ReasonsCollector {
    pub fn new(outlet: Outlet) -> ReasonsCollector {
        ReasonsCollector {
            per_cycle: outlet.options.reasons_per_cycle.max(1),
            records: Arc::new(Snapshot::new()),
            asked: HashMap::new(),
            unknown_logged: HashSet::new(),
            publishing: outlet.publishing(),
        }
    }

    /// This cycle's `n` identities: never asked first, then the longest ago.
    fn choose(&self, unhealthy: &[String], n: usize) -> Vec<String> {
        let mut order: Vec<(Option<Instant>, &String)> = unhealthy
            .iter()
            .map(|id| (self.asked.get(id).copied(), id))
            .collect();
        // `None` (never asked) sorts first; ties by name, so the order is stable.
        order.sort();
        order
            .into_iter()
            .take(n)
            .map(|(_, id)| id.clone())
            .collect()
    }

    async fn run_cycle(&mut self, ctx: &Ctx<'_>) -> Progress {
        let mut progress = Progress::new();
        let unhealthy: Vec<String> = ctx
            .findings
            .unhealthy()
            .into_iter()
            .filter(|id| ctx.watched.binary_search(id).is_ok())
            .collect();
        // Healthy again or no longer watched: its reason is history.
        if self
            .records
            .keys()
            .any(|id| unhealthy.binary_search(id).is_err())
        {
            Arc::make_mut(&mut self.records).retain(|id, _| unhealthy.binary_search(id).is_ok());
        }
        self.asked
            .retain(|id, _| unhealthy.binary_search(id).is_ok());
        // No more than the limiter lets through in the time the cycle spreads its
        // calls over (1.02 / rate apart): a budget set too high must not make every
        // collector of the target overrun its interval.
        let window = ctx.plan.spread.unwrap_or(ctx.plan.interval).as_secs_f64();
        let fits = ((window * ctx.plan.rate / 1.02).floor() as usize).max(1);
        let chosen = self.choose(&unhealthy, self.per_cycle.min(fits));
        ctx.telemetry.set_planned_rate(
            Operation::GetEmailIdentity,
            ctx.plan.requests_per_second(chosen.len()),
        );
        let pace = ctx.plan.pace(chosen.len());
        let mut next: Option<Instant> = None;
        for id in &chosen {
            if let Some(pace) = pace {
                if let Some(at) = next {
                    sleep_until(at).await;
                }
                next = Some(Instant::now() + pace);
            }
            self.asked.insert(id.clone(), Instant::now());
            match ctx.aws.email_identity(id).await {
                Ok(found) => {
                    progress.answered = true;
                    self.log_reason(ctx, id, &found);
                    Arc::make_mut(&mut self.records).insert(
                        id.clone(),
                        IdentityRecord {
                            observation: Observation::Present(found),
                            refreshed_at: SystemTime::now(),
                        },
                    );
                }
                // SES's answer about this identity: deleted since the other
                // collectors saw it (nothing to explain), or a name SESv2 refuses.
                Err(SesError::Client { code, .. })
                    if matches!(
                        code.as_str(),
                        "NotFoundException" | "BadRequestException" | "InvalidParameterValue"
                    ) =>
                {
                    progress.answered = true;
                    Arc::make_mut(&mut self.records).remove(id);
                    debug!(identity = %id, code, "SES has no reason to give for this identity");
                }
                Err(err) => {
                    progress.complete = false;
                    // Denied or failing for one is failing for the next: stop
                    // spending budget; the reasons held keep their age.
                    debug!(collector = "identity_reasons", error = %err, "giving up on this poll cycle; reasons keep their last values");
                    break;
                }
            }
        }
        let records = Arc::clone(&self.records);
        let (target, labels) = (ctx.id.clone(), Arc::clone(ctx.labels));
        self.publishing
            .start(move |renderer| {
                let renderer =
                    renderer.get_or_insert_with(|| Renderer::new(FAMILIES, labels.to_string()));
                vec![(
                    target,
                    renderer.build(records.iter().map(|(id, r)| (id.as_str(), r))),
                )]
            })
            .await;
        self.publishing.idle().await;
        progress
    }

    fn log_reason(&mut self, ctx: &Ctx<'_>, identity: &str, now: &EmailIdentity) {
        let before = self
            .records
            .get(identity)
            .and_then(|r| present(r))
            .map(|e| e.error_type.clone());
        if before.as_ref() != Some(&now.error_type) {
            info!(aws_account_id = %ctx.account, aws_region = %ctx.region, identity, error_type = now.error_type.as_deref().unwrap_or("none reported"), "SES's reason for the identity's state");
        }
        if let Some(kind) = now.error_type.as_deref() {
            if VerificationErrorType::parse(kind) == VerificationErrorType::Unknown
                && self.unknown_logged.insert(kind.to_owned())
            {
                warn!(aws_account_id = %ctx.account, aws_region = %ctx.region, error_type = kind, "GetEmailIdentity answered an error type this build does not know; exported as Unknown");
            }
        }
    }
}

impl Collector for ReasonsCollector {
    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    fn cycle<'a>(&'a mut self, ctx: &'a Ctx<'a>) -> BoxFuture<'a, Progress> {
        Box::pin(self.run_cycle(ctx))
    }

    fn settle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.publishing.idle())
    }
}

type Record = IdentityRecord<EmailIdentity>;

fn error_type(samples: &mut Samples<'_>, kind: &VerificationErrorType) {
    state_set(
        samples,
        "error_type",
        &VerificationErrorType::ALL,
        *kind,
        VerificationErrorType::as_str,
    );
}

fn signing(samples: &mut Samples<'_>, (origin, zone): &(String, String)) {
    samples.sample(&[("origin", origin), ("signing_hosted_zone", zone)], 1.0);
}

#[rustfmt::skip]
const FAMILIES: &[Family<Record>] = &[
    ses_gauge("aws_ses_identity_verification_error", &Derived { value: |r: &Record| present(r)?.error_type.as_deref().map(VerificationErrorType::parse), write: error_type },
        "Why SES could not verify the identity's records (GetEmailIdentity VerificationInfo.ErrorType) as a state set, for identities whose verification or DKIM is not Success; Unknown for a value this build does not know; absent when SES reports no error type."),
    ses_gauge("aws_ses_identity_verification_last_checked_timestamp_seconds", &Derived { value: |r: &Record| present(r)?.last_checked, write: timestamp },
        "Unix time at which SES last checked the identity's verification records (VerificationInfo.LastCheckedTimestamp); absent when SES left it out."),
    ses_gauge("aws_ses_identity_verification_last_success_timestamp_seconds", &Derived { value: |r: &Record| present(r)?.last_success, write: timestamp },
        "Unix time at which SES last found the identity's verification records right (VerificationInfo.LastSuccessTimestamp); absent when SES left it out."),
    ses_gauge("aws_ses_identity_dkim_signing_info", &Derived { value: |r: &Record| { let e = present(r)?; Some((e.signing_origin.clone()?, e.signing_hosted_zone.clone().unwrap_or_default())) }, write: signing },
        "The identity's DKIM signing origin (DkimAttributes.SigningAttributesOrigin: AWS_SES, EXTERNAL for bring-your-own DKIM, AWS_SES_<REGION> when replicated) and SES's signing hosted zone (empty when left out); always 1."),
    ses_gauge("aws_ses_identity_reason_last_refresh_timestamp_seconds", &Derived { value: refreshed, write: timestamp },
        "Unix time at which SES last answered GetEmailIdentity for this identity; a failed call leaves it unchanged."),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn collector(per_cycle: usize, explained: &[(&str, u64)]) -> Vec<String> {
        let start = Instant::now();
        let asked: HashMap<String, Instant> = explained
            .iter()
            .map(|(id, at)| ((*id).to_owned(), start + Duration::from_secs(*at)))
            .collect();
        let c = ReasonsCollector {
            per_cycle,
            records: Arc::new(Snapshot::new()),
            asked,
            unknown_logged: HashSet::new(),
            publishing: Publishing::new(Arc::new(crate::publish::Publisher::new()), 0),
        };
        let unhealthy: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        c.choose(&unhealthy, per_cycle)
    }

    #[test]
    fn the_unexplained_first_then_the_oldest() {
        assert_eq!(collector(2, &[("a", 5), ("c", 1)]), ["b", "d"]);
        assert_eq!(collector(3, &[("a", 5), ("c", 1)]), ["b", "d", "c"]);
        assert_eq!(collector(10, &[("a", 5), ("b", 6), ("c", 1), ("d", 2)]), ["c", "d", "a", "b"]);
    }
}
