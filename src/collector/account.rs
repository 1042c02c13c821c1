//! The `account` collector (off by default: it needs ses:GetAccount): SESv2 `GetAccount`
//! once a cycle per target: whether SES has put the account under review (`PROBATION`) or
//! paused it (`SHUTDOWN`), the sandbox, the production-access review, VDM, and what the
//! quota collector answers (sending enabled, the quota), in one call. With both on, this
//! one writes the quota families and quota does not run (config::validate), so no family
//! is written twice; quota stays for IAM policies without ses:GetAccount.

use std::collections::HashSet;
use std::time::SystemTime;

use tracing::{info, warn};

use super::quota::{
    enabled, log_sending, time, value, HELP_MAX_EMAILS, HELP_MAX_SEND_RATE, HELP_QUOTA_REFRESH,
    HELP_SENDING_ENABLED, HELP_SENDING_REFRESH, HELP_SENT_EMAILS,
};
use super::{publish_account, Ctx, Outlet, Progress, Registration, Scope};
use crate::aws::Operation;
use crate::model::{AccountDetails, EnforcementStatus, ReviewStatus, SendQuota};
use crate::publish::Publishing;
use crate::render::{
    ses_gauge, state_set, unix_millis, Derived, Family, Renderer, Samples, Value,
};

pub const REGISTRATION: Registration = Registration {
    name: "account",
    enabled_by_default: false,
    help: "The account collector: SESv2 GetAccount per target: enforcement status (PROBATION, SHUTDOWN), sandbox, review, VDM, and the quota collector's families in one call (off by default: it needs ses:GetAccount).",
    scope: Scope::Target(|outlet| Box::new(AccountCollector::new(outlet))),
};

const OPERATIONS: &[Operation] = &[Operation::GetAccount];

/// SES's last answer and when it came: a failed call keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountRecord {
    pub answer: Option<(AccountDetails, SystemTime)>,
}

pub struct AccountCollector {
    record: AccountRecord,
    /// Enforcement and review statuses this build does not know, logged once each.
    unknown_logged: HashSet<String>,
    publishing: Publishing<Option<Renderer<AccountRecord>>>,
}

impl AccountCollector {
    pub fn new(outlet: Outlet) -> AccountCollector {
        AccountCollector {
            record: AccountRecord::default(),
            unknown_logged: HashSet::new(),
            publishing: outlet.publishing(),
        }
    }

    async fn run_cycle(&mut self, ctx: &Ctx<'_>) -> Progress {
        let per_cycle = 1.0 / ctx.plan.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        ctx.telemetry
            .set_planned_rate(Operation::GetAccount, per_cycle.min(ctx.plan.rate));
        let mut progress = Progress::new();
        match ctx.aws.account().await {
            Ok(details) => {
                progress.answered = true;
                self.log_changes(ctx, &details);
                self.record.answer = Some((details, SystemTime::now()));
            }
            // The last answer stands, its refresh time showing its age.
            Err(_) => progress.complete = false,
        }
        publish_account(&mut self.publishing, ctx, FAMILIES, self.record.clone()).await;
        progress
    }

    /// A change of enforcement status or sending is news; a value this build does
    /// not know is logged once, as SES spelt it.
    fn log_changes(&mut self, ctx: &Ctx<'_>, now: &AccountDetails) {
        let before = self.record.answer.as_ref().map(|(d, _)| d);
        let (account, region) = (ctx.account, ctx.region);
        let status = now.enforcement_status.as_deref();
        if before.map(|b| b.enforcement_status.as_deref()) != Some(status) {
            match status.map(EnforcementStatus::parse) {
                Some(EnforcementStatus::Healthy) => {
                    info!(aws_account_id = %account, aws_region = %region, enforcement_status = "HEALTHY", "SES enforcement status")
                }
                Some(EnforcementStatus::Probation) => {
                    warn!(aws_account_id = %account, aws_region = %region, enforcement_status = "PROBATION", "SES has put the account under review (PROBATION): it still sends, and SES may pause it unless its bounce and complaint rates come down")
                }
                Some(EnforcementStatus::Shutdown) => {
                    warn!(aws_account_id = %account, aws_region = %region, enforcement_status = "SHUTDOWN", "SES has PAUSED the account's sending (SHUTDOWN): every send in this region is refused")
                }
                Some(EnforcementStatus::Unknown) | None => {}
            }
        }
        for (field, value, known) in [
            (
                "EnforcementStatus",
                status,
                status.map(|s| EnforcementStatus::parse(s) != EnforcementStatus::Unknown),
            ),
            (
                "ReviewDetails.Status",
                now.review_status.as_deref(),
                now.review_status
                    .as_deref()
                    .map(|s| ReviewStatus::parse(s) != ReviewStatus::Unknown),
            ),
        ] {
            if let (Some(value), Some(false)) = (value, known) {
                if self.unknown_logged.insert(format!("{field}={value}")) {
                    warn!(aws_account_id = %account, aws_region = %region, field, value, "GetAccount answered a value this build does not know; exported as Unknown");
                }
            }
        }
        if before.map(|b| b.sending_enabled) != Some(now.sending_enabled) {
            log_sending(ctx, now.sending_enabled);
        }
    }
}

super::cycle_collector!(AccountCollector);

fn details(r: &AccountRecord) -> Option<&AccountDetails> {
    r.answer.as_ref().map(|(d, _)| d)
}

fn answered(r: &AccountRecord) -> Option<u64> {
    r.answer.as_ref().map(|(_, at)| unix_millis(*at))
}

fn quota(r: &AccountRecord, number: fn(&SendQuota) -> Option<f64>) -> Option<Value> {
    details(r)
        .and_then(|d| d.send_quota.as_ref())
        .and_then(number)
        .map(Value)
}

/// The quota's refresh time only when SES sent a quota: the collector answered
/// about the quota exactly then.
fn quota_answered(r: &AccountRecord) -> Option<u64> {
    details(r)
        .and_then(|d| d.send_quota.as_ref())
        .and(answered(r))
}

fn sending_answered(r: &AccountRecord) -> Option<u64> {
    details(r)
        .and_then(|d| d.sending_enabled)
        .and(answered(r))
}

fn enforcement(samples: &mut Samples<'_>, status: &EnforcementStatus) {
    state_set(
        samples,
        "status",
        &EnforcementStatus::ALL,
        *status,
        EnforcementStatus::as_str,
    );
}

fn review(samples: &mut Samples<'_>, status: &ReviewStatus) {
    state_set(samples, "status", &ReviewStatus::ALL, *status, ReviewStatus::as_str);
}

// A field SES left out has no series: the refresh time still says SES answered.
#[rustfmt::skip]
const FAMILIES: &[Family<AccountRecord>] = &[
    ses_gauge("aws_ses_account_enforcement_status", &Derived { value: |r: &AccountRecord| details(r)?.enforcement_status.as_deref().map(EnforcementStatus::parse), write: enforcement },
        "SES's enforcement status of the account in this region (GetAccount EnforcementStatus) as a state set: HEALTHY; PROBATION, under review, still sending; SHUTDOWN, sending paused; Unknown for a value this build does not know; absent when SES left it out."),
    ses_gauge("aws_ses_account_production_access_enabled", &Derived { value: |r: &AccountRecord| details(r)?.production_access_enabled, write: enabled },
        "1 if the account has production access in this region, 0 if it is in the sandbox (mail only to verified recipients) (GetAccount ProductionAccessEnabled); absent when SES left it out."),
    ses_gauge("aws_ses_account_review_status", &Derived { value: |r: &AccountRecord| details(r)?.review_status.as_deref().map(ReviewStatus::parse), write: review },
        "Status of the account's production-access review (GetAccount Details.ReviewDetails.Status) as a state set; Unknown for a value this build does not know; absent when SES sent no review."),
    ses_gauge("aws_ses_account_vdm_enabled", &Derived { value: |r: &AccountRecord| details(r)?.vdm_enabled, write: enabled },
        "1 if Virtual Deliverability Manager is enabled for the account (GetAccount VdmAttributes.VdmEnabled), 0 if not; absent when SES left it out."),
    ses_gauge("aws_ses_account_last_refresh_timestamp_seconds", &Derived { value: answered, write: time },
        "Unix time at which SES last answered GetAccount; a failed call leaves it unchanged."),
    ses_gauge("aws_ses_send_quota_max_emails", &Derived { value: |r: &AccountRecord| quota(r, |q| q.max_24_hour_send), write: value }, HELP_MAX_EMAILS),
    ses_gauge("aws_ses_send_quota_max_send_rate", &Derived { value: |r: &AccountRecord| quota(r, |q| q.max_send_rate), write: value }, HELP_MAX_SEND_RATE),
    ses_gauge("aws_ses_send_quota_sent_emails", &Derived { value: |r: &AccountRecord| quota(r, |q| q.sent_last_24_hours), write: value }, HELP_SENT_EMAILS),
    ses_gauge("aws_ses_send_quota_last_refresh_timestamp_seconds", &Derived { value: quota_answered, write: time }, HELP_QUOTA_REFRESH),
    ses_gauge("aws_ses_account_sending_enabled", &Derived { value: |r: &AccountRecord| details(r)?.sending_enabled, write: enabled }, HELP_SENDING_ENABLED),
    ses_gauge("aws_ses_account_sending_enabled_last_refresh_timestamp_seconds", &Derived { value: sending_answered, write: time }, HELP_SENDING_REFRESH),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{target_labels, Assembler};
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn render(record: &AccountRecord) -> String {
        let mut r = Renderer::new(FAMILIES, target_labels("111111111111", "eu-west-1"));
        let part = Arc::new(r.build_account(record));
        Assembler::default().assemble(&[&[part]]).text()
    }

    #[test]
    fn nothing_is_invented_before_or_without_an_answer() {
        let text = render(&AccountRecord::default());
        assert!(!text.contains("aws_ses_"), "{text}");
        // SES answered, but with nothing: only the refresh time.
        let text = render(&AccountRecord {
            answer: Some((AccountDetails::default(), UNIX_EPOCH + Duration::from_secs(7))),
        });
        assert!(text.contains("aws_ses_account_last_refresh_timestamp_seconds{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\"} 7\n"), "{text}");
        for absent in [
            "aws_ses_account_enforcement_status{",
            "aws_ses_account_sending_enabled{",
            "aws_ses_account_production_access_enabled{",
            "aws_ses_send_quota_max_emails{",
            "aws_ses_send_quota_last_refresh_timestamp_seconds{",
            "aws_ses_account_sending_enabled_last_refresh_timestamp_seconds{",
            "aws_ses_account_vdm_enabled{",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
    }

    #[test]
    fn shutdown_and_a_new_status_as_state_sets() {
        let shut = AccountRecord {
            answer: Some((
                AccountDetails {
                    enforcement_status: Some("SHUTDOWN".into()),
                    production_access_enabled: Some(false),
                    sending_enabled: Some(false),
                    review_status: Some("DENIED".into()),
                    ..AccountDetails::default()
                },
                UNIX_EPOCH,
            )),
        };
        let text = render(&shut);
        let l = "aws_account_id=\"111111111111\",aws_region=\"eu-west-1\"";
        assert!(text.contains(&format!("aws_ses_account_enforcement_status{{{l},status=\"SHUTDOWN\"}} 1\n")));
        assert!(text.contains(&format!("aws_ses_account_enforcement_status{{{l},status=\"HEALTHY\"}} 0\n")));
        assert!(text.contains(&format!("aws_ses_account_enforcement_status{{{l},status=\"Unknown\"}} 0\n")));
        assert!(text.contains(&format!("aws_ses_account_production_access_enabled{{{l}}} 0\n")));
        assert!(text.contains(&format!("aws_ses_account_review_status{{{l},status=\"DENIED\"}} 1\n")));
        let later = AccountRecord {
            answer: Some((
                AccountDetails {
                    enforcement_status: Some("SUSPENDED_LATER".into()),
                    ..AccountDetails::default()
                },
                UNIX_EPOCH,
            )),
        };
        let text = render(&later);
        assert!(text.contains(&format!("aws_ses_account_enforcement_status{{{l},status=\"Unknown\"}} 1\n")));
        assert!(text.contains(&format!("aws_ses_account_enforcement_status{{{l},status=\"HEALTHY\"}} 0\n")));
    }
}
