//! The `mail_from` collector (on by default): `GetIdentityMailFromDomainAttributes`
//! for every watched identity, its families, and the MAIL FROM domains it hands the
//! dns collector after each render.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use super::identity::{Batched, Kind};
use super::{Outlet, Registration, Scope};
use crate::aws::{Reply, Session};
use crate::model::{
    BehaviorOnMxFailure, IdentityRecord, IdentityType, MailFromAttributes, MailFromStatus,
    Observation, Operation, Snapshot, TargetDomains,
};
use crate::render::{
    escape, flag, gauge, state_set, timestamp, unix_millis, Assembler, Derived, Exposition,
    Family, Line, Renderer,
};

pub const REGISTRATION: Registration = Registration {
    name: MailFrom::NAME,
    enabled_by_default: true,
    help: "The mail_from collector: GetIdentityMailFromDomainAttributes (on by default).",
    scope: Scope::Target(|outlet| Box::new(Batched::<MailFrom>::new(outlet))),
};

/// What the collector records per identity.
type Record = IdentityRecord<MailFromAttributes>;

pub struct MailFrom;

impl Kind for MailFrom {
    type Attr = MailFromAttributes;
    const NAME: &'static str = "mail_from";
    const OPERATION: Operation = Operation::GetIdentityMailFromDomainAttributes;
    const OPERATIONS: &'static [Operation] = &[Operation::GetIdentityMailFromDomainAttributes];
    const WHAT: &'static str = "MAIL FROM state";
    const FAMILIES: &'static [Family<Record>] = FAMILIES;

    fn fetch<'a>(
        ses: &'a dyn Session,
        batch: &'a [String],
    ) -> Reply<'a, HashMap<String, MailFromAttributes>> {
        ses.mail_from_attributes(batch)
    }

    fn healthy(a: &MailFromAttributes) -> bool {
        !a.configured() || a.status == Some(MailFromStatus::Success)
    }

    /// The MAIL FROM domains of this render, for the dns collector. Names, not the
    /// records, so the dns collector never holds the records alive (that would make
    /// this collector copy them).
    fn rendered(
        outlet: &Outlet,
        labels: &Arc<str>,
        region: &Arc<str>,
        records: &Snapshot<MailFromAttributes>,
    ) {
        let domains: BTreeMap<String, String> = records
            .iter()
            .filter_map(|(id, record)| match &record.observation {
                Observation::Present(a) => a.domain.as_deref().map(|d| (id.clone(), d.to_owned())),
                _ => None,
            })
            .collect();
        outlet.publisher().publish_domains(
            outlet.target(),
            TargetDomains {
                labels: Arc::clone(labels),
                region: Arc::clone(region),
                domains,
            },
        );
    }
}

fn present(r: &Record) -> Option<&MailFromAttributes> {
    match &r.observation {
        Observation::Present(a) => Some(a),
        _ => None,
    }
}

const FAMILIES: &[Family<Record>] = &[
    gauge(
        "aws_ses_identity_mail_from_status",
        "Status of the identity's custom MAIL FROM domain as SES reports it (MailFromDomainStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Only for identities with a custom MAIL FROM domain. Cached: fetched from SES by the background poller, not at scrape time.",
        &Derived {
            value: |r: &Record| present(r).filter(|a| a.configured()).map(MailFromAttributes::exported_status),
            write: |line: &mut Line<'_>, s: &MailFromStatus| state_set(line, "status", &MailFromStatus::ALL, *s, MailFromStatus::as_str),
        },
    ),
    gauge(
        "aws_ses_identity_mail_from_behavior_on_mx_failure",
        "What SES does with mail while the MAIL FROM domain is not in Success (BehaviorOnMXFailure), as a state set: the series of the current behavior is 1; Unknown when SES sent none or a value this build does not know. Cached: fetched from SES by the background poller, not at scrape time.",
        &Derived {
            value: |r: &Record| present(r).map(|a| a.behavior),
            write: |line: &mut Line<'_>, b: &BehaviorOnMxFailure| state_set(line, "behavior", &BehaviorOnMxFailure::ALL, *b, BehaviorOnMxFailure::as_str),
        },
    ),
    gauge(
        "aws_ses_identity_mail_from_info",
        "The identity's type and custom MAIL FROM domain (empty when none is configured, or when SES reported a MAIL FROM status without naming the domain: see aws_ses_identity_mail_from_configured); always 1. Cached: fetched from SES by the background poller, not at scrape time.",
        &Derived {
            value: |r: &Record| present(r).map(|a| a.domain.clone()),
            write: write_info,
        },
    ),
    gauge(
        "aws_ses_identity_mail_from_configured",
        "1 if the identity has a custom MAIL FROM domain (SES named one or reported a status for one), 0 if mail uses SES's default MAIL FROM. Cached: fetched from SES by the background poller, not at scrape time.",
        &Derived {
            value: |r: &Record| present(r).map(MailFromAttributes::configured),
            write: |line: &mut Line<'_>, c: &bool| flag(line, *c),
        },
    ),
    gauge(
        "aws_ses_identity_exists",
        "1 if SES returned the identity, 0 if it was asked for but left out (the identity does not exist in this account and region, or is not visible to these credentials). Cached: fetched from SES by the background poller, not at scrape time.",
        &Derived {
            value: |r: &Record| Some(matches!(r.observation, Observation::Present(_))),
            write: |line: &mut Line<'_>, e: &bool| flag(line, *e),
        },
    ),
    gauge(
        "aws_ses_identity_rejected",
        "1 for an identity SES refuses as invalid (InvalidParameterValue when asked for it alone); its other series are absent and aws_ses_identity_exists is 0. Cached: fetched from SES by the background poller, not at scrape time.",
        &Derived {
            value: |r: &Record| matches!(r.observation, Observation::Rejected).then_some(()),
            write: |line: &mut Line<'_>, _: &()| line.start().push_str("\"} 1\n"),
        },
    ),
    gauge(
        "aws_ses_identity_last_refresh_timestamp_seconds",
        "Unix time at which SES last answered GetIdentityMailFromDomainAttributes for this identity; a failed fetch leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
        &Derived {
            value: |r: &Record| Some(unix_millis(r.refreshed_at)),
            write: |line: &mut Line<'_>, at: &u64| timestamp(line, *at),
        },
    ),
];

fn write_info(line: &mut Line<'_>, domain: &Option<String>) {
    let identity_type = line.identity().map(IdentityType::of);
    let out = line.start();
    let _ = write!(
        out,
        "\",identity_type=\"{}\",mail_from_domain=\"",
        identity_type.map_or("", IdentityType::as_str)
    );
    escape(out, domain.as_deref().unwrap_or(""));
    out.push_str("\"} 1\n");
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
