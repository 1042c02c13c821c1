//! The Helm chart (charts/ses-identity-exporter), linted and rendered by Helm's own
//! engine (helm-python-sdk, scripts/helm.py) with its default values and with every
//! option on (tests/chart/full-values.yaml), and the result validated as strictly as
//! the kustomize base (common::k8s). Also: the config it renders is one the exporter
//! accepts, its rules and dashboard are the mixin's, and the ServiceMonitor pins the
//! job the rules select on, whatever the release is called.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::k8s::{self, find, venv_tool};
use common::{manifest_dir, output_text, EXPORTER};
use serde_yaml::Value;

const CHART: &str = "charts/ses-identity-exporter";
const FULL: &str = "tests/chart/full-values.yaml";
/// The job of the mixin's default selector, which the shipped rules carry.
const JOB: &str = "ses-identity-exporter";

fn helm(args: &[&str]) -> Output {
    Command::new(venv_tool("python"))
        .arg("scripts/helm.py")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .expect("python (run `make test-deps`)")
}

fn render(values: &[&str], name: &str, namespace: &str) -> Vec<Value> {
    let mut args = vec!["render", CHART, "--name", name, "--namespace", namespace];
    for v in values {
        args.extend(["-f", v]);
    }
    let out = helm(&args);
    assert!(out.status.success(), "helm render:\n{}", output_text(&out));
    k8s::parse_stream(&String::from_utf8(out.stdout).unwrap())
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    let mut k: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    k.sort_unstable();
    k
}

fn container(docs: &[Value]) -> &Value {
    &find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// `want` ⊆ `have`, for label maps (a selector and what it must select).
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .unwrap()
        .iter()
        .all(|(k, v)| &labels[k] == v)
}

/// The config the ConfigMap carries passes the exporter's own `--config.check`.
fn assert_exporter_accepts_config(docs: &[Value]) -> Value {
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["config.yaml"].is_string())
        .expect("the config ConfigMap");
    let text = cm["data"]["config.yaml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(EXPORTER)
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .arg("--config.check")
        .arg("--config.file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the exporter refuses the chart's config:\n{text}\n{}",
        output_text(&out)
    );
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn the_chart_lints_with_default_and_full_values() {
    for values in [&[][..], &["-f", FULL][..]] {
        let mut a = vec!["lint", CHART];
        a.extend(values);
        let out = helm(&a);
        let report = output_text(&out);
        assert!(out.status.success(), "helm lint {values:?}:\n{report}");
        assert!(report.contains("0 errors"), "{report}");
        assert!(
            !report.contains("[WARNING]") && !report.contains("[ERROR]"),
            "{report}"
        );
    }
}

#[test]
fn default_values_render_valid_hardened_objects() {
    let docs = render(&[], "ses-identity-exporter", "monitoring");
    assert_eq!(
        kinds(&docs),
        ["ConfigMap", "Deployment", "Service", "ServiceAccount"],
        "prometheus-operator objects, the dashboard and the NetworkPolicy are opt-in"
    );
    k8s::validate(&docs, 0);

    let deploy = find(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = container(&docs);
    assert_eq!(
        c["image"],
        "ghcr.io/ses-identity-exporter/ses-identity-exporter:0.1.0"
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["privileged"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert!(c["livenessProbe"]["httpGet"]["scheme"].is_null());
    assert_eq!(c["env"][0]["name"], "AWS_REGION");
    assert_eq!(c["env"][0]["value"], "us-east-1");
    assert!(!args(&docs)
        .iter()
        .any(|a| a.starts_with("--web.config.file")));

    // The resources are the kustomize base's, which come from the measured RSS.
    let base: Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifest_dir().join("deploy/kubernetes/base/deployment.yaml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        c["resources"],
        base["spec"]["template"]["spec"]["containers"][0]["resources"]
    );

    // The Service selects the pod; the pod runs as the chart's service account.
    let svc = find(&docs, "Service");
    assert!(selects(
        &svc["spec"]["selector"],
        &deploy["spec"]["template"]["metadata"]["labels"]
    ));
    assert_eq!(svc["spec"]["ports"][0]["port"], 10150);
    assert_eq!(
        pod["serviceAccountName"],
        find(&docs, "ServiceAccount")["metadata"]["name"]
    );
    // Named as the IAM trust policies in deploy/iam/ expect.
    assert_eq!(pod["serviceAccountName"], "ses-identity-exporter");

    // The values' config, as it is, and one the exporter accepts.
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifest_dir().join(CHART).join("values.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(assert_exporter_accepts_config(&docs), values["config"]);
}

#[test]
fn full_values_render_valid_objects_with_every_option() {
    let docs = render(&[FULL], "ses-identity-exporter", "monitoring");
    assert_eq!(
        kinds(&docs),
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    k8s::validate(&docs, 2);
    let config = assert_exporter_accepts_config(&docs);
    assert_eq!(config["targets"].as_sequence().unwrap().len(), 2);

    let c = container(&docs);
    let pod = &find(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        c["image"],
        "registry.example.com/ses-identity-exporter@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(c["env"][0]["value"], "eu-west-1");
    assert_eq!(c["env"][1]["name"], "TZ");
    let a = args(&docs);
    for want in [
        "--web.config.file=/etc/ses-identity-exporter-web/web.yml",
        "--log.format=logfmt",
        "--log.level=debug",
        "--dns.timeout=3s",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
    }
    // The web config Secret is mounted where --web.config.file points, beside
    // (not inside) the read-only config volume; the probes speak HTTPS.
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["mountPath"] == "/etc/ses-identity-exporter-web" && m["readOnly"] == true));
    assert!(pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == "ses-identity-exporter-web"));
    assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert!(pod["affinity"]["nodeAffinity"].is_mapping());
    assert_eq!(pod["priorityClassName"], "monitoring");
    assert_eq!(pod["imagePullSecrets"][0]["name"], "registry");
    assert_eq!(
        find(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/ses-identity-exporter"
    );

    // ServiceMonitor: selects the Service, on its port, over HTTPS with basic
    // auth, and pins the job before the user's relabelings.
    let sm = find(&docs, "ServiceMonitor");
    let svc = find(&docs, "Service");
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    assert!(selects(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["port"], svc["spec"]["ports"][0]["name"]);
    assert_eq!(ep["scheme"], "https");
    assert_eq!(ep["interval"], "1m");
    assert_eq!(ep["scrapeTimeout"], "20s");
    assert!(ep["basicAuth"]["password"]["name"].is_string());
    assert_job_pinned(sm);
    assert_eq!(ep["relabelings"][1]["targetLabel"], "cluster");

    // PrometheusRule: exactly the shipped rule file (the mixin's), with the
    // rules' own {{ $labels.x }} left for Prometheus.
    let pr = find(&docs, "PrometheusRule");
    let rules: Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifest_dir().join("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(pr["spec"], rules);
    assert!(serde_yaml::to_string(&pr["spec"])
        .unwrap()
        .contains("{{ $labels.identity }}"));
    assert_eq!(pr["metadata"]["labels"]["release"], "kube-prometheus-stack");

    // The dashboard ConfigMap, for the sidecar, in the namespace it watches.
    let dash = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["name"] == "ses-identity-exporter-dashboard"
        })
        .expect("dashboard ConfigMap");
    assert_eq!(dash["metadata"]["namespace"], "grafana");
    assert_eq!(dash["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(dash["metadata"]["annotations"]["grafana_folder"], "AWS");
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("dashboards/ses-identity-exporter.json"))
            .unwrap(),
    )
    .unwrap();
    let carried: serde_json::Value =
        serde_json::from_str(dash["data"]["ses-identity-exporter.json"].as_str().unwrap()).unwrap();
    assert_eq!(carried, shipped);
    assert!(
        carried.get("__inputs").is_none(),
        "the sidecar substitutes no inputs"
    );

    assert_network_policy(&docs);
}

/// Ingress only to the metrics port; egress HTTPS (SES, STS), DNS on 53 over UDP
/// and TCP, the Pod Identity agent when asked, and the extra rule; on this pod.
fn assert_network_policy(docs: &[Value]) {
    let np = find(docs, "NetworkPolicy");
    let spec = &np["spec"];
    assert!(selects(
        &spec["podSelector"]["matchLabels"],
        &find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    ));
    assert_eq!(
        spec["policyTypes"],
        serde_yaml::from_str::<Value>("[Ingress, Egress]").unwrap()
    );
    let ingress = spec["ingress"].as_sequence().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], "http-metrics");
    assert_eq!(
        ingress[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "prometheus"
    );
    let mut egress: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in spec["egress"].as_sequence().unwrap() {
        let to: Vec<String> = rule["to"]
            .as_sequence()
            .map(|t| {
                t.iter()
                    .map(|p| serde_yaml::to_string(p).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        for port in rule["ports"].as_sequence().unwrap() {
            let key = format!(
                "{}/{}",
                port["port"].as_u64().unwrap(),
                port["protocol"].as_str().unwrap()
            );
            egress.entry(key).or_default().extend(to.iter().cloned());
        }
    }
    assert_eq!(
        egress.keys().collect::<Vec<_>>(),
        ["443/TCP", "53/TCP", "53/UDP", "80/TCP"]
    );
    assert!(egress["80/TCP"]
        .iter()
        .any(|t| t.contains("169.254.170.23/32")));
    assert!(egress["80/TCP"]
        .iter()
        .any(|t| t.contains("169.254.169.254/32")));
    assert!(egress["80/TCP"]
        .iter()
        .all(|t| t.contains("/32") || t.contains("/128")));
    assert!(egress["53/UDP"].iter().any(|t| t.contains("kube-dns")));
    assert!(egress["53/UDP"].iter().any(|t| t.contains("10.0.0.2/32")));
}

/// The first relabeling sets `job` to the job the shipped rules select on, and no
/// other rule selects another job.
fn assert_job_pinned(sm: &Value) {
    let first = &sm["spec"]["endpoints"][0]["relabelings"][0];
    assert_eq!(first["targetLabel"], "job");
    assert_eq!(first["action"], "replace");
    assert_eq!(first["replacement"], JOB);
    let rules =
        std::fs::read_to_string(manifest_dir().join(CHART).join("files/rules.yaml")).unwrap();
    let pinned = format!("job=\\\"{JOB}\\\"");
    let plain = format!("job=\"{JOB}\"");
    let selectors = rules.matches("job=").count();
    assert!(selectors > 40, "{selectors} job selectors in the rules");
    assert_eq!(
        rules.matches(&plain).count() + rules.matches(&pinned).count(),
        selectors,
        "every job selector of the chart's rules is {plain}"
    );
}

#[test]
fn any_release_name_keeps_the_job_the_rules_select() {
    let docs = render(&[FULL], "prod", "mail");
    let svc = find(&docs, "Service");
    assert_eq!(svc["metadata"]["name"], "prod-ses-identity-exporter");
    assert_eq!(svc["metadata"]["namespace"], "mail");
    let sm = find(&docs, "ServiceMonitor");
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], "mail");
    assert!(selects(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    assert!(selects(
        &svc["spec"]["selector"],
        &find(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    ));
    // Without the pin the operator would name the job prod-ses-identity-exporter,
    // and no rule would match.
    assert_job_pinned(sm);
}

#[test]
fn bad_values_fail_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "serviceMonitr:\n  enabled: true\n",
            "'serviceMonitr' not allowed",
        ),
        (
            "serviceMonitor:\n  enabled: \"yes\"\n",
            "/serviceMonitor/enabled",
        ),
        (
            "serviceMonitor:\n  interval: 30 s\n",
            "/serviceMonitor/interval",
        ),
        ("aws:\n  region: \"\"\n", "/aws/region"),
        ("logFormat: text\n", "/logFormat"),
        // Not schema errors: the templates' own checks.
        (
            "webConfig:\n  tls: true\n",
            "webConfig.tls needs webConfig.existingSecret",
        ),
        (
            "extraArgs: [\"--web.listen-address=:9100\"]\n",
            "extraArgs: --web.listen-address=:9100 cannot be used",
        ),
        (
            "extraArgs: [--web.systemd-socket]\n",
            "extraArgs: --web.systemd-socket cannot be used",
        ),
    ];
    for (i, (values, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&file, values).unwrap();
        let out = helm(&["render", CHART, "-f", file.to_str().unwrap()]);
        let report = output_text(&out);
        assert!(!out.status.success(), "{values} rendered");
        assert!(report.contains(want), "{values}: {report}");
    }
}

#[test]
fn the_chart_is_versioned_with_the_exporter() {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifest_dir().join(CHART).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(chart["apiVersion"], "v2", "Helm 3 and 4 read apiVersion v2");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], version);
    assert_eq!(chart["appVersion"], version);
    assert_eq!(
        chart["home"].as_str(),
        Some(env!("CARGO_PKG_REPOSITORY")),
        "Chart.yaml's home is Cargo.toml's repository"
    );
}

/// As a subchart under a parent's `condition: ses-identity-exporter.enabled`, and
/// with Prometheus' global interval (empty interval and timeout are left out).
#[test]
fn it_renders_as_a_subchart_with_the_global_scrape_interval() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(
        &file,
        "enabled: true\nserviceMonitor:\n  enabled: true\n  interval: \"\"\n  scrapeTimeout: \"\"\n",
    )
    .unwrap();
    let docs = render(
        &[file.to_str().unwrap()],
        "ses-identity-exporter",
        "monitoring",
    );
    k8s::validate(&docs, 1);
    let ep = &find(&docs, "ServiceMonitor")["spec"]["endpoints"][0];
    assert!(ep.get("interval").is_none(), "{ep:?}");
    assert!(ep.get("scrapeTimeout").is_none(), "{ep:?}");
    assert_job_pinned(find(&docs, "ServiceMonitor"));
}
