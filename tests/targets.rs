//! Several targets and the dkim, verification and quota collectors, against the SES
//! double (which speaks STS too and keeps accounts and regions apart): what moto
//! cannot produce (DKIM and verification states other than Success, sending
//! disabled, faults in one region or one operation, a role that refuses the
//! exporter, two roles into the same account).

mod common;

use common::{get, promtool_check, Double, Exporter, Metrics, ACCOUNT, REGION};

const OTHER: &str = "210987654321";
const ROLE: &str = "arn:aws:iam::210987654321:role/ses-identity-exporter-target";

use common::target_labels as labels;

/// A raw series value, labels as written by the exporter.
fn value(m: &Metrics, series: &str) -> Option<f64> {
    m.raw(series)
}

#[test]
fn a_failing_target_never_holds_up_another_and_shows_its_failure_per_target() {
    let double = Double::start(&["--rate", "5"]);
    double.control(
        "PUT",
        "/_double/identities/eu.example.com?region=eu-west-1",
        r#"{"mail_from_domain": "bounce.eu.example.com", "status": "Success", "behavior": "RejectMessage"}"#,
    );
    // The role's trust policy wants another external ID than the exporter sends.
    double.control(
        "PUT",
        &format!("/_double/roles/{ROLE}"),
        r#"{"external_id": "the-right-one"}"#,
    );
    // SES refuses every call in eu-west-1.
    double.set_faults(r#"{"access_denied": true, "regions": ["eu-west-1"]}"#);
    let config = format!(
        "targets:\n  - region: us-east-1\n  - region: eu-west-1\n  - region: us-east-1\n    \
         role_arn: {ROLE}\n    external_id: the-configured-one\n"
    );
    let exporter = Exporter::start(
        &double.url(),
        Some(&config),
        &["--poll.interval", "1s", "--ses.rate", "5"],
    );
    // Ready: every target finished a first cycle and one of them got answers.
    exporter.wait_ready();
    let home = labels(ACCOUNT, REGION);
    let eu = labels(ACCOUNT, "eu-west-1");
    let role = labels(OTHER, REGION);
    let m = exporter.wait_metrics("each target's state", |m| {
        value(m, &format!("aws_ses_exporter_up{{{home}}}")) == Some(1.0)
            && value(
                m,
                &format!("aws_ses_exporter_ses_requests_total{{{eu},operation=\"ListIdentities\",outcome=\"client_error\"}}"),
            )
            .is_some_and(|v| v >= 1.0)
            && value(m, &format!("aws_ses_exporter_sts_requests_total{{{role},outcome=\"client_error\"}}"))
                .is_some_and(|v| v >= 1.0)
    });
    assert_eq!(m.status("failed-reject.example.com", "Failed"), Some(1.0));
    assert_eq!(
        value(&m, &format!("aws_ses_exporter_up{{{eu}}}")),
        Some(0.0)
    );
    // The role target is labelled with its role's account until STS can answer.
    assert_eq!(
        value(&m, &format!("aws_ses_exporter_up{{{role}}}")),
        Some(0.0)
    );
    assert!(
        !m.text.contains("identity=\"eu.example.com\""),
        "nothing invented for the refused region"
    );
    assert!(!m.text.contains(&format!("aws_ses_identity_exists{{{role}")));
    let log = exporter.proc.log();
    assert!(log.contains("AccessDenied"), "{log}");
    assert!(log.contains("STS request failed"), "{log}");
    assert_eq!(get(exporter.addr, "/-/ready").status, 200);
    promtool_check(&m.text);

    // Both causes fixed at AWS: the targets recover by themselves.
    double.set_faults("{}");
    double.control(
        "PUT",
        &format!("/_double/roles/{ROLE}"),
        r#"{"external_id": "the-configured-one"}"#,
    );
    double.control(
        "PUT",
        "/_double/identities/other.example.com?account=210987654321&region=us-east-1",
        r#"{"behavior": "UseDefaultValue"}"#,
    );
    let m = exporter.wait_metrics("every target up", |m| {
        [&home, &eu, &role]
            .iter()
            .all(|t| value(m, &format!("aws_ses_exporter_up{{{t}}}")) == Some(1.0))
    });
    assert_eq!(
        value(
            &m,
            &format!("aws_ses_identity_exists{{{eu},identity=\"eu.example.com\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            &format!("aws_ses_identity_exists{{{role},identity=\"other.example.com\"}}")
        ),
        Some(1.0)
    );
    // Each identity under its own account and region only.
    assert!(!m
        .text
        .contains(&format!("{home},identity=\"other.example.com\"")));
    assert!(!m
        .text
        .contains(&format!("{role},identity=\"failed-reject.example.com\"")));
    // The rate contract per (account, region, operation), at the server.
    let reqs = double.requests();
    let mut scopes = std::collections::BTreeMap::<(String, String, String), Vec<f64>>::new();
    for r in &reqs {
        scopes
            .entry((r.account.clone(), r.region.clone(), r.action.clone()))
            .or_default()
            .push(r.t);
    }
    assert!(scopes.len() >= 6, "{:?}", scopes.keys());
    for (scope, times) in &scopes {
        for w in times.windows(6) {
            assert!(
                w[5] - w[0] >= 1.0,
                "more than 5 requests in a second to {scope:?}"
            );
        }
    }
}

#[test]
fn dkim_verification_and_quota_follow_ses_and_a_failed_call_invents_nothing() {
    let double = Double::start(&["--rate", "5"]);
    double.set_identity(
        "odd.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Verifying", "verification_status": "TemporaryFailure"}"#,
    );
    double.control(
        "PUT",
        "/_double/account",
        r#"{"sending_enabled": true, "max_24_hour_send": 50000, "max_send_rate": 14, "sent_last_24_hours": 41000}"#,
    );
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--poll.interval",
            "1s",
            "--ses.rate",
            "5",
            "--collector.dkim",
            "--collector.verification",
            "--collector.quota",
        ],
    );
    exporter.wait_ready();
    let m = exporter.wait_metrics("the quota", |m| {
        m.get("aws_ses_account_sending_enabled").is_some()
    });
    let state = |family: &str, id: &str, status: &str| {
        m.get(&format!(
            "{family}{{identity=\"{id}\",status=\"{status}\"}}"
        ))
    };
    // The demo's DKIM status follows its MAIL FROM status.
    for (id, dkim) in [
        ("failed-reject.example.com", "Failed"),
        ("pending-default.example.com", "Pending"),
        ("temporaryfailure-reject.example.com", "TemporaryFailure"),
        ("success-default.example.com", "Success"),
        ("no-mail-from.example.com", "NotStarted"),
        ("odd.example.com", "Unknown"),
    ] {
        for s in [
            "Pending",
            "Success",
            "Failed",
            "TemporaryFailure",
            "NotStarted",
            "Unknown",
        ] {
            assert_eq!(
                state("aws_ses_identity_dkim_status", id, s),
                Some(f64::from(u8::from(s == dkim))),
                "{id} {s}"
            );
        }
    }
    assert_eq!(
        m.identity("aws_ses_identity_dkim_enabled", "failed-reject.example.com"),
        Some(1.0)
    );
    assert_eq!(
        m.identity("aws_ses_identity_dkim_enabled", "no-mail-from.example.com"),
        Some(0.0)
    );
    assert_eq!(
        state(
            "aws_ses_identity_verification_status",
            "ops@example.com",
            "Pending"
        ),
        Some(1.0)
    );
    assert_eq!(
        state(
            "aws_ses_identity_verification_status",
            "odd.example.com",
            "TemporaryFailure"
        ),
        Some(1.0)
    );
    assert_eq!(m.get("aws_ses_send_quota_max_emails"), Some(50000.0));
    assert_eq!(m.get("aws_ses_send_quota_max_send_rate"), Some(14.0));
    assert_eq!(m.get("aws_ses_send_quota_sent_emails"), Some(41000.0));
    assert_eq!(m.get("aws_ses_account_sending_enabled"), Some(1.0));
    for c in ["mail_from", "dkim", "verification", "quota"] {
        assert_eq!(
            m.get(&format!(
                "aws_ses_exporter_collector_success{{collector=\"{c}\"}}"
            )),
            Some(1.0),
            "{c}"
        );
    }
    promtool_check(&m.text);

    // AWS pauses sending: 0 and a warning.
    double.control(
        "PUT",
        "/_double/account",
        r#"{"sending_enabled": false, "max_24_hour_send": 50000, "max_send_rate": 14, "sent_last_24_hours": 41000}"#,
    );
    exporter.wait_metrics("sending disabled", |m| {
        m.get("aws_ses_account_sending_enabled") == Some(0.0)
    });
    assert!(exporter.proc.log().contains("DISABLED"));

    // GetAccountSendingEnabled fails: its last answer stays (never a made-up value),
    // the quota collector and the target report the failure, the others carry on.
    double.set_faults(r#"{"actions": ["GetAccountSendingEnabled"], "error_status": 503}"#);
    double.set_identity(
        "failed-reject.example.com",
        r#"{"mail_from_domain": "bounce.failed-reject.example.com", "status": "Success", "behavior": "RejectMessage", "dkim_enabled": true, "dkim_status": "Success"}"#,
    );
    let m = exporter.wait_metrics("the failure and the other collectors' news", |m| {
        m.get("aws_ses_exporter_collector_success{collector=\"quota\"}") == Some(0.0)
            && m.status("failed-reject.example.com", "Success") == Some(1.0)
            && state_of(
                m,
                "aws_ses_identity_dkim_status",
                "failed-reject.example.com",
                "Success",
            ) == Some(1.0)
    });
    assert_eq!(m.get("aws_ses_account_sending_enabled"), Some(0.0), "kept");
    assert_eq!(m.get("aws_ses_exporter_up"), Some(0.0));
    assert_eq!(
        m.get("aws_ses_exporter_collector_success{collector=\"mail_from\"}"),
        Some(1.0)
    );
    assert!(m.requests("GetAccountSendingEnabled", "server_error") >= 1.0);
    assert!(m.requests("GetSendQuota", "success") >= 1.0);

    // Each operation kept to its own limit at the server.
    let reqs = double.requests();
    for op in [
        "GetIdentityMailFromDomainAttributes",
        "GetIdentityDkimAttributes",
        "GetIdentityVerificationAttributes",
        "GetSendQuota",
        "GetAccountSendingEnabled",
    ] {
        let times: Vec<f64> = reqs
            .iter()
            .filter(|r| r.action == op)
            .map(|r| r.t)
            .collect();
        assert!(!times.is_empty(), "{op} called");
        for w in times.windows(6) {
            assert!(w[5] - w[0] >= 1.0, "more than 5 {op} in a second");
        }
    }
}

fn state_of(m: &Metrics, family: &str, id: &str, status: &str) -> Option<f64> {
    m.get(&format!(
        "{family}{{identity=\"{id}\",status=\"{status}\"}}"
    ))
}

/// Two targets whose credentials turn out (through STS) to be the same account in
/// the same region: the second is not polled, so no series is exported twice and the
/// account's budget is not spent twice.
#[test]
fn a_target_repeating_an_account_and_region_is_not_polled() {
    let double = Double::start(&["--rate", "5"]);
    let config = "targets:\n  - region: us-east-1\n  - region: us-east-1\n    \
                  role_arn: arn:aws:iam::123456789012:role/same-account\n";
    let exporter = Exporter::start(
        &double.url(),
        Some(config),
        &["--poll.interval", "1s", "--ses.rate", "5"],
    );
    exporter.wait_ready();
    let m = exporter.wait_metrics("the duplicate", |m| {
        m.get("aws_ses_exporter_duplicate_targets") == Some(1.0)
    });
    assert_eq!(m.get("aws_ses_exporter_up"), Some(1.0));
    assert_eq!(
        m.text.matches("aws_ses_exporter_up{").count(),
        1,
        "one target's health only:\n{}",
        m.text
    );
    promtool_check(&m.text);
    assert!(exporter
        .proc
        .log()
        .contains("same account and region as another target"));
    let m = Metrics::parse(&exporter.metrics());
    let exists = m
        .text
        .lines()
        .filter(|l| l.starts_with("aws_ses_identity_exists{") && l.contains("failed-reject"))
        .count();
    assert_eq!(exists, 1);
}

mod come_and_go {
    //! Targets added and removed while the exporter runs, in-process (`run_with`)
    //! with the scripted AWS double, so the running set can be reached.

    use std::sync::Arc;
    use std::time::Duration;

    use ses_identity_exporter::aws::TargetAws;
    use ses_identity_exporter::config::Config;
    use ses_identity_exporter::model::{
        BehaviorOnMxFailure, MailFromAttributes, MailFromStatus, TargetId,
    };
    use ses_identity_exporter::testing::{mail_from_for_all, Scripted};

    use super::common::dns::DnsServer;
    use super::common::in_process::{self, InProcess};
    use super::common::wait_for;

    const A: (&str, &str) = ("111111111111", "us-east-1");
    const B: (&str, &str) = ("222222222222", "eu-west-1");
    const C: (&str, &str) = ("333333333333", "ap-southeast-2");

    /// An account in a region whose every identity has a MAIL FROM in Success, named
    /// after the region (`bounce-REGION.IDENTITY`), so its DNS queries can be told
    /// apart.
    fn door((account, region): (&str, &str)) -> Arc<dyn TargetAws> {
        let aws = Scripted::new(region, account);
        let prefix = format!("bounce-{region}");
        aws.answer_with(move |request| {
            mail_from_for_all(request, |id| MailFromAttributes {
                domain: Some(format!("{prefix}.{id}")),
                status: Some(MailFromStatus::Success),
                behavior: BehaviorOnMxFailure::RejectMessage,
            })
        });
        aws
    }

    fn config(dir: &std::path::Path, regions: &[&str], dns_port: u16) -> Config {
        let targets: String = regions
            .iter()
            .map(|r| format!("  - region: {r}\n"))
            .collect();
        in_process::config(
            dir,
            &format!("config-{}.yaml", regions.join("-")),
            &format!("identities: [a.example.com, b.example.com]\ntargets:\n{targets}"),
            &[
                "--collector.quota",
                "--dns.nameserver",
                &format!("127.0.0.1:{dns_port}"),
            ],
        )
    }

    /// Scrapes until every target in `present` is up with its dns verdicts and
    /// quota, and no series of `absent` is left; returns that scrape.
    fn settled(running: &InProcess, present: &[(&str, &str)], absent: &[(&str, &str)]) -> String {
        wait_for(Duration::from_secs(60), "the targets to settle", || {
            let text = running.scrape();
            let ok = present.iter().all(|(account, region)| {
                let l = format!("aws_account_id=\"{account}\",aws_region=\"{region}\"");
                text.contains(&format!("aws_ses_exporter_up{{{l}}} 1\n"))
                    && text.contains(&format!("aws_ses_send_quota_max_emails{{{l}}} 200\n"))
                    && ["a", "b"].iter().all(|id| {
                        text.contains(&format!(
                            "aws_ses_identity_mail_from_spf_correct{{{l},identity=\"{id}.example.com\"}}"
                        ))
                    })
            }) && absent
                .iter()
                .all(|(account, _)| !text.contains(&format!("aws_account_id=\"{account}\"")));
            ok.then_some(text)
        })
    }

    /// The exposition without what may differ between two processes with the same
    /// targets: timestamps, counters, durations, the plan of the current cycle and
    /// the process's own metrics.
    fn stable(text: &str) -> String {
        text.lines()
            .filter(|l| {
                let name = l
                    .trim_start_matches("# HELP ")
                    .trim_start_matches("# TYPE ")
                    .split(['{', ' '])
                    .next()
                    .unwrap_or("");
                !(name.ends_with("_timestamp_seconds")
                    || name.ends_with("_total")
                    || name.starts_with("process_")
                    || name == "aws_ses_exporter_poll_duration_seconds"
                    || name == "aws_ses_exporter_ses_planned_request_rate")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn a_target_added_and_one_removed_leave_the_exposition_of_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut zone = serde_json::Map::new();
        for (_, region) in [A, B, C] {
            zone.insert(
                format!("bounce-{region}.a.example.com"),
                serde_json::json!({"MX": ["10 feedback-smtp.eu-west-1.amazonses.com"], "TXT": ["v=spf1 include:amazonses.com ~all"]}),
            );
            zone.insert(
                format!("bounce-{region}.b.example.com"),
                serde_json::json!({"MX": ["10 mx.example.net"], "TXT": []}),
            );
        }
        let dns = DnsServer::start(dir.path(), &serde_json::Value::Object(zone));
        // (Whether the removed target's facts went, so that the dns collector stops
        // looking its domains up, is not visible in the exposition: the publisher
        // drops parts of a removed target. src/target/tests.rs checks it.)

        let first = InProcess::start(
            config(dir.path(), &[A.1, B.1], dns.port),
            vec![door(A), door(B)],
        );
        settled(&first, &[A, B], &[]);
        let template = config(dir.path(), &[C.1], dns.port).targets[0].clone();
        let c = first
            .runtime
            .block_on(first.targets.add(&template, door(C)))
            .expect("added while running");
        assert_eq!(c, 2, "after the two start-up targets");
        settled(&first, &[A, B, C], &[]);
        let listed = first.runtime.block_on(first.targets.list());
        let a = listed
            .iter()
            .find(|(_, id)| *id == TargetId::new(A.0, A.1))
            .map(|(slot, _)| *slot)
            .expect("the first target is listed under its account");
        let removed = first.runtime.block_on(first.targets.remove(a));
        assert!(removed, "the first target was running");
        // Every series of the removed target is gone at once, the dns collector's too.
        let after = first.scrape();
        assert!(
            !after.contains(&format!("aws_account_id=\"{}\"", A.0)),
            "series of the removed target are left:\n{after}"
        );
        assert!(
            !first.runtime.block_on(first.targets.remove(a)),
            "removed once"
        );
        let changed = stable(&settled(&first, &[B, C], &[A]));
        first.shutdown();

        let fresh = InProcess::start(
            config(dir.path(), &[B.1, C.1], dns.port),
            vec![door(B), door(C)],
        );
        let expected = stable(&settled(&fresh, &[B, C], &[]));
        fresh.shutdown();
        assert_eq!(
            changed, expected,
            "after adding and removing, the exposition differs from a fresh start with the same targets"
        );
        assert!(changed.contains("aws_ses_identity_mail_from_mx_correct{aws_account_id=\"222222222222\",aws_region=\"eu-west-1\",identity=\"a.example.com\"} 1\n"), "{changed}");
        assert!(changed.contains("aws_ses_identity_mail_from_status{aws_account_id=\"333333333333\",aws_region=\"ap-southeast-2\",identity=\"b.example.com\",status=\"Success\"} 1\n"));
    }
}
