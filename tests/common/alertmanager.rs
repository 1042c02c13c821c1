//! A real Alertmanager (Debian's `prometheus-alertmanager`) as a child process on
//! loopback, the shipped example config adapted to it, and a webhook receiver that
//! records every notification Alertmanager sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::{collect, free_port, http, manifest_dir, wait_for, Proc};

/// Debian's package installs the server under this name (and `amtool` beside it).
pub const BINARY: &str = "prometheus-alertmanager";

/// How much faster than shipped the test's group timers run: every `group_wait` and
/// `group_interval` of the route tree is divided by this (30s → 1s, 1m → 2s,
/// 5m → 10s). `repeat_interval` is left alone: no test runs that long.
pub const TIME_SCALE: u32 = 30;

/// The shipped deploy/alertmanager/alertmanager.yml, with the only changes a test
/// may make: each receiver URL's `127.0.0.1:PORT` becomes `webhook` (the path stays,
/// so `/alerts` is the default receiver and `/page` the pager), and the group timers
/// are divided by [`TIME_SCALE`]. Matchers, `group_by`, receivers' names and the
/// inhibit rules are untouched.
pub fn shipped_config(webhook: SocketAddr) -> String {
    let path = manifest_dir().join("deploy/alertmanager/alertmanager.yml");
    let text = std::fs::read_to_string(&path).expect("read alertmanager.yml");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("alertmanager.yml");
    let scaled = scale_route(&mut config["route"]);
    assert!(scaled > 0, "no group timer found in the route tree");
    let mut urls = 0;
    for receiver in config["receivers"].as_sequence_mut().expect("receivers") {
        for hook in receiver["webhook_configs"]
            .as_sequence_mut()
            .into_iter()
            .flatten()
        {
            let url = hook["url"].as_str().expect("webhook url").to_owned();
            let rest = url
                .strip_prefix("http://127.0.0.1:")
                .and_then(|r| r.split_once('/'))
                .map(|(_port, path)| path)
                .unwrap_or_else(|| panic!("receiver URL {url} is not a loopback placeholder"));
            hook["url"] = format!("http://{webhook}/{rest}").into();
            urls += 1;
        }
    }
    assert!(urls > 0, "no webhook receiver to point at the test");
    serde_yaml::to_string(&config).unwrap()
}

/// Divides the group timers of `route` and its children; returns how many it changed.
fn scale_route(route: &mut serde_yaml::Value) -> usize {
    let mut n = 0;
    for key in ["group_wait", "group_interval"] {
        if let Some(v) = route.get(key).and_then(|v| v.as_str()) {
            let d = humantime::parse_duration(v).unwrap_or_else(|e| panic!("{key} {v}: {e}"));
            route[key] = format!("{}ms", (d / TIME_SCALE).as_millis()).into();
            n += 1;
        }
    }
    if let Some(children) = route.get_mut("routes").and_then(|r| r.as_sequence_mut()) {
        for child in children {
            n += scale_route(child);
        }
    }
    n
}

pub struct Alertmanager {
    pub proc: Proc,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Runs Alertmanager with `config` (clustering off, its own storage) and waits
    /// for `/-/ready`.
    pub fn start(config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alertmanager.yml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let mut child = Command::new(BINARY)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty: no gossip port (it would bind every interface).
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{BINARY}: {e}: install Debian's prometheus-alertmanager (make test-deps)")
            });
        let log = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), Arc::clone(&log));
        let mut proc = Proc { child, log };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for(Duration::from_secs(30), "Alertmanager /-/ready", || {
            assert!(proc.is_running(), "Alertmanager exited:\n{}", proc.log());
            http(addr, "GET", "/-/ready", &[], b"")
                .ok()
                .filter(|r| r.status == 200)
        });
        Alertmanager {
            proc,
            addr,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Posts alerts as Prometheus does (`labels`, `annotations`, `startsAt`,
    /// `endsAt`) to `/api/v2/alerts`.
    pub fn post(&self, alerts: &[serde_json::Value]) {
        let body = serde_json::to_vec(alerts).unwrap();
        let r = http(
            self.addr,
            "POST",
            "/api/v2/alerts",
            &[("Content-Type", "application/json")],
            &body,
        )
        .expect("post alerts");
        assert_eq!(r.status, 200, "POST /api/v2/alerts: {}", r.text());
    }

    /// Every alert Alertmanager holds, with its `status` (`state`, `inhibitedBy`).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.get_json("/api/v2/alerts")
    }

    /// The aggregation groups: `labels` (the group_by values), `receiver`, `alerts`.
    pub fn groups(&self) -> Vec<serde_json::Value> {
        self.get_json("/api/v2/alerts/groups")
    }

    fn get_json(&self, path: &str) -> Vec<serde_json::Value> {
        let r = http(self.addr, "GET", path, &[], b"").expect("Alertmanager API");
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        serde_json::from_slice(&r.body).expect("Alertmanager answers JSON")
    }
}

/// An alert as Prometheus posts it: `labels`, and valid for the next hour (longer
/// than any test), so it neither resolves nor times out meanwhile.
pub fn alert(labels: &[(&str, &str)]) -> serde_json::Value {
    let now = SystemTime::now();
    serde_json::json!({
        "labels": labels.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "annotations": {"summary": "posted by the test"},
        "startsAt": humantime::format_rfc3339_millis(now).to_string(),
        "endsAt": humantime::format_rfc3339_millis(now + Duration::from_secs(3600)).to_string(),
    })
}

// ---------------------------------------------------------------- webhook receiver

/// One POST Alertmanager made to the receiver.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The URL path: `/alerts` (receiver `default`) or `/page` (receiver `pager`).
    pub path: String,
    pub arrived: Instant,
    /// Alertmanager's webhook payload: `receiver`, `status`, `groupLabels`, `alerts`...
    pub body: serde_json::Value,
}

impl Notification {
    /// The `labels` of each alert the notification lists.
    pub fn alert_labels(&self) -> Vec<&serde_json::Value> {
        self.body["alerts"]
            .as_array()
            .map(|a| a.iter().map(|x| &x["labels"]).collect())
            .unwrap_or_default()
    }
}

/// A loopback HTTP server on its own thread that answers every POST 200 and records
/// it with its arrival time. Stops when dropped.
pub struct Webhook {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Notification>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let received = Arc::clone(&received);
                    // One thread per connection: a slow sender never holds up another.
                    std::thread::spawn(move || serve(conn, &received));
                }
            })
        };
        Webhook {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// Every notification so far, in arrival order.
    pub fn received(&self) -> Vec<Notification> {
        self.received.lock().unwrap().clone()
    }

    /// The notifications sent to `path` (`/alerts` or `/page`).
    pub fn to(&self, path: &str) -> Vec<Notification> {
        self.received()
            .into_iter()
            .filter(|n| n.path == path)
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (Content-Length body, as Alertmanager's Go client sends it),
/// records it, answers 200 and closes the connection.
fn serve(conn: TcpStream, received: &Mutex<Vec<Notification>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // the wake-up connection of Drop, or a probe
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let arrived = Instant::now();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "POST" {
        received.lock().unwrap().push(Notification {
            path: path.to_owned(),
            arrived,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        });
    }
    let _ = (&conn).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}
