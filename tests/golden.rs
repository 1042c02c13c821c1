//! Golden files of the exposition: a fixture snapshot rendered to exact text, and the
//! real binary's `/metrics` against the demo double with only volatile values
//! masked. Set UPDATE_GOLDEN=1 to rewrite them; CI fails on any difference. Every
//! golden file, and a live scrape, must pass `promtool check metrics`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use ses_identity_exporter::collector::mail_from::render_identities;
use ses_identity_exporter::model::{
    BehaviorOnMxFailure, IdentityRecord, MailFromAttributes, MailFromStatus, Observation, Snapshot,
};

use common::dns::DnsServer;
use common::{manifest_dir, promtool_check, Double, Exporter};

fn golden(name: &str) -> PathBuf {
    manifest_dir().join("tests/golden").join(name)
}

fn assert_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(e, a)| e != a)
            .take(5)
            .map(|(e, a)| format!("-{e}\n+{a}"))
            .collect();
        panic!(
            "{} differs ({} vs {} lines); first differences:\n{}\nrun with UPDATE_GOLDEN=1 and review the diff",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

fn record(observation: Observation, secs: u64) -> IdentityRecord {
    IdentityRecord {
        observation,
        refreshed_at: UNIX_EPOCH + Duration::from_millis(secs * 1000 + 250),
    }
}

fn present(
    domain: Option<&str>,
    status: Option<MailFromStatus>,
    behavior: BehaviorOnMxFailure,
) -> Observation {
    Observation::Present(MailFromAttributes {
        domain: domain.map(str::to_owned),
        status,
        behavior,
    })
}

fn fixture() -> Snapshot {
    use BehaviorOnMxFailure::{RejectMessage, UseDefaultValue};
    use MailFromStatus::{Failed, Pending, Success, TemporaryFailure};
    let mut s = Snapshot::new();
    let t = 1_764_000_000;
    for (status, name) in [
        (Pending, "pending"),
        (Success, "success"),
        (Failed, "failed"),
        (TemporaryFailure, "tempfail"),
    ] {
        for (behavior, b) in [(UseDefaultValue, "default"), (RejectMessage, "reject")] {
            let id = format!("{name}-{b}.example.com");
            let domain = format!("mail.{id}");
            s.insert(
                id,
                record(present(Some(&domain), Some(status), behavior), t),
            );
        }
    }
    s.insert(
        "odd.example.com".into(),
        record(
            present(
                Some("mail.odd.example.com"),
                Some(MailFromStatus::Unknown),
                BehaviorOnMxFailure::Unknown,
            ),
            t,
        ),
    );
    // SES reported a status but left the domain out: a MAIL FROM is configured.
    s.insert(
        "nodomain.example.com".into(),
        record(present(None, Some(Failed), RejectMessage), t),
    );
    s.insert(
        "plain.example.com".into(),
        record(present(None, None, UseDefaultValue), t + 1),
    );
    s.insert(
        "ops@example.com".into(),
        record(present(None, None, UseDefaultValue), t + 1),
    );
    s.insert(
        "quote\"back\\slash@example.com".into(),
        record(present(None, None, RejectMessage), t + 2),
    );
    s.insert(
        "ghost.example.com".into(),
        record(Observation::Missing, t + 3),
    );
    s
}

#[test]
fn fixture_snapshot_renders_exactly() {
    assert_golden("identities.prom", &render_identities(&fixture()));
}

#[test]
fn only_missing_identities_render_only_exists_and_refresh() {
    let mut s = Snapshot::new();
    s.insert(
        "ghost.example.com".into(),
        record(Observation::Missing, 1_764_000_000),
    );
    assert_golden("missing-only.prom", &render_identities(&s));
}

/// Masks what changes from run to run; drops the process metrics (platform-specific).
fn stable(scrape: &str) -> String {
    masked(
        scrape,
        &[
            "_timestamp_seconds",
            "aws_ses_exporter_poll_duration_seconds",
            "aws_ses_exporter_rate_limit_wait_seconds_total",
        ],
    )
}

/// `stable` for a scrape taken after several cycles: counters and the planned rate
/// (the first cycle runs at the ceiling, later ones are paced) depend on how many
/// cycles ran, so their values are masked too; their series are still compared.
fn stable_over_cycles(scrape: &str) -> String {
    masked(
        scrape,
        &[
            "_timestamp_seconds",
            "_total{",
            "aws_ses_exporter_poll_duration_seconds",
            "aws_ses_exporter_ses_planned_request_rate",
        ],
    )
}

fn masked(scrape: &str, volatile: &[&str]) -> String {
    scrape
        .lines()
        .filter(|l| !l.starts_with("process_") && !l.contains(" process_"))
        .map(|l| {
            if l.starts_with('#') {
                l.to_owned()
            } else if l.starts_with("aws_ses_exporter_build_info{") {
                "aws_ses_exporter_build_info{...} 1".to_owned()
            } else if volatile.iter().any(|v| l.contains(v)) {
                let (series, _) = l.rsplit_once(' ').unwrap();
                format!("{series} <volatile>")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn demo_scrape_matches_golden_and_passes_promtool() {
    let double = Double::start(&[]);
    let exporter = Exporter::start(&double.url(), None, &[]);
    exporter.wait_ready();
    let scrape = exporter
        .wait_metrics("a complete cycle", |m| {
            m.get("aws_ses_exporter_up") == Some(1.0)
        })
        .text;
    promtool_check(&scrape);
    assert_golden("demo.prom", &stable(&scrape));
}

const MX_US: &str = "10 feedback-smtp.us-east-1.amazonses.com";
const MX_EU: &str = "10 feedback-smtp.eu-west-1.amazonses.com";
const SPF_OK: &str = "v=spf1 include:amazonses.com ~all";

/// Every collector on (MAIL FROM, DKIM, verification, quota, dns against a DNS
/// server on loopback) for two targets: the exposition a refactoring must keep byte
/// for byte. Every DNS answer is a definite one (records, NXDOMAIN, no records), so
/// the verdicts do not depend on timing.
#[test]
fn every_collector_for_two_targets_matches_golden() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(
        dir.path(),
        &serde_json::json!({
            "bounce.success-reject.example.com": {"MX": [MX_US], "TXT": [SPF_OK]},
            "bounce.success-default.example.com": {"MX": [MX_EU], "TXT": ["v=spf1 -all"]},
            "bounce.failed-default.example.com": {},
            "bounce.pending-reject.example.com": {"MX": [MX_US], "TXT": [SPF_OK, "v=spf1 -all"]},
            "bounce.pending-default.example.com": {"MX": [MX_US], "TXT": [SPF_OK]},
            "bounce.temporaryfailure-reject.example.com": {"MX": ["20 mx.example.net"], "TXT": [SPF_OK]},
            "bounce.temporaryfailure-default.example.com": {"MX": [MX_US], "TXT": []},
            "bounce.eu.example.com": {"MX": [MX_EU], "TXT": [SPF_OK]},
        }),
    );
    let double = Double::start(&["--rate", "5"]);
    double.set_identity(
        "odd.example.com",
        r#"{"behavior": "UseDefaultValue", "dkim_enabled": true, "dkim_status": "Verifying", "verification_status": "TemporaryFailure"}"#,
    );
    for (region, max) in [("us-east-1", 50000), ("eu-west-1", 200)] {
        double.control(
            "PUT",
            &format!("/_double/account?region={region}"),
            &format!(r#"{{"sending_enabled": true, "max_24_hour_send": {max}, "max_send_rate": 14, "sent_last_24_hours": 41}}"#),
        );
    }
    for (name, body) in [
        (
            "eu.example.com",
            r#"{"mail_from_domain": "bounce.eu.example.com", "status": "Success", "behavior": "RejectMessage"}"#,
        ),
        (
            "gone.eu.example.com",
            r#"{"mail_from_domain": "bounce.gone.eu.example.com", "status": "Failed", "behavior": "UseDefaultValue"}"#,
        ),
        ("ops@eu.example.com", r#"{"behavior": "UseDefaultValue"}"#),
    ] {
        double.control(
            "PUT",
            &format!("/_double/identities/{name}?region=eu-west-1"),
            body,
        );
    }
    let ns = format!("127.0.0.1:{}", dns.port);
    let exporter = Exporter::start(
        &double.url(),
        Some("targets:\n  - region: us-east-1\n  - region: eu-west-1\n"),
        &[
            "--poll.interval",
            "3s",
            "--ses.rate",
            "5",
            "--collector.dkim",
            "--collector.verification",
            "--collector.quota",
            "--dns.nameserver",
            &ns,
        ],
    );
    exporter.wait_ready();
    let scrape = exporter
        .wait_metrics(
            "every collector of both targets, every domain checked",
            |m| {
                // Counted in the text: `Metrics` drops the default target's labels.
                let lines = |family: &str| -> Vec<&str> {
                    m.text.lines().filter(|l| l.starts_with(family)).collect()
                };
                let count = |family: &str| lines(family).len();
                count("aws_ses_exporter_up{") == 2
                && lines("aws_ses_exporter_up{").iter().all(|l| l.ends_with(" 1"))
                && count("aws_ses_account_sending_enabled{") == 2
                // 10 MAIL FROM domains (the demo's 8, eu's 2), MX and SPF each.
                && count("aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds{") >= 20
                && lines("aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds{")
                    .iter()
                    .filter(|l| l.contains("record_type=\"mx\"") || l.contains("record_type=\"spf\""))
                    .count() == 20
                // Every identity's DMARC record looked up, and every domain's DKIM
                // CNAME records (the double gives each its tokens).
                && count("aws_ses_identity_dmarc_last_answer_timestamp_seconds{") == count("aws_ses_identity_exists{")
                && count("aws_ses_identity_dkim_dns_last_answer_timestamp_seconds{")
                    == lines("aws_ses_identity_dkim_last_refresh_timestamp_seconds{")
                        .iter()
                        .filter(|l| !l.contains('@'))
                        .count()
                // And every legacy record of a domain whose DKIM is not verified.
                && count("aws_ses_identity_verification_dns_last_answer_timestamp_seconds{")
                    == legacy_checks(&m.text)
            },
        )
        .text;
    promtool_check(&scrape);
    assert_golden("all-collectors.prom", &stable_over_cycles(&scrape));
}

/// The domain identities whose `_amazonses` record the dns collector checks: those
/// with a verification status whose Easy DKIM status is known and not `Success`.
fn legacy_checks(text: &str) -> usize {
    let identity = |l: &str| -> Option<String> {
        Some(l.split("identity=\"").nth(1)?.split('"').next()?.to_owned())
    };
    let with = |prefix: &str, suffix: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(suffix) && l.ends_with(" 1"))
            .filter_map(identity)
            .collect()
    };
    let verified = with("aws_ses_identity_verification_status{", "");
    let known = with("aws_ses_identity_dkim_status{", "");
    let unknown_or_success = with("aws_ses_identity_dkim_status{", "status=\"Success\"")
        .union(&with("aws_ses_identity_dkim_status{", "status=\"Unknown\""))
        .cloned()
        .collect::<std::collections::BTreeSet<String>>();
    verified
        .iter()
        .filter(|id| !id.contains('@') && known.contains(*id))
        .filter(|id| !unknown_or_success.contains(*id))
        .count()
}

#[test]
fn golden_files_pass_promtool() {
    let dir = manifest_dir().join("tests/golden");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "prom") && !is_masked(&path) {
            promtool_check(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The demo golden has masked values, so it is checked live instead.
fn is_masked(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "demo.prom" || n == "all-collectors.prom")
}
