//! The `verification` collector (off by default: it needs
//! ses:GetIdentityVerificationAttributes): each watched identity's verification
//! state, asked in batches of 100 or, with `--collector.verification.source=list`,
//! read from SESv2 `ListEmailIdentities` in pages of 1,000 (ses:ListEmailIdentities).
//! A choice, not a fallback: a probe that IAM refuses is a failed request, counted
//! (`outcome="client_error"`) and logged as AccessDenied at every start; probed again
//! later, to notice a policy that has since allowed it, it would keep
//! SesExporterRequestsFailing firing; and calls that change by themselves with a
//! policy make the throttle budget a user planned untrue. The default stays the
//! action every earlier version needed.

use super::identity::{identity_collector, present, refreshed, verification_status, Listing};
use super::{CollectorOptions, VerificationSource};
use crate::aws::Operation;
use crate::facts::Facts;
use crate::model::{
    IdentityRecord, Observation, Snapshot, TargetId, Verification, VerificationStatus,
};
use crate::render::{ses_gauge, timestamp, Derived, Family};

identity_collector! {
    VerificationState(Verification): "verification", GetIdentityVerificationAttributes via verification_attributes,
    logs "verification state", on by default false,
    healthy |a| a.status == VerificationStatus::Success,
    help "The verification collector: GetIdentityVerificationAttributes (or ListEmailIdentities, see --collector.verification.source), each identity's verification state (off by default: it needs ses:GetIdentityVerificationAttributes).",
    also {
        const EXPLAINED: bool = true;

        /// The legacy verification tokens, for the dns collector's `_amazonses`
        /// TXT check.
        fn facts(facts: &Facts, target: &TargetId, records: &Snapshot<Verification>) {
            let tokens = records
                .iter()
                .filter_map(|(id, record)| match &record.observation {
                    Observation::Present(a) => Some((id.clone(), a.token.clone()?)),
                    _ => None,
                });
            facts.set_verification_tokens(target, tokens);
        }

        fn listing(options: &CollectorOptions) -> Option<&'static Listing<Verification>> {
            (options.verification_source == VerificationSource::List).then_some(&LISTING)
        }
    }
}

/// SESv2 `ListEmailIdentities`: v2's upper-case statuses arrive mapped to v1's.
static LISTING: Listing<Verification> = Listing {
    operations: &[Operation::ListEmailIdentities],
    page: |aws, token| {
        Box::pin(async move {
            let page = aws.email_identities(token).await?;
            Ok((page.identities, page.next_token))
        })
    },
};

#[rustfmt::skip]
const FAMILIES: &[Family<IdentityRecord<Verification>>] = &[
    ses_gauge("aws_ses_identity_verification_status", &Derived { value: |r: &IdentityRecord<Verification>| present(r).map(|a| a.status), write: verification_status }, "Verification status of the identity as SES reports it (VerificationStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know."),
    ses_gauge("aws_ses_identity_verification_last_refresh_timestamp_seconds", &Derived { value: refreshed, write: timestamp }, "Unix time at which SES last answered GetIdentityVerificationAttributes (or listed the identity in ListEmailIdentities) for this identity; a failed fetch leaves it unchanged."),
];
