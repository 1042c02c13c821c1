//! Fields SES's model calls required, left out of an answer: each one through the
//! real SDK path over HTTP to the double (which can omit any field), with the
//! exporter's answer checked on `/metrics`. An absent field is "unknown": the series
//! is absent or the state set's `Unknown` is 1, never 0, false, Success or "no
//! custom MAIL FROM" (the SDK's defaults for a missing field).

mod common;

use common::{promtool_check, Double, Exporter, Metrics};

/// Runs the exporter with every SES collector on against a double holding only
/// `identity` (created with `json`) and, when given, the account answers `account`.
fn scrape(identity: &str, json: &str, account: Option<&str>) -> Metrics {
    let double = Double::start(&["--seed", "none", "--rate", "0"]);
    double.set_identity(identity, json);
    if let Some(account) = account {
        double.control("PUT", "/_double/account", account);
    }
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--ses.rate",
            "20",
            "--collector.dkim",
            "--collector.verification",
            "--collector.quota",
        ],
    );
    exporter.wait_ready();
    let m = exporter.wait_metrics("every collector's first answer", |m| {
        m.get("aws_ses_exporter_up").is_some_and(|v| v == 1.0)
            && m.identity("aws_ses_identity_last_refresh_timestamp_seconds", identity)
                .is_some()
            && m.identity(
                "aws_ses_identity_dkim_last_refresh_timestamp_seconds",
                identity,
            )
            .is_some()
            && m.identity(
                "aws_ses_identity_verification_last_refresh_timestamp_seconds",
                identity,
            )
            .is_some()
            && m.get("aws_ses_account_sending_enabled_last_refresh_timestamp_seconds")
                .is_some()
            && m.get("aws_ses_send_quota_last_refresh_timestamp_seconds")
                .is_some()
    });
    promtool_check(&m.text);
    m
}

fn state(m: &Metrics, family: &str, label: &str, identity: &str, value: &str) -> Option<f64> {
    m.get(&format!(
        "{family}{{identity=\"{identity}\",{label}=\"{value}\"}}"
    ))
}

const FULL: &str = r#""mail_from_domain": "bounce.x.example.com", "status": "Failed", "behavior": "RejectMessage", "dkim_enabled": true, "dkim_status": "Success", "verification_status": "Success""#;

fn identity_omitting(field: &str) -> String {
    format!(r#"{{{FULL}, "omit": ["{field}"]}}"#)
}

#[test]
fn a_status_without_its_domain_is_still_a_configured_mail_from() {
    let id = "x.example.com";
    let m = scrape(id, &identity_omitting("MailFromDomain"), None);
    assert_eq!(
        m.identity("aws_ses_identity_mail_from_configured", id),
        Some(1.0)
    );
    assert_eq!(m.status(id, "Failed"), Some(1.0), "{}", m.text);
    assert_eq!(
        state(
            &m,
            "aws_ses_identity_mail_from_behavior_on_mx_failure",
            "behavior",
            id,
            "RejectMessage"
        ),
        Some(1.0)
    );
    // The info series says nothing about a domain SES did not name.
    assert!(m.text.contains(&format!(
        "aws_ses_identity_mail_from_info{{aws_account_id=\"{}\",aws_region=\"{}\",identity=\"{id}\",identity_type=\"Domain\",mail_from_domain=\"\"}} 1\n",
        common::ACCOUNT,
        common::REGION
    )));
}

#[test]
fn a_domain_without_its_status_is_unknown_not_success() {
    let id = "x.example.com";
    let m = scrape(id, &identity_omitting("MailFromDomainStatus"), None);
    assert_eq!(m.status(id, "Unknown"), Some(1.0), "{}", m.text);
    assert_eq!(m.status(id, "Success"), Some(0.0));
    assert_eq!(
        m.identity("aws_ses_identity_mail_from_configured", id),
        Some(1.0)
    );
}

#[test]
fn a_missing_behavior_is_unknown() {
    let id = "x.example.com";
    let m = scrape(id, &identity_omitting("BehaviorOnMXFailure"), None);
    let behavior = |b| {
        state(
            &m,
            "aws_ses_identity_mail_from_behavior_on_mx_failure",
            "behavior",
            id,
            b,
        )
    };
    assert_eq!(behavior("Unknown"), Some(1.0), "{}", m.text);
    assert_eq!(behavior("RejectMessage"), Some(0.0));
    assert_eq!(behavior("UseDefaultValue"), Some(0.0));
}

#[test]
fn a_missing_dkim_enabled_has_no_series() {
    let id = "x.example.com";
    let m = scrape(id, &identity_omitting("DkimEnabled"), None);
    assert_eq!(
        m.identity("aws_ses_identity_dkim_enabled", id),
        None,
        "{}",
        m.text
    );
    assert_eq!(
        state(&m, "aws_ses_identity_dkim_status", "status", id, "Success"),
        Some(1.0)
    );
}

#[test]
fn a_missing_dkim_status_is_unknown() {
    let id = "x.example.com";
    let m = scrape(id, &identity_omitting("DkimVerificationStatus"), None);
    assert_eq!(
        state(&m, "aws_ses_identity_dkim_status", "status", id, "Unknown"),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(m.identity("aws_ses_identity_dkim_enabled", id), Some(1.0));
}

#[test]
fn a_missing_verification_status_is_unknown() {
    let id = "x.example.com";
    let m = scrape(id, &identity_omitting("VerificationStatus"), None);
    let status = |s| state(&m, "aws_ses_identity_verification_status", "status", id, s);
    assert_eq!(status("Unknown"), Some(1.0), "{}", m.text);
    assert_eq!(status("Success"), Some(0.0));
}

fn account_omitting(field: &str) -> String {
    format!(
        r#"{{"sending_enabled": true, "max_24_hour_send": 50000, "max_send_rate": 14, "sent_last_24_hours": 41000, "omit": ["{field}"]}}"#
    )
}

/// The account series present in `m`, besides their refresh timestamps.
fn account_series(m: &Metrics) -> Vec<&'static str> {
    [
        "aws_ses_send_quota_max_emails",
        "aws_ses_send_quota_max_send_rate",
        "aws_ses_send_quota_sent_emails",
        "aws_ses_account_sending_enabled",
    ]
    .into_iter()
    .filter(|f| m.get(f).is_some())
    .collect()
}

#[test]
fn a_missing_sending_enabled_has_no_series_and_is_not_disabled() {
    let m = scrape(
        "x.example.com",
        FULL_JSON,
        Some(&account_omitting("Enabled")),
    );
    assert_eq!(m.get("aws_ses_account_sending_enabled"), None, "{}", m.text);
    assert_eq!(account_series(&m).len(), 3);
}

#[test]
fn a_missing_max_24_hour_send_has_no_series() {
    let m = scrape(
        "x.example.com",
        FULL_JSON,
        Some(&account_omitting("Max24HourSend")),
    );
    assert_eq!(m.get("aws_ses_send_quota_max_emails"), None, "{}", m.text);
    assert_eq!(m.get("aws_ses_send_quota_sent_emails"), Some(41000.0));
    assert_eq!(account_series(&m).len(), 3);
}

#[test]
fn a_missing_max_send_rate_has_no_series() {
    let m = scrape(
        "x.example.com",
        FULL_JSON,
        Some(&account_omitting("MaxSendRate")),
    );
    assert_eq!(
        m.get("aws_ses_send_quota_max_send_rate"),
        None,
        "{}",
        m.text
    );
    assert_eq!(m.get("aws_ses_send_quota_max_emails"), Some(50000.0));
    assert_eq!(account_series(&m).len(), 3);
}

#[test]
fn a_missing_sent_last_24_hours_has_no_series() {
    let m = scrape(
        "x.example.com",
        FULL_JSON,
        Some(&account_omitting("SentLast24Hours")),
    );
    assert_eq!(m.get("aws_ses_send_quota_sent_emails"), None, "{}", m.text);
    assert_eq!(account_series(&m).len(), 3);
}

const FULL_JSON: &str = r#"{"mail_from_domain": "bounce.x.example.com", "status": "Success", "behavior": "RejectMessage", "dkim_enabled": true, "dkim_status": "Success", "verification_status": "Success"}"#;

/// The SESv2 answers: GetAccount with `account_omit` left out, a reputation
/// entity with its `entity_omit` left out, and GetEmailIdentity of a failed
/// identity with `identity_omit` left out.
fn scrape_v2(account_omit: &str, entity_omit: &str, identity_omit: &str) -> Metrics {
    let double = Double::start(&["--seed", "none", "--rate", "0"]);
    double.set_identity(
        "x.example.com",
        &format!(
            r#"{{"verification_status": "Failed", "verification_error_type": "HOST_NOT_FOUND",
                "verification_last_checked": 1765000000, "omit": [{identity_omit}]}}"#
        ),
    );
    double.control(
        "PUT",
        "/_double/account",
        &format!(
            r#"{{"enforcement_status": "HEALTHY", "review_status": "GRANTED", "omit": [{account_omit}]}}"#
        ),
    );
    double.control(
        "PUT",
        "/_double/reputation-entities",
        &format!(
            r#"[{{"reference": "arn:aws:ses:us-east-1:123456789012:tenant/t/1", "ses_updated": 1765000000, "omit": [{entity_omit}]}}]"#
        ),
    );
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--ses.rate",
            "20",
            "--poll.interval",
            "2s",
            "--collector.verification",
            "--collector.identity_reasons",
            "--collector.account",
            "--collector.reputation_entities",
        ],
    );
    exporter.wait_ready();
    let m = exporter.wait_metrics("every SESv2 answer", |m| {
        m.get("aws_ses_account_last_refresh_timestamp_seconds")
            .is_some()
            && m.get("aws_ses_reputation_entities_last_refresh_timestamp_seconds")
                .is_some()
            && m.identity(
                "aws_ses_identity_reason_last_refresh_timestamp_seconds",
                "x.example.com",
            )
            .is_some()
    });
    promtool_check(&m.text);
    m
}

fn family_absent(m: &Metrics, family: &str) -> bool {
    !m.text
        .lines()
        .any(|l| l.starts_with(&format!("{family}{{")))
}

#[test]
fn get_account_fields_left_out_are_absent_never_false_or_zero() {
    let m = scrape_v2(
        r#""EnforcementStatus", "SendingEnabled", "ProductionAccessEnabled", "Max24HourSend", "VdmAttributes", "ReviewDetails""#,
        "",
        "",
    );
    for family in [
        "aws_ses_account_enforcement_status",
        "aws_ses_account_sending_enabled",
        "aws_ses_account_production_access_enabled",
        "aws_ses_send_quota_max_emails",
        "aws_ses_account_vdm_enabled",
        "aws_ses_account_review_status",
        // Sending was not answered: no time for an answer that was not given.
        "aws_ses_account_sending_enabled_last_refresh_timestamp_seconds",
    ] {
        assert!(family_absent(&m, family), "{family} in {}", m.text);
    }
    // What SES did send is there.
    assert!(
        m.get("aws_ses_send_quota_max_send_rate").is_some(),
        "{}",
        m.text
    );
    assert!(m
        .get("aws_ses_send_quota_last_refresh_timestamp_seconds")
        .is_some());
}

#[test]
fn a_whole_quota_left_out_of_get_account_has_no_quota_series() {
    let m = scrape_v2(r#""SendQuota""#, "", "");
    for family in [
        "aws_ses_send_quota_max_emails",
        "aws_ses_send_quota_max_send_rate",
        "aws_ses_send_quota_sent_emails",
        "aws_ses_send_quota_last_refresh_timestamp_seconds",
    ] {
        assert!(family_absent(&m, family), "{family} in {}", m.text);
    }
    assert_eq!(
        m.get("aws_ses_account_enforcement_status{status=\"HEALTHY\"}"),
        Some(1.0)
    );
}

#[test]
fn reputation_and_reason_fields_left_out_are_absent() {
    let m = scrape_v2(
        "",
        r#""SendingStatusAggregate", "LastUpdatedTimestamp""#,
        r#""ErrorType", "LastCheckedTimestamp""#,
    );
    for family in [
        "aws_ses_reputation_entity_sending_status",
        "aws_ses_reputation_entity_status_last_updated_timestamp_seconds",
        "aws_ses_identity_verification_error",
        "aws_ses_identity_verification_last_checked_timestamp_seconds",
    ] {
        assert!(family_absent(&m, family), "{family} in {}", m.text);
    }
    // The entity is still listed (its info), and counted nowhere.
    assert!(!family_absent(&m, "aws_ses_reputation_entity_info"));
    assert_eq!(
        m.get("aws_ses_reputation_entities{status=\"ENABLED\"}"),
        Some(0.0)
    );
}
