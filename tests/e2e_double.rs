//! The real exporter binary, through the real AWS SDK, against the SES double: the
//! cases moto cannot produce (statuses other than Success, throttling, outages,
//! paging) and the HTTP surface.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{get, http, Double, Exporter, Metrics};

const GET_OP: &str = "GetIdentityMailFromDomainAttributes";
const LIST_OP: &str = "ListIdentities";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn every_status_and_behavior_is_exported_as_ses_reports_it() {
    let double = Double::start(&[]);
    // A value this build does not know must show as Unknown, not as a guess.
    double.set_identity(
        "odd.example.com",
        r#"{"mail_from_domain":"bounce.odd.example.com","status":"Verifying","behavior":"Bounce"}"#,
    );
    let exporter = Exporter::start(&double.url(), None, &[]);
    exporter.wait_ready();
    let m = Metrics::parse(&exporter.metrics());

    for (status, short) in [
        ("Pending", "pending"),
        ("Success", "success"),
        ("Failed", "failed"),
        ("TemporaryFailure", "temporaryfailure"),
    ] {
        for (behavior, b) in [("UseDefaultValue", "default"), ("RejectMessage", "reject")] {
            let id = format!("{short}-{b}.example.com");
            for s in [
                "Pending",
                "Success",
                "Failed",
                "TemporaryFailure",
                "Unknown",
            ] {
                assert_eq!(
                    m.status(&id, s),
                    Some(f64::from(u8::from(s == status))),
                    "{id} {s}"
                );
            }
            for other in ["UseDefaultValue", "RejectMessage"] {
                let series = format!(
                    "aws_ses_identity_mail_from_behavior_on_mx_failure{{identity=\"{id}\",behavior=\"{other}\"}}"
                );
                assert_eq!(
                    m.get(&series),
                    Some(f64::from(u8::from(other == behavior))),
                    "{series}"
                );
            }
            assert_eq!(
                m.identity("aws_ses_identity_mail_from_configured", &id),
                Some(1.0)
            );
            let info = format!(
                "aws_ses_identity_mail_from_info{{identity=\"{id}\",identity_type=\"Domain\",mail_from_domain=\"bounce.{id}\"}}"
            );
            assert_eq!(m.get(&info), Some(1.0), "{info}");
        }
    }
    assert_eq!(m.status("odd.example.com", "Unknown"), Some(1.0));
    assert_eq!(m.status("odd.example.com", "Success"), Some(0.0));
    assert_eq!(
        m.get("aws_ses_identity_mail_from_behavior_on_mx_failure{identity=\"odd.example.com\",behavior=\"RejectMessage\"}"),
        Some(0.0)
    );
    // No custom MAIL FROM: configured 0 and no status state set at all.
    for id in ["no-mail-from.example.com", "ops@example.com"] {
        assert_eq!(
            m.identity("aws_ses_identity_mail_from_configured", id),
            Some(0.0)
        );
        assert_eq!(m.status(id, "Success"), None);
    }
    assert_eq!(
        m.get("aws_ses_identity_mail_from_info{identity=\"ops@example.com\",identity_type=\"EmailAddress\",mail_from_domain=\"\"}"),
        Some(1.0)
    );
    assert_eq!(m.get("aws_ses_exporter_identities"), Some(11.0));
    assert_eq!(m.get("aws_ses_exporter_up"), Some(1.0));
}

#[test]
fn a_status_change_shows_after_the_next_cycle_and_is_logged() {
    let double = Double::start(&[]);
    let exporter = Exporter::start(&double.url(), None, &["--poll.interval", "2s"]);
    exporter.wait_ready();
    assert_eq!(
        Metrics::parse(&exporter.metrics()).status("success-reject.example.com", "Success"),
        Some(1.0)
    );
    double.set_identity(
        "success-reject.example.com",
        r#"{"mail_from_domain":"bounce.success-reject.example.com","status":"Failed","behavior":"RejectMessage"}"#,
    );
    let m = exporter.wait_metrics("the Failed status", |m| {
        m.status("success-reject.example.com", "Failed") == Some(1.0)
    });
    assert_eq!(m.status("success-reject.example.com", "Success"), Some(0.0));
    // The line is written before the value is published, but it reaches this test
    // through a thread reading the exporter's stderr: wait for that thread, a
    // little, rather than race it.
    let logged = |log: &str| {
        log.lines().any(|l| {
            l.contains("MAIL FROM state changed")
                && l.contains("identity=success-reject.example.com")
                && l.contains("level=info")
        })
    };
    let seen = common::wait_for_or(Duration::from_secs(5), || {
        logged(&exporter.proc.log()).then_some(())
    });
    let log = exporter.proc.log();
    assert!(seen.is_some(), "status change not logged at info:\n{log}");
}

/// The rate contract at the server: with the production retry settings and the double
/// throttling every third request, no window of one second holds more than R requests
/// of one operation, and the throttled batches are still fetched in the same cycle.
fn rate_contract(rate: u32) {
    let rate_s = rate.to_string();
    // 350 + 10 demo identities: 4 batches of GetIdentityMailFromDomainAttributes.
    let double = Double::start(&["--seed-count", "350", "--rate", &rate_s]);
    double.set_faults(r#"{"throttle_every": 3}"#);
    let started = now();
    let exporter = Exporter::start(&double.url(), None, &["--ses.rate", &rate_s]);
    let m = exporter.wait_metrics("a complete cycle", |m| {
        m.get("aws_ses_exporter_up") == Some(1.0)
    });

    let requests = double.requests();
    for op in [GET_OP, LIST_OP] {
        let times: Vec<f64> = requests
            .iter()
            .filter(|r| r.action == op)
            .map(|r| r.t)
            .collect();
        let r = rate as usize;
        for i in 0..times.len().saturating_sub(r) {
            let gap = times[i + r] - times[i];
            assert!(
                gap >= 0.99,
                "{op}: requests {i} and {} arrived {gap:.4}s apart at rate {rate}: {times:?}",
                i + r
            );
        }
    }
    let throttled = requests.iter().filter(|r| r.outcome == "throttled").count();
    assert!(throttled >= 1, "the double throttled nothing: {requests:?}");
    assert_eq!(
        m.requests(GET_OP, "throttled") + m.requests(LIST_OP, "throttled"),
        throttled as f64,
        "every throttled attempt is counted"
    );
    let gets = requests.iter().filter(|r| r.action == GET_OP).count() as f64;
    assert_eq!(
        m.requests(GET_OP, "success") + m.requests(GET_OP, "throttled"),
        gets
    );
    // Every identity was fetched in this first cycle, throttled batches included.
    let refreshed: Vec<f64> = m
        .samples
        .iter()
        .filter(|(k, _)| k.starts_with("aws_ses_identity_last_refresh_timestamp_seconds"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(refreshed.len(), 360);
    assert!(refreshed.iter().all(|t| *t >= started));
    assert_eq!(m.get("aws_ses_exporter_poll_overruns_total"), Some(0.0));
    assert!(
        m.get("aws_ses_exporter_rate_limit_wait_seconds_total")
            .unwrap()
            > 0.0
    );
}

#[test]
fn rate_contract_holds_at_one_request_per_second_under_throttling() {
    rate_contract(1);
}

#[test]
fn rate_contract_holds_at_three_requests_per_second_under_throttling() {
    rate_contract(3);
}

#[test]
fn an_outage_keeps_the_last_values_and_reports_down_then_recovers() {
    let double = Double::start(&["--rate", "5"]);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &["--poll.interval", "1s", "--ses.rate", "5"],
    );
    exporter.wait_ready();
    let good = Metrics::parse(&exporter.metrics());
    assert_eq!(good.get("aws_ses_exporter_up"), Some(1.0));

    double.set_faults(r#"{"error_status": 503}"#);
    let down = exporter.wait_metrics("up to drop to 0", |m| {
        m.get("aws_ses_exporter_up") == Some(0.0)
    });
    let failing_since = now();
    // Scrapes during the outage: the identity values are exactly the last good ones.
    for _ in 0..3 {
        let m = Metrics::parse(&exporter.metrics());
        let identity_series = |m: &Metrics| -> Vec<(String, f64)> {
            m.samples
                .iter()
                .filter(|(k, _)| k.starts_with("aws_ses_identity_") && !k.contains("last_refresh"))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        assert_eq!(identity_series(&m), identity_series(&good));
        assert!(m.get("aws_ses_identity_last_refresh_timestamp_seconds{identity=\"failed-reject.example.com\"}").unwrap() < failing_since);
        assert_eq!(m.status("failed-reject.example.com", "Failed"), Some(1.0));
    }
    assert!(down.requests(GET_OP, "server_error") >= 1.0);
    assert!(
        get(exporter.addr, "/-/ready").status == 200,
        "readiness stays once data exists"
    );
    let last_success = good
        .get("aws_ses_exporter_last_success_timestamp_seconds")
        .unwrap();
    assert_eq!(
        down.get("aws_ses_exporter_last_success_timestamp_seconds"),
        Some(last_success)
    );
    let warnings = exporter
        .proc
        .log()
        .lines()
        .filter(|l| l.contains("level=warn") && l.contains("SES request failed"))
        .count();
    assert_eq!(
        warnings,
        1,
        "an error is logged once per change of state:\n{}",
        exporter.proc.log()
    );

    double.set_faults("{}");
    let back = exporter.wait_metrics("recovery", |m| m.get("aws_ses_exporter_up") == Some(1.0));
    assert!(back.get("aws_ses_identity_last_refresh_timestamp_seconds{identity=\"failed-reject.example.com\"}").unwrap() >= failing_since);
    assert!(exporter.proc.log().contains("SES requests succeed again"));
}

#[test]
fn a_listed_identity_ses_does_not_know_exists_0_without_other_series() {
    let double = Double::start(&[]);
    let config = "identities:\n  - success-reject.example.com\n  - Ghost.Example.com\n";
    let exporter = Exporter::start(&double.url(), Some(config), &[]);
    exporter.wait_ready();
    let m = Metrics::parse(&exporter.metrics());
    assert_eq!(
        m.identity("aws_ses_identity_exists", "ghost.example.com"),
        Some(0.0)
    );
    assert_eq!(
        m.identity("aws_ses_identity_exists", "success-reject.example.com"),
        Some(1.0)
    );
    let mut ghost = m.series_of("ghost.example.com");
    ghost.sort();
    assert_eq!(
        ghost,
        vec![
            "aws_ses_identity_exists{identity=\"ghost.example.com\"}".to_owned(),
            "aws_ses_identity_last_refresh_timestamp_seconds{identity=\"ghost.example.com\"}"
                .to_owned(),
        ]
    );
    assert_eq!(m.get("aws_ses_exporter_identities"), Some(2.0));
    // Discovery is off with a static list: no ListIdentities at all.
    assert!(double.requests().iter().all(|r| r.action == GET_OP));
}

#[test]
fn discovery_pages_filters_and_batches() {
    // 2,500 generated + 10 demo identities: 3 pages of ListIdentities, 26 batches.
    let double = Double::start(&["--seed-count", "2500", "--rate", "50"]);
    let exporter = Exporter::start(&double.url(), None, &["--ses.rate", "50"]);
    exporter.wait_ready();
    let m = Metrics::parse(&exporter.metrics());
    assert_eq!(m.get("aws_ses_exporter_identities"), Some(2510.0));
    let reqs = double.requests();
    let lists = reqs.iter().filter(|r| r.action == LIST_OP).count();
    let gets: Vec<usize> = reqs
        .iter()
        .filter(|r| r.action == GET_OP)
        .map(|r| r.identities)
        .collect();
    assert_eq!(lists, 3);
    assert_eq!(gets.len(), 26);
    assert!(gets.iter().all(|n| *n <= 100));
    assert_eq!(gets.iter().sum::<usize>(), 2510);
    assert!(
        reqs.iter().all(|r| r.status == 200),
        "the double refused a request"
    );
    drop(exporter);

    let config = r#"
discovery:
  identity_type: Domain
  include: ['.*\.example\.com']
  exclude: ['(failed|pending)-.*']
"#;
    let exporter = Exporter::start(&double.url(), Some(config), &["--ses.rate", "50"]);
    exporter.wait_ready();
    let m = Metrics::parse(&exporter.metrics());
    let exists: Vec<&String> = m
        .samples
        .keys()
        .filter(|k| k.starts_with("aws_ses_identity_exists"))
        .collect();
    assert_eq!(exists.len(), 5, "{exists:?}");
    assert!(m
        .identity("aws_ses_identity_exists", "success-reject.example.com")
        .is_some());
    assert!(m
        .identity("aws_ses_identity_exists", "failed-reject.example.com")
        .is_none());
    assert!(m
        .identity("aws_ses_identity_exists", "ops@example.com")
        .is_none());
}

#[test]
fn a_deleted_identity_loses_its_series_after_the_next_discovery() {
    let double = Double::start(&["--rate", "5"]);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--poll.interval",
            "1s",
            "--discovery.interval",
            "2s",
            "--ses.rate",
            "5",
        ],
    );
    exporter.wait_ready();
    assert!(!Metrics::parse(&exporter.metrics())
        .series_of("failed-reject.example.com")
        .is_empty());
    double.delete_identity("failed-reject.example.com");
    // Its series go at the first cycle SES leaves it out; the next discovery also
    // takes it off the watched list.
    exporter.wait_metrics("the deleted identity to vanish", |m| {
        m.series_of("failed-reject.example.com").is_empty()
    });
    let m = exporter.wait_metrics("the next discovery", |m| {
        m.get("aws_ses_exporter_identities") == Some(9.0)
    });
    assert!(m.series_of("failed-reject.example.com").is_empty());
}

#[test]
fn before_the_first_answer_identity_series_are_absent_and_not_ready() {
    let double = Double::start(&["--rate", "5"]);
    double.set_faults(r#"{"access_denied": true}"#);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &["--poll.interval", "1s", "--ses.rate", "5"],
    );
    let m = exporter.wait_metrics("a failed cycle", |m| {
        m.requests(LIST_OP, "client_error") >= 1.0
    });
    assert_eq!(m.get("aws_ses_exporter_up"), Some(0.0));
    assert!(
        !m.text.contains("aws_ses_identity_"),
        "identity series before any answer:\n{}",
        m.text
    );
    assert!(m
        .get("aws_ses_exporter_last_success_timestamp_seconds")
        .is_none());
    assert_eq!(get(exporter.addr, "/-/ready").status, 503);
    assert_eq!(get(exporter.addr, "/-/healthy").status, 200);
    assert!(exporter.proc.log().contains("AccessDenied"));

    double.set_faults("{}");
    exporter.wait_ready();
    let m = exporter.wait_metrics("identities", |m| {
        m.get("aws_ses_exporter_identities") == Some(10.0)
    });
    assert!(m.text.contains("aws_ses_identity_mail_from_status"));
}

#[test]
fn http_surface() {
    let double = Double::start(&[]);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &["--web.telemetry-path", "/probe/metrics"],
    );
    exporter.wait_ready();
    let addr = exporter.addr;

    let landing = get(addr, "/");
    assert_eq!(landing.status, 200);
    assert!(landing
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(landing.text().contains("href=\"/probe/metrics\""));

    assert_eq!(get(addr, "/metrics").status, 404);
    let plain = get(addr, "/probe/metrics");
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(plain.header("content-encoding"), None);

    let gz = http(
        addr,
        "GET",
        "/probe/metrics",
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .unwrap();
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gz.header("content-length").unwrap(),
        gz.body.len().to_string()
    );
    let mut unzipped = String::new();
    use std::io::Read;
    // One gzip member: a client that stops after the first one still sees it all.
    let mut decoder = flate2::bufread::GzDecoder::new(&gz.body[..]);
    decoder
        .read_to_string(&mut unzipped)
        .expect("valid gzip, CRC and length checked");
    assert!(
        decoder.into_inner().is_empty(),
        "bytes after the first gzip member"
    );
    let identity_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.contains("aws_ses_identity_"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(identity_lines(&unzipped), identity_lines(&plain.text()));
    assert!(unzipped.contains("aws_ses_exporter_build_info{"));
    assert!(unzipped.contains("process_resident_memory_bytes"));

    let head = http(addr, "HEAD", "/probe/metrics", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        head.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 1000
    );

    let post = http(addr, "POST", "/probe/metrics", &[], b"x").unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(addr, "/-/healthy").status, 200);
    assert_eq!(get(addr, "/-/ready").status, 200);
    assert_eq!(get(addr, "/nope").status, 404);
    // No timestamps on samples: every sample line is "series value".
    for line in plain.text().lines().filter(|l| !l.starts_with('#')) {
        let after = match line.rsplit_once('}') {
            Some((_, rest)) => rest.trim(),
            None => line.split_once(' ').map_or("", |(_, rest)| rest),
        };
        assert_eq!(
            after.split_whitespace().count(),
            1,
            "a sample with a timestamp: {line}"
        );
    }
}

#[test]
fn sigterm_stops_cleanly_and_fast() {
    let double = Double::start(&[]);
    let mut exporter = Exporter::start(&double.url(), None, &[]);
    exporter.wait_ready();
    let pid = exporter.proc.child.id().to_string();
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let code = common::wait_for(Duration::from_secs(15), "the exporter to exit", || {
        exporter.proc.child.try_wait().unwrap()
    });
    assert!(code.success(), "exit status {code:?}");
    assert!(sent.elapsed() < Duration::from_secs(10));
    assert!(exporter.proc.log().contains("received SIGTERM"));
    // Port closed: nothing listens any more.
    assert!(std::net::TcpStream::connect(exporter.addr).is_err());
}

#[test]
fn healthcheck_subcommand_probes_a_running_exporter() {
    let double = Double::start(&[]);
    let exporter = Exporter::start(&double.url(), None, &[]);
    let probe = |addr: &str| {
        std::process::Command::new(common::EXPORTER)
            .env_clear()
            .args(["healthcheck", "--web.listen-address", addr])
            .output()
            .unwrap()
    };
    let ok = probe(&exporter.addr.to_string());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A wildcard address is probed on loopback, as in the container.
    let wildcard = probe(&format!("0.0.0.0:{}", exporter.addr.port()));
    assert!(wildcard.status.success());
    drop(exporter);
    let down = probe(&format!("127.0.0.1:{}", common::free_port()));
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("healthcheck:"));
}

#[test]
fn an_identity_ses_refuses_is_split_out_and_the_rest_keep_updating() {
    let double = Double::start(&["--seed", "demo", "--rate", "20"]);
    double.set_faults(r#"{"invalid_identities": ["bad.example.com"]}"#);
    let yaml = "identities:\n  - failed-reject.example.com\n  - bad.example.com\n  - success-reject.example.com\n";
    let exporter = Exporter::start(
        &double.url(),
        Some(yaml),
        &["--poll.interval", "1s", "--ses.rate", "20"],
    );
    let m = exporter.wait_metrics("the refused identity marked, the others fetched", |m| {
        m.identity("aws_ses_identity_rejected", "bad.example.com") == Some(1.0)
            && m.status("success-reject.example.com", "Success").is_some()
    });
    assert_eq!(m.status("failed-reject.example.com", "Failed"), Some(1.0));
    assert_eq!(m.status("success-reject.example.com", "Success"), Some(1.0));
    assert_eq!(
        m.identity("aws_ses_identity_exists", "bad.example.com"),
        Some(0.0)
    );
    assert_eq!(m.get("aws_ses_exporter_up"), Some(1.0));
    assert!(exporter
        .proc
        .log()
        .contains("refuses this identity as invalid"));

    // Later cycles ask the refused one alone and the others together: the double
    // sees refusals of exactly one identity and answers for two.
    let seen = common::wait_for(Duration::from_secs(30), "a cycle after the split", || {
        let r = double.requests();
        let tail: Vec<_> = r.iter().rev().take(2).collect();
        // The first cycle made three requests (the batch of 3, then 1 and 2).
        (r.len() >= 5
            && tail
                .iter()
                .any(|q| q.identities == 1 && q.outcome == "client_error")
            && tail.iter().any(|q| q.identities == 2 && q.outcome == "ok"))
        .then_some(r.len())
    });
    assert!(seen >= 5);

    // Fixed at SES: the identity recovers without a restart (the double does not
    // know it, so SES leaves it out: exists 0, no longer rejected).
    double.set_faults(r#"{"invalid_identities": []}"#);
    exporter.wait_metrics("recovered", |m| {
        m.identity("aws_ses_identity_rejected", "bad.example.com")
            .is_none()
            && m.identity("aws_ses_identity_exists", "bad.example.com") == Some(0.0)
    });
}
