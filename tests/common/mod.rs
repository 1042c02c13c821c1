//! Shared harness of the end-to-end tests: runs the real binaries (the exporter, the
//! SES double, moto; Prometheus and Alertmanager in their own modules) as child
//! processes on 127.0.0.1, with an AWS environment that cannot leave the machine,
//! and a tiny HTTP client to talk to them.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod alertmanager;
pub mod dns;
pub mod in_process;
pub mod k8s;
pub mod pki;
pub mod prometheus;

pub const EXPORTER: &str = env!("CARGO_BIN_EXE_ses-identity-exporter");

/// The binary the tests start: this build's, or `SES_EXPORTER_UNDER_TEST` (another
/// build, e.g. an older commit's, to show that a test fails without its fix).
pub fn exporter_binary() -> String {
    std::env::var("SES_EXPORTER_UNDER_TEST")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| EXPORTER.to_owned())
}
pub const DOUBLE: &str = env!("CARGO_BIN_EXE_ses-double");
pub const REGION: &str = "us-east-1";

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A finished command's stdout then stderr, for assertion messages and matching.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every rule of the shipped rule file (deploy/prometheus/alerts.yml, rendered by
/// the mixin), in file order.
pub fn shipped_rules() -> Vec<serde_yaml::Value> {
    let file = std::fs::read_to_string(manifest_dir().join("deploy/prometheus/alerts.yml"))
        .expect("deploy/prometheus/alerts.yml");
    let rules: serde_yaml::Value = serde_yaml::from_str(&file).expect("the rule file is YAML");
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .collect()
}

/// Polls `check` until it gives a value or `timeout` passes; `None` then.
pub fn wait_for_or<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
/// Used to wait for a state the exporter reaches on its own schedule (a poll cycle),
/// which has no other signal than the metrics themselves.
pub fn wait_for<T>(timeout: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_for_or(timeout, check)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

// ---------------------------------------------------------------- HTTP client

pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// One HTTP/1.1 request with `Connection: close`; enough for tests, no dependencies.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<BTreeMap<_, _>>();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[pos + 2 + size + 2..];
    }
    out
}

pub fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http(addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

// ---------------------------------------------------------------- processes

/// A child process killed when dropped, with its stderr collected.
pub struct Proc {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
}

impl Proc {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(reader: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let mut l = log.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
}

/// Picks a free loopback port for a program that cannot report the one it bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------- SES double

pub struct Double {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Double {
    /// Starts `ses-double` with extra arguments and waits for its "listening on" line,
    /// printed once its socket accepts connections.
    pub fn start(args: &[&str]) -> Double {
        let mut child = Command::new(DOUBLE)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ses-double");
        let log = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), Arc::clone(&log));
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .expect("read the double's first line");
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from ses-double: {first:?}"));
        Double {
            proc: Proc { child, log },
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn control(&self, method: &str, path: &str, json: &str) {
        let r = http(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            json.as_bytes(),
        )
        .expect("double control request");
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
    }

    pub fn set_faults(&self, json: &str) {
        self.control("PUT", "/_double/faults", json);
    }

    pub fn set_identity(&self, name: &str, json: &str) {
        self.control("PUT", &format!("/_double/identities/{name}"), json);
    }

    pub fn delete_identity(&self, name: &str) {
        self.control("DELETE", &format!("/_double/identities/{name}"), "");
    }

    /// Every SES request the double received, in arrival order.
    /// Every SES request so far (STS's are in [`Double::all_requests`]).
    pub fn requests(&self) -> Vec<DoubleRequest> {
        self.all_requests()
            .into_iter()
            .filter(|r| !matches!(r.action.as_str(), "GetCallerIdentity" | "AssumeRole"))
            .collect()
    }

    /// Every request so far, SES and STS.
    pub fn all_requests(&self) -> Vec<DoubleRequest> {
        let r = get(self.addr, "/_double/requests");
        serde_json::from_slice(&r.body).expect("request records are JSON")
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct DoubleRequest {
    pub t: f64,
    pub action: String,
    pub identities: usize,
    pub status: u16,
    pub outcome: String,
    pub account: String,
    pub region: String,
}

// ---------------------------------------------------------------- AWS SDK

/// An SES client for seeding or probing a server on loopback, configured in code so
/// nothing on the machine (profiles, instance metadata) is read. SDK retries are off:
/// each call is exactly one request.
pub fn sdk_client(url: &str) -> aws_sdk_ses::Client {
    sdk_client_as(url, REGION, test_credentials())
}

/// The test's static credentials (the default account of the double and moto).
pub fn test_credentials() -> aws_sdk_ses::config::Credentials {
    aws_sdk_ses::config::Credentials::new(
        "AKIDTESTTESTTESTTEST",
        "test-secret-key",
        None,
        None,
        "test",
    )
}

/// An SES client in `region` with `credentials` (e.g. an assumed role's).
pub fn sdk_client_as(
    url: &str,
    region: &str,
    credentials: aws_sdk_ses::config::Credentials,
) -> aws_sdk_ses::Client {
    use aws_sdk_ses::config::{BehaviorVersion, Region};
    let conf = aws_sdk_ses::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .retry_config(aws_sdk_ses::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ses::Client::from_conf(conf)
}

/// Assumes `role_arn` at the STS server `url` with the test credentials and returns
/// the role's credentials (how a test seeds another account of moto).
pub async fn assume_role(url: &str, role_arn: &str) -> aws_sdk_ses::config::Credentials {
    use aws_sdk_sts::config::{BehaviorVersion, Region};
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(test_credentials())
        .endpoint_url(url)
        .build();
    let out = aws_sdk_sts::Client::from_conf(conf)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("seed")
        .send()
        .await
        .expect("AssumeRole");
    let c = out.credentials().expect("credentials");
    aws_sdk_ses::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed",
    )
}

/// A runtime for the SDK calls of a synchronous test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- moto

pub struct Moto {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Moto {
    /// Starts moto's server from the project venv (`make venv`), or `MOTO_SERVER`.
    pub fn start() -> Moto {
        let bin = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest_dir().join(".venv/bin/moto_server"));
        assert!(
            bin.exists(),
            "moto_server not found at {}: run `make venv` (or set MOTO_SERVER)",
            bin.display()
        );
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let log = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), Arc::clone(&log));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Readiness: the port accepts connections.
        wait_for(Duration::from_secs(30), "moto to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        });
        Moto {
            proc: Proc { child, log },
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

// ---------------------------------------------------------------- exporter

pub struct Exporter {
    pub proc: Proc,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Environment that keeps the SDK on loopback: SES and STS at `endpoint`, region
/// and static credentials from the environment, instance metadata off, AWS config files that exist but are
/// empty, so no profile on the machine is read.
pub fn aws_env(dir: &Path, endpoint: &str) -> Vec<(String, String)> {
    let config = dir.join("aws-config");
    let creds = dir.join("aws-credentials");
    std::fs::write(&config, "").unwrap();
    std::fs::write(&creds, "").unwrap();
    [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTESTTEST".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-key".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", config.display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
        ("AWS_ENDPOINT_URL_SES", endpoint.to_owned()),
        // SESv2 (the account, reputation_entities and identity_reasons collectors,
        // --collector.verification.source=list) on the same server; and every
        // other service, should one be added, through the global endpoint.
        ("AWS_ENDPOINT_URL_SESV2", endpoint.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        // The target's account comes from STS GetCallerIdentity: the same server
        // answers it, so no request leaves the machine.
        ("AWS_ENDPOINT_URL_STS", endpoint.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The dns collector would ask the system's resolvers about the test identities'
/// MAIL FROM domains: a query leaving the machine. It is off unless a test names
/// its own (loopback) DNS server.
pub fn dns_off_unless_asked(args: &[&str]) -> Vec<&'static str> {
    if args
        .iter()
        .any(|a| a.starts_with("--dns.nameserver") || a.starts_with("--collector.dns"))
    {
        Vec::new()
    } else {
        vec!["--no-collector.dns"]
    }
}

impl Exporter {
    /// Starts the exporter against `endpoint` with `args`, an optional config file,
    /// and waits for its start-up log line, which carries the bound address.
    pub fn start(endpoint: &str, config_yaml: Option<&str>, args: &[&str]) -> Exporter {
        Self::start_with_env(endpoint, config_yaml, args, &[])
    }

    pub fn start_with_env(
        endpoint: &str,
        config_yaml: Option<&str>,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(exporter_binary());
        cmd.env_clear()
            .envs(aws_env(dir.path(), endpoint))
            .envs(extra_env.iter().copied())
            .args(["--web.listen-address", "127.0.0.1:0"])
            .args(args)
            .args(dns_off_unless_asked(args))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(yaml) = config_yaml {
            let path = dir.path().join("config.yaml");
            std::fs::write(&path, yaml).unwrap();
            cmd.arg("--config.file").arg(path);
        }
        let mut child = cmd.spawn().expect("start the exporter");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let mut reader = BufReader::new(stderr);
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read exporter log");
            assert!(n > 0, "exporter exited before starting; log:\n{seen}");
            seen.push_str(&line);
            if line.contains("starting ses-identity-exporter") {
                let addr = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("listen_address="))
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("no listen_address in {line:?}"));
                break addr;
            }
        };
        log.lock().unwrap().push_str(&seen);
        collect(reader.into_inner(), Arc::clone(&log));
        Exporter {
            proc: Proc { child, log },
            addr,
            _dir: dir,
        }
    }

    pub fn metrics(&self) -> String {
        let r = get(self.addr, "/metrics");
        assert_eq!(r.status, 200);
        r.text()
    }

    /// Waits until a scrape satisfies `pred`, returning that scrape.
    pub fn wait_metrics(&self, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
        wait_for(Duration::from_secs(60), what, || {
            let m = Metrics::parse(&self.metrics());
            pred(&m).then_some(m)
        })
    }

    /// Waits for `/-/ready`, i.e. the end of the first cycle SES answered.
    pub fn wait_ready(&self) {
        wait_for(Duration::from_secs(60), "/-/ready", || {
            (get(self.addr, "/-/ready").status == 200).then_some(())
        });
    }
}

// ---------------------------------------------------------------- exposition

/// A parsed scrape: `name{labels}` (as written) → value.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: BTreeMap<String, f64>,
    pub text: String,
}

/// The role into the second account of the end-to-end estates, and the external ID
/// the double requires for it (`PUT /_double/roles/ROLE`).
pub const ESTATE_ROLE: &str = "arn:aws:iam::210987654321:role/ses-identity-exporter-target";
pub const ESTATE_EXTERNAL_ID: &str = "e2e-external-id";

/// Two accounts × two regions: the environment's account directly, the other through
/// [`ESTATE_ROLE`], each in us-east-1 and eu-west-1.
pub fn estate_config() -> String {
    format!(
        "targets:\n\
         \x20 - region: us-east-1\n\
         \x20 - region: eu-west-1\n\
         \x20 - region: us-east-1\n    role_arn: {ESTATE_ROLE}\n    external_id: {ESTATE_EXTERNAL_ID}\n\
         \x20 - region: eu-west-1\n    role_arn: {ESTATE_ROLE}\n    external_id: {ESTATE_EXTERNAL_ID}\n"
    )
}

/// `aws_account_id="…",aws_region="…"`, as the exporter writes a target's labels.
pub fn target_labels(account: &str, region: &str) -> String {
    format!("aws_account_id=\"{account}\",aws_region=\"{region}\"")
}

impl Metrics {
    /// A sample's value by its series as written (labels in the exporter's order),
    /// whatever its target.
    pub fn raw(&self, series: &str) -> Option<f64> {
        self.text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.parse().ok())
        })
    }

    /// Series of the default target (account [`ACCOUNT`], region [`REGION`], where
    /// the double and moto put a single-target exporter) are keyed without those two
    /// labels, so single-target tests read as before; every other target keeps them.
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((unlabel_default(series), value.parse().ok()?))
            })
            .collect();
        Metrics {
            samples,
            text: text.to_owned(),
        }
    }

    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }

    pub fn status(&self, identity: &str, status: &str) -> Option<f64> {
        self.get(&format!(
            "aws_ses_identity_mail_from_status{{identity=\"{identity}\",status=\"{status}\"}}"
        ))
    }

    pub fn identity(&self, family: &str, identity: &str) -> Option<f64> {
        self.get(&format!("{family}{{identity=\"{identity}\"}}"))
    }

    /// Requests of the default target; 0 while its series do not exist yet (they
    /// appear once STS has named the account).
    pub fn requests(&self, op: &str, outcome: &str) -> f64 {
        self.get(&format!(
            "aws_ses_exporter_ses_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}}"
        ))
        .unwrap_or(0.0)
    }

    /// STS GetCallerIdentity calls of the default region's target whose account is
    /// not known yet (its series carry an empty `aws_account_id`).
    pub fn unresolved_sts(&self, outcome: &str) -> f64 {
        self.get(&format!(
            "aws_ses_exporter_sts_requests_total{{aws_account_id=\"\",aws_region=\"{REGION}\",outcome=\"{outcome}\"}}"
        ))
        .unwrap_or(0.0)
    }

    /// `aws_ses_exporter_up` of the default region's target before STS named its
    /// account.
    pub fn unresolved_up(&self) -> Option<f64> {
        self.get(&format!(
            "aws_ses_exporter_up{{aws_account_id=\"\",aws_region=\"{REGION}\"}}"
        ))
    }

    /// Every series that names `identity`.
    pub fn series_of(&self, identity: &str) -> Vec<String> {
        let needle = format!("identity=\"{identity}\"");
        self.samples
            .keys()
            .filter(|k| k.contains(&needle))
            .cloned()
            .collect()
    }
}

/// The account the double (by default) and moto answer for the test credentials.
pub const ACCOUNT: &str = "123456789012";

/// A series name with the default target's labels removed.
pub fn unlabel_default(series: &str) -> String {
    let labels = format!("aws_account_id=\"{ACCOUNT}\",aws_region=\"{REGION}\"");
    series
        .replace(&format!("{{{labels}}}"), "")
        .replace(&format!("{labels},"), "")
}

/// Lints an exposition with `promtool check metrics`: it must pass with no warning.
/// promtool is a test dependency (`make test` installs Debian's prometheus package).
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install Debian's prometheus package (make test does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}
