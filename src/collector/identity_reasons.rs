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
//!
//! The budget left over sweeps the domain identities whose DKIM records the dns
//! collector checks (only while it runs), each asked at most once per
//! [`ORIGIN_MAX_AGE`], never asked first: their DKIM origin and SES's signing zone
//! go to the identity facts ([`DkimOrigin`]), so the records are judged by the rule
//! SES verifies them by. Those answers are not exported (a healthy identity has no
//! reason to give), only used. A sweep call that fails ends the sweep for the cycle
//! and makes the domain wait its day, without failing the cycle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use super::identity::{present, refreshed};
use super::{Ctx, Outlet, Progress, Registration, Scope};
use crate::aws::{Operation, SesError};
use crate::facts::Facts;
use crate::model::{
    DkimOrigin, EmailIdentity, IdentityRecord, Observation, Snapshot, VerificationErrorType,
};
use crate::publish::Publishing;
use crate::render::{ses_gauge, state_set, timestamp, Derived, Family, Renderer, Samples};

pub const REGISTRATION: Registration = Registration {
    name: "identity_reasons",
    enabled_by_default: false,
    help: "The identity_reasons collector: SESv2 GetEmailIdentity for the identities whose verification or DKIM is not Success (needs the verification or dkim collector), SES's error type and last check; with the budget left, each domain's DKIM origin and signing zone once a day for the dns collector (off by default: it needs ses:GetEmailIdentity).",
    scope: Scope::Target(|outlet| Box::new(ReasonsCollector::new(outlet))),
};

const OPERATIONS: &[Operation] = &[Operation::GetEmailIdentity];

/// How long a domain's DKIM origin and signing zone are taken as SES last said: they
/// change when someone moves the domain to or from bring-your-own DKIM or replicates
/// it, rarely; a day keeps the sweep's calls to one per domain a day.
pub const ORIGIN_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

pub struct ReasonsCollector {
    per_cycle: usize,
    records: Arc<Snapshot<EmailIdentity>>,
    /// When each unhealthy identity was last asked about, answered or not: the
    /// rotation's order.
    asked: HashMap<String, Instant>,
    /// Error types this build does not know, logged once each.
    unknown_logged: HashSet<String>,
    facts: Arc<Facts>,
    /// The DKIM origin SES last gave for each swept (or explained) domain identity,
    /// and when it was asked.
    origins: BTreeMap<String, (Option<DkimOrigin>, Instant)>,
    /// The signing zones SES named, one copy each.
    zones: Vec<Arc<str>>,
    publishing: Publishing<Option<Renderer<IdentityRecord<EmailIdentity>>>>,
}

impl ReasonsCollector {
    pub fn new(outlet: Outlet) -> ReasonsCollector {
        ReasonsCollector {
            per_cycle: outlet.options.reasons_per_cycle.max(1),
            records: Arc::new(Snapshot::new()),
            asked: HashMap::new(),
            unknown_logged: HashSet::new(),
            facts: Arc::clone(&outlet.facts),
            origins: BTreeMap::new(),
            zones: Vec::new(),
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

    /// The sweep's `n` domain identities (of `domains`, not in `chosen`): never asked
    /// first, then the longest ago, none asked within [`ORIGIN_MAX_AGE`].
    fn sweep(&self, domains: &[String], chosen: &[String], n: usize, now: Instant) -> Vec<String> {
        let mut order: Vec<(Option<Instant>, &String)> = domains
            .iter()
            .filter(|id| !chosen.contains(id))
            .map(|id| (self.origins.get(id).map(|(_, at)| *at), id))
            .filter(|(at, _)| at.is_none_or(|at| now.duration_since(at) >= ORIGIN_MAX_AGE))
            .collect();
        order.sort();
        order.into_iter().take(n).map(|(_, id)| id.clone()).collect()
    }

    /// Keeps what SES said of a domain's DKIM origin.
    fn learn_origin(&mut self, id: &str, found: &EmailIdentity, at: Instant) {
        if id.contains('@') {
            return;
        }
        let origin = found.signing_origin.as_deref().map(|o| {
            DkimOrigin::parse(o, found.signing_hosted_zone.as_deref(), &mut self.zones)
        });
        self.origins.insert(id.to_owned(), (origin, at));
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
        let budget = self.per_cycle.min(fits);
        let mut chosen = self.choose(&unhealthy, budget);
        // The DKIM origins, only while the dns collector reads them.
        let domains: Vec<String> = if self.facts.read() {
            let mut domains = self.facts.dkim_domains(ctx.id);
            domains.retain(|id| ctx.watched.binary_search(id).is_ok());
            domains
        } else {
            Vec::new()
        };
        self.origins
            .retain(|id, _| domains.binary_search(id).is_ok() || unhealthy.binary_search(id).is_ok());
        let swept = self.sweep(&domains, &chosen, budget - chosen.len(), Instant::now());
        let explained = chosen.len();
        chosen.extend(swept);
        ctx.telemetry.set_planned_rate(
            Operation::GetEmailIdentity,
            ctx.plan.requests_per_second(chosen.len()),
        );
        let pace = ctx.plan.pace(chosen.len());
        let mut next: Option<Instant> = None;
        for (i, id) in chosen.iter().enumerate() {
            let explaining = i < explained;
            if let Some(pace) = pace {
                if let Some(at) = next {
                    sleep_until(at).await;
                }
                next = Some(Instant::now() + pace);
            }
            let asked = Instant::now();
            if explaining {
                self.asked.insert(id.clone(), asked);
            }
            match ctx.aws.email_identity(id).await {
                Ok(found) => {
                    progress.answered = true;
                    self.learn_origin(id, &found, asked);
                    if !explaining {
                        continue;
                    }
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
                    self.origins.insert(id.clone(), (None, asked));
                    if !explaining {
                        continue;
                    }
                    Arc::make_mut(&mut self.records).remove(id);
                    debug!(identity = %id, code, "SES has no reason to give for this identity");
                }
                Err(err) if explaining => {
                    progress.complete = false;
                    // Denied or failing for one is failing for the next: stop
                    // spending budget; the reasons held keep their age.
                    debug!(collector = "identity_reasons", error = %err, "giving up on this poll cycle; reasons keep their last values");
                    break;
                }
                Err(err) => {
                    // A sweep call failed: the attempt counts (the domain waits its
                    // day, so one SES or IAM refuses does not hold the sweep), the
                    // origin last learnt stands, and the cycle's health stays the
                    // unhealthy identities' (the request's failure is counted and
                    // alerted on as any other's). Failing for one is likely failing
                    // for the next: the sweep stops for this cycle.
                    self.origins
                        .entry(id.clone())
                        .and_modify(|(_, at)| *at = asked)
                        .or_insert((None, asked));
                    debug!(collector = "identity_reasons", identity = %id, error = %err, "could not ask SES for the domain's DKIM origin; the sweep goes on next cycle");
                    break;
                }
            }
        }
        if self.facts.read() {
            self.facts.set_dkim_origins(
                ctx.id,
                self.origins
                    .iter()
                    .filter(|(id, _)| domains.binary_search(id).is_ok())
                    .filter_map(|(id, (origin, _))| Some((id.clone(), origin.clone()?))),
            );
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

super::cycle_collector!(ReasonsCollector);

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
            facts: Arc::new(Facts::new()),
            origins: BTreeMap::new(),
            zones: Vec::new(),
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

    #[test]
    fn the_sweep_asks_the_never_asked_then_those_older_than_a_day_and_not_the_explained() {
        let mut c = ReasonsCollector {
            per_cycle: 20,
            records: Arc::new(Snapshot::new()),
            asked: HashMap::new(),
            unknown_logged: HashSet::new(),
            facts: Arc::new(Facts::new()),
            origins: BTreeMap::new(),
            zones: Vec::new(),
            publishing: Publishing::new(Arc::new(crate::publish::Publisher::new()), 0),
        };
        let start = Instant::now();
        let now = start + ORIGIN_MAX_AGE + Duration::from_secs(100);
        c.origins.insert("old.example".into(), (None, start + Duration::from_secs(50)));
        c.origins.insert("older.example".into(), (None, start + Duration::from_secs(10)));
        c.origins.insert("fresh.example".into(), (None, now - Duration::from_secs(60)));
        let domains: Vec<String> = ["a.example", "b.example", "fresh.example", "old.example", "older.example"]
            .map(String::from)
            .to_vec();
        let chosen = vec!["a.example".to_owned()];
        assert_eq!(c.sweep(&domains, &chosen, 10, now), ["b.example", "older.example", "old.example"]);
        assert_eq!(c.sweep(&domains, &chosen, 1, now), ["b.example"]);
    }

    #[test]
    fn an_origin_is_read_with_its_zone_shared() {
        let mut zones = Vec::new();
        let a = DkimOrigin::parse("AWS_SES", Some("dkim.af-south-1.amazonses.com."), &mut zones);
        let b = DkimOrigin::parse("AWS_SES", Some("dkim.af-south-1.amazonses.com"), &mut zones);
        assert_eq!(a, b);
        assert_eq!(zones.len(), 1);
        assert_eq!(DkimOrigin::parse("AWS_SES", Some(""), &mut zones), DkimOrigin::AwsSes { zone: None });
        assert_eq!(DkimOrigin::parse("EXTERNAL", None, &mut zones), DkimOrigin::External);
        assert_eq!(DkimOrigin::parse("AWS_SES_EU_WEST_1", None, &mut zones), DkimOrigin::Replicated);
        assert_eq!(DkimOrigin::parse("SOMETHING_NEW", None, &mut zones), DkimOrigin::Other);
    }
}
