//! The monitoring mixin (mixin/): the committed files are what it renders with the
//! pinned jsonnet, every alert links its runbook absolutely under the repository
//! Cargo.toml names, and a user's selector reaches every rule.

mod common;

use std::process::Command;

use common::manifest_dir;

/// Evaluates a jsonnet snippet with mixin/ on the import path (the pinned jsonnet
/// of .venv, `make venv`), as JSON.
fn jsonnet(snippet: &str) -> serde_json::Value {
    let python = manifest_dir().join(".venv/bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import _jsonnet, sys; print(_jsonnet.evaluate_snippet('snippet', sys.argv[1], jpathdir=[sys.argv[2]]))",
            snippet,
            manifest_dir().join("mixin").to_str().unwrap(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `make venv`)", python.display()));
    assert!(
        out.status.success(),
        "jsonnet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rules(alerts: &serde_json::Value) -> Vec<&serde_json::Value> {
    alerts["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

#[test]
fn the_committed_files_are_what_the_mixin_renders() {
    let out = Command::new(manifest_dir().join(".venv/bin/python"))
        .args(["scripts/mixin.py", "--check"])
        .current_dir(manifest_dir())
        .output()
        .expect("python in .venv (make venv)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_mixin_is_rendered_with_the_jsonnet_requirements_pin() {
    let requirements =
        std::fs::read_to_string(manifest_dir().join("requirements-test.txt")).unwrap();
    let script = std::fs::read_to_string(manifest_dir().join("scripts/mixin.py")).unwrap();
    let pinned = requirements
        .lines()
        .find_map(|l| l.strip_prefix("jsonnet=="))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("requirements-test.txt pins jsonnet");
    assert!(
        script.contains(&format!("JSONNET = \"v{pinned}\"")),
        "scripts/mixin.py checks for jsonnet {pinned}"
    );
}

/// Every alert has an absolute `runbook_url` under the repository of Cargo.toml
/// (declared once there and in the mixin's _config, which must agree), pointing at
/// a heading of docs/runbook.md; no relative `runbook` is left.
#[test]
fn every_alert_links_its_runbook_absolutely() {
    let cargo = std::fs::read_to_string(manifest_dir().join("Cargo.toml")).unwrap();
    let repository = cargo
        .lines()
        .find_map(|l| l.strip_prefix("repository = "))
        .map(|v| v.trim_matches('"'))
        .expect("Cargo.toml names the repository");
    let config = jsonnet("(import 'config.libsonnet')._config");
    assert_eq!(config["repository"], repository);
    let runbook = std::fs::read_to_string(manifest_dir().join("docs/runbook.md")).unwrap();
    let alerts = jsonnet("(import 'mixin.libsonnet').prometheusAlerts");
    let rules = rules(&alerts);
    assert!(rules.len() >= 34, "{} rules", rules.len());
    for rule in rules {
        let name = rule["alert"].as_str().unwrap();
        let annotations = &rule["annotations"];
        assert!(annotations.get("runbook").is_none(), "{name}: runbook");
        let url = annotations["runbook_url"].as_str().unwrap();
        let anchor = url
            .strip_prefix(&format!("{repository}/blob/main/docs/runbook.md#"))
            .unwrap_or_else(|| panic!("{name}: {url}"));
        assert_eq!(anchor, name.to_lowercase());
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "{name}: no runbook heading"
        );
    }
}

/// A release named otherwise (Helm, a kustomize namePrefix) gives the job another
/// name: with the selector set, every rule reads only that job's series, and the
/// absent() alert watches that job.
#[test]
fn a_custom_selector_reaches_every_rule() {
    let alerts = jsonnet(
        "((import 'mixin.libsonnet') + { _config+:: { selector: 'job=\"acme-ses\"', runbookURL: 'https://wiki.example/ses' } }).prometheusAlerts",
    );
    for rule in rules(&alerts) {
        let name = rule["alert"].as_str().unwrap();
        let expr = rule["expr"].as_str().unwrap();
        assert!(!expr.contains("ses-identity-exporter"), "{name}: {expr}");
        // Every series selector of the expression carries the user's selector.
        for selector in expr.split('{').skip(1) {
            let selector = selector.split('}').next().unwrap();
            assert!(
                selector.starts_with("job=\"acme-ses\""),
                "{name}: a selector without the job: {{{selector}}}"
            );
        }
        assert!(rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .starts_with("https://wiki.example/ses#"));
    }
    let absent = rules(&alerts)
        .into_iter()
        .find(|r| r["alert"] == "SesExporterAbsent")
        .expect("an absent() alert");
    assert_eq!(
        absent["expr"],
        "absent(aws_ses_exporter_build_info{job=\"acme-ses\"})"
    );
}

/// The severities and durations come from `_config.alerts`.
#[test]
fn severities_and_durations_are_configurable() {
    let alerts = jsonnet(
        "((import 'mixin.libsonnet') + { _config+:: { alerts+: { SesMailFromFailed+: { severity: 'critical', 'for': '7m' } } } }).prometheusAlerts",
    );
    let rule = rules(&alerts)
        .into_iter()
        .find(|r| r["alert"] == "SesMailFromFailed")
        .unwrap();
    assert_eq!(rule["labels"]["severity"], "critical");
    assert_eq!(rule["for"], "7m");
}

/// Accounts meant to stay in the SES sandbox (development) are left out of
/// SesAccountInSandbox by `_config.sandboxSelector`, appended to the job selector;
/// by default every account in the sandbox warns.
#[test]
fn the_sandbox_selector_leaves_accounts_out_of_the_sandbox_alert() {
    let sandbox = |snippet: &str| -> String {
        let alerts = jsonnet(snippet);
        let rule = rules(&alerts)
            .into_iter()
            .find(|r| r["alert"] == "SesAccountInSandbox")
            .expect("SesAccountInSandbox")
            .clone();
        rule["expr"].as_str().unwrap().to_owned()
    };
    let default = sandbox("(import 'mixin.libsonnet').prometheusAlerts");
    assert!(
        default
            .contains("aws_ses_account_production_access_enabled{job=\"ses-identity-exporter\"}"),
        "{default}"
    );
    let dev = sandbox(
        "((import 'mixin.libsonnet') + { _config+:: { sandboxSelector: 'aws_account_id!~\"111111111111|222222222222\"' } }).prometheusAlerts",
    );
    assert!(
        dev.contains("aws_ses_account_production_access_enabled{job=\"ses-identity-exporter\",aws_account_id!~\"111111111111|222222222222\"}"),
        "{dev}"
    );
}
