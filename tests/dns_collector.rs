//! The dns collector against a real authoritative DNS server on loopback (Python's
//! dnslib, tests/dns/server.py) serving right, wrong, missing, failing and slow
//! answers for the SES double's demo identities. No query leaves the machine: the
//! exporter is given only that server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::dns::DnsServer;
use common::{promtool_check, wait_for, Double, Exporter, Metrics};

const MX_OK: &str = "10 feedback-smtp.us-east-1.amazonses.com";
const SPF_OK: &str = "v=spf1 include:amazonses.com ~all";

fn zones() -> serde_json::Value {
    serde_json::json!({
        "bounce.success-reject.example.com": {"MX": [MX_OK], "TXT": [SPF_OK]},
        // Another region's host; an SPF record without SES.
        "bounce.success-default.example.com": {
            "MX": ["10 feedback-smtp.eu-west-1.amazonses.com"],
            "TXT": ["v=spf1 include:_spf.google.com ~all"]
        },
        // bounce.failed-reject.example.com: absent, NXDOMAIN.
        // Exists, with neither MX nor TXT.
        "bounce.failed-default.example.com": {},
        "bounce.pending-reject.example.com": {"servfail": true},
        "bounce.pending-default.example.com": {"delay_ms": 3000, "MX": [MX_OK], "TXT": [SPF_OK]},
        // Two SPF records: an SPF error for every receiver.
        "bounce.temporaryfailure-reject.example.com": {
            "MX": [MX_OK], "TXT": [SPF_OK, "v=spf1 -all"]
        },
        "bounce.temporaryfailure-default.example.com": {
            "MX": ["20 mx.example.net", MX_OK],
            "TXT": ["some-verification=abc", "v=spf1 ip4:192.0.2.1 include:amazonses.com -all"]
        },
    })
}

/// The `outcome` values of `aws_ses_identity_mail_from_dns_lookup`, a state set.
const OUTCOMES: [&str; 6] = [
    "ok",
    "nxdomain",
    "no_records",
    "servfail",
    "timeout",
    "error",
];

fn lookup(m: &Metrics, identity: &str, record: &str, outcome: &str) -> Option<f64> {
    m.get(&format!(
        "aws_ses_identity_mail_from_dns_lookup{{identity=\"{identity}\",record=\"{record}\",outcome=\"{outcome}\"}}"
    ))
}

/// When DNS last answered for the verdict of `record_type` (`mx`, `spf`).
fn answered(m: &Metrics, identity: &str, record_type: &str) -> Option<f64> {
    m.get(&format!(
        "aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds{{identity=\"{identity}\",record_type=\"{record_type}\"}}"
    ))
}

fn checked(m: &Metrics, identity: &str) -> Option<f64> {
    m.identity(
        "aws_ses_identity_mail_from_dns_last_check_timestamp_seconds",
        identity,
    )
}

fn verdict(m: &Metrics, family: &str, identity: &str) -> Option<f64> {
    m.identity(
        &format!("aws_ses_identity_mail_from_{family}_correct"),
        identity,
    )
}

#[test]
fn mx_and_spf_are_checked_in_dns_and_a_failed_lookup_invents_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(dir.path(), &zones());
    let double = Double::start(&["--seed", "demo"]);
    let ns = format!("127.0.0.1:{}", dns.port);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--poll.interval",
            "4s",
            "--dns.nameserver",
            &ns,
            "--dns.timeout",
            "1s",
            "--dns.concurrency",
            "2",
        ],
    );
    let m = exporter.wait_metrics("a DNS round", |m| {
        lookup(m, "pending-default.example.com", "MX", "timeout") == Some(1.0)
            && verdict(m, "mx", "temporaryfailure-default.example.com").is_some()
    });
    let expect = |id: &str, mx: Option<f64>, spf: Option<f64>, outcome: &str| {
        assert_eq!(verdict(&m, "mx", id), mx, "{id} mx\n{}", m.text);
        assert_eq!(verdict(&m, "spf", id), spf, "{id} spf");
        assert_eq!(lookup(&m, id, "MX", outcome), Some(1.0), "{id} MX outcome");
        // A state set: every other outcome's series is there, at 0.
        for other in OUTCOMES.iter().filter(|o| **o != outcome) {
            assert_eq!(lookup(&m, id, "MX", other), Some(0.0), "{id} MX {other}");
        }
    };
    expect("success-reject.example.com", Some(1.0), Some(1.0), "ok");
    expect("success-default.example.com", Some(0.0), Some(0.0), "ok");
    expect(
        "failed-reject.example.com",
        Some(0.0),
        Some(0.0),
        "nxdomain",
    );
    expect(
        "failed-default.example.com",
        Some(0.0),
        Some(0.0),
        "no_records",
    );
    // No answer: no verdict at all, only the outcome.
    expect("pending-reject.example.com", None, None, "servfail");
    expect("pending-default.example.com", None, None, "timeout");
    expect(
        "temporaryfailure-reject.example.com",
        Some(1.0),
        Some(0.0),
        "ok",
    );
    expect(
        "temporaryfailure-default.example.com",
        Some(1.0),
        Some(1.0),
        "ok",
    );
    promtool_check(&m.text);
    // Identities without a custom MAIL FROM domain are not looked up.
    assert_eq!(verdict(&m, "mx", "no-mail-from.example.com"), None);
    assert!(m
        .get("aws_ses_exporter_dns_lookups_total{outcome=\"nxdomain\",record=\"MX\"}")
        .is_some_and(|v| v >= 1.0));
    let check = checked(&m, "success-reject.example.com").expect("last check time");
    assert!(check > 1.7e9);
    // Every verdict has the time of its answer, here the last lookup's (NXDOMAIN and
    // no records are answers); one that DNS never gave has none, not a made-up 0.
    for id in [
        "success-reject.example.com",
        "success-default.example.com",
        "failed-reject.example.com",
        "failed-default.example.com",
        "temporaryfailure-reject.example.com",
        "temporaryfailure-default.example.com",
    ] {
        for record_type in ["mx", "spf"] {
            let t = answered(&m, id, record_type);
            assert!(
                t.is_some_and(|t| t > 1.7e9) && t == checked(&m, id),
                "{id} {record_type} answered at {t:?}\n{}",
                m.text
            );
        }
    }
    for id in ["pending-reject.example.com", "pending-default.example.com"] {
        assert!(
            !m.series_of(id)
                .iter()
                .any(|s| s.contains("mail_from_dns_last_answer_timestamp_seconds")),
            "{id}: an answer time without an answer\n{}",
            m.text
        );
    }
    let record_types: std::collections::BTreeSet<&str> = m
        .text
        .lines()
        .filter(|l| l.starts_with("aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds{"))
        .filter_map(|l| l.split("record_type=\"").nth(1)?.split('"').next())
        .collect();
    // spf_evaluation too: two SPF records are a permerror without evaluating either
    // (amazonses.com's record, which the evaluation needs, is not served here).
    assert_eq!(record_types, ["mx", "spf", "spf_evaluation"].into());
    assert_eq!(
        m.get("aws_ses_identity_mail_from_spf_status{identity=\"temporaryfailure-reject.example.com\",status=\"permerror\"}"),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.get("aws_ses_identity_mail_from_spf_status{identity=\"success-reject.example.com\",status=\"pass\"}"),
        None,
        "not evaluated without SES's sending address"
    );

    // Spread, not a burst: 8 domains in a 4 s interval are asked about 0.5 s apart;
    // and never more than 2 domains (4 queries) in flight.
    // (The server logs a query once answered: the slow one 3 s late.)
    let (queries, firsts) = wait_for(
        Duration::from_secs(15),
        "8 domains in the query log",
        || {
            let queries = dns.queries();
            let mut firsts: Vec<f64> = Vec::new();
            for (t, _, name, kind) in &queries {
                let earlier =
                    |(u, _, n, k): &(f64, f64, String, String)| n == name && k == "MX" && u < t;
                if kind == "MX" && !queries.iter().any(earlier) {
                    firsts.push(*t);
                }
            }
            (firsts.len() == 8).then_some((queries, firsts))
        },
    );
    let span = firsts.iter().cloned().fold(f64::MIN, f64::max)
        - firsts.iter().cloned().fold(f64::MAX, f64::min);
    assert!(span >= 2.0, "first lookups within {span:.2} s: a burst");
    let in_flight = queries
        .iter()
        .map(|(t, _, _, _)| {
            queries
                .iter()
                .filter(|(u, e, _, _)| u <= t && e > t)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        in_flight <= 4,
        "{in_flight} queries at once with --dns.concurrency 2"
    );

    // The records change: success-reject loses its MX (SES still says Success: the
    // case the alert is for); temporaryfailure-default's server turns slow and
    // temporaryfailure-reject's fails (SERVFAIL). Answers are cached for at least
    // 30 s, so this takes up to a minute.
    let mut changed = zones();
    changed["bounce.success-reject.example.com"] = serde_json::json!({"TXT": [SPF_OK]});
    changed["bounce.temporaryfailure-default.example.com"]["delay_ms"] = serde_json::json!(3000);
    changed["bounce.temporaryfailure-reject.example.com"]["servfail"] = serde_json::json!(true);
    dns.set(&changed);
    let m = wait_for(Duration::from_secs(90), "the changes to show", || {
        let m = Metrics::parse(&exporter.metrics());
        (verdict(&m, "mx", "success-reject.example.com") == Some(0.0)
            && lookup(&m, "temporaryfailure-default.example.com", "MX", "timeout") == Some(1.0)
            && lookup(&m, "temporaryfailure-reject.example.com", "MX", "servfail") == Some(1.0))
        .then_some(m)
    });
    assert_eq!(
        lookup(&m, "success-reject.example.com", "MX", "no_records"),
        Some(1.0)
    );
    assert_eq!(verdict(&m, "spf", "success-reject.example.com"), Some(1.0));
    // The slow server's last answers stand: a timeout is not "record missing".
    assert_eq!(
        verdict(&m, "mx", "temporaryfailure-default.example.com"),
        Some(1.0)
    );
    assert_eq!(
        verdict(&m, "spf", "temporaryfailure-default.example.com"),
        Some(1.0)
    );
    assert_eq!(
        verdict(&m, "mx", "temporaryfailure-reject.example.com"),
        Some(1.0)
    );
    assert_eq!(
        verdict(&m, "spf", "temporaryfailure-reject.example.com"),
        Some(0.0)
    );
    // And so do the times of those answers, while the check time moves on: a kept
    // verdict shows its age.
    for id in [
        "temporaryfailure-default.example.com",
        "temporaryfailure-reject.example.com",
    ] {
        let check = checked(&m, id).expect("last check time");
        for record_type in ["mx", "spf"] {
            let t = answered(&m, id, record_type).expect("answer time kept");
            assert!(
                t < check,
                "{id} {record_type}: answered at {t}, checked at {check}\n{}",
                m.text
            );
        }
    }
    // An answer moves it: success-reject's MX went missing (no records) just now.
    assert!(
        answered(&m, "success-reject.example.com", "mx")
            .is_some_and(|t| Some(t) == checked(&m, "success-reject.example.com")),
        "{}",
        m.text
    );
    let log = exporter.proc.log();
    assert!(
        log.contains("no longer points at SES") && log.contains("success-reject.example.com"),
        "{log}"
    );

    // Answers are cached, at least 30 s even with a TTL of 0 (the zones' TTL): an
    // unchanged name answered `ok` is not asked again every 4 s poll interval.
    let asked: Vec<f64> = dns
        .queries()
        .iter()
        .filter(|(_, _, name, kind)| name == "bounce.success-default.example.com" && kind == "MX")
        .map(|(t, _, _, _)| *t)
        .collect();
    // About 40 s have passed: 10 rounds, yet at most 2 queries.
    assert!(
        !asked.is_empty() && asked.len() <= 2,
        "queries for a cached name: {asked:?}"
    );
    for pair in asked.windows(2) {
        assert!(
            pair[1] - pair[0] >= 29.0,
            "asked again after {:.1} s",
            pair[1] - pair[0]
        );
    }
}

#[test]
fn the_collector_can_be_switched_off_and_takes_ip_addresses_only() {
    let double = Double::start(&["--seed", "demo"]);
    let exporter = Exporter::start(&double.url(), None, &["--poll.interval", "1h"]);
    exporter.wait_ready();
    let text = exporter.metrics();
    assert!(!text.contains("aws_ses_identity_mail_from_mx_correct"));
    assert!(!text.contains("aws_ses_exporter_dns_lookups_total"));
    let out = Command::new(common::EXPORTER)
        .env_clear()
        .args(["--config.check", "--dns.nameserver", "dns.google"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dns.nameserver"));
}
