//! SES faults, one test each, against the real binary and the SES double on loopback.
//! For each: the process stays up; /metrics keeps the last good values (never a
//! made-up 0 or Success); staleness shows (up 0, refresh time frozen); the error is
//! counted by kind and logged once per change of state; the rate limit holds; and
//! recovery is automatic once the fault goes.

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use common::{Double, Exporter, Metrics};
use ses_identity_exporter::aws::AwsSdk;
use ses_identity_exporter::config::{validate, Flags};
use ses_identity_exporter::serve::web_config::{WebConfig, WebState};

const GET_OP: &str = "GetIdentityMailFromDomainAttributes";
const RATE: usize = 5;
const IDENTITIES: &str =
    "identities:\n  - failed-reject.example.com\n  - success-default.example.com\n";
const REFRESH: &str = "aws_ses_identity_last_refresh_timestamp_seconds";

/// Runs one fault: good values first, then `fault` (double faults JSON) until the
/// exporter has failed at least two cycles, then recovery.
fn fault(fault: &str, outcome: &str, log_says: &str) {
    fault_held(fault, outcome, log_says, Duration::ZERO);
}

/// The last good values, untouched, nothing invented; staleness visible.
fn assert_kept(m: &Metrics, frozen: f64) {
    assert_eq!(m.status("failed-reject.example.com", "Failed"), Some(1.0));
    assert_eq!(m.status("failed-reject.example.com", "Success"), Some(0.0));
    assert_eq!(
        m.status("success-default.example.com", "Success"),
        Some(1.0)
    );
    assert_eq!(m.get("aws_ses_exporter_up"), Some(0.0));
    assert_eq!(
        m.identity(REFRESH, "failed-reject.example.com"),
        Some(frozen),
        "staleness shows: the refresh time does not move"
    );
}

/// As [`fault`], with the fault held for at least `hold` and checked every 10 s.
fn fault_held(fault: &str, outcome: &str, log_says: &str, hold: Duration) {
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
    let held_from = Instant::now();
    let during = exporter.wait_metrics("two more failed attempts", |m| {
        m.requests(GET_OP, outcome) >= before.requests(GET_OP, outcome) + 2.0
    });
    assert_kept(&during, frozen);
    // A long fault: the duration itself is what is tested, so it is waited out.
    while held_from.elapsed() < hold {
        std::thread::sleep(Duration::from_secs(10));
        assert_kept(&Metrics::parse(&exporter.metrics()), frozen);
        assert!(exporter.proc.is_running());
    }
    if !hold.is_zero() {
        let during = Metrics::parse(&exporter.metrics());
        let attempts = during.requests(GET_OP, outcome) - before.requests(GET_OP, outcome);
        let minutes = held_from.elapsed().as_secs_f64() / 60.0;
        println!(
            "{outcome} for {minutes:.1} min: {attempts} attempts, {:.1}/min (limit {}/min)",
            attempts / minutes,
            RATE * 60
        );
    }
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

/// "Throttling for minutes": two minutes of nothing but Throttling. The exporter
/// keeps backing off within the rate limit, keeps the last values, warns once, and
/// recovers by itself.
#[test]
fn throttling_held_for_minutes() {
    fault_held(
        r#"{"throttle_all": true}"#,
        "throttled",
        "Throttling",
        Duration::from_secs(120),
    );
}

/// Requests signed with expired credentials (SES answers `ExpiredToken`): a client
/// error, not retried within the cycle; the next cycle asks again, by which time a
/// refreshing provider (IRSA, instance role) has new credentials.
#[test]
fn expired_credentials() {
    fault(r#"{"expired_token": true}"#, "client_error", "ExpiredToken");
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
    // The first call of a target is STS GetCallerIdentity (its account): it fails
    // the same way, so the target stays unlabelled and nothing is asked of SES.
    let m = exporter.wait_metrics("failed cycles", |m| m.unresolved_sts(outcome) >= 2.0);
    assert_eq!(m.unresolved_up(), Some(0.0));
    assert_eq!(m.requests(GET_OP, outcome), 0.0);
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
        .filter(|l| l.contains("STS request failed"))
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
        double.all_requests().is_empty(),
        "without credentials no request reaches SES or STS"
    );
}

/// A DNS resolver injected into the SDK's HTTP client: answers `ses.test.invalid`
/// with 127.0.0.1 while `working`, NXDOMAIN otherwise. No query leaves the process.
#[derive(Debug, Clone, Default)]
struct Resolver {
    working: Arc<AtomicBool>,
    asked: Arc<AtomicUsize>,
}

impl ResolveDns for Resolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = if self.working.load(Ordering::SeqCst) && name == "ses.test.invalid" {
            Ok(vec![IpAddr::from([127, 0, 0, 1])])
        } else {
            Err(ResolveDnsError::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{name}: NXDOMAIN (injected)"),
            )))
        };
        DnsFuture::ready(answer)
    }
}

/// An endpoint whose name does not resolve, through the real SDK path with the
/// resolver injected: a transport error, nothing invented, not ready; then the name
/// resolves and the exporter recovers by itself; then it stops resolving again and
/// the last good values stay.
#[test]
fn an_endpoint_that_does_not_resolve() {
    let double = Double::start(&["--seed", "demo", "--rate", "0"]);
    let port = double.url().rsplit(':').next().unwrap().to_owned();
    let resolver = Resolver::default();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_with_resolver(resolver.clone());
    let ses = AwsSdk::with_http_client(
        Duration::from_secs(1),
        common::REGION,
        &format!("http://ses.test.invalid:{port}"),
        aws_credential_types::Credentials::new("AKIDTEST", "test-secret", None, None, "test"),
        http,
    );
    let flags = <Flags as clap::Parser>::try_parse_from([
        "ses-identity-exporter",
        "--poll.interval",
        "1s",
        "--ses.rate",
        "5",
        "--ses.timeout",
        "1s",
        "--no-collector.dns",
    ])
    .unwrap();
    let config = validate(flags, Some(serde_yaml::from_str(IDENTITIES).unwrap())).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let exporter = rt.spawn(async move {
        ses_identity_exporter::run(
            &config,
            WebState::fixed(WebConfig::default()),
            vec![std::sync::Arc::new(ses)
                as std::sync::Arc<dyn ses_identity_exporter::aws::TargetAws>],
            vec![listener],
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    let scrape = || Metrics::parse(&common::get(addr, "/metrics").text());
    let wait = |what: &str, pred: &dyn Fn(&Metrics) -> bool| {
        common::wait_for(Duration::from_secs(60), what, || {
            let m = scrape();
            pred(&m).then_some(m)
        })
    };

    let m = wait("failed cycles", &|m| {
        m.unresolved_sts("transport_error") >= 2.0
    });
    assert_eq!(m.unresolved_up(), Some(0.0));
    assert!(
        !m.text.contains("aws_ses_identity_"),
        "invented values:\n{}",
        m.text
    );
    assert_eq!(common::get(addr, "/-/ready").status, 503);
    assert!(
        resolver.asked.load(Ordering::SeqCst) >= 2,
        "the injected resolver was asked"
    );
    assert!(
        double.all_requests().is_empty(),
        "nothing reached SES or STS"
    );

    resolver.working.store(true, Ordering::SeqCst);
    let good = wait("recovery once the name resolves", &|m| {
        m.get("aws_ses_exporter_up") == Some(1.0)
            && m.status("failed-reject.example.com", "Failed") == Some(1.0)
    });
    assert_eq!(common::get(addr, "/-/ready").status, 200);

    // The name goes; a connection already open would keep working (as with real
    // DNS), so the double drops it once and every new one needs the resolver.
    resolver.working.store(false, Ordering::SeqCst);
    double.set_faults(r#"{"reset": true}"#);
    let before = good.requests(GET_OP, "transport_error");
    let failed = wait("failures after the name goes", &|m| {
        m.get("aws_ses_exporter_up") == Some(0.0) && m.requests(GET_OP, "transport_error") > before
    });
    let frozen = failed
        .identity(REFRESH, "failed-reject.example.com")
        .expect("kept");
    let reached = double.requests().len();
    let during = wait("two more failures", &|m| {
        m.requests(GET_OP, "transport_error") >= failed.requests(GET_OP, "transport_error") + 2.0
    });
    assert_eq!(
        double.requests().len(),
        reached,
        "requests reached SES without the name resolving"
    );
    assert_kept(&during, frozen);

    let _ = stop.send(());
    let finished = rt.block_on(exporter).unwrap();
    assert!(finished.is_ok());
}
