//! The `verification` collector (off by default: it needs
//! ses:GetIdentityVerificationAttributes): each watched identity's verification
//! state.

use std::collections::HashMap;

use super::identity::{Batched, Kind};
use super::{Registration, Scope};
use crate::aws::{Reply, Session};
use crate::model::{IdentityRecord, Observation, Operation, Verification, VerificationStatus};
use crate::render::{gauge, state_set, timestamp, unix_millis, Derived, Family, Line};

pub const REGISTRATION: Registration = Registration {
    name: VerificationState::NAME,
    enabled_by_default: false,
    help: "The verification collector: GetIdentityVerificationAttributes, each identity's verification state (off by default: it needs ses:GetIdentityVerificationAttributes).",
    scope: Scope::Target(|outlet| Box::new(Batched::<VerificationState>::new(outlet))),
};

type Record = IdentityRecord<Verification>;

pub struct VerificationState;

impl Kind for VerificationState {
    type Attr = Verification;
    const NAME: &'static str = "verification";
    const OPERATION: Operation = Operation::GetIdentityVerificationAttributes;
    const OPERATIONS: &'static [Operation] = &[Operation::GetIdentityVerificationAttributes];
    const WHAT: &'static str = "verification state";
    const FAMILIES: &'static [Family<Record>] = &[
        gauge(
            "aws_ses_identity_verification_status",
            "Verification status of the identity as SES reports it (VerificationStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Cached: fetched from SES by the background poller, not at scrape time.",
            &Derived {
                value: |r: &Record| match &r.observation { Observation::Present(a) => Some(a.status), _ => None },
                write: |line: &mut Line<'_>, s: &VerificationStatus| state_set(line, "status", &VerificationStatus::ALL, *s, VerificationStatus::as_str),
            },
        ),
        gauge(
            "aws_ses_identity_verification_last_refresh_timestamp_seconds",
            "Unix time at which SES last answered GetIdentityVerificationAttributes for this identity; a failed fetch leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
            &Derived {
                value: |r: &Record| Some(unix_millis(r.refreshed_at)),
                write: |line: &mut Line<'_>, at: &u64| timestamp(line, *at),
            },
        ),
    ];

    fn fetch<'a>(
        ses: &'a dyn Session,
        batch: &'a [String],
    ) -> Reply<'a, HashMap<String, Verification>> {
        ses.verification_attributes(batch)
    }

    fn healthy(a: &Verification) -> bool {
        a.status == VerificationStatus::Success
    }
}
