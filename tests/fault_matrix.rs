//! SES faults, one test each, against the real binary and the SES double on loopback.
//! For each: the process stays up; /metrics keeps the last good values (never a
//! made-up 0 or Success); staleness shows (up 0, refresh time frozen); the error is
//! counted by kind and logged once per change of state; the rate limit holds; and
//! recovery is automatic once the fault goes.

mod common;

use common::{Double, Exporter};

const GET_OP: &str = "GetIdentityMailFromDomainAttributes";
const RATE: usize = 5;
const IDENTITIES: &str =
    "identities:\n  - failed-reject.example.com\n  - success-default.example.com\n";
const REFRESH: &str = "aws_ses_identity_last_refresh_timestamp_seconds";

/// Runs one fault: good values first, then `fault` (double faults JSON) until the
/// exporter has failed at least two cycles, then recovery.
fn fault(fault: &str, outcome: &str, log_says: &str) {
    let double = Double::start(&["--seed", "demo", "--rate", "0"]);
    let mut exporter = Exporter::start(
        &double.url(),
        Some(IDENTITIES),
        &[
            "--poll.interval",
            "1s",
            "--ses.rate",
            &RATE.to_string(),
            "--ses.timeout",
            "1s",
        ],
    );
    exporter.wait_metrics("good values", |m| {
        m.get("aws_ses_exporter_up") == Some(1.0)
            && m.status("failed-reject.example.com", "Failed") == Some(1.0)
    });

    double.set_faults(fault);
    let before = exporter.wait_metrics("a failed cycle", |m| {
        m.get("aws_ses_exporter_up") == Some(0.0) && m.requests(GET_OP, outcome) >= 1.0
    });
    let frozen = before
        .identity(REFRESH, "failed-reject.example.com")
        .expect("refresh time kept");
    let during = exporter.wait_metrics("two more failed attempts", |m| {
        m.requests(GET_OP, outcome) >= before.requests(GET_OP, outcome) + 2.0
    });
    // The last good values, untouched; nothing invented.
    assert_eq!(
        during.status("failed-reject.example.com", "Failed"),
        Some(1.0)
    );
    assert_eq!(
        during.status("failed-reject.example.com", "Success"),
        Some(0.0)
    );
    assert_eq!(
        during.status("success-default.example.com", "Success"),
        Some(1.0)
    );
    assert_eq!(during.get("aws_ses_exporter_up"), Some(0.0));
    assert_eq!(
        during.identity(REFRESH, "failed-reject.example.com"),
        Some(frozen),
        "staleness shows: the refresh time does not move"
    );
    // Logged once for this state, however many attempts failed.
    let log = exporter.proc.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("SES request failed") && l.contains(log_says))
        .count();
    assert_eq!(warned, 1, "one warning per change of state:\n{log}");

    // The rate limit held through retries.
    let times: Vec<f64> = double
        .requests()
        .iter()
        .filter(|r| r.action == GET_OP)
        .map(|r| r.t)
        .collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 0.99).count();
        assert!(in_window <= RATE, "{in_window} requests within 1 s");
    }

    double.set_faults(r#"{"reset": false, "malformed": false, "error_status": 0, "delay_ms": 0, "throttle_all": false, "access_denied": false}"#);
    let after = exporter.wait_metrics("recovery", |m| {
        m.get("aws_ses_exporter_up") == Some(1.0)
            && m.identity(REFRESH, "failed-reject.example.com")
                .unwrap_or(0.0)
                > frozen
    });
    assert_eq!(
        after.status("failed-reject.example.com", "Failed"),
        Some(1.0)
    );
    assert!(exporter.proc.log().contains("SES requests succeed again"));
    assert!(exporter.proc.is_running(), "the process stayed up");
}

#[test]
fn http_500() {
    fault(r#"{"error_status": 500}"#, "server_error", "500");
}

#[test]
fn http_503() {
    fault(r#"{"error_status": 503}"#, "server_error", "503");
}

#[test]
fn a_reset_in_the_middle_of_a_response() {
    fault(r#"{"reset": true}"#, "transport_error", "");
}

#[test]
fn an_answer_slower_than_the_timeout() {
    fault(r#"{"delay_ms": 3000}"#, "timeout", "");
}

#[test]
fn malformed_xml() {
    fault(r#"{"malformed": true}"#, "server_error", "");
}

#[test]
fn throttling_that_does_not_stop() {
    fault(r#"{"throttle_all": true}"#, "throttled", "Throttling");
}

#[test]
fn access_denied() {
    fault(r#"{"access_denied": true}"#, "client_error", "AccessDenied");
}

/// Faults present from the start: no value was ever good, so none may appear.
fn never_good(endpoint: &str, env: &[(&str, &str)], outcome: &str) {
    let mut exporter = Exporter::start_with_env(
        endpoint,
        Some(IDENTITIES),
        &["--poll.interval", "1s", "--ses.timeout", "1s"],
        env,
    );
    let m = exporter.wait_metrics("failed cycles", |m| m.requests(GET_OP, outcome) >= 2.0);
    assert_eq!(m.get("aws_ses_exporter_up"), Some(0.0));
    assert!(
        !m.text.contains("aws_ses_identity_"),
        "identity series without any answer:\n{}",
        m.text
    );
    assert_eq!(
        common::get(exporter.addr, "/-/ready").status,
        503,
        "not ready before any answer"
    );
    let warned = exporter
        .proc
        .log()
        .lines()
        .filter(|l| l.contains("SES request failed"))
        .count();
    assert_eq!(warned, 1, "{}", exporter.proc.log());
    assert!(exporter.proc.is_running());
}

#[test]
fn connection_refused() {
    // A port nothing listens on (bound, then closed).
    let port = common::free_port();
    never_good(&format!("http://127.0.0.1:{port}"), &[], "transport_error");
}

#[test]
fn missing_credentials() {
    let double = Double::start(&["--seed", "demo", "--rate", "0"]);
    never_good(
        &double.url(),
        &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
        "client_error",
    );
    assert!(
        double.requests().is_empty(),
        "without credentials no request reaches SES"
    );
}
