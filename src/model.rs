//! Plain domain types, pure data: an SES identity's MAIL FROM, DKIM and verification state,
//! the account's quota, the records and snapshots the collectors keep, and the enums whose
//! names are label values (identity types, SES statuses, request and lookup outcomes).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A label enum: each variant beside the text that is its label value (and, for
/// SES's enums, its value on the wire; the variant's own name where none is given),
/// written once, so `ALL`, `as_str` and `parse` cannot disagree. `parse else V`
/// reads SES's text, a value this build does not know becoming `V`, and gives
/// `Display` (the same text).
macro_rules! label_enum {
    (@text $variant:ident) => { stringify!($variant) };
    (@text $variant:ident $text:literal) => { $text };
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident $(= $text:literal)?,)+
        }
        parse else $fallback:ident
    ) => {
        label_enum! {
            $(#[$meta])*
            pub enum $name {
                $($(#[$vmeta])* $variant $(= $text)?,)+
            }
        }

        impl $name {
            pub fn parse(s: &str) -> Self {
                match s {
                    $(label_enum!(@text $variant $($text)?) => $name::$variant,)+
                    _ => $name::$fallback,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident $(= $text:literal)?,)+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the exposition lists them (a state
            /// set's lines, a counter's series).
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => label_enum!(@text $variant $($text)?),)+
                }
            }
        }
    };
}

label_enum! {
    /// Whether an identity is a domain or an email address (the `identity_type`
    /// label, with the values SES uses in `ListIdentities`). SES decides this from
    /// the shape of the name (an `@` makes it an address); so do we.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum IdentityType {
        Domain,
        EmailAddress,
    }
}

impl IdentityType {
    pub fn of(identity: &str) -> Self {
        if identity.contains('@') {
            IdentityType::EmailAddress
        } else {
            IdentityType::Domain
        }
    }
}

label_enum! {
    /// `MailFromDomainStatus`. `Unknown` stands for any value this build does not know
    /// (the SDK maps a missing or new value to its own `Unknown` variant); it is exported
    /// as such rather than guessed, because a guessed `Success` would hide an outage.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum MailFromStatus {
        Pending,
        Success,
        Failed,
        TemporaryFailure,
        Unknown,
    }
    parse else Unknown
}

label_enum! {
    /// `BehaviorOnMXFailure`: what SES does with mail while the MAIL FROM domain is not
    /// in `Success`. `Unknown` when SES sent no or an unrecognised value: exported as its
    /// own state, because claiming one of the others would be inventing it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum BehaviorOnMxFailure {
        UseDefaultValue,
        RejectMessage,
        Unknown,
    }
    parse else Unknown
}

/// What SES returned for one identity. SES sends the domain and its status when a
/// custom MAIL FROM is set and only the behaviour when none is, so each field keeps
/// whether it was sent at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFromAttributes {
    /// The custom MAIL FROM domain; `None` when SES sent none.
    pub domain: Option<String>,
    /// `None` when SES sent no status; `Some(Unknown)` for a value this build does
    /// not know.
    pub status: Option<MailFromStatus>,
    pub behavior: BehaviorOnMxFailure,
}

impl MailFromAttributes {
    /// A custom MAIL FROM is set when SES names a domain or reports a status for
    /// one: a status without the domain is a MAIL FROM whose name SES left out, not
    /// "none configured" (that would hide a Failed + RejectMessage identity).
    pub fn configured(&self) -> bool {
        self.domain.is_some() || self.status.is_some()
    }

    /// The status as exported: `Unknown` when SES sent none for a configured domain.
    pub fn exported_status(&self) -> MailFromStatus {
        self.status.unwrap_or(MailFromStatus::Unknown)
    }
}

/// The outcome of the last successful fetch of one identity by one collector; `A`
/// is what that collector's operation returns per identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation<A = MailFromAttributes> {
    /// SES answered the batch but left this identity out: it does not exist (or is
    /// not visible to these credentials) in this region.
    Missing,
    Present(A),
    /// SES refused the identity itself (`InvalidParameterValue` for a batch that held
    /// only it): the name is not a valid identity. Asked alone every cycle, so it
    /// recovers by itself once fixed.
    Rejected,
}

/// One identity as last seen by one collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord<A = MailFromAttributes> {
    pub observation: Observation<A>,
    /// When the batch holding this identity was last answered by SES. A failed batch
    /// leaves this alone, so its age shows how stale the values are.
    pub refreshed_at: SystemTime,
}

/// The identities that have been fetched at least once, keyed by name. An identity
/// that is watched but was never fetched is absent, so its series are absent rather
/// than a made-up 0.
pub type Snapshot<A = MailFromAttributes> = BTreeMap<String, IdentityRecord<A>>;

/// A change worth an info log: the state an operator would alert on moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange<A = MailFromAttributes> {
    pub before: Option<Observation<A>>,
    pub after: Observation<A>,
}

/// Compares an identity's previous and new observation and says whether the change is
/// one an operator cares about (existence, MAIL FROM domain, status or behaviour).
pub fn status_change<A: Clone + PartialEq>(
    before: Option<&Observation<A>>,
    after: &Observation<A>,
) -> Option<StatusChange<A>> {
    if before == Some(after) {
        return None;
    }
    Some(StatusChange {
        before: before.cloned(),
        after: after.clone(),
    })
}

impl<A: fmt::Display> fmt::Display for Observation<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Missing => f.write_str("not returned by SES"),
            Observation::Rejected => f.write_str("rejected by SES as not a valid identity"),
            Observation::Present(a) => a.fmt(f),
        }
    }
}

impl fmt::Display for MailFromAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.configured() {
            return write!(f, "no custom MAIL FROM (behavior {})", self.behavior);
        }
        let domain = self.domain.as_deref().unwrap_or("(domain not returned)");
        write!(
            f,
            "{domain} {} (behavior {})",
            self.exported_status(),
            self.behavior
        )
    }
}

label_enum! {
    /// `VerificationStatus`, the type SES uses both for an identity's verification and
    /// for its DKIM verification. `Unknown` stands for a value this build does not know
    /// (or none); it is exported as such, never guessed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum VerificationStatus {
        Pending,
        Success,
        Failed,
        TemporaryFailure,
        NotStarted,
        Unknown,
    }
    parse else Unknown
}

/// What `GetIdentityDkimAttributes` says about one identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DkimAttributes {
    /// Whether SES signs the identity's mail with Easy DKIM; `None` when SES left
    /// `DkimEnabled` out.
    pub enabled: Option<bool>,
    pub status: VerificationStatus,
    /// `DkimTokens`: the names of the Easy DKIM CNAME records,
    /// `<token>._domainkey.<domain>` (the dns collector checks them); empty when SES
    /// sent none (an e-mail address identity, DKIM never set up).
    pub tokens: Vec<String>,
}

impl fmt::Display for DkimAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enabled = match self.enabled {
            Some(true) => "enabled",
            Some(false) => "disabled",
            None => "enabled state not returned",
        };
        write!(f, "DKIM {enabled}, verification {}", self.status)
    }
}

/// What `GetIdentityVerificationAttributes` says about one identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verification {
    pub status: VerificationStatus,
    /// `VerificationToken`: what the TXT record at `_amazonses.<domain>` of a domain
    /// verified the legacy (v1) way holds; `None` when SES sent none (and always from
    /// SESv2's `ListEmailIdentities`, which has no token).
    pub token: Option<String>,
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "verification {}", self.status)
    }
}

/// `GetSendQuota` for one account and region; each number `None` when SES left it
/// out of its answer (never a made-up 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendQuota {
    /// Emails the account may send in 24 hours; -1 means unlimited.
    pub max_24_hour_send: Option<f64>,
    /// Emails per second.
    pub max_send_rate: Option<f64>,
    pub sent_last_24_hours: Option<f64>,
}

/// The quota collector's last answers for one target; each part keeps its last good
/// value when its own call fails. `sending_enabled` holds `None` inside when SES
/// answered without `Enabled`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quota {
    pub send_quota: Option<(SendQuota, SystemTime)>,
    pub sending_enabled: Option<(Option<bool>, SystemTime)>,
}

/// What SESv2 `GetAccount` says about one account in one region (the account
/// collector). Every field `None` when SES left it out: read from the body for
/// presence, since the SDK would turn a missing boolean into `false` and a missing
/// quota into 0. The enforcement and review statuses are kept as SES spelt them, so a
/// value this build does not know is logged as it came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountDetails {
    /// `EnforcementStatus`: `HEALTHY`, `PROBATION` (under review, still sending),
    /// `SHUTDOWN` (sending paused), or a string SES adds later.
    pub enforcement_status: Option<String>,
    /// `ProductionAccessEnabled`: false = the sandbox.
    pub production_access_enabled: Option<bool>,
    pub sending_enabled: Option<bool>,
    pub send_quota: Option<SendQuota>,
    /// `Details.ReviewDetails.Status`: the production-access review.
    pub review_status: Option<String>,
    /// `VdmAttributes.VdmEnabled` is `ENABLED`.
    pub vdm_enabled: Option<bool>,
}

label_enum! {
    /// `EnforcementStatus` of SESv2 `GetAccount` (a plain string in SES's model);
    /// `Unknown` for a value this build does not know.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum EnforcementStatus {
        Healthy = "HEALTHY",
        Probation = "PROBATION",
        Shutdown = "SHUTDOWN",
        Unknown,
    }
    parse else Unknown
}

label_enum! {
    /// `ReviewDetails.Status` of SESv2 `GetAccount` (the production-access request).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ReviewStatus {
        Pending = "PENDING",
        Failed = "FAILED",
        Granted = "GRANTED",
        Denied = "DENIED",
        Unknown,
    }
    parse else Unknown
}

label_enum! {
    /// A reputation entity's sending status (`SendingStatusAggregate` and the
    /// status of its SES-managed and customer-managed records).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum SendingStatus {
        Enabled = "ENABLED",
        Disabled = "DISABLED",
        Reinstated = "REINSTATED",
        Unknown,
    }
    parse else Unknown
}

/// One status record of a reputation entity (`AwsSesManagedStatus`,
/// `CustomerManagedStatus`); each part `None` when SES left it out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StatusRecord {
    pub status: Option<String>,
    pub cause: Option<String>,
    /// `LastUpdatedTimestamp`, milliseconds since the epoch.
    pub last_updated: Option<u64>,
}

/// One entity of SESv2 `ListReputationEntities`: a resource SES tracks reputation
/// for and may pause on its own (an identity, a tenant, a configuration set...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ReputationEntity {
    /// `ReputationEntityReference`: for a `RESOURCE`, the resource's ARN.
    pub reference: String,
    /// `ReputationEntityType` as SES spelt it (`RESOURCE` today).
    pub entity_type: Option<String>,
    /// `SendingStatusAggregate` as SES spelt it.
    pub aggregate: Option<String>,
    pub aws_ses: Option<StatusRecord>,
    pub customer: Option<StatusRecord>,
    /// `ReputationImpact` (`LOW`, `HIGH`).
    pub impact: Option<String>,
    /// `ReputationManagementPolicy` (an ARN).
    pub policy: Option<String>,
}

/// One page of `ListReputationEntities`.
#[derive(Debug, Clone, Default)]
pub struct EntityPage {
    pub entities: Vec<ReputationEntity>,
    pub next_token: Option<String>,
}

label_enum! {
    /// `VerificationInfo.ErrorType` of SESv2 `GetEmailIdentity`: why SES could not
    /// verify the identity's records (see docs/runbook.md).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum VerificationErrorType {
        InvalidValue = "INVALID_VALUE",
        TypeNotFound = "TYPE_NOT_FOUND",
        HostNotFound = "HOST_NOT_FOUND",
        ServiceError = "SERVICE_ERROR",
        DnsServerError = "DNS_SERVER_ERROR",
        ReplicationAccessDenied = "REPLICATION_ACCESS_DENIED",
        ReplicationPrimaryNotFound = "REPLICATION_PRIMARY_NOT_FOUND",
        ReplicationPrimaryByoDkimNotSupported = "REPLICATION_PRIMARY_BYO_DKIM_NOT_SUPPORTED",
        ReplicationReplicaAsPrimaryNotSupported = "REPLICATION_REPLICA_AS_PRIMARY_NOT_SUPPORTED",
        ReplicationPrimaryInvalidRegion = "REPLICATION_PRIMARY_INVALID_REGION",
        Unknown,
    }
    parse else Unknown
}

/// What SESv2 `GetEmailIdentity` says of one identity that the identity_reasons
/// collector explains: SES's reason and its DKIM signing origin. `None` where SES
/// left the field out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EmailIdentity {
    pub verification_status: Option<VerificationStatus>,
    /// `VerificationInfo.ErrorType` as SES spelt it.
    pub error_type: Option<String>,
    /// `VerificationInfo.LastCheckedTimestamp`, milliseconds since the epoch.
    pub last_checked: Option<u64>,
    /// `VerificationInfo.LastSuccessTimestamp`, milliseconds since the epoch.
    pub last_success: Option<u64>,
    /// `DkimAttributes.SigningAttributesOrigin`: `AWS_SES`, `EXTERNAL` (bring your
    /// own DKIM) or `AWS_SES_<REGION>` (replicated).
    pub signing_origin: Option<String>,
    pub signing_hosted_zone: Option<String>,
}

impl fmt::Display for EmailIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verification error {}",
            self.error_type.as_deref().unwrap_or("none reported")
        )
    }
}

/// Where a domain identity's DKIM key lives, so what its DNS records must be: SESv2
/// `GetEmailIdentity`'s `DkimAttributes.SigningAttributesOrigin` and, for Easy DKIM,
/// `SigningHostedZone` (it differs by region: SES names it, it is never assumed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DkimOrigin {
    /// Easy DKIM (`AWS_SES`): each token's CNAME points at `<token>.<zone>`; `None`
    /// when SES left the zone out.
    AwsSes { zone: Option<Arc<str>> },
    /// Bring-your-own DKIM (`EXTERNAL`): a DKIM key published as TXT at the selector
    /// (directly, or through a CNAME to the key's host).
    External,
    /// Replicated from another region (`AWS_SES_<REGION>`): the primary region's
    /// records, pointing into that region's zone.
    Replicated,
    /// An origin this build does not know: judged as when no origin is known.
    Other,
}

impl DkimOrigin {
    /// From SES's `SigningAttributesOrigin` and `SigningHostedZone`, the zone shared
    /// through `zones` (one copy per distinct zone, not one per identity).
    pub fn parse(origin: &str, zone: Option<&str>, zones: &mut Vec<Arc<str>>) -> DkimOrigin {
        match origin {
            "AWS_SES" => DkimOrigin::AwsSes {
                zone: zone.filter(|z| !z.is_empty()).map(|z| {
                    let z = z.trim_end_matches('.');
                    match zones.iter().find(|known| &***known == z) {
                        Some(known) => Arc::clone(known),
                        None => {
                            let new: Arc<str> = Arc::from(z);
                            zones.push(Arc::clone(&new));
                            new
                        }
                    }
                }),
            },
            "EXTERNAL" => DkimOrigin::External,
            o if o.starts_with("AWS_SES_") => DkimOrigin::Replicated,
            _ => DkimOrigin::Other,
        }
    }
}

/// One page of SESv2 `ListEmailIdentities`: each identity's verification status,
/// mapped to v1's values (`PENDING` is `Pending`).
#[derive(Debug, Clone, Default)]
pub struct EmailIdentityPage {
    pub identities: Vec<(String, Verification)>,
    pub next_token: Option<String>,
}

impl VerificationStatus {
    /// SESv2's spelling (`PENDING`, `TEMPORARY_FAILURE`...) of the same statuses.
    pub fn parse_v2(s: &str) -> VerificationStatus {
        match s {
            "PENDING" => VerificationStatus::Pending,
            "SUCCESS" => VerificationStatus::Success,
            "FAILED" => VerificationStatus::Failed,
            "TEMPORARY_FAILURE" => VerificationStatus::TemporaryFailure,
            "NOT_STARTED" => VerificationStatus::NotStarted,
            _ => VerificationStatus::Unknown,
        }
    }
}

/// Who a target is: the account STS named for its credentials and its region.
/// What its series, parts and facts are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetId {
    pub account: Arc<str>,
    pub region: Arc<str>,
}

impl TargetId {
    pub fn new(account: &str, region: &str) -> TargetId {
        TargetId {
            account: Arc::from(account),
            region: Arc::from(region),
        }
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "account {} in {}", self.account, self.region)
    }
}

/// What the SES collectors learnt about one identity that the dns collector checks
/// in DNS. Each field is one collector's, `None` until it says; an identity with no
/// fact at all is not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityFacts {
    /// The MAIL FROM attributes (the mail_from collector): the custom MAIL FROM domain
    /// whose MX and SPF records are checked, and the status and behaviour DMARC's
    /// SPF alignment depends on.
    pub mail_from: Option<MailFromAttributes>,
    /// The Easy DKIM attributes (the dkim collector): the tokens whose CNAME records
    /// are checked, and whether DKIM signs aligned.
    pub dkim: Option<DkimAttributes>,
    /// The legacy verification token (the verification collector), whose
    /// `_amazonses` TXT record keeps a domain without verified DKIM verified.
    pub verification_token: Option<String>,
    /// Where the domain's DKIM key lives (the identity_reasons collector's sweep):
    /// which rule its DKIM records are checked by.
    pub dkim_origin: Option<DkimOrigin>,
}

impl IdentityFacts {
    pub fn is_empty(&self) -> bool {
        *self == IdentityFacts::default()
    }
}

// ---------------------------------------------------------------- label enums

label_enum! {
    /// How one HTTP attempt ended; the `outcome` label of `aws_ses_exporter_ses_requests_total`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Outcome {
        Success = "success", Throttled = "throttled",
        ClientError = "client_error", ServerError = "server_error",
        Timeout = "timeout", TransportError = "transport_error",
    }
}

label_enum! {
    /// How a DNS lookup of the dns collector ended; the `outcome` label.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum LookupOutcome {
        Ok = "ok",
        /// The name does not exist: an answer (the record is missing).
        NxDomain = "nxdomain",
        /// The name exists without this record type: an answer (the record is missing).
        NoRecords = "no_records",
        /// The server failed: no answer; the last one stands.
        ServFail = "servfail",
        Timeout = "timeout",
        /// Anything else (refused, network error): no answer.
        Error = "error",
    }
}

impl LookupOutcome {
    /// Whether DNS answered: the record's presence or absence is known.
    pub fn answered(self) -> bool {
        matches!(
            self,
            LookupOutcome::Ok | LookupOutcome::NxDomain | LookupOutcome::NoRecords
        )
    }
}

/// The record types the dns collector looks up; the `record` label.
pub const DNS_RECORD_TYPES: [&str; 3] = ["MX", "TXT", "CNAME"];

label_enum! {
    /// What SPF's `check_host()` (RFC 7208) says of SES's sending address for a MAIL FROM
    /// domain: `pass` (SES may send for it), `not_authorized` (the record evaluates, to
    /// fail, softfail or neutral, without SES), `no_record`, `permerror` (receivers treat
    /// it as a fail: two SPF records, a syntax error, more than 10 DNS-querying terms).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum SpfStatus {
        Pass = "pass",
        NotAuthorized = "not_authorized",
        NoRecord = "no_record",
        PermError = "permerror",
    }
}

label_enum! {
    /// A DMARC policy (`p=`, `sp=`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum DmarcPolicy {
        None = "none",
        Quarantine = "quarantine",
        Reject = "reject",
    }
}

label_enum! {
    /// How a DMARC lookup for a sending domain ended: a record `found` (at the domain or
    /// its organizational domain), `absent` (no `v=DMARC1` record at either), or
    /// `unparseable` (a `v=DMARC1` record receivers cannot read, which they treat as
    /// absent).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum DmarcRecordState {
        Found = "found",
        Absent = "absent",
        Unparseable = "unparseable",
    }
}

label_enum! {
    /// What receivers enforcing DMARC do with the mail SES sends for an identity:
    /// `aligned` (SPF or DKIM passes aligned: DMARC passes), and otherwise the policy
    /// that applies: `none` (no record, `p=none`, or `pct=0` under quarantine),
    /// `quarantine` (spam folder), `reject` (refused; with `pct` below 100 for that share
    /// of the mail, the rest quarantined).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum DmarcVerdict {
        Aligned = "aligned",
        None = "none",
        Quarantine = "quarantine",
        Reject = "reject",
    }
}

label_enum! {
    /// A record SES checks for an identity, as DNS answers it: `correct` (an Easy
    /// DKIM CNAME that points at `<token>.` in SES's signing zone; an `_amazonses` TXT
    /// record holding the verification token), `missing` (no such name, or no such
    /// record there), `elsewhere` (it points somewhere else, or holds something else).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum RecordState {
        Correct = "correct",
        Missing = "missing",
        Elsewhere = "elsewhere",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_type_follows_the_at_sign() {
        assert_eq!(IdentityType::of("example.com"), IdentityType::Domain);
        assert_eq!(
            IdentityType::of("ops@example.com"),
            IdentityType::EmailAddress
        );
    }

    #[test]
    fn unknown_values_are_not_guessed() {
        assert_eq!(MailFromStatus::parse(""), MailFromStatus::Unknown);
        assert_eq!(MailFromStatus::parse("success"), MailFromStatus::Unknown);
        assert_eq!(
            BehaviorOnMxFailure::parse("Bounce"),
            BehaviorOnMxFailure::Unknown
        );
        for s in MailFromStatus::ALL {
            assert_eq!(MailFromStatus::parse(s.as_str()), s);
        }
    }

    #[test]
    fn v2_statuses_map_to_v1_label_values() {
        for (v2, v1) in [
            ("PENDING", "Pending"),
            ("SUCCESS", "Success"),
            ("FAILED", "Failed"),
            ("TEMPORARY_FAILURE", "TemporaryFailure"),
            ("NOT_STARTED", "NotStarted"),
        ] {
            assert_eq!(VerificationStatus::parse_v2(v2).as_str(), v1);
        }
        assert_eq!(
            VerificationStatus::parse_v2("Pending"),
            VerificationStatus::Unknown
        );
        assert_eq!(
            EnforcementStatus::parse("PAUSED_LATER"),
            EnforcementStatus::Unknown
        );
    }

    #[test]
    fn status_change_ignores_identical_observations() {
        let ok = Observation::Present(MailFromAttributes {
            domain: Some("mail.example.com".into()),
            status: Some(MailFromStatus::Success),
            behavior: BehaviorOnMxFailure::RejectMessage,
        });
        assert!(status_change(Some(&ok), &ok).is_none());
        let failed = Observation::Present(MailFromAttributes {
            status: Some(MailFromStatus::Failed),
            ..match &ok {
                Observation::Present(a) => a.clone(),
                Observation::Missing | Observation::Rejected => unreachable!(),
            }
        });
        let change = status_change(Some(&ok), &failed).expect("a change");
        assert_eq!(change.after, failed);
        assert!(status_change(None, &Observation::<MailFromAttributes>::Missing).is_some());
    }
}
