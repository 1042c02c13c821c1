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

/// At trace the SDK's orchestrator and signer print the identity (the access key
/// ID); the exporter caps them whatever `RUST_LOG` says, even when it names them.
#[test]
fn no_rust_log_setting_lets_the_access_key_out() {
    for filter in [
        "trace",
        "info,aws_smithy_runtime=trace,aws_sigv4=trace,aws_config=trace,aws_runtime=trace,\
         aws_smithy_runtime::client::orchestrator::endpoints=trace",
    ] {
        assert_clean(&run_and_collect(&[("RUST_LOG", filter)]));
    }
}

/// With the web config on (TLS and basic auth) at `RUST_LOG=debug`: good and wrong
/// credentials over HTTP/1.1 and HTTP/2, a failed handshake, and a reload of a file
/// with a plaintext password where the hash belongs. Neither the password, nor the
/// header, nor the hash reaches the log.
#[test]
fn web_config_at_debug_logs_no_password_header_or_hash() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki::Pki::ca(dir.path(), "ca");
    pki.leaf("ca", "server", "IP:127.0.0.1", "serverAuth");
    let hash = bcrypt::hash_with_result(PASSWORD, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let web = dir.path().join("web.yml");
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    std::fs::write(&web, format!("{tls}basic_auth_users:\n  scraper: {hash}\n")).unwrap();
    let double = Double::start(&["--seed", "demo", "--rate", "20"]);
    let exporter = Exporter::start_with_env(
        &double.url(),
        None,
        &[
            "--log.level",
            "debug",
            "--poll.interval",
            "1s",
            "--web.config.file",
            &web.display().to_string(),
        ],
        &[("RUST_LOG", "debug")],
    );
    let url = format!("https://127.0.0.1:{}/metrics", exporter.addr.port());
    let ca = pki.path("ca.pem");
    let ok = |extra: &[&str]| {
        let mut args = vec!["--cacert", ca.as_str()];
        args.extend_from_slice(extra);
        args.push(&url);
        common::pki::curl(&args).status
    };
    wait_for(Duration::from_secs(60), "an authenticated scrape", || {
        (ok(&["-u", &format!("scraper:{PASSWORD}")]) == 200).then_some(())
    });
    assert_eq!(ok(&["--http2", "-u", &format!("scraper:{PASSWORD}")]), 200);
    assert_eq!(ok(&["-u", "scraper:wrong-hunter2"]), 401);
    assert_eq!(ok(&["-u", &format!("nobody:{PASSWORD}")]), 401);
    let plain = format!("http://127.0.0.1:{}/metrics", exporter.addr.port());
    assert_eq!(common::pki::curl(&[&plain]).status, 0);
    // A reload with the password where its hash belongs: refused, not echoed.
    std::fs::write(
        &web,
        format!("{tls}basic_auth_users:\n  scraper: {PASSWORD}\n"),
    )
    .unwrap();
    wait_for(Duration::from_secs(15), "the failed reload", || {
        exporter
            .proc
            .log()
            .contains("web config reload failed")
            .then_some(())
    });
    let log = exporter.proc.log();
    assert!(
        log.contains("level=debug"),
        "debug lines were written:\n{log}"
    );
    assert_clean(&log);
    assert!(!log.contains(&hash), "the hash in the log:\n{log}");
    assert!(!log.contains("wrong-hunter2"));
}
