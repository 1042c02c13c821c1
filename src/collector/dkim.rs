//! The `dkim` collector (off by default: it needs ses:GetIdentityDkimAttributes):
//! each watched identity's Easy DKIM state, and the DKIM facts the dns collector checks
//! in DNS.

use super::identity::{identity_collector, present, refreshed, verification_status};
use crate::facts::Facts;
use crate::model::{
    DkimAttributes, IdentityRecord, Observation, Snapshot, TargetId, VerificationStatus,
};
use crate::render::{flag, ses_gauge, timestamp, Derived, Family};

identity_collector! {
    Dkim(DkimAttributes): "dkim", GetIdentityDkimAttributes via dkim_attributes,
    logs "DKIM state", on by default false,
    healthy |a| a.enabled == Some(false) || a.status == VerificationStatus::Success,
    help "The dkim collector: GetIdentityDkimAttributes, each identity's DKIM state (off by default: it needs ses:GetIdentityDkimAttributes in the IAM policy).",
    also {
        const EXPLAINED: bool = true;

        /// The DKIM attributes, for the dns collector: the tokens whose CNAME records
        /// it checks, and whether DKIM signs aligned for DMARC's verdict.
        fn facts(facts: &Facts, target: &TargetId, records: &Snapshot<DkimAttributes>) {
            let attributes = records
                .iter()
                .filter_map(|(id, record)| match &record.observation {
                    Observation::Present(a) => Some((id.clone(), a.clone())),
                    _ => None,
                });
            facts.set_dkim(target, attributes);
        }
    }
}

#[rustfmt::skip]
const FAMILIES: &[Family<IdentityRecord<DkimAttributes>>] = &[
    ses_gauge("aws_ses_identity_dkim_enabled", &Derived { value: |r: &IdentityRecord<DkimAttributes>| present(r).and_then(|a| a.enabled), write: flag }, "1 if SES signs the identity's mail with Easy DKIM (DkimEnabled), 0 if not; absent when SES's answer left DkimEnabled out."),
    ses_gauge("aws_ses_identity_dkim_status", &Derived { value: |r: &IdentityRecord<DkimAttributes>| present(r).map(|a| a.status), write: verification_status }, "DKIM verification status of the identity as SES reports it (DkimVerificationStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know."),
    ses_gauge("aws_ses_identity_dkim_last_refresh_timestamp_seconds", &Derived { value: refreshed, write: timestamp }, "Unix time at which SES last answered GetIdentityDkimAttributes for this identity; a failed fetch leaves it unchanged."),
];
