//! The `quota` collector (off by default: it needs ses:GetSendQuota and
//! ses:GetAccountSendingEnabled): the account's sending quota and whether it may
//! send, once a cycle per target, each call through its own operation's limiter.

use std::time::SystemTime;

use tracing::{info, warn};


use super::{publish_account, Ctx, Outlet, Progress, Registration, Scope};
use crate::publish::Publishing;
use crate::aws::Operation;
use crate::model::Quota;
use crate::render::{ses_gauge, seconds, unix_millis, Derived, Family, Renderer, Samples, Value};

pub const REGISTRATION: Registration = Registration {
    name: "quota",
    enabled_by_default: false,
    help: "The quota collector: GetSendQuota and GetAccountSendingEnabled per target (off by default: it needs ses:GetSendQuota and ses:GetAccountSendingEnabled).",
    scope: Scope::Target(|outlet| Box::new(QuotaCollector::new(outlet))),
};

const OPERATIONS: &[Operation] = &[Operation::GetSendQuota, Operation::GetAccountSendingEnabled];

/// The last answers of one target: a failed call keeps the previous one.
pub struct QuotaCollector {
    quota: Quota,
    /// Its renderer reuses the pieces of values that did not change.
    publishing: Publishing<Option<Renderer<Quota>>>,
}

impl QuotaCollector {
    pub fn new(outlet: Outlet) -> QuotaCollector {
        QuotaCollector {
            quota: Quota::default(),
            publishing: outlet.publishing(),
        }
    }

    async fn run_cycle(&mut self, ctx: &Ctx<'_>) -> Progress {
        // One call of each a cycle, not paced (nothing to spread).
        let per_cycle = 1.0 / ctx.plan.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        for &op in OPERATIONS {
            ctx.telemetry
                .set_planned_rate(op, per_cycle.min(ctx.plan.rate));
        }
        let (send_quota, enabled) =
            tokio::join!(ctx.aws.send_quota(), ctx.aws.account_sending_enabled());
        let now = SystemTime::now();
        let mut progress = Progress::new();
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
                    log_sending(ctx, enabled);
                }
                self.quota.sending_enabled = Some((enabled, now));
            }
            Err(_) => progress.complete = false,
        }
        // A few lines, but publishing assembles the whole body: off the async threads.
        publish_account(&mut self.publishing, ctx, FAMILIES, self.quota.clone()).await;
        progress
    }
}

pub(super) fn log_sending(ctx: &Ctx<'_>, enabled: Option<bool>) {
    let (account, region) = (ctx.account, ctx.region);
    match enabled {
        Some(true) => {
            info!(aws_account_id = %account, aws_region = %region, "SES sending is enabled for the account")
        }
        Some(false) => {
            warn!(aws_account_id = %account, aws_region = %region, "SES sending is DISABLED for the account: SES sends no mail in this region")
        }
        None => {
            warn!(aws_account_id = %account, aws_region = %region, "SES answered without whether sending is enabled: whether SES sends is not known")
        }
    }
}

super::cycle_collector!(QuotaCollector);


/// One of GetSendQuota's numbers, when SES answered and sent it.
fn quota_value(q: &Quota, number: fn(&crate::model::SendQuota) -> Option<f64>) -> Option<Value> {
    q.send_quota.as_ref().and_then(|(q, _)| number(q)).map(Value)
}

pub(super) fn value(samples: &mut Samples<'_>, v: &Value) {
    samples.sample(&[], v.0);
}

pub(super) fn time(samples: &mut Samples<'_>, millis: &u64) {
    samples.sample(&[], seconds(*millis));
}

pub(super) fn enabled(samples: &mut Samples<'_>, e: &bool) {
    samples.sample(&[], f64::from(u8::from(*e)));
}

// A number SES left out has no series: the refresh time still says SES answered.
#[rustfmt::skip]
const FAMILIES: &[Family<Quota>] = &[
    ses_gauge("aws_ses_send_quota_max_emails", &Derived { value: |q: &Quota| quota_value(q, |q| q.max_24_hour_send), write: value }, HELP_MAX_EMAILS),
    ses_gauge("aws_ses_send_quota_max_send_rate", &Derived { value: |q: &Quota| quota_value(q, |q| q.max_send_rate), write: value }, HELP_MAX_SEND_RATE),
    ses_gauge("aws_ses_send_quota_sent_emails", &Derived { value: |q: &Quota| quota_value(q, |q| q.sent_last_24_hours), write: value }, HELP_SENT_EMAILS),
    ses_gauge("aws_ses_send_quota_last_refresh_timestamp_seconds", &Derived { value: |q: &Quota| q.send_quota.as_ref().map(|(_, at)| unix_millis(*at)), write: time }, HELP_QUOTA_REFRESH),
    ses_gauge("aws_ses_account_sending_enabled", &Derived { value: |q: &Quota| q.sending_enabled.and_then(|(e, _)| e), write: enabled }, HELP_SENDING_ENABLED),
    ses_gauge("aws_ses_account_sending_enabled_last_refresh_timestamp_seconds", &Derived { value: |q: &Quota| q.sending_enabled.map(|(_, at)| unix_millis(at)), write: time }, HELP_SENDING_REFRESH),
];

// The families quota and account both write (one of them runs: see
// config::validate), with one HELP each whichever writes it.
pub(super) const HELP_MAX_EMAILS: &str = "Emails the account may send in 24 hours in this region (GetSendQuota Max24HourSend, or GetAccount SendQuota with the account collector); -1 means unlimited; absent when SES's answer left it out.";
pub(super) const HELP_MAX_SEND_RATE: &str = "Emails per second the account may send in this region (GetSendQuota MaxSendRate, or GetAccount SendQuota with the account collector); absent when SES's answer left it out.";
pub(super) const HELP_SENT_EMAILS: &str = "Emails the account sent in this region in the last 24 hours (GetSendQuota SentLast24Hours, or GetAccount SendQuota with the account collector); absent when SES's answer left it out.";
pub(super) const HELP_QUOTA_REFRESH: &str = "Unix time at which SES last answered GetSendQuota (GetAccount with the account collector); a failed call leaves it unchanged.";
pub(super) const HELP_SENDING_ENABLED: &str = "1 if email sending is enabled for the account in this region (GetAccountSendingEnabled, or GetAccount SendingEnabled with the account collector), 0 if it is paused (by AWS or the account); absent when SES's answer left it out.";
pub(super) const HELP_SENDING_REFRESH: &str = "Unix time at which SES last answered GetAccountSendingEnabled (GetAccount with the account collector); a failed call leaves it unchanged.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{target_labels, Assembler};
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn quota_lines_have_the_targets_labels_and_only_known_values() {
        let labels = target_labels("111111111111", "eu-west-1");
        let mut c = Renderer::new(FAMILIES, labels.clone());
        let nothing = c.build_account(&Quota::default());
        assert!(
            nothing.families.iter().all(|f| f.pieces.is_empty()),
            "nothing invented"
        );
        let quota = Quota {
            send_quota: Some((
                crate::model::SendQuota {
                    max_24_hour_send: Some(50_000.0),
                    max_send_rate: None,
                    sent_last_24_hours: Some(41_000.0),
                },
                UNIX_EPOCH + Duration::from_secs(10),
            )),
            sending_enabled: Some((None, UNIX_EPOCH + Duration::from_secs(10))),
        };
        let part = Arc::new(c.build_account(&quota));
        let text = Assembler::default().assemble(&[&[part]]).text();
        assert!(text.contains("aws_ses_send_quota_sent_emails{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\"} 41000\n"));
        // Left out by SES: no series, but the answer's time is there.
        assert!(
            !text.contains("aws_ses_send_quota_max_send_rate{"),
            "{text}"
        );
        assert!(!text.contains("aws_ses_account_sending_enabled{"), "{text}");
        assert!(text.contains("aws_ses_account_sending_enabled_last_refresh_timestamp_seconds{"));
    }
}
