//! A page end to end, through every real component: the SES double (two accounts ×
//! two regions) → the exporter → Prometheus with the shipped prometheus.yml and rule
//! file → Alertmanager with the shipped example config → a loopback webhook standing
//! in for the receivers.
//!
//! Scenario: one target (account B, us-east-1) goes stale (its SES calls fail with
//! 503) and its SesExporterStale fires; then an identity of account A in us-east-1
//! that was Success + RejectMessage turns Failed. Asserted: the pager receives that
//! identity's page exactly once, with its account, region and identity labels and a
//! runbook link to a heading that exists in docs/runbook.md, while B's stale alert
//! is firing (the old config's `equal: [job]` let it silence A's page). The time from
//! the SES change to the webhook call is printed (`--nocapture` shows it).
//!
//! Documented transforms, and nothing else:
//! - rules: every `for:` becomes `for: 10s`; `keep_firing_for` and expressions are
//!   unchanged (tests/common/prometheus.rs);
//! - prometheus.yml: the target becomes the test exporter, the Alertmanager the
//!   test's, the scrape and evaluation intervals 1s;
//! - alertmanager.yml: the receivers' `127.0.0.1:PORT` becomes the test's webhook
//!   (paths kept), every `group_wait` and `group_interval` is divided by 30 (30s →
//!   1s, 1m → 2s, 5m → 10s); routing, grouping and inhibitions as shipped
//!   (tests/common/alertmanager.rs);
//! - the exporter polls every 2s at 10 requests/s (the double allows 10/s).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::alertmanager::{shipped_config, Alertmanager, Notification, Webhook, TIME_SCALE};
use common::prometheus::Prometheus;
use common::{manifest_dir, wait_for, Double, Exporter};

const A: &str = common::ACCOUNT;
const B: &str = "210987654321";
const ROLE: &str = common::ESTATE_ROLE;
const IDENTITY: &str = "page.example.com";

/// The GitHub anchors of docs/runbook.md's headings: the heading text lower-cased,
/// spaces as `-`, punctuation other than `-` and `_` dropped.
fn runbook_anchors() -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest_dir().join("docs/runbook.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// The firing notifications at `path` that list an alert named `alertname`.
fn notifications_of<'a>(
    received: &'a [Notification],
    path: &str,
    alertname: &str,
) -> Vec<&'a Notification> {
    received
        .iter()
        .filter(|n| n.path == path && n.body["status"] == "firing")
        .filter(|n| n.alert_labels().iter().any(|l| l["alertname"] == alertname))
        .collect()
}

#[test]
fn a_failed_mail_from_pages_once_end_to_end_while_another_account_is_stale() {
    let double = Double::start(&["--seed", "none", "--rate", "10"]);
    double.control(
        "PUT",
        &format!("/_double/roles/{ROLE}"),
        r#"{"external_id": "e2e-external-id"}"#,
    );
    let healthy = format!(
        r#"{{"mail_from_domain": "bounce.{IDENTITY}", "status": "Success", "behavior": "RejectMessage"}}"#
    );
    // The same name in every account and region: only A/us-east-1's will fail.
    for account in [A, B] {
        for region in ["us-east-1", "eu-west-1"] {
            double.control(
                "PUT",
                &format!("/_double/identities/{IDENTITY}?account={account}&region={region}"),
                &healthy,
            );
        }
    }
    let config = common::estate_config();
    let exporter = Exporter::start(
        &double.url(),
        Some(&config),
        &["--ses.rate", "10", "--poll.interval", "2s"],
    );
    exporter.wait_ready();
    let webhook = Webhook::start();
    let am = Alertmanager::start(&shipped_config(webhook.addr));
    let prom =
        Prometheus::start_shipped(&exporter.addr.to_string(), "1s", Some(&am.addr.to_string()));
    wait_for(Duration::from_secs(60), "four targets up", || {
        let r = prom.query("aws_ses_exporter_up{job=\"ses-identity-exporter\"} == 1");
        (r.as_array().unwrap().len() == 4).then_some(())
    });

    // B/us-east-1 goes stale: every SES call there fails (STS still answers).
    double.set_faults(&format!(
        r#"{{"accounts": ["{B}"], "regions": ["us-east-1"], "error_status": 503}}"#
    ));
    let stale = wait_for(
        Duration::from_secs(90),
        "SesExporterStale of B/us-east-1 at the default receiver",
        || {
            let received = webhook.received();
            notifications_of(&received, "/alerts", "SesExporterStale")
                .first()
                .map(|n| (*n).clone())
        },
    );
    let stale_scopes: Vec<(String, String)> = stale
        .alert_labels()
        .iter()
        .map(|l| {
            (
                l["aws_account_id"].as_str().unwrap_or("").to_owned(),
                l["aws_region"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(stale_scopes, [(B.to_owned(), "us-east-1".to_owned())]);
    assert!(webhook.to("/page").is_empty(), "a page before the failure");

    // A/us-east-1's identity fails; its mail is refused from now on.
    double.control(
        "PUT",
        &format!("/_double/identities/{IDENTITY}?account={A}&region=us-east-1"),
        &format!(
            r#"{{"mail_from_domain": "bounce.{IDENTITY}", "status": "Failed", "behavior": "RejectMessage"}}"#
        ),
    );
    let t0 = Instant::now();
    let page = wait_for(Duration::from_secs(120), "the page", || {
        webhook.to("/page").into_iter().next()
    });
    let latency = page.arrived - t0;
    eprintln!(
        "SES change -> pager webhook: {:.1} s (poll 2s, scrape/eval 1s, for 10s, group_wait 1s)",
        latency.as_secs_f64()
    );

    // While it is paged, B's stale alert is firing and inhibits nothing of A.
    let alerts = am.alerts();
    let state_of = |name: &str, account: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["aws_account_id"] == account)
            .map(|a| a["status"].clone())
            .unwrap_or_else(|| panic!("no {name} of {account} in Alertmanager: {alerts:?}"))
    };
    assert_eq!(state_of("SesExporterStale", B)["state"], "active");
    let paged = state_of("SesMailFromFailedRejectingMail", A);
    assert_eq!(paged["state"], "active", "{paged}");

    // Exactly one page: nothing more within three (scaled) group intervals of the
    // critical route, the only time a second one could come.
    let window = Duration::from_secs(60) / TIME_SCALE * 3;
    std::thread::sleep(window.saturating_sub(page.arrived.elapsed()));
    let pages = webhook.to("/page");
    assert_eq!(
        pages.len(),
        1,
        "{:#?}",
        pages.iter().map(|p| &p.body).collect::<Vec<_>>()
    );
    let body = &pages[0].body;
    assert_eq!(body["receiver"], "pager");
    assert_eq!(body["status"], "firing");
    let listed = body["alerts"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    let labels = &listed[0]["labels"];
    assert_eq!(labels["alertname"], "SesMailFromFailedRejectingMail");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["aws_account_id"], A);
    assert_eq!(labels["aws_region"], "us-east-1");
    assert_eq!(labels["identity"], IDENTITY);
    assert_eq!(labels["mail_from_domain"], format!("bounce.{IDENTITY}"));

    // The runbook link (annotation `runbook_url`, or `runbook`) names a heading.
    let annotations = &listed[0]["annotations"];
    let link = annotations["runbook_url"]
        .as_str()
        .or(annotations["runbook"].as_str())
        .unwrap_or_else(|| panic!("no runbook annotation: {annotations}"));
    let anchor = link
        .split_once("docs/runbook.md#")
        .map(|(_, a)| a)
        .unwrap_or_else(|| panic!("runbook link {link} does not point into docs/runbook.md"));
    let anchors = runbook_anchors();
    assert!(
        anchors.contains(anchor),
        "docs/runbook.md has no heading for #{anchor}"
    );
}

/// Issue #22's pages through every real component: A/us-east-1 is paused by SES
/// (SHUTDOWN), B/us-east-1 is under review (PROBATION), and a tenant of the healthy
/// A/eu-west-1 is disabled by SES; then the same identity fails (MAIL FROM Failed,
/// RejectMessage) in A/us-east-1, B/us-east-1 and A/eu-west-1. Asserted: the pager
/// gets the SHUTDOWN, the disabled tenant, and the identity pages of B/us-east-1 and
/// A/eu-west-1, but not A/us-east-1's identity page, which the SHUTDOWN inhibits
/// (Alertmanager holds it as suppressed); the PROBATION warns at the default
/// receiver, as the runbook says.
#[test]
fn a_shutdown_pages_and_silences_only_its_own_accounts_identity_pages() {
    let double = Double::start(&["--seed", "none", "--rate", "10"]);
    double.control(
        "PUT",
        &format!("/_double/roles/{ROLE}"),
        r#"{"external_id": "e2e-external-id"}"#,
    );
    let identity = |status: &str| {
        format!(
            r#"{{"mail_from_domain": "bounce.{IDENTITY}", "status": "{status}", "behavior": "RejectMessage"}}"#
        )
    };
    for account in [A, B] {
        for region in ["us-east-1", "eu-west-1"] {
            double.control(
                "PUT",
                &format!("/_double/identities/{IDENTITY}?account={account}&region={region}"),
                &identity("Success"),
            );
        }
    }
    let config = common::estate_config();
    let exporter = Exporter::start(
        &double.url(),
        Some(&config),
        &[
            "--ses.rate",
            "10",
            "--poll.interval",
            "2s",
            "--collector.account",
            "--collector.reputation_entities",
        ],
    );
    exporter.wait_ready();
    let webhook = Webhook::start();
    let am = Alertmanager::start(&shipped_config(webhook.addr));
    let prom =
        Prometheus::start_shipped(&exporter.addr.to_string(), "1s", Some(&am.addr.to_string()));
    wait_for(Duration::from_secs(60), "four healthy accounts", || {
        let r = prom.query(
            "aws_ses_account_enforcement_status{job=\"ses-identity-exporter\",status=\"HEALTHY\"} == 1",
        );
        (r.as_array().unwrap().len() == 4).then_some(())
    });

    double.control(
        "PUT",
        &format!("/_double/account?account={A}&region=us-east-1"),
        r#"{"enforcement_status": "SHUTDOWN", "sending_enabled": false}"#,
    );
    double.control(
        "PUT",
        &format!("/_double/account?account={B}&region=us-east-1"),
        r#"{"enforcement_status": "PROBATION"}"#,
    );
    let tenant = format!("arn:aws:ses:eu-west-1:{A}:tenant/acme/tn-0001");
    double.control(
        "PUT",
        &format!("/_double/reputation-entities?account={A}&region=eu-west-1"),
        &format!(
            r#"[{{"reference": "{tenant}", "ses_status": "DISABLED", "ses_cause": "complaints"}}]"#
        ),
    );
    for (account, region) in [(A, "us-east-1"), (B, "us-east-1"), (A, "eu-west-1")] {
        double.control(
            "PUT",
            &format!("/_double/identities/{IDENTITY}?account={account}&region={region}"),
            &identity("Failed"),
        );
    }

    // What each receiver got, as (alertname, account, region).
    let got = |path: &str| -> BTreeSet<(String, String, String)> {
        webhook
            .to(path)
            .iter()
            .filter(|n| n.body["status"] == "firing")
            .flat_map(|n| n.alert_labels())
            .map(|l| {
                (
                    l["alertname"].as_str().unwrap_or("").to_owned(),
                    l["aws_account_id"].as_str().unwrap_or("").to_owned(),
                    l["aws_region"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let key = |name: &str, account: &str, region: &str| {
        (name.to_owned(), account.to_owned(), region.to_owned())
    };
    let expected_pages = [
        key("SesAccountSendingPaused", A, "us-east-1"),
        key("SesReputationEntityDisabled", A, "eu-west-1"),
        key("SesMailFromFailedRejectingMail", B, "us-east-1"),
        key("SesMailFromFailedRejectingMail", A, "eu-west-1"),
    ];
    wait_for(
        Duration::from_secs(120),
        "the four pages and the review warning",
        || {
            let pages = got("/page");
            let warnings = got("/alerts");
            (expected_pages.iter().all(|k| pages.contains(k))
                && warnings.contains(&key("SesAccountUnderReview", B, "us-east-1")))
            .then_some(())
        },
    );
    // A/us-east-1's identity alert fires in Alertmanager, held back by the SHUTDOWN.
    let suppressed = wait_for(
        Duration::from_secs(30),
        "A/us-east-1's page suppressed",
        || {
            am.alerts().into_iter().find(|a| {
                a["labels"]["alertname"] == "SesMailFromFailedRejectingMail"
                    && a["labels"]["aws_account_id"] == A
                    && a["labels"]["aws_region"] == "us-east-1"
            })
        },
    );
    assert_eq!(suppressed["status"]["state"], "suppressed", "{suppressed}");
    // Past three (scaled) group intervals of the critical route: it never paged.
    std::thread::sleep(Duration::from_secs(60) / TIME_SCALE * 3);
    let pages = got("/page");
    assert!(
        !pages.contains(&key("SesMailFromFailedRejectingMail", A, "us-east-1")),
        "{pages:?}"
    );
    assert!(!got("/page").contains(&key("SesAccountUnderReview", B, "us-east-1")));
    // The tenant's page names it.
    let notifications = webhook.to("/page");
    let tenant_page = notifications
        .iter()
        .flat_map(|n| n.alert_labels())
        .find(|l| l["alertname"] == "SesReputationEntityDisabled")
        .expect("the tenant's page");
    assert_eq!(tenant_page["resource_type"], "tenant");
    assert_eq!(tenant_page["resource_name"], "acme");
    assert_eq!(tenant_page["entity_reference"], tenant.as_str());
}
