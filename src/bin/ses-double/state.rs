//! What the double holds, behind one lock: per (account, region) scope the
//! identities, the account-level answers and SESv2's reputation entities, the roles
//! `AssumeRole` checks, the
//! faults in force, the request records, and the counts the rate limit and the
//! faults keep. Also [`Double`], the state with the flags every connection shares.
//! Identities, accounts, reputation entities and roles are stored in the shape the
//! control API's JSON has. One identity or account answers both protocols: SES's
//! CamelCase values (`TemporaryFailure`, `RejectMessage`) go out in SESv2's spelling
//! (`TEMPORARY_FAILURE`, `REJECT_MESSAGE`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::faults::Faults;

/// One identity as the double stores it. Fields not set are `null` in the JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Identity {
    pub(crate) mail_from_domain: Option<String>,
    /// `MailFromDomainStatus` as sent; any string, so tests can send values the
    /// exporter does not know.
    pub(crate) status: Option<String>,
    pub(crate) behavior: Option<String>,
    /// `DkimEnabled`; false when not set.
    pub(crate) dkim_enabled: Option<bool>,
    /// `DkimVerificationStatus`; `NotStarted` when not set.
    pub(crate) dkim_status: Option<String>,
    /// `VerificationStatus`; `Success` when not set.
    pub(crate) verification_status: Option<String>,
    /// `DkimTokens` (SESv2: `DkimAttributes.Tokens`); when not set SES gets three
    /// made-up tokens, SESv2 three for a domain and none for an address.
    pub(crate) dkim_tokens: Option<Vec<String>>,
    /// SESv2's `DkimAttributes.SigningAttributesOrigin`, as sent; `AWS_SES` when not set.
    pub(crate) signing_origin: Option<String>,
    /// SESv2's `DkimAttributes.SigningHostedZone`; `dkim.amazonses.com` when not set.
    pub(crate) signing_hosted_zone: Option<String>,
    /// SESv2's `VerificationInfo.ErrorType`, as sent (`INVALID_VALUE`, `TYPE_NOT_FOUND`,
    /// ...). `VerificationInfo` is sent when this or a timestamp below is set.
    pub(crate) verification_error_type: Option<String>,
    /// SESv2's `VerificationInfo.LastCheckedTimestamp`, Unix seconds.
    pub(crate) verification_last_checked: Option<f64>,
    /// SESv2's `VerificationInfo.LastSuccessTimestamp`, Unix seconds.
    pub(crate) verification_last_success: Option<f64>,
    /// SESv2's `VerifiedForSendingStatus` and `ListEmailIdentities`' `SendingEnabled`;
    /// when not set, whether the verification status is `Success`.
    pub(crate) sending_enabled: Option<bool>,
    /// Wire fields to leave out of the answers even when set: SES's model marks many
    /// required, but a test must see what the exporter does when one is missing.
    /// SES: `MailFromDomain`, `MailFromDomainStatus`, `BehaviorOnMXFailure`,
    /// `DkimEnabled`, `DkimVerificationStatus`, `VerificationStatus`. SESv2: any key of
    /// `GetEmailIdentity`'s or `ListEmailIdentities`' JSON, wherever it is
    /// (`VerificationStatus`, `VerifiedForSendingStatus`, `DkimAttributes`,
    /// `SigningEnabled`, `Status`, `Tokens`, `SigningAttributesOrigin`,
    /// `MailFromAttributes`, `BehaviorOnMxFailure`, `VerificationInfo`, `ErrorType`,
    /// `LastCheckedTimestamp`, `LastSuccessTimestamp`, `SendingEnabled`, ...). A name
    /// both protocols use (`VerificationStatus`, `MailFromDomain`) acts on both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) omit: Vec<String>,
}

impl Identity {
    pub(crate) fn sends(&self, field: &str) -> bool {
        sends(&self.omit, field)
    }

    /// The DKIM tokens: as set, or three made-up ones.
    pub(crate) fn dkim_tokens(&self) -> Vec<&str> {
        match &self.dkim_tokens {
            Some(tokens) => tokens.iter().map(String::as_str).collect(),
            None => vec!["tok1", "tok2", "tok3"],
        }
    }
}

/// Whether a wire field is sent, given the fields a test asked to leave out.
fn sends(omit: &[String], field: &str) -> bool {
    !omit.iter().any(|f| f == field)
}

/// Account-level answers of one account and region: SES's `GetSendQuota` and
/// `GetAccountSendingEnabled`, SESv2's `GetAccount`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Account {
    /// SES's `Enabled`, SESv2's `SendingEnabled`.
    pub(crate) sending_enabled: bool,
    /// SES's quota, SESv2's `SendQuota`.
    pub(crate) max_24_hour_send: f64,
    pub(crate) max_send_rate: f64,
    pub(crate) sent_last_24_hours: f64,
    /// SESv2's `EnforcementStatus`, as sent (`HEALTHY`, `PROBATION`, `SHUTDOWN`, or
    /// any string a test wants the exporter to meet).
    pub(crate) enforcement_status: String,
    /// SESv2's `ProductionAccessEnabled`.
    pub(crate) production_access_enabled: bool,
    /// SESv2's `Details.ReviewDetails.Status` (`PENDING`, `FAILED`, `GRANTED`,
    /// `DENIED`); `ReviewDetails` is sent when this or the case ID is set.
    pub(crate) review_status: Option<String>,
    /// SESv2's `Details.ReviewDetails.CaseId`.
    pub(crate) review_case_id: Option<String>,
    /// SESv2's `VdmAttributes.VdmEnabled` (`ENABLED`, `DISABLED`).
    pub(crate) vdm_enabled: String,
    /// Wire fields to leave out, as for [`Identity::omit`]. SES: `Max24HourSend`,
    /// `MaxSendRate`, `SentLast24Hours`, `Enabled`. SESv2: any key of `GetAccount`'s
    /// JSON, wherever it is (`EnforcementStatus`, `ProductionAccessEnabled`,
    /// `SendingEnabled`, `DedicatedIpAutoWarmupEnabled`, `SendQuota`, `Details`,
    /// `ReviewDetails`, `VdmAttributes`, `VdmEnabled`, and the quota's three, which
    /// therefore act on both protocols).
    pub(crate) omit: Vec<String>,
}

impl Account {
    pub(crate) fn sends(&self, field: &str) -> bool {
        sends(&self.omit, field)
    }
}

impl Default for Account {
    fn default() -> Self {
        Account {
            sending_enabled: true,
            max_24_hour_send: 50_000.0,
            max_send_rate: 14.0,
            sent_last_24_hours: 0.0,
            enforcement_status: "HEALTHY".to_owned(),
            production_access_enabled: true,
            review_status: None,
            review_case_id: None,
            vdm_enabled: "DISABLED".to_owned(),
            omit: Vec::new(),
        }
    }
}

/// One of SESv2's reputation entities (`ListReputationEntities`). Values are sent
/// as set; fields not set are `null` in the JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReputationEntity {
    /// `ReputationEntityReference`: the resource's ARN.
    pub(crate) reference: String,
    /// `ReputationEntityType`; `RESOURCE` when not set.
    #[serde(rename = "type")]
    pub(crate) entity_type: Option<String>,
    /// `SendingStatusAggregate`; when not set, `DISABLED` if either status below is,
    /// else `ENABLED`.
    pub(crate) aggregate: Option<String>,
    /// `AwsSesManagedStatus.Status` (`ENABLED`, `DISABLED`, `REINSTATED`); `ENABLED`
    /// when not set.
    pub(crate) ses_status: Option<String>,
    /// `AwsSesManagedStatus.Cause`; left out when not set.
    pub(crate) ses_cause: Option<String>,
    /// `AwsSesManagedStatus.LastUpdatedTimestamp`, Unix seconds; left out when not set.
    pub(crate) ses_updated: Option<f64>,
    /// `CustomerManagedStatus`, as the three above.
    pub(crate) customer_status: Option<String>,
    pub(crate) customer_cause: Option<String>,
    pub(crate) customer_updated: Option<f64>,
    /// `ReputationImpact` (`LOW`, `HIGH`); left out when not set.
    pub(crate) impact: Option<String>,
    /// `ReputationManagementPolicy` (an ARN); left out when not set.
    pub(crate) policy: Option<String>,
    /// Keys to leave out of this entity's JSON, wherever they are, as for
    /// [`Identity::omit`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) omit: Vec<String>,
}

impl ReputationEntity {
    /// `SendingStatusAggregate`: as set, or derived from the two statuses.
    pub(crate) fn aggregate(&self) -> &str {
        if let Some(a) = &self.aggregate {
            return a;
        }
        let disabled = |s: &Option<String>| s.as_deref() == Some("DISABLED");
        if disabled(&self.ses_status) || disabled(&self.customer_status) {
            "DISABLED"
        } else {
            "ENABLED"
        }
    }
}

/// One account in one region.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub(crate) identities: BTreeMap<String, Identity>,
    pub(crate) account: Account,
    /// In the order `PUT /_double/reputation-entities` gave, which is the order
    /// `ListReputationEntities` pages through.
    pub(crate) reputation_entities: Vec<ReputationEntity>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Role {
    pub(crate) external_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Record {
    /// Arrival, Unix seconds.
    pub(crate) t: f64,
    pub(crate) action: String,
    pub(crate) account: String,
    pub(crate) region: String,
    pub(crate) identities: usize,
    pub(crate) status: u16,
    pub(crate) outcome: &'static str,
}

#[derive(Default)]
pub(crate) struct State {
    /// (account, region) → what SES knows there.
    pub(crate) scopes: BTreeMap<(String, String), Scope>,
    pub(crate) roles: BTreeMap<String, Role>,
    pub(crate) faults: Faults,
    pub(crate) records: Vec<Record>,
    /// Arrivals per (account, region, action) in the last seconds, for the rate limit.
    pub(crate) recent: HashMap<(String, String, String), VecDeque<Instant>>,
    pub(crate) counts: HashMap<String, u64>,
    pub(crate) errors_sent: u64,
}

pub(crate) struct Double {
    pub(crate) state: Mutex<State>,
    pub(crate) rate: f64,
    pub(crate) upstream: Option<SocketAddr>,
    pub(crate) account: String,
    pub(crate) region: String,
}

impl Double {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
