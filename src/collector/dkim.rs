//! The `dkim` collector (off by default: it needs ses:GetIdentityDkimAttributes):
//! each watched identity's Easy DKIM state.

use std::collections::HashMap;

use super::identity::{Batched, Kind};
use super::{Registration, Scope};
use crate::aws::{Reply, Session};
use crate::model::{
    DkimAttributes, IdentityRecord, Observation, Operation, VerificationStatus,
};
use crate::render::{flag, gauge, state_set, timestamp, unix_millis, Derived, Family, Line};

pub const REGISTRATION: Registration = Registration {
    name: Dkim::NAME,
    enabled_by_default: false,
    help: "The dkim collector: GetIdentityDkimAttributes, each identity's DKIM state (off by default: it needs ses:GetIdentityDkimAttributes in the IAM policy).",
    scope: Scope::Target(|outlet| Box::new(Batched::<Dkim>::new(outlet))),
};

type Record = IdentityRecord<DkimAttributes>;

pub struct Dkim;

impl Kind for Dkim {
    type Attr = DkimAttributes;
    const NAME: &'static str = "dkim";
    const OPERATION: Operation = Operation::GetIdentityDkimAttributes;
    const OPERATIONS: &'static [Operation] = &[Operation::GetIdentityDkimAttributes];
    const WHAT: &'static str = "DKIM state";
    const FAMILIES: &'static [Family<Record>] = &[
        gauge(
            "aws_ses_identity_dkim_enabled",
            "1 if SES signs the identity's mail with Easy DKIM (DkimEnabled), 0 if not; absent when SES's answer left DkimEnabled out. Cached: fetched from SES by the background poller, not at scrape time.",
            &Derived {
                value: |r: &Record| match &r.observation { Observation::Present(a) => a.enabled, _ => None },
                write: |line: &mut Line<'_>, e: &bool| flag(line, *e),
            },
        ),
        gauge(
            "aws_ses_identity_dkim_status",
            "DKIM verification status of the identity as SES reports it (DkimVerificationStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Cached: fetched from SES by the background poller, not at scrape time.",
            &Derived {
                value: |r: &Record| match &r.observation { Observation::Present(a) => Some(a.status), _ => None },
                write: |line: &mut Line<'_>, s: &VerificationStatus| state_set(line, "status", &VerificationStatus::ALL, *s, VerificationStatus::as_str),
            },
        ),
        gauge(
            "aws_ses_identity_dkim_last_refresh_timestamp_seconds",
            "Unix time at which SES last answered GetIdentityDkimAttributes for this identity; a failed fetch leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
            &Derived {
                value: |r: &Record| Some(unix_millis(r.refreshed_at)),
                write: |line: &mut Line<'_>, at: &u64| timestamp(line, *at),
            },
        ),
    ];

    fn fetch<'a>(
        ses: &'a dyn Session,
        batch: &'a [String],
    ) -> Reply<'a, HashMap<String, DkimAttributes>> {
        ses.dkim_attributes(batch)
    }

    fn healthy(a: &DkimAttributes) -> bool {
        a.enabled == Some(false) || a.status == VerificationStatus::Success
    }
}
