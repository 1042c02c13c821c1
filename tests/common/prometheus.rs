//! A real Prometheus (Debian's package) as a child process on loopback, with the
//! shipped deploy/prometheus files adapted to a test, and a client for its HTTP API.
//!
//! The adaptations ([`transform_rules`], [`transform_config`]), and nothing else:
//! - rules: every `for:` becomes `for: 10s` (the real durations are proven by
//!   `promtool test rules`); `keep_firing_for` and expressions are unchanged;
//! - prometheus.yml: the target becomes the test exporter's address, the scrape and
//!   evaluation intervals the test's, and the Alertmanager target the test's
//!   Alertmanager, or the alerting section is dropped when none runs.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{free_port, http, manifest_dir, wait_for, Proc};

pub fn transform_rules(rules: &str) -> String {
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

/// The shipped prometheus.yml scraping `target` every `interval` (evaluating rules
/// as often), sending alerts to `alertmanager`, or to nothing when `None`.
pub fn transform_config(
    config: &str,
    target: &str,
    interval: &str,
    alertmanager: Option<&str>,
) -> String {
    let config = config
        .replace("localhost:10150", target)
        .replace(
            "scrape_interval: 30s",
            &format!("scrape_interval: {interval}"),
        )
        .replace(
            "evaluation_interval: 30s",
            &format!("evaluation_interval: {interval}"),
        );
    match alertmanager {
        Some(am) => {
            assert!(
                config.contains("localhost:9093"),
                "no Alertmanager target in prometheus.yml"
            );
            config.replace("localhost:9093", am)
        }
        None => {
            let start = config.find("alerting:").expect("alerting section");
            let end = config.find("scrape_configs:").expect("scrape_configs");
            format!("{}{}", &config[..start], &config[end..])
        }
    }
}

pub struct Prometheus {
    _proc: Proc,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// The shipped config and rules scraping `target` every 2s, with no Alertmanager.
    pub fn start(target: &str) -> Prometheus {
        Self::start_shipped(target, "2s", None)
    }

    /// The shipped config and rules scraping `target` every `interval`, sending alerts
    /// to the Alertmanager at `alertmanager` (host:port), if any.
    pub fn start_shipped(target: &str, interval: &str, alertmanager: Option<&str>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let shipped = manifest_dir().join("deploy/prometheus");
        let rules = std::fs::read_to_string(shipped.join("alerts.yml")).unwrap();
        std::fs::write(dir.path().join("alerts.yml"), transform_rules(&rules)).unwrap();
        let config = std::fs::read_to_string(shipped.join("prometheus.yml")).unwrap();
        Prometheus::launch(
            dir,
            &transform_config(&config, target, interval, alertmanager),
        )
    }

    /// Runs Prometheus with `config` as prometheus.yml in `dir` (relative file names
    /// in it resolve there).
    pub fn launch(dir: tempfile::TempDir, config: &str) -> Prometheus {
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
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
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

    pub fn query(&self, promql: &str) -> serde_json::Value {
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

    pub fn firing(&self) -> Vec<serde_json::Value> {
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
