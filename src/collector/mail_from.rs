//! The `mail_from` collector (on by default): `GetIdentityMailFromDomainAttributes`
//! for every watched identity, its families, and the MAIL FROM domains it puts in
//! the identity facts for the dns collector.

use std::sync::Arc;

use super::identity::{identity_collector, present, refreshed};
use crate::facts::Facts;
use crate::model::{
    BehaviorOnMxFailure, IdentityRecord, IdentityType, MailFromAttributes, MailFromStatus,
    Observation, Snapshot, TargetId,
};
use crate::render::{
    flag, ses_gauge, state_set, timestamp, Assembler, Derived, Exposition, Family, Renderer,
    Samples,
};

identity_collector! {
    MailFrom(MailFromAttributes): "mail_from", GetIdentityMailFromDomainAttributes via mail_from_attributes,
    logs "MAIL FROM state", on by default true,
    healthy |a| !a.configured() || a.status == Some(MailFromStatus::Success),
    help "The mail_from collector: GetIdentityMailFromDomainAttributes (on by default).",
    also {
        /// The MAIL FROM attributes, for the dns collector: the domains it checks and
        /// what DMARC's SPF alignment depends on. Copies, so the dns collector never
        /// holds the records alive (that would make this collector copy them).
        fn facts(facts: &Facts, target: &TargetId, records: &Snapshot<MailFromAttributes>) {
            let attributes = records
                .iter()
                .filter_map(|(id, record)| match &record.observation {
                    Observation::Present(a) => Some((id.clone(), a.clone())),
                    _ => None,
                });
            facts.set_mail_from(target, attributes);
        }
    },
}

/// What the collector records per identity.
type Record = IdentityRecord<MailFromAttributes>;

#[rustfmt::skip]
const FAMILIES: &[Family<Record>] = &[
    ses_gauge("aws_ses_identity_mail_from_status", &Derived { value: |r: &Record| present(r).filter(|a| a.configured()).map(MailFromAttributes::exported_status), write: status_line },
        "Status of the identity's custom MAIL FROM domain as SES reports it (MailFromDomainStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Only for identities with a custom MAIL FROM domain."),
    ses_gauge("aws_ses_identity_mail_from_behavior_on_mx_failure", &Derived { value: |r: &Record| present(r).map(|a| a.behavior), write: behavior_line },
        "What SES does with mail while the MAIL FROM domain is not in Success (BehaviorOnMXFailure), as a state set: the series of the current behavior is 1; Unknown when SES sent none or a value this build does not know."),
    ses_gauge("aws_ses_identity_mail_from_info", &Derived { value: |r: &Record| present(r).map(|a| a.domain.clone()), write: write_info },
        "The identity's type and custom MAIL FROM domain (empty when none is configured, or when SES reported a MAIL FROM status without naming the domain: see aws_ses_identity_mail_from_configured); always 1."),
    ses_gauge("aws_ses_identity_mail_from_configured", &Derived { value: |r: &Record| present(r).map(MailFromAttributes::configured), write: flag },
        "1 if the identity has a custom MAIL FROM domain (SES named one or reported a status for one), 0 if mail uses SES's default MAIL FROM."),
    ses_gauge("aws_ses_identity_exists", &Derived { value: |r: &Record| Some(matches!(r.observation, Observation::Present(_))), write: flag },
        "1 if SES returned the identity, 0 if it was asked for but left out (the identity does not exist in this account and region, or is not visible to these credentials)."),
    ses_gauge("aws_ses_identity_rejected", &Derived { value: |r: &Record| matches!(r.observation, Observation::Rejected).then_some(()), write: one },
        "1 for an identity SES refuses as invalid (InvalidParameterValue when asked for it alone); its other series are absent and aws_ses_identity_exists is 0."),
    ses_gauge("aws_ses_identity_last_refresh_timestamp_seconds", &Derived { value: refreshed, write: timestamp },
        "Unix time at which SES last answered GetIdentityMailFromDomainAttributes for this identity; a failed fetch leaves it unchanged."),
];

fn status_line(samples: &mut Samples<'_>, status: &MailFromStatus) {
    let all = &MailFromStatus::ALL;
    state_set(samples, "status", all, *status, MailFromStatus::as_str);
}

fn behavior_line(samples: &mut Samples<'_>, behavior: &BehaviorOnMxFailure) {
    let all = &BehaviorOnMxFailure::ALL;
    state_set(samples, "behavior", all, *behavior, BehaviorOnMxFailure::as_str);
}

/// An identity's sample of a family whose presence is the value (always 1).
fn one(samples: &mut Samples<'_>, _: &()) {
    samples.sample(&[], 1.0);
}

fn write_info(samples: &mut Samples<'_>, domain: &Option<String>) {
    let identity_type = samples.identity().map(IdentityType::of);
    let pairs = [
        ("identity_type", identity_type.map_or("", IdentityType::as_str)),
        ("mail_from_domain", domain.as_deref().unwrap_or("")),
    ];
    samples.sample(&pairs, 1.0);
}

/// The MAIL FROM exposition of one unlabelled snapshot, built from scratch (tests
/// and one-off renders).
pub fn exposition(snapshot: &Snapshot) -> Exposition {
    let part = Renderer::new(FAMILIES, String::new())
        .build(snapshot.iter().map(|(id, r)| (id.as_str(), r)));
    Assembler::default().assemble(&[&[Arc::new(part)]])
}

/// Renders every MAIL FROM family of a snapshot as text (tests and golden files).
pub fn render_identities(snapshot: &Snapshot) -> String {
    exposition(snapshot).text()
}
