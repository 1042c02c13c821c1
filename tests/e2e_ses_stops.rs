//! "When SES itself stops the mail", through the real exporter binary and the real
//! SDK (SESv2's REST-JSON) against the SES double, which serves what moto 5.2 cannot
//! (GetAccount, ListReputationEntities, VerificationInfo, ListEmailIdentities with a
//! page size): an account paused or under review, a tenant disabled while its account
//! is healthy, SES's reason for an unverified identity, and verification of 10,000
//! identities in 10 calls a cycle, or through the older action without the new one.
//! The pages and the SHUTDOWN inhibition through Prometheus and Alertmanager are in
//! tests/e2e_page.rs.

mod common;

use common::{promtool_check, Double, Exporter};

const ACCOUNT: &str = common::ACCOUNT;

#[test]
fn a_paused_account_and_a_disabled_tenant_of_a_healthy_one_are_told_apart() {
    let double = Double::start(&["--seed", "none", "--rate", "0"]);
    double.set_identity(
        "shop.example.com",
        r#"{"mail_from_domain": "bounce.shop.example.com", "status": "Success", "behavior": "RejectMessage"}"#,
    );
    // eu-west-1: SES paused the account. us-east-1: the account is healthy, but SES
    // disabled one tenant and the customer disabled one identity.
    double.control(
        "PUT",
        &format!("/_double/account?account={ACCOUNT}&region=eu-west-1"),
        r#"{"enforcement_status": "SHUTDOWN", "sending_enabled": false, "production_access_enabled": true}"#,
    );
    double.control(
        "PUT",
        &format!("/_double/reputation-entities?account={ACCOUNT}&region=us-east-1"),
        &format!(
            r#"[{{"reference": "arn:aws:ses:us-east-1:{ACCOUNT}:tenant/acme/tn-0001", "ses_status": "DISABLED", "ses_cause": "bounce rate above the policy's threshold", "ses_updated": 1765000000, "impact": "HIGH"}},
               {{"reference": "arn:aws:ses:us-east-1:{ACCOUNT}:identity/shop.example.com", "customer_status": "DISABLED", "customer_cause": "paused by the operator"}},
               {{"reference": "arn:aws:ses:us-east-1:{ACCOUNT}:configuration-set/marketing"}}]"#
        ),
    );
    let exporter = Exporter::start(
        &double.url(),
        Some("targets:\n  - region: us-east-1\n  - region: eu-west-1\n"),
        &[
            "--ses.rate",
            "20",
            "--collector.account",
            "--collector.reputation_entities",
            "--collector.quota",
        ],
    );
    exporter.wait_ready();
    let us = common::target_labels(ACCOUNT, "us-east-1");
    let eu = common::target_labels(ACCOUNT, "eu-west-1");
    let m = exporter.wait_metrics("both targets' account and entities", |m| {
        m.raw(&format!(
            "aws_ses_account_last_refresh_timestamp_seconds{{{eu}}}"
        ))
        .is_some()
            && m.raw(&format!(
                "aws_ses_reputation_entities_last_refresh_timestamp_seconds{{{us}}}"
            ))
            .is_some()
    });
    promtool_check(&m.text);
    let enforcement = |labels: &str, status: &str| {
        m.raw(&format!(
            "aws_ses_account_enforcement_status{{{labels},status=\"{status}\"}}"
        ))
    };
    assert_eq!(enforcement(&eu, "SHUTDOWN"), Some(1.0), "{}", m.text);
    assert_eq!(enforcement(&eu, "HEALTHY"), Some(0.0));
    assert_eq!(enforcement(&us, "HEALTHY"), Some(1.0));
    assert_eq!(enforcement(&us, "SHUTDOWN"), Some(0.0));
    assert_eq!(
        m.raw(&format!("aws_ses_account_sending_enabled{{{eu}}}")),
        Some(0.0)
    );
    // GetAccount answers the quota families; the quota collector, also switched
    // on, does not run: no family written twice, no GetSendQuota call.
    assert_eq!(
        m.text
            .lines()
            .filter(|l| l.starts_with("# HELP aws_ses_account_sending_enabled "))
            .count(),
        1
    );
    assert!(double
        .requests()
        .iter()
        .all(|r| r.action != "GetSendQuota" && r.action != "GetAccountSendingEnabled"));
    assert!(exporter
        .proc
        .log()
        .contains("the quota collector is not run"));

    let tenant = format!(
        "entity_reference=\"arn:aws:ses:us-east-1:{ACCOUNT}:tenant/acme/tn-0001\",entity_type=\"RESOURCE\",resource_type=\"tenant\",resource_name=\"acme\""
    );
    assert_eq!(
        m.raw(&format!(
            "aws_ses_reputation_entity_sending_status{{{us},{tenant},status=\"DISABLED\"}}"
        )),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.raw(&format!(
            "aws_ses_reputation_entity_status_info{{{us},{tenant},source=\"aws_ses\",status=\"DISABLED\",cause=\"bounce rate above the policy's threshold\"}}"
        )),
        Some(1.0)
    );
    assert_eq!(
        m.raw(&format!(
            "aws_ses_reputation_entity_status_last_updated_timestamp_seconds{{{us},{tenant},source=\"aws_ses\"}}"
        )),
        Some(1_765_000_000.0)
    );
    // The identity entity carries the identity label of the identity's own series.
    let identity = format!(
        "entity_reference=\"arn:aws:ses:us-east-1:{ACCOUNT}:identity/shop.example.com\",entity_type=\"RESOURCE\",resource_type=\"identity\",resource_name=\"shop.example.com\",identity=\"shop.example.com\""
    );
    assert_eq!(
        m.raw(&format!(
            "aws_ses_reputation_entity_sending_status{{{us},{identity},status=\"DISABLED\"}}"
        )),
        Some(1.0)
    );
    assert!(m
        .raw(&format!(
            "aws_ses_identity_mail_from_status{{{us},identity=\"shop.example.com\",status=\"Success\"}}"
        ))
        .is_some());
    assert_eq!(
        m.raw(&format!(
            "aws_ses_reputation_entities{{{us},status=\"DISABLED\"}}"
        )),
        Some(2.0)
    );
    assert_eq!(
        m.raw(&format!(
            "aws_ses_reputation_entities{{{us},status=\"ENABLED\"}}"
        )),
        Some(1.0)
    );
}

#[test]
fn an_unverified_identity_shows_ses_reason_and_when_ses_last_checked() {
    let double = Double::start(&["--seed", "none", "--rate", "0"]);
    double.set_identity(
        "broken.example.com",
        r#"{"verification_status": "Failed", "dkim_enabled": true, "dkim_status": "Failed",
            "verification_error_type": "TYPE_NOT_FOUND", "verification_last_checked": 1765000000,
            "verification_last_success": 1764000000, "signing_origin": "AWS_SES",
            "signing_hosted_zone": "dkim.amazonses.com"}"#,
    );
    // A reason SES would give for the healthy one too: shown only if it were asked.
    double.set_identity(
        "fine.example.com",
        r#"{"verification_status": "Success", "dkim_enabled": true, "dkim_status": "Success",
            "verification_error_type": "INVALID_VALUE", "verification_last_checked": 1765000000}"#,
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
            "--collector.dkim",
            "--collector.identity_reasons",
        ],
    );
    exporter.wait_ready();
    let id = "identity=\"broken.example.com\"";
    let m = exporter.wait_metrics("SES's reason", |m| {
        m.get(&format!(
            "aws_ses_identity_verification_error{{{id},error_type=\"TYPE_NOT_FOUND\"}}"
        )) == Some(1.0)
    });
    promtool_check(&m.text);
    assert_eq!(
        m.get(&format!(
            "aws_ses_identity_verification_error{{{id},error_type=\"INVALID_VALUE\"}}"
        )),
        Some(0.0)
    );
    assert_eq!(
        m.identity(
            "aws_ses_identity_verification_last_checked_timestamp_seconds",
            "broken.example.com"
        ),
        Some(1_765_000_000.0)
    );
    assert_eq!(
        m.identity(
            "aws_ses_identity_verification_last_success_timestamp_seconds",
            "broken.example.com"
        ),
        Some(1_764_000_000.0)
    );
    assert_eq!(
        m.get(&format!(
            "aws_ses_identity_dkim_signing_info{{{id},origin=\"AWS_SES\",signing_hosted_zone=\"dkim.amazonses.com\"}}"
        )),
        Some(1.0)
    );
    // Only the unhealthy identity is asked about: the healthy one's reason never shows.
    let fine = m.series_of("fine.example.com");
    assert!(fine.iter().all(|s| !s.contains("error_type")), "{fine:?}");
    assert!(fine
        .iter()
        .all(|s| !s.starts_with("aws_ses_identity_reason_last_refresh")));
    let asked: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.action == "GetEmailIdentity")
        .collect();
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|r| r.status == 200));
    assert_eq!(m.requests("GetEmailIdentity", "client_error"), 0.0);
}

/// Calls of `action` in the double's records.
fn calls(double: &Double, action: &str) -> usize {
    double
        .requests()
        .iter()
        .filter(|r| r.action == action)
        .count()
}

#[test]
fn verification_of_10000_identities_takes_10_calls_with_the_new_action_and_works_without_it() {
    let double = Double::start(&["--seed", "none", "--seed-count", "9999", "--rate", "0"]);
    double.set_identity(
        "pending.example.com",
        r#"{"verification_status": "Pending"}"#,
    );
    let args = [
        "--ses.rate",
        "50",
        "--ses.pacing",
        "0",
        "--poll.interval",
        "1h",
        "--no-collector.mail_from",
        "--collector.verification",
    ];
    let listed = {
        let mut a = args.to_vec();
        a.extend(["--collector.verification.source", "list"]);
        a
    };
    let exporter = Exporter::start(&double.url(), None, &listed);
    exporter.wait_ready();
    let m = exporter.wait_metrics("10,000 identities verified", |m| {
        m.status_of("pending.example.com") == Some(1.0)
    });
    // 9,999 generated and one pending: 10,000 identities, one cycle, 10 pages.
    assert_eq!(calls(&double, "ListEmailIdentities"), 10);
    assert_eq!(calls(&double, "GetIdentityVerificationAttributes"), 0);
    assert_eq!(
        m.get("aws_ses_identity_verification_status{identity=\"id-09998.bench.example\",status=\"Success\"}"),
        Some(1.0)
    );
    drop(exporter);

    // Without ses:ListEmailIdentities (denied), the default source works as before,
    // asks nothing it may not, and no request fails.
    double.control("DELETE", "/_double/requests", "");
    double.set_faults(r#"{"actions": ["ListEmailIdentities"], "access_denied": true}"#);
    let exporter = Exporter::start(&double.url(), None, &args);
    exporter.wait_ready();
    let m = exporter.wait_metrics("10,000 identities verified", |m| {
        m.status_of("pending.example.com") == Some(1.0)
    });
    assert_eq!(calls(&double, "ListEmailIdentities"), 0);
    assert_eq!(calls(&double, "GetIdentityVerificationAttributes"), 100);
    for outcome in ["client_error", "server_error", "throttled"] {
        assert!(
            !m.text
                .lines()
                .any(|l| l.starts_with("aws_ses_exporter_ses_requests_total")
                    && l.contains(&format!("outcome=\"{outcome}\""))
                    && !l.ends_with(" 0")),
            "{outcome}"
        );
    }
    drop(exporter);

    // `list` chosen while the policy denies it: what an operator sees is the
    // refusal (counted, the collector's part failed), never an invented status.
    let exporter = Exporter::start(&double.url(), None, &listed);
    let m = exporter.wait_metrics("the refused listing counted", |m| {
        m.requests("ListEmailIdentities", "client_error") >= 1.0
    });
    assert_eq!(
        m.get("aws_ses_exporter_collector_success{collector=\"verification\"}"),
        Some(0.0)
    );
    assert!(
        !m.text.contains("aws_ses_identity_verification_status{"),
        "no status without an answer"
    );
    assert!(exporter.proc.log().contains("AccessDenied"));
}

trait VerificationOf {
    fn status_of(&self, identity: &str) -> Option<f64>;
}

impl VerificationOf for common::Metrics {
    /// The `Pending` line of an identity's verification status.
    fn status_of(&self, identity: &str) -> Option<f64> {
        self.get(&format!(
            "aws_ses_identity_verification_status{{identity=\"{identity}\",status=\"Pending\"}}"
        ))
    }
}
