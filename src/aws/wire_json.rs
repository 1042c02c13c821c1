//! The bodies of SESv2's successful REST-JSON answers, read for presence: a field SES
//! left out stays "not said". Pure: one reader per operation, given the raw body of a
//! success by [`super::sdk`], as [`super::wire`] does for v1's XML.
//!
//! Why our own read: in `aws-sdk-sesv2` `GetAccount`'s `SendingEnabled`,
//! `ProductionAccessEnabled` and quota numbers are plain `bool`/`f64`, so a missing one
//! reads as `false` or 0: sending "disabled", an account "in the sandbox", a quota of 0.

use serde_json::{Map, Value};

use super::wire::WireError;
use crate::model::{
    AccountDetails, EmailIdentity, EmailIdentityPage, EntityPage, ReputationEntity, SendQuota,
    StatusRecord, Verification, VerificationStatus,
};

/// `GetAccount`.
pub fn account(body: &str) -> Result<AccountDetails, WireError> {
    let root = &object(body)?;
    let quota = match root.get("SendQuota") {
        None | Some(Value::Null) => None,
        Some(q) => {
            let q = as_object(q, "SendQuota")?;
            Some(SendQuota {
                max_24_hour_send: number(q, "Max24HourSend")?,
                max_send_rate: number(q, "MaxSendRate")?,
                sent_last_24_hours: number(q, "SentLast24Hours")?,
            })
        }
    };
    let review_status = match nested(root, "Details")? {
        Some(details) => match nested(details, "ReviewDetails")? {
            Some(review) => string(review, "Status")?,
            None => None,
        },
        None => None,
    };
    let vdm_enabled = match nested(root, "VdmAttributes")? {
        // A value other than the two SES documents is not a "no".
        Some(vdm) => match string(vdm, "VdmEnabled")?.as_deref() {
            Some("ENABLED") => Some(true),
            Some("DISABLED") => Some(false),
            _ => None,
        },
        None => None,
    };
    Ok(AccountDetails {
        enforcement_status: string(root, "EnforcementStatus")?,
        production_access_enabled: boolean(root, "ProductionAccessEnabled")?,
        sending_enabled: boolean(root, "SendingEnabled")?,
        send_quota: quota,
        review_status,
        vdm_enabled,
    })
}

/// `ListReputationEntities`: one page. An entity without a reference cannot be
/// labelled: it fails the answer rather than being guessed.
pub fn reputation_entities(body: &str) -> Result<EntityPage, WireError> {
    let root = &object(body)?;
    let mut entities = Vec::new();
    for entity in array(root, "ReputationEntities")? {
        let e = as_object(entity, "ReputationEntities")?;
        let reference = string(e, "ReputationEntityReference")?
            .filter(|r| !r.is_empty())
            .ok_or_else(|| WireError::Missing("ReputationEntityReference".into()))?;
        entities.push(ReputationEntity {
            reference,
            entity_type: string(e, "ReputationEntityType")?,
            aggregate: string(e, "SendingStatusAggregate")?,
            aws_ses: status_record(e, "AwsSesManagedStatus")?,
            customer: status_record(e, "CustomerManagedStatus")?,
            impact: string(e, "ReputationImpact")?,
            policy: string(e, "ReputationManagementPolicy")?,
        });
    }
    Ok(EntityPage {
        entities,
        next_token: next_token(root)?,
    })
}

/// `GetEmailIdentity`: the reason and the DKIM signing origin.
pub fn email_identity(body: &str) -> Result<EmailIdentity, WireError> {
    let root = &object(body)?;
    let mut out = EmailIdentity {
        verification_status: string(root, "VerificationStatus")?
            .map(|s| VerificationStatus::parse_v2(&s)),
        ..EmailIdentity::default()
    };
    if let Some(info) = nested(root, "VerificationInfo")? {
        out.error_type = string(info, "ErrorType")?;
        out.last_checked = timestamp(info, "LastCheckedTimestamp")?;
        out.last_success = timestamp(info, "LastSuccessTimestamp")?;
    }
    if let Some(dkim) = nested(root, "DkimAttributes")? {
        out.signing_origin = string(dkim, "SigningAttributesOrigin")?;
        out.signing_hosted_zone = string(dkim, "SigningHostedZone")?;
    }
    Ok(out)
}

/// `ListEmailIdentities`: one page, each identity's verification status in v1's
/// values; an entry without `VerificationStatus` is `Unknown`, never `Success`.
pub fn email_identities(body: &str) -> Result<EmailIdentityPage, WireError> {
    let root = &object(body)?;
    let mut identities = Vec::new();
    for entry in array(root, "EmailIdentities")? {
        let e = as_object(entry, "EmailIdentities")?;
        let Some(name) = string(e, "IdentityName")?.filter(|n| !n.is_empty()) else {
            return Err(WireError::Missing("IdentityName".into()));
        };
        let status = string(e, "VerificationStatus")?.map_or(VerificationStatus::Unknown, |s| {
            VerificationStatus::parse_v2(&s)
        });
        identities.push((
            name,
            Verification {
                status,
                token: None,
            },
        ));
    }
    Ok(EmailIdentityPage {
        identities,
        next_token: next_token(root)?,
    })
}

fn object(body: &str) -> Result<Map<String, Value>, WireError> {
    match serde_json::from_str::<Value>(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(WireError::Invalid {
            field: "(body)",
            value: truncated(body),
            kind: "JSON object",
        }),
    }
}

fn as_object<'v>(
    value: &'v Value,
    field: &'static str,
) -> Result<&'v Map<String, Value>, WireError> {
    value.as_object().ok_or_else(|| WireError::Invalid {
        field,
        value: truncated(&value.to_string()),
        kind: "JSON object",
    })
}

/// An optional object member; `null` counts as absent.
fn nested<'v>(
    map: &'v Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'v Map<String, Value>>, WireError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_object(v, field).map(Some),
    }
}

/// A list member; absent is an empty list (SES leaves out an empty list).
fn array<'v>(map: &'v Map<String, Value>, field: &'static str) -> Result<&'v [Value], WireError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(WireError::Invalid {
            field,
            value: truncated(&other.to_string()),
            kind: "JSON array",
        }),
    }
}

fn string(map: &Map<String, Value>, field: &'static str) -> Result<Option<String>, WireError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(WireError::Invalid {
            field,
            value: truncated(&other.to_string()),
            kind: "string",
        }),
    }
}

fn boolean(map: &Map<String, Value>, field: &'static str) -> Result<Option<bool>, WireError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(WireError::Invalid {
            field,
            value: truncated(&other.to_string()),
            kind: "boolean",
        }),
    }
}

fn number(map: &Map<String, Value>, field: &'static str) -> Result<Option<f64>, WireError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| WireError::Invalid {
            field,
            value: n.to_string(),
            kind: "number",
        }),
        Some(other) => Err(WireError::Invalid {
            field,
            value: truncated(&other.to_string()),
            kind: "number",
        }),
    }
}

/// A REST-JSON timestamp: seconds since the epoch, possibly fractional; as
/// milliseconds. A negative or non-finite one is not a time.
fn timestamp(map: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, WireError> {
    match number(map, field)? {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some((s * 1000.0).round() as u64)),
        Some(s) => Err(WireError::Invalid {
            field,
            value: s.to_string(),
            kind: "timestamp",
        }),
    }
}

fn status_record(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<StatusRecord>, WireError> {
    let Some(record) = nested(map, field)? else {
        return Ok(None);
    };
    Ok(Some(StatusRecord {
        status: string(record, "Status")?,
        cause: string(record, "Cause")?,
        last_updated: timestamp(record, "LastUpdatedTimestamp")?,
    }))
}

/// An empty token is no token: taking it for one would page forever.
fn next_token(map: &Map<String, Value>) -> Result<Option<String>, WireError> {
    Ok(string(map, "NextToken")?.filter(|t| !t.is_empty()))
}

/// A bad value as it appears in an error message: at most 80 characters.
fn truncated(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_left_out_is_absent_not_false_or_zero() {
        let a = account(r#"{"EnforcementStatus":"SHUTDOWN","SendQuota":{"MaxSendRate":14.0}}"#)
            .expect("parses");
        assert_eq!(a.enforcement_status.as_deref(), Some("SHUTDOWN"));
        assert_eq!(a.sending_enabled, None);
        assert_eq!(a.production_access_enabled, None);
        assert_eq!(a.vdm_enabled, None);
        assert_eq!(a.review_status, None);
        let q = a.send_quota.expect("quota");
        assert_eq!((q.max_send_rate, q.max_24_hour_send), (Some(14.0), None));
    }

    #[test]
    fn a_full_account() {
        let a = account(
            r#"{"EnforcementStatus":"HEALTHY","ProductionAccessEnabled":false,"SendingEnabled":true,
               "SendQuota":{"Max24HourSend":200,"MaxSendRate":1,"SentLast24Hours":3},
               "Details":{"MailType":"TRANSACTIONAL","WebsiteURL":"https://example.com","ReviewDetails":{"Status":"PENDING","CaseId":"1"}},
               "VdmAttributes":{"VdmEnabled":"DISABLED"}}"#,
        )
        .expect("parses");
        assert_eq!(a.production_access_enabled, Some(false));
        assert_eq!(a.sending_enabled, Some(true));
        assert_eq!(a.review_status.as_deref(), Some("PENDING"));
        assert_eq!(a.vdm_enabled, Some(false));
    }

    #[test]
    fn a_wrong_type_fails_the_answer() {
        assert!(account(r#"{"SendingEnabled":"yes"}"#).is_err());
        assert!(account("[]").is_err());
        assert!(account("not json").is_err());
        assert!(reputation_entities(
            r#"{"ReputationEntities":[{"SendingStatusAggregate":"DISABLED"}]}"#
        )
        .is_err());
    }

    #[test]
    fn entities_and_their_records() {
        let page = reputation_entities(
            r#"{"ReputationEntities":[{"ReputationEntityReference":"arn:aws:ses:eu-west-1:111111111111:tenant/acme/t-1",
                "ReputationEntityType":"RESOURCE","SendingStatusAggregate":"DISABLED",
                "AwsSesManagedStatus":{"Status":"DISABLED","Cause":"high bounce rate","LastUpdatedTimestamp":1765000000.5},
                "ReputationImpact":"HIGH"}],"NextToken":""}"#,
        )
        .expect("parses");
        assert_eq!(page.next_token, None, "an empty token is no token");
        let e = &page.entities[0];
        assert_eq!(e.aggregate.as_deref(), Some("DISABLED"));
        let ses = e.aws_ses.as_ref().expect("SES-managed record");
        assert_eq!(ses.last_updated, Some(1_765_000_000_500));
        assert_eq!(e.customer, None);
    }

    #[test]
    fn email_identity_reason_and_origin() {
        let id = email_identity(
            r#"{"IdentityType":"DOMAIN","VerificationStatus":"FAILED",
               "DkimAttributes":{"SigningEnabled":true,"Status":"FAILED","SigningAttributesOrigin":"AWS_SES_EU_WEST_1","SigningHostedZone":"dkim.eu-west-1.amazonses.com"},
               "VerificationInfo":{"ErrorType":"TYPE_NOT_FOUND","LastCheckedTimestamp":1765000000}}"#,
        )
        .expect("parses");
        assert_eq!(id.verification_status, Some(VerificationStatus::Failed));
        assert_eq!(id.error_type.as_deref(), Some("TYPE_NOT_FOUND"));
        assert_eq!(id.last_checked, Some(1_765_000_000_000));
        assert_eq!(id.last_success, None);
        assert_eq!(id.signing_origin.as_deref(), Some("AWS_SES_EU_WEST_1"));
    }

    #[test]
    fn listed_identities_in_v1_values() {
        let page = email_identities(
            r#"{"EmailIdentities":[{"IdentityName":"a.example","VerificationStatus":"TEMPORARY_FAILURE"},
                                   {"IdentityName":"b.example"}],"NextToken":"t2"}"#,
        )
        .expect("parses");
        assert_eq!(
            page.identities[0].1.status,
            VerificationStatus::TemporaryFailure
        );
        assert_eq!(page.identities[1].1.status, VerificationStatus::Unknown);
        assert_eq!(page.next_token.as_deref(), Some("t2"));
    }
}
