//! The `verification` collector (off by default: it needs
//! ses:GetIdentityVerificationAttributes): each watched identity's verification
//! state.

use super::identity::{identity_collector, present, refreshed, verification_status};
use crate::model::{IdentityRecord, Verification, VerificationStatus};
use crate::render::{ses_gauge, timestamp, Derived, Family};

identity_collector! {
    VerificationState(Verification): "verification", GetIdentityVerificationAttributes via verification_attributes,
    logs "verification state", on by default false,
    healthy |a| a.status == VerificationStatus::Success,
    help "The verification collector: GetIdentityVerificationAttributes, each identity's verification state (off by default: it needs ses:GetIdentityVerificationAttributes).",
}

#[rustfmt::skip]
const FAMILIES: &[Family<IdentityRecord<Verification>>] = &[
    ses_gauge("aws_ses_identity_verification_status", &Derived { value: |r: &IdentityRecord<Verification>| present(r).map(|a| a.status), write: verification_status }, "Verification status of the identity as SES reports it (VerificationStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know."),
    ses_gauge("aws_ses_identity_verification_last_refresh_timestamp_seconds", &Derived { value: refreshed, write: timestamp }, "Unix time at which SES last answered GetIdentityVerificationAttributes for this identity; a failed fetch leaves it unchanged."),
];
