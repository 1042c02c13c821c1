//! Bad configuration, through the real binary's `--config.check`: every case in
//! `testdata/bad-config/NAME.yaml` must fail with exit code 2 and exactly the message
//! in `NAME.error` (rewritten with UPDATE_GOLDEN=1; review the diff like an API
//! change). Bad flags are checked inline.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{manifest_dir, EXPORTER};

fn check(args: &[&str]) -> Output {
    Command::new(EXPORTER)
        .current_dir(manifest_dir())
        .env_clear()
        .arg("--config.check")
        .args(args)
        .output()
        .expect("run the exporter")
}

#[test]
fn every_bad_config_file_fails_with_its_message() {
    let dir = manifest_dir().join("testdata/bad-config");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "bad-config cases missing: {cases:?}");
    for case in cases {
        let rel = case.strip_prefix(manifest_dir()).unwrap();
        let out = check(&["--config.file", rel.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", rel.display());
        let expected_path = case.with_extension("error");
        if update {
            std::fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} missing; run with UPDATE_GOLDEN=1",
                expected_path.display()
            )
        });
        assert_eq!(stderr, expected, "{}", rel.display());
        assert!(
            stderr.contains(rel.to_str().unwrap()),
            "the message names the file: {stderr}"
        );
    }
}

#[test]
fn bad_flags_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--ses.rate", "0"],
            "--ses.rate: must be a number of requests per second greater than 0, got 0",
        ),
        (&["--ses.rate", "-1"], "--ses.rate"),
        (&["--ses.rate", "fast"], "--ses.rate"),
        (
            &["--ses.pacing", "1.5"],
            "--ses.pacing: must be a fraction of the poll interval from 0 to 1 (0: as fast as --ses.rate allows), got 1.5",
        ),
        (&["--ses.pacing", "-0.5"], "--ses.pacing: must be a fraction"),
        (&["--ses.pacing", "most"], "--ses.pacing"),
        (
            &["--poll.interval", "5x"],
            "--poll.interval: invalid duration \"5x\"",
        ),
        (
            &["--discovery.interval", "0s"],
            "--discovery.interval: must be greater than 0",
        ),
        (
            &["--ses.timeout", "forever"],
            "--ses.timeout: invalid duration",
        ),
        (
            &["--web.telemetry-path", "metrics"],
            "--web.telemetry-path: must start with '/'",
        ),
        (&["--log.level", "verbose"], "--log.level"),
        (
            &["--config.file", "testdata/does-not-exist.yaml"],
            "cannot read config file testdata/does-not-exist.yaml: No such file or directory",
        ),
    ];
    for (args, expected) in cases {
        let out = check(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr:?}"
        );
    }
}

#[test]
fn flags_come_from_the_environment_too() {
    let out = Command::new(EXPORTER)
        .env_clear()
        .env("SES_EXPORTER_CONFIG_CHECK", "true")
        .env("SES_EXPORTER_SES_RATE", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ses.rate: must be"));
}

#[test]
fn the_example_config_is_valid() {
    let example = Path::new("examples/config.yaml");
    let out = check(&["--config.file", example.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("configuration OK"));
}

#[test]
fn version_names_revision_and_compiler() {
    let out = Command::new(EXPORTER).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "ses-identity-exporter {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(
        text.contains("revision") && text.contains("rustc"),
        "{text}"
    );
}
