//! The shipped artifacts, each checked by the tool its users' systems use: the alert
//! rules by promtool (lint and unit tests), the kustomize base and overlay rendered by
//! kubectl and validated offline (core objects by kubernetes-validate --strict, the
//! prometheus-operator objects by their schemas), the PrometheusRule against the rule
//! file, the Dockerfile by hadolint, the systemd unit by systemd-analyze, the
//! Alertmanager example by amtool, the IAM policy and the dashboard as JSON.
//! The tools come from `make test-deps`.

mod common;

use std::process::{Command, Output};

use common::k8s::{self, find, venv_tool as tool};
use common::{manifest_dir, output_text as text};
use ses_identity_exporter::aws::Operation;

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .current_dir(manifest_dir())
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e} (run `make test-deps`)"));
    out
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let out =
        run(Command::new("promtool").args(["check", "rules", "deploy/prometheus/alerts.yml"]));
    assert_ok(&out, "promtool check rules");
    assert!(
        text(&out).contains("SUCCESS: 39 rules found"),
        "{}",
        text(&out)
    );
    let out = run(Command::new("promtool").args(["test", "rules", "tests/rules/alerts.test.yml"]));
    assert_ok(&out, "promtool test rules");
}

#[test]
fn every_alert_has_a_unit_test_and_a_runbook_entry() {
    let tests =
        std::fs::read_to_string(manifest_dir().join("tests/rules/alerts.test.yml")).unwrap();
    let runbook = std::fs::read_to_string(manifest_dir().join("docs/runbook.md")).unwrap();
    let rules = common::shipped_rules();
    let alerts: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(alerts.len(), 39);
    for alert in alerts {
        // A test that expects it to fire, not only to stay quiet.
        let firing = tests
            .split("      - eval_time:")
            .any(|t| t.contains(&format!("alertname: {alert}\n")) && t.contains("exp_labels"));
        assert!(firing, "no promtool test expects {alert} to fire");
        assert!(
            runbook.contains(&format!("## {alert}\n")),
            "no runbook entry for {alert}"
        );
    }
}

/// A `for:` as written in the rules (`3m`, `2h`, `30s`; absent is 0), in seconds.
fn for_seconds(text: &str) -> u64 {
    let (n, unit) = text.split_at(text.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("a duration: {text}"));
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        other => panic!("unit {other} in {text}"),
    }
}

/// The longest the example Alertmanager configuration holds a notification of an alert
/// of `severity`: its route's `group_wait` (a new group) or `group_interval` (an alert
/// joining a group already notified), whichever is longer.
fn alertmanager_wait(severity: &str) -> u64 {
    let am: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifest_dir().join("deploy/alertmanager/alertmanager.yml"))
            .unwrap(),
    )
    .unwrap();
    let top = &am["route"];
    let matcher = format!("severity=\"{severity}\"");
    let route = top["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| {
            r["matchers"]
                .as_sequence()
                .is_some_and(|m| m.iter().any(|x| x.as_str() == Some(matcher.as_str())))
        })
        .unwrap_or_else(|| panic!("no route for {matcher}"));
    let setting = |key: &str| {
        for_seconds(
            route[key]
                .as_str()
                .or(top[key].as_str())
                .unwrap_or_else(|| panic!("{key}")),
        )
    };
    setting("group_wait").max(setting("group_interval"))
}

/// docs/semantics.md is the source of truth of the alert rules: each row's alert
/// exists with that severity and `for`, every alert has a row, refusing rows page
/// within 5 minutes, restricted rows only warn, and each worst-case latency adds up,
/// its `for` part being the rule's and its Alertmanager part the page's or the
/// warning's.
#[test]
fn the_semantics_table_and_the_shipped_rules_agree() {
    let mut shipped = std::collections::BTreeMap::new();
    for rule in common::shipped_rules() {
        let name = rule["alert"].as_str().unwrap().to_owned();
        let severity = rule["labels"]["severity"].as_str().unwrap().to_owned();
        let r#for = rule["for"].as_str().unwrap_or("0m").to_owned();
        shipped.insert(name, (severity, r#for));
    }
    let doc = std::fs::read_to_string(manifest_dir().join("docs/semantics.md")).unwrap();
    let rows: Vec<Vec<&str>> = doc
        .lines()
        .skip_while(|l| !l.starts_with("| # |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    assert!(rows.len() >= 30, "{} rows", rows.len());
    let mut covered = std::collections::BTreeSet::new();
    for row in &rows {
        assert_eq!(row.len(), 9, "{row:?}");
        let (class, alert, severity, r#for, latency) = (row[3], row[4], row[5], row[6], row[7]);
        if alert == "—" {
            assert!(
                [class, severity, r#for, latency].iter().all(|c| *c == "—"),
                "a row without an alert has no class, severity, for or latency: {row:?}"
            );
            continue;
        }
        let alert = alert.trim_matches('`');
        let (rule_severity, rule_for) = shipped
            .get(alert)
            .unwrap_or_else(|| panic!("row {} names {alert}, which is not a shipped rule", row[0]));
        assert_eq!(severity, rule_severity, "severity of {alert}");
        assert_eq!(for_seconds(r#for), for_seconds(rule_for), "for of {alert}");
        match class {
            "refusing" => {
                assert_eq!(
                    severity, "critical",
                    "{alert}: SES refuses the mail, so it pages"
                );
                assert!(
                    for_seconds(r#for) <= 300,
                    "{alert}: a page waits at most 5m"
                );
            }
            "restricted" => {
                assert_eq!(
                    severity, "warning",
                    "{alert}: a standing restriction (the sandbox) is usually deliberate; a page would repeat for as long as it lasts"
                );
            }
            "predictive" | "degraded" | "health" => {}
            other => panic!("unknown class {other} in {row:?}"),
        }
        let (sum, total) = latency.split_once(" = ").expect("PARTS = TOTAL");
        let parts: Vec<u64> = sum.split('+').map(|p| p.trim().parse().unwrap()).collect();
        assert_eq!(
            parts.iter().sum::<u64>(),
            total.parse::<u64>().unwrap(),
            "{alert}"
        );
        assert_eq!(
            parts[parts.len() - 2],
            for_seconds(rule_for),
            "{alert}: the for part"
        );
        assert_eq!(
            parts[parts.len() - 1],
            alertmanager_wait(severity),
            "{alert}: the Alertmanager part is the longest its route holds a notification"
        );
        covered.insert(alert.to_owned());
    }
    let missing: Vec<&String> = shipped.keys().filter(|a| !covered.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "alerts without a row in docs/semantics.md: {missing:?}"
    );
}

/// Both are rendered from the mixin (tests/mixin.rs checks they are what it
/// renders); here: the PrometheusRule's spec is the rule file promtool tests.
#[test]
fn the_prometheusrule_carries_exactly_the_rule_file() {
    let committed =
        std::fs::read_to_string(manifest_dir().join("deploy/kubernetes/base/prometheusrule.yaml"))
            .unwrap();
    let rule: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifest_dir().join("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let cr: serde_yaml::Value = serde_yaml::from_str(&committed).unwrap();
    assert_eq!(cr["spec"], rule);
}

fn kustomize(dir: &str) -> Vec<serde_yaml::Value> {
    let out = run(Command::new("kubectl").args(["kustomize", dir]));
    assert_ok(&out, "kubectl kustomize");
    k8s::parse_stream(&String::from_utf8(out.stdout).unwrap())
}

fn validate_kustomization(dir: &str) -> Vec<serde_yaml::Value> {
    let docs = kustomize(dir);
    // ServiceMonitor and PrometheusRule.
    k8s::validate(&docs, 2);
    docs
}

#[test]
fn kustomize_base_renders_valid_hardened_objects() {
    let docs = validate_kustomization("deploy/kubernetes/base");
    let deploy = find(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());
    assert!(
        find(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .is_some()
    );
    // The ServiceMonitor selects the Service, on the port the Service names.
    let svc = find(&docs, "Service");
    let sm = find(&docs, "ServiceMonitor");
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v);
    }
    // The job label (Service name) is the one the rules select on.
    assert_eq!(svc["metadata"]["name"], "ses-identity-exporter");
}

#[test]
fn kube_prometheus_stack_overlay_adds_the_release_label() {
    let docs = validate_kustomization("deploy/kubernetes/overlays/kube-prometheus-stack");
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        let d = find(&docs, kind);
        assert_eq!(
            d["metadata"]["labels"]["release"], "kube-prometheus-stack",
            "{kind}"
        );
        assert_eq!(d["metadata"]["namespace"], "monitoring");
    }
}

#[test]
fn tls_overlay_serves_https_with_basic_auth_and_its_example_web_config_loads() {
    let docs = validate_kustomization("deploy/kubernetes/overlays/tls-basic-auth");
    let c = &find(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    let env = c["env"].as_sequence().unwrap();
    let web = env
        .iter()
        .find(|e| e["name"] == "SES_EXPORTER_WEB_CONFIG_FILE")
        .expect("web config env");
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "web")
        .expect("web mount");
    let dir = mount["mountPath"].as_str().unwrap();
    assert_eq!(web["value"].as_str().unwrap(), format!("{dir}/web.yml"));
    let ep = &find(&docs, "ServiceMonitor")["spec"]["endpoints"][0];
    assert_eq!(ep["scheme"], "https");
    assert_eq!(
        ep["tlsConfig"]["serverName"],
        "ses-identity-exporter.monitoring.svc"
    );
    assert!(ep["basicAuth"]["password"]["name"].as_str().is_some());

    // The example web.yml loads with a certificate, key and CA as the Secret
    // would mount them (file names relative to web.yml).
    let tmp = tempfile::tempdir().unwrap();
    let pki = common::pki::Pki::ca(tmp.path(), "ca");
    pki.leaf(
        "ca",
        "server",
        "DNS:ses-identity-exporter.monitoring.svc",
        "serverAuth",
    );
    for (from, to) in [
        ("server.pem", "tls.crt"),
        ("server.key", "tls.key"),
        ("ca.pem", "ca.crt"),
    ] {
        std::fs::copy(tmp.path().join(from), tmp.path().join(to)).unwrap();
    }
    std::fs::copy(
        manifest_dir().join("deploy/kubernetes/overlays/tls-basic-auth/web.yml.example"),
        tmp.path().join("web.yml"),
    )
    .unwrap();
    let out = run(Command::new(common::EXPORTER)
        .args(["--config.check", "--web.config.file"])
        .arg(tmp.path().join("web.yml")));
    assert_ok(&out, "--config.check of web.yml.example");
    assert!(text(&out).contains("tls=true"), "{}", text(&out));
}

#[test]
fn hadolint_accepts_the_dockerfile() {
    let out = run(Command::new(tool("hadolint")).arg("deploy/docker/Dockerfile"));
    assert_ok(&out, "hadolint");
    let dockerfile =
        std::fs::read_to_string(manifest_dir().join("deploy/docker/Dockerfile")).unwrap();
    assert!(dockerfile.contains("gcr.io/distroless/cc-debian12:nonroot"));
    // It packages the binary `make dist` puts where it copies from (tests/image.rs
    // builds and runs it).
    let makefile = std::fs::read_to_string(manifest_dir().join("Makefile")).unwrap();
    assert!(dockerfile.contains("COPY dist/linux-${TARGETARCH}/ses-identity-exporter"));
    assert!(makefile.contains("cp target/release/ses-identity-exporter dist/linux-$(ARCH)/"));
}

#[test]
fn systemd_analyze_verifies_the_units() {
    // systemd-analyze verify needs ExecStart to exist: point it at the built binary.
    let unit = std::fs::read_to_string(
        manifest_dir().join("deploy/systemd/ses-identity-exporter.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/ses-identity-exporter\n"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ses-identity-exporter.service");
    std::fs::write(
        &path,
        unit.replace(
            "ExecStart=/usr/local/bin/ses-identity-exporter",
            &format!("ExecStart={}", common::EXPORTER),
        ),
    )
    .unwrap();
    // The socket unit beside it, which activates it.
    let socket =
        std::fs::read_to_string(manifest_dir().join("deploy/systemd/ses-identity-exporter.socket"))
            .unwrap();
    std::fs::write(tmp.path().join("ses-identity-exporter.socket"), &socket).unwrap();
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .arg(tmp.path().join("ses-identity-exporter.socket")));
    assert_ok(&out, "systemd-analyze verify");
    // The healthcheck probes --web.listen-address, default :10150: the socket's port.
    assert!(socket.contains("\nListenStream=10150\n"));
    assert!(socket.contains("\nAccept=no\n"));
    let env =
        std::fs::read_to_string(manifest_dir().join("deploy/systemd/ses-identity-exporter.env"))
            .unwrap();
    assert!(env.contains("SES_EXPORTER_WEB_LISTEN_ADDRESS=:10150\n"));
    assert!(env.contains("# SES_EXPORTER_WEB_SYSTEMD_SOCKET=true\n"));
    assert!(
        text(&out).trim().is_empty(),
        "systemd-analyze warnings:\n{}",
        text(&out)
    );
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "EnvironmentFile=",
    ] {
        assert!(unit.contains(hardening), "unit lacks {hardening}");
    }
}

#[test]
fn amtool_accepts_the_alertmanager_example() {
    let out =
        run(Command::new("amtool").args(["check-config", "deploy/alertmanager/alertmanager.yml"]));
    assert_ok(&out, "amtool check-config");
}

#[test]
fn iam_policy_allows_exactly_the_calls_made() {
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("deploy/iam/policy.json")).unwrap(),
    )
    .unwrap();
    let actions: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .filter_map(|a| a.as_str())
        .collect();
    // What the door can call, from its one table of operations.
    let mut expected: Vec<String> = Operation::ALL.iter().map(|op| op.iam_action()).collect();
    expected.sort();
    assert_eq!(actions, expected);
    // A target's role needs exactly the same SES actions.
    let target: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("deploy/iam/target-role-policy.json"))
            .unwrap(),
    )
    .unwrap();
    let target_actions: Vec<&str> = target["Statement"][0]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(target_actions, expected);
    // The adapter calls exactly the table's operations (and STS GetCallerIdentity,
    // which needs no permission): every SDK operation it names, in any file below
    // src/aws, however the adapter is split. An SDK operation is a fluent builder:
    // `.operation_name()` followed by `.send()`, `.customize()`, a setter, or handed
    // to the raw-body reader with its parse (`, wire::...`, `, wire_json::...`).
    let sdk_call = regex::Regex::new(
        r"\.([a-z][a-z0-9_]*)\(\)\s*(?:\.send\(|\.customize\(|\.set_|\.max_items\(|\.page_size\(|\.email_identity\(|,\s*wire(?:_json)?::)",
    )
    .unwrap();
    let mut called = std::collections::BTreeSet::new();
    let mut dirs = vec![manifest_dir().join("src/aws")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for call in sdk_call.captures_iter(&text) {
                    called.insert(call[1].to_owned());
                }
            }
        }
    }
    let mut table: std::collections::BTreeSet<String> = Operation::ALL
        .iter()
        .map(|op| snake_case(op.as_str()))
        .collect();
    table.insert("get_caller_identity".to_owned());
    assert_eq!(
        called, table,
        "src/aws calls an operation the table (and so the IAM policy) lacks, or the reverse"
    );
    for f in [
        "irsa-trust-policy.json",
        "pod-identity-trust-policy.json",
        "target-role-trust-policy.json",
        "assume-target-roles-policy.json",
    ] {
        let _: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(manifest_dir().join("deploy/iam").join(f)).unwrap(),
        )
        .unwrap();
    }
}

/// The trust policies let exactly the service account the kustomize base deploys,
/// in the namespace it deploys to, assume the exporter's role: a base in another
/// namespace would fail to get credentials, and a trust without that condition
/// would let any pod in the cluster (Pod Identity: in the account) take the role.
#[test]
fn trust_policies_pin_the_namespace_and_service_account_the_base_deploys() {
    let docs = kustomize("deploy/kubernetes/base");
    let sa = find(&docs, "ServiceAccount");
    let namespace = sa["metadata"]["namespace"].as_str().expect("a namespace");
    let name = sa["metadata"]["name"].as_str().unwrap();
    let policy = |f: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(manifest_dir().join("deploy/iam").join(f)).unwrap(),
        )
        .unwrap()
    };
    let irsa = policy("irsa-trust-policy.json");
    let equals = irsa["Statement"][0]["Condition"]["StringEquals"]
        .as_object()
        .unwrap();
    let sub = equals
        .iter()
        .find(|(k, _)| k.ends_with(":sub"))
        .map(|(_, v)| v.as_str().unwrap())
        .expect("IRSA trust pins the subject");
    assert_eq!(sub, format!("system:serviceaccount:{namespace}:{name}"));
    assert!(equals
        .iter()
        .any(|(k, v)| k.ends_with(":aud") && v == "sts.amazonaws.com"));
    let pod = policy("pod-identity-trust-policy.json");
    let equals = &pod["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(equals["aws:RequestTag/kubernetes-namespace"], namespace);
    assert_eq!(equals["aws:RequestTag/kubernetes-service-account"], name);
    assert!(equals["aws:SourceAccount"].is_string(), "{pod}");
}

fn dashboard(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(manifest_dir().join(path)).unwrap()).unwrap()
}

/// The provisioning/sidecar rendering: the variables, every panel on the
/// datasource variable and every query on the job variable, and no `__inputs`
/// (the sidecar does not substitute them; a dashboard with them shows no data).
#[test]
fn dashboard_is_valid_json_with_the_required_variables() {
    let dash = dashboard("dashboards/ses-identity-exporter.json");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        vars,
        [
            "datasource",
            "job",
            "aws_account_id",
            "aws_region",
            "identity"
        ]
    );
    assert!(dash.get("__inputs").is_none());
    let panels = dash["panels"].as_array().unwrap();
    let types: Vec<&str> = panels.iter().filter_map(|p| p["type"].as_str()).collect();
    for t in ["stat", "table", "state-timeline", "timeseries"] {
        assert!(types.contains(&t), "no {t} panel");
    }
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let expr = target["expr"].as_str().unwrap();
            // Every series selector reads the job variable.
            for selector in expr.split('{').skip(1) {
                assert!(
                    selector.starts_with("job=~\"$job\""),
                    "{title}: a selector without the job variable in {expr}"
                );
            }
        }
    }
}

/// The grafana.com rendering: the same dashboard, asking for the datasource
/// through `__inputs` and listing what it needs in `__requires`.
#[test]
fn the_grafana_com_dashboard_declares_its_inputs_and_requirements() {
    let sidecar = dashboard("dashboards/ses-identity-exporter.json");
    let gcom = dashboard("dashboards/grafana.com/ses-identity-exporter.json");
    assert_eq!(gcom["panels"], sidecar["panels"]);
    assert_eq!(gcom["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(gcom["__inputs"][0]["pluginId"], "prometheus");
    let datasource = &gcom["templating"]["list"][0];
    assert_eq!(datasource["name"], "datasource");
    assert_eq!(datasource["current"]["value"], "${DS_PROMETHEUS}");
    let required: Vec<(&str, &str)> = gcom["__requires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["type"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    assert!(required.contains(&("grafana", "grafana")));
    assert!(required.contains(&("datasource", "prometheus")));
    for panel in gcom["panels"].as_array().unwrap() {
        let t = panel["type"].as_str().unwrap();
        if t != "row" {
            assert!(
                required.contains(&("panel", t)),
                "__requires lacks panel {t}"
            );
        }
    }
}

/// Every table of docs/metrics.md renders as one table (GitHub's Markdown): each
/// row has the header's number of cells (a `|` in a cell, even in a code span, ends
/// the cell unless escaped), no prose line sits between rows, and no `<word>`
/// outside a code span (it would be read as an HTML tag and vanish).
#[test]
fn the_tables_of_the_metrics_doc_render() {
    let doc = std::fs::read_to_string(manifest_dir().join("docs/metrics.md")).unwrap();
    let cells = |line: &str| line.trim().trim_matches('|').split('|').count();
    let mut header: Option<usize> = None;
    let mut tables = 0;
    for (i, line) in doc.lines().enumerate() {
        let n = i + 1;
        if line.starts_with('|') {
            match header {
                None => {
                    header = Some(cells(line));
                    tables += 1;
                }
                Some(h) => assert_eq!(cells(line), h, "docs/metrics.md:{n}: cells"),
            }
            let outside_code: String = line.split('`').step_by(2).collect();
            assert!(
                !outside_code.contains('<') || !outside_code.contains('>'),
                "docs/metrics.md:{n}: a <...> outside a code span: {line}"
            );
        } else {
            header = None;
        }
    }
    assert!(tables >= 5, "the family tables: {tables}");
}

/// `GetSendQuota` -> `get_send_quota`: the SDK's name of an operation.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
