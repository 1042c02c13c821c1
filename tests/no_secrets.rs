//! No secret reaches the logs: the exporter runs at debug level with credentials and a
//! session token in its environment, talks to SES (answers and refusals), and serves
//! scrapes that carry an Authorization header; its whole output is then searched.

mod common;

use std::time::Duration;

use common::{http, wait_for, Double, Exporter, Metrics};

const ACCESS_KEY: &str = "AKIANOSECRETSTESTKEY";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNOSECRETSTEST";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzENoSECRETSTESTSESSIONTOKENxyz";
const BASIC: &str = "c2NyYXBlcjpodW50ZXIy"; // scraper:hunter2
const PASSWORD: &str = "hunter2";

fn run_and_collect(extra_env: &[(&str, &str)]) -> String {
    let double = Double::start(&["--seed", "demo", "--rate", "20"]);
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
    ];
    env.extend_from_slice(extra_env);
    let exporter = Exporter::start_with_env(
        &double.url(),
        None,
        &[
            "--log.level",
            "debug",
            "--poll.interval",
            "1s",
            "--ses.rate",
            "20",
        ],
        &env,
    );
    exporter.wait_ready();
    for path in ["/metrics", "/", "/-/ready", "/nope"] {
        http(
            exporter.addr,
            "GET",
            path,
            &[
                ("Authorization", &format!("Basic {BASIC}")),
                ("Cookie", &format!("session={PASSWORD}")),
            ],
            b"",
        )
        .expect("answer");
    }
    // A refusal too, so the error paths log.
    double.set_faults(r#"{"access_denied": true}"#);
    wait_for(Duration::from_secs(30), "a refused cycle", || {
        let m = Metrics::parse(&exporter.metrics());
        (m.get("aws_ses_exporter_up") == Some(0.0)).then_some(())
    });
    let log = exporter.proc.log();
    assert!(
        log.contains("level=debug") || log.contains("\"level\":\"DEBUG\""),
        "debug lines were written:\n{log}"
    );
    log
}

fn assert_clean(log: &str) {
    for secret in [ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, BASIC, PASSWORD] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
    assert!(
        !log.to_ascii_lowercase().contains("authorization"),
        "an Authorization header in the log:\n{log}"
    );
}

#[test]
fn debug_logs_hold_no_credentials_token_or_authorization() {
    assert_clean(&run_and_collect(&[]));
}

#[test]
fn even_rust_log_debug_for_every_library_holds_no_secrets() {
    assert_clean(&run_and_collect(&[("RUST_LOG", "debug")]));
}
