//! A real Prometheus (Debian's package) scraping the real exporter, which polls the
//! SES double holding identities in every state, with the shipped scrape config and
//! rule file. Asserted through Prometheus' HTTP API: the target is up, every PromQL
//! expression of the dashboard returns data, and the Failed alerts fire for exactly
//! the failed identities with the right severity.
//!
//! Documented transforms, and nothing else:
//! - rules: every `for:` becomes `for: 10s` (the real durations are proven by
//!   `promtool test rules`); `keep_firing_for` and expressions are unchanged;
//! - prometheus.yml: the target becomes the test exporter's address, the intervals
//!   2s, and the Alertmanager section is dropped (none runs here);
//! - dashboard expressions: `$identity` → `.+` (the variable's "All" value),
//!   `$__rate_interval` → `20s` (ten scrape intervals), and a templating query
//!   `label_values(EXPR, LABEL)` is run as `group by (LABEL) (EXPR)`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::dns::DnsServer;
use common::pki::Pki;
use common::{free_port, http, manifest_dir, wait_for, Double, Exporter, Proc};

fn transform_rules(rules: &str) -> String {
    rules
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for: ") {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}for: 10s")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn transform_config(config: &str, target: &str) -> String {
    let config = config
        .replace("localhost:10150", target)
        .replace("scrape_interval: 30s", "scrape_interval: 2s")
        .replace("evaluation_interval: 30s", "evaluation_interval: 2s");
    // Drop the alerting section: no Alertmanager in this test.
    let start = config.find("alerting:").expect("alerting section");
    let end = config.find("scrape_configs:").expect("scrape_configs");
    format!("{}{}", &config[..start], &config[end..])
}

struct Prometheus {
    _proc: Proc,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let shipped = manifest_dir().join("deploy/prometheus");
        let rules = std::fs::read_to_string(shipped.join("alerts.yml")).unwrap();
        std::fs::write(dir.path().join("alerts.yml"), transform_rules(&rules)).unwrap();
        let config = std::fs::read_to_string(shipped.join("prometheus.yml")).unwrap();
        Prometheus::launch(dir, &transform_config(&config, target))
    }

    /// Runs Prometheus with `config` as prometheus.yml in `dir` (relative file names
    /// in it resolve there).
    fn launch(dir: tempfile::TempDir, config: &str) -> Prometheus {
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus not found: install Debian's prometheus package (make test-deps)");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let proc = Proc {
            child,
            log: Default::default(),
        };
        wait_for(Duration::from_secs(60), "Prometheus /-/ready", || {
            http(addr, "GET", "/-/ready", &[], b"")
                .ok()
                .filter(|r| r.status == 200)
        });
        Prometheus {
            _proc: proc,
            addr,
            _dir: dir,
        }
    }

    fn query(&self, promql: &str) -> serde_json::Value {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .finish();
        let r = http(
            self.addr,
            "POST",
            "/api/v1/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .expect("query Prometheus");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].clone()
    }

    fn firing(&self) -> Vec<serde_json::Value> {
        let r = http(self.addr, "GET", "/api/v1/alerts", &[], b"").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .cloned()
            .collect()
    }
}

/// Every PromQL expression of the dashboard, templating queries included, after the
/// documented substitutions.
fn dashboard_queries() -> Vec<String> {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("dashboards/ses-identity-exporter.json"))
            .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(
                t["expr"]
                    .as_str()
                    .expect("every target has an expr")
                    .to_owned(),
            );
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let q = var["query"]["query"].as_str().expect("query variable");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .expect("label_values(EXPR, LABEL)");
            let (expr, label) = inner.rsplit_once(',').unwrap();
            exprs.push(format!("group by ({}) ({})", label.trim(), expr.trim()));
        }
    }
    exprs
        .into_iter()
        .map(|e| {
            e.replace("$identity", ".+")
                .replace("$__rate_interval", "20s")
        })
        .inspect(|e| assert!(!e.contains('$'), "unsubstituted variable in {e}"))
        .collect()
}

#[test]
fn prometheus_scrapes_the_dashboard_has_data_and_failed_alerts_fire() {
    let double = Double::start(&["--rate", "10"]);
    // DNS for every demo MAIL FROM domain: right, except success-reject's MX, which
    // points at another region while SES still says Success.
    let dns_dir = tempfile::tempdir().unwrap();
    let mut zones = serde_json::Map::new();
    for status in ["success", "pending", "failed", "temporaryfailure"] {
        for behavior in ["default", "reject"] {
            zones.insert(
                format!("bounce.{status}-{behavior}.example.com"),
                serde_json::json!({
                    "MX": ["10 feedback-smtp.us-east-1.amazonses.com"],
                    "TXT": ["v=spf1 include:amazonses.com ~all"]
                }),
            );
        }
    }
    zones.insert(
        "bounce.success-reject.example.com".into(),
        serde_json::json!({
            "MX": ["10 feedback-smtp.eu-west-1.amazonses.com"],
            "TXT": ["v=spf1 include:amazonses.com ~all"]
        }),
    );
    let dns = DnsServer::start(dns_dir.path(), &serde_json::Value::Object(zones));
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--ses.rate",
            "10",
            "--poll.interval",
            "5s",
            "--dns.nameserver",
            &format!("127.0.0.1:{}", dns.port),
        ],
    );
    exporter.wait_ready();
    let prom = Prometheus::start(&exporter.addr.to_string());

    wait_for(Duration::from_secs(60), "the target to be up", || {
        let r = prom.query("up{job=\"ses-identity-exporter\"} == 1");
        (!r.as_array().unwrap().is_empty()).then_some(())
    });

    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    for q in &queries {
        wait_for(Duration::from_secs(60), &format!("data for {q}"), || {
            let r = prom.query(q);
            (!r.as_array().unwrap().is_empty()).then_some(())
        });
    }

    let alerts = wait_for(
        Duration::from_secs(90),
        "both Failed alerts and the MX alert to fire",
        || {
            let a = prom.firing();
            let names: Vec<&str> = a
                .iter()
                .filter_map(|x| x["labels"]["alertname"].as_str())
                .collect();
            (names.contains(&"SesMailFromFailedRejectingMail")
                && names.contains(&"SesMailFromFailed")
                && names.contains(&"SesMailFromMxWrongRejectingMail"))
            .then_some(a)
        },
    );
    let of = |name: &str| -> Vec<(String, String, String)> {
        alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                (
                    a["labels"]["identity"].as_str().unwrap_or("").to_owned(),
                    a["labels"]["severity"].as_str().unwrap_or("").to_owned(),
                    a["labels"]["mail_from_domain"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        of("SesMailFromFailedRejectingMail"),
        vec![(
            "failed-reject.example.com".into(),
            "critical".into(),
            "bounce.failed-reject.example.com".into()
        )]
    );
    assert_eq!(
        of("SesMailFromFailed"),
        vec![(
            "failed-default.example.com".into(),
            "warning".into(),
            "bounce.failed-default.example.com".into()
        )]
    );
    // The DNS check sees what SES does not yet: success-reject's MX is wrong.
    assert_eq!(
        of("SesMailFromMxWrongRejectingMail"),
        vec![(
            "success-reject.example.com".into(),
            "critical".into(),
            "bounce.success-reject.example.com".into()
        )]
    );
    assert!(of("SesMailFromMxWrong").is_empty());
    assert!(of("SesMailFromSpfMissing").is_empty());
    // No other alert for a healthy identity, and no exporter alert.
    for a in &alerts {
        let id = a["labels"]["identity"].as_str().unwrap_or("");
        if a["labels"]["alertname"] == "SesMailFromMxWrongRejectingMail" {
            continue;
        }
        assert!(
            !id.starts_with("success-")
                && id != "no-mail-from.example.com"
                && id != "ops@example.com",
            "alert for a healthy identity: {a}"
        );
        assert!(
            !a["labels"]["alertname"]
                .as_str()
                .unwrap_or("")
                .starts_with("SesExporter"),
            "exporter alert on a healthy exporter: {a}"
        );
    }
    let failed = alerts
        .iter()
        .find(|a| a["labels"]["identity"] == "failed-reject.example.com")
        .unwrap();
    assert!(failed["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("bounce.failed-reject.example.com"));
}

/// The web config as users deploy it: Prometheus scrapes over TLS, presenting a
/// client certificate the exporter verifies (CA and SAN) and basic auth credentials.
/// A job with a wrong password is refused (up 0) and gets no identity series.
#[test]
fn prometheus_scrapes_over_tls_with_a_client_certificate_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ca(dir.path(), "ca");
    pki.leaf("ca", "server", "IP:127.0.0.1,DNS:localhost", "serverAuth");
    pki.leaf(
        "ca",
        "prometheus",
        "DNS:prometheus.monitoring.svc",
        "clientAuth",
    );
    let hash = bcrypt::hash_with_result("scrape-pw", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
             client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n  \
             client_allowed_sans: [prometheus.monitoring.svc]\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let double = Double::start(&["--seed", "demo"]);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--poll.interval",
            "5s",
            "--web.config.file",
            &web.display().to_string(),
        ],
    );

    std::fs::write(dir.path().join("good-pw"), "scrape-pw").unwrap();
    std::fs::write(dir.path().join("bad-pw"), "guess").unwrap();
    let job = |name: &str, password_file: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    \
             basic_auth: {{username: prometheus, password_file: {password_file}}}\n    \
             tls_config: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}, server_name: localhost}}\n    \
             static_configs: [{{targets: ['{target}']}}]\n",
            ca = pki.path("ca.pem"),
            cert = pki.path("prometheus.pem"),
            key = pki.path("prometheus.key"),
            target = exporter.addr,
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
        job("tls", &dir.path().join("good-pw").display().to_string()),
        job(
            "wrong-password",
            &dir.path().join("bad-pw").display().to_string()
        ),
    );
    let prom_dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::launch(prom_dir, &config);

    wait_for(Duration::from_secs(60), "the TLS target to be up", || {
        let r = prom.query("up{job=\"tls\"} == 1");
        (!r.as_array().unwrap().is_empty()).then_some(())
    });
    wait_for(Duration::from_secs(60), "identity series over TLS", || {
        let r = prom.query("aws_ses_identity_mail_from_status{job=\"tls\"} == 1");
        (!r.as_array().unwrap().is_empty()).then_some(())
    });
    wait_for(
        Duration::from_secs(60),
        "the wrong-password job to be down",
        || {
            let r = prom.query("up{job=\"wrong-password\"} == 0");
            (!r.as_array().unwrap().is_empty()).then_some(())
        },
    );
    let leaked = prom.query("count({job=\"wrong-password\", __name__=~\"aws_ses_.*\"})");
    assert!(leaked.as_array().unwrap().is_empty(), "{leaked}");
}
