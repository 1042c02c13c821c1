//! Hostile clients against the real binary, each on loopback and bounded in time,
//! each checking what a scrape sees meanwhile. One test per finding of the
//! "Hostile clients cannot silence the scrape" issue: stalled readers, a cancel
//! flood against bcrypt, idle HTTP/2 connections, a cap full of idle connections,
//! wrong-password floods around a first login and a reload, an HTTP/2 reset flood
//! against the log, and the smaller ones (decoy timing, the rate limit spent by
//! refused requests). `SES_EXPORTER_UNDER_TEST` runs them against another build.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use common::pki::Pki;
use common::{get, http, wait_for, Double, Exporter, Metrics};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

// ------------------------------------------------------------------ helpers

/// A user's bcrypt hash as htpasswd writes it.
fn hash(password: &str, cost: u32) -> String {
    bcrypt::hash_with_result(password, cost)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY)
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// An exporter with `web_config` (YAML, beside a server certificate when `tls`),
/// polling the double once an hour.
struct Setup {
    _double: Double,
    exporter: Exporter,
    _dir: tempfile::TempDir,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Setup {
    fn start(web_config: Option<&str>, tls: bool, args: &[&str]) -> Setup {
        Setup::start_with(&["--seed", "demo"], web_config, tls, args, &[])
    }

    /// `identities` generated ones and `--web.send-timeout 3s`, set by its variable
    /// so that a build without the flag starts too.
    fn with_send_timeout_3s(identities: usize, tls: bool) -> Setup {
        let n = identities.to_string();
        Setup::start_with(
            &["--seed", "none", "--seed-count", &n, "--rate", "0"],
            None,
            tls,
            &["--ses.rate", "200"],
            &[("SES_EXPORTER_WEB_SEND_TIMEOUT", "3s")],
        )
    }

    fn start_with(
        double_args: &[&str],
        web_config: Option<&str>,
        tls: bool,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Setup {
        let double = Double::start(double_args);
        let dir = tempfile::tempdir().unwrap();
        let mut yaml = String::new();
        let mut client = None;
        if tls {
            let pki = Pki::ca(dir.path(), "ca");
            pki.leaf("ca", "server", "IP:127.0.0.1,DNS:localhost", "serverAuth");
            yaml.push_str("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n");
            client = Some(client_config(&pki.dir.join("ca.pem")));
        }
        if let Some(extra) = web_config {
            yaml.push_str(extra);
        }
        let mut all: Vec<String> = ["--poll.interval", "1h", "--ses.pacing", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let path = dir.path().join("web.yml");
        if tls || web_config.is_some() {
            std::fs::write(&path, &yaml).unwrap();
            all.push("--web.config.file".into());
            all.push(path.display().to_string());
        }
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let exporter = Exporter::start_with_env(&double.url(), None, &refs, env);
        let setup = Setup {
            _double: double,
            exporter,
            _dir: dir,
            tls: client,
        };
        wait_for(Duration::from_secs(90), "the first cycle", || {
            (setup.status("/-/ready") == 200).then_some(())
        });
        setup
    }

    fn pid(&self) -> u32 {
        self.exporter.proc.child.id()
    }

    fn addr(&self) -> SocketAddr {
        self.exporter.addr
    }

    /// One request on a new connection (TLS when the exporter has it), at most 10 s.
    fn status(&self, path: &str) -> u16 {
        runtime()
            .block_on(self.request(path, None, None))
            .map_or(0, |r| r.0)
    }

    /// A request on a new connection: (status, body bytes), or why it failed.
    async fn request(
        &self,
        path: &str,
        auth: Option<&str>,
        from: Option<IpAddr>,
    ) -> Result<(u16, usize), String> {
        let fut = async {
            let stream = connect(self.addr(), from).await?;
            match &self.tls {
                Some(config) => {
                    let tls = tls_connect(config, stream, b"http/1.1").await?;
                    h1_request(tls, path, auth).await
                }
                None => h1_request(stream, path, auth).await,
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .unwrap_or_else(|_| Err("no answer within 10 s (Prometheus's scrape timeout)".into()))
    }

    fn metrics(&self, auth: Option<&str>) -> Metrics {
        let rt = runtime();
        let fut = async {
            let stream = connect(self.addr(), None).await?;
            let body = match &self.tls {
                Some(config) => {
                    h1_body(
                        tls_connect(config, stream, b"http/1.1").await?,
                        "/metrics",
                        auth,
                    )
                    .await?
                }
                None => h1_body(stream, "/metrics", auth).await?,
            };
            Ok::<_, String>(Metrics::parse(&body))
        };
        rt.block_on(fut).expect("a scrape")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn connect(addr: SocketAddr, from: Option<IpAddr>) -> Result<tokio::net::TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(ip) = from {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| e.to_string())?;
    }
    socket.connect(addr).await.map_err(|e| e.to_string())
}

async fn tls_connect(
    config: &Arc<rustls::ClientConfig>,
    stream: tokio::net::TcpStream,
    alpn: &[u8],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let mut config = (**config).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    connector
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())
}

/// A runtime for one flooding thread.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A TLS connection with `alpn`, or `None` when the exporter refused it (a flood
/// goes on with the next one).
async fn tls_to(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    alpn: &[u8],
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let stream = connect(addr, None).await.ok()?;
    tls_connect(config, stream, alpn).await.ok()
}

fn get_request(path: &str, auth: Option<&str>) -> hyper::Request<Empty<Bytes>> {
    let mut req = hyper::Request::get(path).header("host", "127.0.0.1");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.body(Empty::new()).unwrap()
}

/// One GET on `io`: the status and the body.
async fn h1_get<I>(io: I, path: &str, auth: Option<&str>) -> Result<(u16, Bytes), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = send
        .send_request(get_request(path, auth))
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

async fn h1_request<I>(io: I, path: &str, auth: Option<&str>) -> Result<(u16, usize), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    h1_get(io, path, auth)
        .await
        .map(|(status, body)| (status, body.len()))
}

async fn h1_body<I>(io: I, path: &str, auth: Option<&str>) -> Result<String, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (_, body) = h1_get(io, path, auth).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// What /proc says of a process.
struct ProcStat {
    sockets: usize,
    threads: usize,
    runnable: usize,
    rss_kib: u64,
}

fn proc_stat(pid: u32) -> ProcStat {
    let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0);
    let (mut threads, mut runnable) = (0, 0);
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.filter_map(Result::ok) {
            threads += 1;
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised name.
            if stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('R'))
            {
                runnable += 1;
            }
        }
    }
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    ProcStat {
        sockets,
        threads,
        runnable,
        rss_kib,
    }
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    values.sort();
    let i = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
    values[i]
}

/// Times `n` requests of `path`, each on a new connection, all of which must succeed.
fn timed_requests(
    setup: &Setup,
    n: usize,
    path: &str,
    auth: Option<&str>,
    from: Option<IpAddr>,
) -> Vec<Duration> {
    let rt = runtime();
    (0..n)
        .map(|i| {
            let start = Instant::now();
            let got = rt.block_on(setup.request(path, auth, from));
            assert_eq!(
                got.as_ref().map(|r| r.0),
                Ok(200),
                "request {i} of {path}: {got:?}"
            );
            start.elapsed()
        })
        .collect()
}

/// Runs `work` on `n` threads until `stop` is set; returns their handles.
fn flood(
    n: usize,
    stop: &Arc<AtomicBool>,
    work: impl Fn(usize) + Send + Sync + 'static,
) -> Vec<std::thread::JoinHandle<()>> {
    let work = Arc::new(work);
    (0..n)
        .map(|i| {
            let stop = Arc::clone(stop);
            let work = Arc::clone(&work);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    work(i);
                }
            })
        })
        .collect()
}

// ------------------------------------------------------------------ 1. stalled readers

#[test]
fn stalled_readers_are_closed_after_the_send_timeout() {
    // 6,000 identities: a plain body of several MB, more than the kernel buffers of
    // a client that reads nothing.
    let setup = Setup::with_send_timeout_3s(6000, false);
    let pid = setup.pid();
    let plain = get(setup.addr(), "/metrics");
    assert_eq!(plain.status, 200);
    assert!(
        plain.body.len() > 3_000_000,
        "body of {} bytes",
        plain.body.len()
    );
    let before = proc_stat(pid);

    const STALLED: usize = 100;
    let rt = runtime();
    let addr = setup.addr();
    let held: Vec<tokio::net::TcpStream> = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..STALLED {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut stream = socket.connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .await
            .unwrap();
            held.push(stream);
        }
        held
    });
    let during = wait_for(
        Duration::from_secs(5),
        "the stalled readers to be accepted",
        || {
            let s = proc_stat(pid);
            (s.sockets >= before.sockets + STALLED).then_some(s)
        },
    );
    // Meanwhile a scrape is served.
    let took = timed_requests(&setup, 5, "/metrics", None, None);
    let worst = took.iter().max().unwrap();
    assert!(*worst < Duration::from_secs(5), "scrapes took {took:?}");

    let start = Instant::now();
    let after = wait_for(
        Duration::from_secs(15),
        "the stalled readers to be closed",
        || {
            let s = proc_stat(pid);
            (s.sockets <= before.sockets + 2).then_some(s)
        },
    );
    let closed_after = start.elapsed();
    // The health tail is cached for a second: wait for the count rather than read once.
    let closed = |m: &Metrics, reason: &str| {
        m.get(&format!(
            "aws_ses_exporter_http_connections_closed_total{{reason=\"{reason}\"}}"
        ))
        .unwrap_or(0.0)
    };
    let timed_out = wait_for(Duration::from_secs(5), "the closes to be counted", || {
        let m = setup.metrics(None);
        let n = closed(&m, "send_timeout") + closed(&m, "stream_stalled");
        (n >= STALLED as f64).then_some(n)
    });
    println!(
        "stalled readers: sockets {} -> {} -> {} (closed {:?} after the scrapes); RSS {} -> {} -> {} KiB; scrape worst {:?}; closed by timeout {}",
        before.sockets, during.sockets, after.sockets, closed_after, before.rss_kib, during.rss_kib, after.rss_kib, worst, timed_out
    );
    assert!(
        timed_out >= STALLED as f64,
        "{timed_out} connections closed by the send timeout"
    );
    assert!(
        during.rss_kib < before.rss_kib + 64 * 1024,
        "RSS grew from {} to {} KiB",
        before.rss_kib,
        during.rss_kib
    );
    drop(held);
}

#[test]
fn http2_streams_without_window_are_closed_after_the_send_timeout() {
    // A body of many chunks, so a stream stalls in its middle, not with its end
    // already handed to h2.
    let setup = Setup::with_send_timeout_3s(2000, true);
    let config = setup.tls.clone().unwrap();
    let addr = setup.addr();
    let rt = runtime();
    // Ten connections, four /metrics streams each, with a 1 KiB window that is never
    // given back (the body is never read): the socket stays writable and PINGs are
    // answered, only the streams stall.
    let lived: Vec<Duration> = rt.block_on(async {
        let mut conns = Vec::new();
        let mut streams = Vec::new();
        for _ in 0..10 {
            let tls = tls_connect(&config, connect(addr, None).await.unwrap(), b"h2")
                .await
                .unwrap();
            let (client, conn) = h2::client::Builder::new()
                .initial_window_size(1024)
                .handshake::<_, Bytes>(tls)
                .await
                .unwrap();
            let start = Instant::now();
            conns.push(tokio::spawn(async move {
                let _ = conn.await;
                start.elapsed()
            }));
            for _ in 0..4 {
                let mut client = client.clone().ready().await.unwrap();
                let req = http::Request::get("https://127.0.0.1/metrics")
                    .body(())
                    .unwrap();
                let (resp, _) = client.send_request(req, true).unwrap();
                streams.push(resp);
            }
        }
        let mut lived = Vec::new();
        for c in conns {
            let l = tokio::time::timeout(Duration::from_secs(15), c).await;
            lived.push(
                l.expect("a connection with stalled streams still open after 15 s")
                    .unwrap(),
            );
        }
        drop(streams);
        lived
    });
    let took = timed_requests(&setup, 3, "/metrics", None, None);
    let stalled = wait_for(Duration::from_secs(5), "the stalls to be counted", || {
        let n = setup
            .metrics(None)
            .get("aws_ses_exporter_http_connections_closed_total{reason=\"stream_stalled\"}")
            .unwrap_or(0.0);
        (n >= 10.0).then_some(n)
    });
    println!("h2 streams without window: connections closed after {lived:?}; {stalled} counted; scrapes after {took:?}");
    assert!(
        lived
            .iter()
            .all(|l| *l >= Duration::from_secs(2) && *l < Duration::from_secs(8)),
        "{lived:?}"
    );
}

// ------------------------------------------------------------------ 2. cancel flood

#[test]
fn a_cancel_flood_cannot_multiply_bcrypt_work() {
    let users = format!("basic_auth_users:\n  alice: {}\n", hash("s3cret", 10));
    let setup = Arc::new(Setup::start(Some(&users), true, &[]));
    let pid = setup.pid();
    let auth = basic("alice", "s3cret");
    // The scraper's credentials are verified once, then come from memory.
    assert_eq!(
        runtime()
            .block_on(setup.request("/metrics", Some(&auth), None))
            .map(|r| r.0),
        Ok(200)
    );
    let before = proc_stat(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    // HTTP/1.1 over TLS: send a request with a fresh wrong password, hang up 5 ms later.
    {
        let (setup, sent) = (Arc::clone(&setup), Arc::clone(&sent));
        let config = setup.tls.clone().unwrap();
        threads.extend(flood(6, &stop, move |i| {
            current_thread().block_on(async {
                let Some(mut tls) = tls_to(setup.addr(), &config, b"http/1.1").await else {
                    return;
                };
                let n = sent.fetch_add(1, Ordering::Relaxed);
                let req = format!(
                    "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
                    basic("alice", &format!("guess-{i}-{n}"))
                );
                let _ = tokio::io::AsyncWriteExt::write_all(&mut tls, req.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            });
        }));
    }
    // HTTP/2: many streams a connection, each reset 5 ms after its request.
    {
        let (setup, sent) = (Arc::clone(&setup), Arc::clone(&sent));
        let config = setup.tls.clone().unwrap();
        threads.extend(flood(2, &stop, move |i| {
            current_thread().block_on(async {
                let Some(tls) = tls_to(setup.addr(), &config, b"h2").await else {
                    return;
                };
                let Ok((client, conn)) = h2::client::handshake(tls).await else {
                    return;
                };
                tokio::spawn(conn);
                for _ in 0..50 {
                    let Ok(mut client) = client.clone().ready().await else {
                        return;
                    };
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    let req = http::Request::get("https://127.0.0.1/metrics")
                        .header("authorization", basic("alice", &format!("h2-{i}-{n}")))
                        .body(())
                        .unwrap();
                    let Ok((_resp, mut stream)) = client.send_request(req, true) else {
                        return;
                    };
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    stream.send_reset(h2::Reason::CANCEL);
                }
            });
        }));
    }
    // Sample the process and scrape with cached credentials for 6 s.
    let (mut max_threads, mut max_runnable) = (0, 0);
    let mut took = Vec::new();
    let rt = runtime();
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        let s = proc_stat(pid);
        max_threads = max_threads.max(s.threads);
        max_runnable = max_runnable.max(s.runnable);
        let start = Instant::now();
        let got = rt.block_on(setup.request("/metrics", Some(&auth), None));
        assert_eq!(
            got.as_ref().map(|r| r.0),
            Ok(200),
            "a scrape during the flood: {got:?}"
        );
        took.push(start.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let p99 = percentile(took.clone(), 0.99);
    println!(
        "cancel flood: {} requests sent; threads {} -> max {}, runnable max {}; {} cached scrapes, p50 {:?} p99 {:?}",
        sent.load(Ordering::Relaxed),
        before.threads,
        max_threads,
        max_runnable,
        took.len(),
        percentile(took.clone(), 0.5),
        p99
    );
    assert!(sent.load(Ordering::Relaxed) > 200, "the flood ran");
    // Two bcrypts and the pool's spare threads, not one thread per cancelled request.
    assert!(
        max_threads <= before.threads + 6,
        "threads {} -> {}",
        before.threads,
        max_threads
    );
    assert!(max_runnable <= 6, "{max_runnable} threads runnable at once");
    assert!(p99 < Duration::from_secs(1), "cached scrapes p99 {p99:?}");
}

// ------------------------------------------------------------------ 3. idle HTTP/2

#[test]
fn idle_http2_connections_are_closed() {
    let setup = Setup::start(
        None,
        true,
        &[
            "--web.read-header-timeout",
            "2s",
            "--web.max-connections",
            "8",
        ],
    );
    let rt = runtime();
    let config = setup.tls.clone().unwrap();
    let addr = setup.addr();
    // Eight HTTP/2 connections that never send a request; their client answers PINGs.
    let closed: Vec<tokio::task::JoinHandle<Duration>> = rt.block_on(async {
        let mut closed = Vec::new();
        for _ in 0..8 {
            let tls = tls_connect(&config, connect(addr, None).await.unwrap(), b"h2")
                .await
                .unwrap();
            let (client, conn) = h2::client::handshake(tls).await.unwrap();
            let start = Instant::now();
            closed.push(tokio::spawn(async move {
                let _client = client;
                let _ = conn.await;
                start.elapsed()
            }));
        }
        closed
    });
    // A scrape on a ninth connection is served meanwhile.
    let took = timed_requests(&setup, 1, "/metrics", None, None);
    let lived: Vec<Duration> = rt.block_on(async {
        let mut lived = Vec::new();
        for c in closed {
            let l = tokio::time::timeout(Duration::from_secs(10), c).await;
            lived.push(
                l.expect("an idle HTTP/2 connection still open after 10 s")
                    .unwrap(),
            );
        }
        lived
    });
    println!("idle h2 connections closed after {lived:?}; a scrape meanwhile took {took:?}");
    assert!(
        lived.iter().all(|l| *l < Duration::from_secs(6)),
        "{lived:?}"
    );
}

// ------------------------------------------------------------------ 4. the cap

#[test]
fn a_cap_full_of_idle_connections_does_not_delay_a_scrape() {
    let setup = Setup::start(None, false, &["--web.max-connections", "48"]);
    let addr = setup.addr();
    let baseline = proc_stat(setup.pid()).sockets;
    let mut held = Vec::new();
    // 16 that keep alive after a response, 16 that never send, 16 that stall in their headers.
    for _ in 0..16 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        held.push(s);
    }
    for i in 0..32 {
        let mut s = TcpStream::connect(addr).unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        held.push(s);
    }
    wait_for(
        // Most of the 48 accepted: the exporter's own sockets to SES may close meanwhile,
        // so the count is not exact.
        Duration::from_secs(5),
        "the 48 connections to be accepted",
        || (proc_stat(setup.pid()).sockets + 4 >= baseline + 48).then_some(()),
    );
    let took = timed_requests(&setup, 24, "/metrics", None, None);
    let worst = *took.iter().max().unwrap();
    let evicted = wait_for(Duration::from_secs(5), "an eviction to be counted", || {
        let n = setup
            .metrics(None)
            .get("aws_ses_exporter_http_connections_closed_total{reason=\"evicted\"}")
            .unwrap_or(0.0);
        (n >= 1.0).then_some(n)
    });
    println!("cap of 48 full of idle connections: 24 scrapes, worst {worst:?}, {evicted} connections evicted");
    assert!(worst < Duration::from_secs(2), "scrapes took {took:?}");
    assert!(evicted >= 1.0, "{evicted} evicted");
    drop(held);
}

// ------------------------------------------------------------------ 5. wrong passwords

/// `n` keep-alive connections from 127.0.0.1, each sending requests with the
/// password `guess(i, k)` back to back until `stop`; counts the 401s.
fn password_flood(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    n: usize,
    stop: &Arc<AtomicBool>,
    guess: fn(usize, usize) -> String,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let refused = Arc::new(AtomicUsize::new(0));
    let tasks = (0..n)
        .map(|i| {
            let (stop, refused) = (Arc::clone(stop), Arc::clone(&refused));
            rt.spawn(async move {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut c) = connect(addr, None).await else {
                        continue;
                    };
                    let mut buf = vec![0u8; 4096];
                    while !stop.load(Ordering::Relaxed) {
                        k += 1;
                        let req = format!(
                            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
                            basic("alice", &guess(i, k))
                        );
                        if c.write_all(req.as_bytes()).await.is_err() {
                            break;
                        }
                        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await
                        {
                            Ok(Ok(n)) if n > 0 => {
                                if buf[..n].starts_with(b"HTTP/1.1 401") {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            _ => break,
                        }
                    }
                }
            })
        })
        .collect();
    (tasks, refused)
}

#[test]
fn wrong_password_floods_do_not_keep_a_valid_login_out() {
    let users = format!(
        "basic_auth_users:\n  alice: {}\n  bob: {}\n",
        hash("s3cret", 10),
        hash("b0b", 10)
    );
    let setup = Setup::start(Some(&users), false, &[]);
    let addr = setup.addr();
    let rt = runtime();

    // 200 connections repeating one wrong password; a first login from the same address.
    let stop = Arc::new(AtomicBool::new(false));
    let (tasks, refused) = password_flood(&rt, addr, 200, &stop, |_, _| "wrong".to_owned());
    wait_for(
        Duration::from_secs(60),
        "400 refusals of the repeated password",
        || (refused.load(Ordering::Relaxed) >= 400).then_some(()),
    );
    let first_login =
        timed_requests(&setup, 1, "/metrics", Some(&basic("alice", "s3cret")), None)[0];
    // A reload (SIGHUP) keeps alice's verified credentials: her scrapes pay no bcrypt
    // and do not queue behind the flood.
    let reloads = || {
        setup
            .exporter
            .proc
            .log()
            .matches("web config reloaded")
            .count()
    };
    let before = reloads();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &setup.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(Duration::from_secs(10), "the reload", || {
        (reloads() > before).then_some(())
    });
    let after_reload = timed_requests(&setup, 3, "/metrics", Some(&basic("alice", "s3cret")), None);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });

    // 200 connections with a fresh wrong password each time; a first login from
    // another address.
    let stop = Arc::new(AtomicBool::new(false));
    let (tasks, refused) = password_flood(&rt, addr, 200, &stop, |i, k| format!("guess-{i}-{k}"));
    wait_for(
        Duration::from_secs(60),
        "the fresh-password flood to be refused 20 times",
        || (refused.load(Ordering::Relaxed) >= 20).then_some(()),
    );
    let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let other_address = timed_requests(
        &setup,
        1,
        "/metrics",
        Some(&basic("bob", "b0b")),
        Some(elsewhere),
    )[0];
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    println!(
        "wrong-password floods (200 connections): first login {first_login:?} and scrapes after a reload {after_reload:?} \
         under a repeated wrong password; first login from another address {other_address:?} under fresh ones ({} refused)",
        refused.load(Ordering::Relaxed)
    );
    assert!(
        first_login < Duration::from_secs(2),
        "first login took {first_login:?}"
    );
    assert!(
        other_address < Duration::from_secs(2),
        "first login took {other_address:?}"
    );
    assert!(
        after_reload.iter().all(|t| *t < Duration::from_secs(1)),
        "{after_reload:?}"
    );
}

// ------------------------------------------------------------------ 6. the log

#[test]
fn an_http2_reset_flood_cannot_fill_the_log() {
    let setup = Setup::start(None, true, &[]);
    let config = setup.tls.clone().unwrap();
    let addr = setup.addr();
    let lines_before = setup.exporter.proc.log().lines().count();
    let rt = runtime();
    let dropped_now = || {
        setup
            .metrics(None)
            .get("aws_ses_exporter_log_lines_dropped_total")
            .unwrap_or(-1.0)
    };
    // Rounds of 4 s until the libraries' warnings have been dropped (on a busy
    // machine h2 sees fewer resets as rapid), at most 4 rounds: the flood is what
    // this test is about, not how fast one round triggers it.
    let mut streams = 0usize;
    for _ in 0..4 {
        streams += flood_resets(&rt, addr, &config);
        if dropped_now() > 0.0 {
            break;
        }
    }
    let log = setup.exporter.proc.log();
    let new: Vec<&str> = log.lines().skip(lines_before).collect();
    let dropped = dropped_now();
    println!(
        "h2 reset flood: {streams} streams reset, {} log lines written, {dropped} dropped",
        new.len()
    );
    assert!(streams > 1000, "the flood ran: {streams}");
    assert!(
        dropped > 0.0,
        "the flood made the libraries log ({dropped} dropped)"
    );
    assert!(new.len() <= 20, "{} lines:\n{}", new.len(), new.join("\n"));
}

/// Opens HTTP/2 connections for 4 s, each sending 200 requests reset at once; the
/// streams reset.
fn flood_resets(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> usize {
    rt.block_on(async {
        let mut streams = 0usize;
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            let Some(tls) = tls_to(addr, config, b"h2").await else {
                continue;
            };
            let Ok((client, conn)) = h2::client::handshake(tls).await else {
                continue;
            };
            let conn = tokio::spawn(conn);
            // Requests reset at once, before the server can take them: the rapid
            // reset h2 answers with GOAWAY and a warning.
            for _ in 0..200 {
                let Ok(mut client) = client.clone().ready().await else {
                    break;
                };
                let req = http::Request::get("https://127.0.0.1/").body(()).unwrap();
                let Ok((_resp, mut stream)) = client.send_request(req, true) else {
                    break;
                };
                stream.send_reset(h2::Reason::CANCEL);
                streams += 1;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), conn).await;
        }
        streams
    })
}

// ------------------------------------------------------------------ 7. smaller

#[test]
fn unknown_users_take_the_time_of_some_real_user() {
    // One user at cost 4 (about a millisecond), one at cost 12 (hundreds).
    let users = format!(
        "basic_auth_users:\n  fast: {}\n  slow: {}\n",
        hash("f", 4),
        hash("s", 12)
    );
    let setup = Setup::start(Some(&users), false, &[]);
    let took: Vec<Duration> = (0..24)
        .map(|i| {
            let start = Instant::now();
            let r = http(
                setup.addr(),
                "GET",
                "/metrics",
                &[("Authorization", &basic(&format!("nobody{i}"), "x"))],
                b"",
            )
            .unwrap();
            assert_eq!(r.status, 401);
            start.elapsed()
        })
        .collect();
    let split = Duration::from_millis(60);
    let quick = took.iter().filter(|t| **t < split).count();
    println!("24 unknown names: {quick} answered like the cost-4 user, {} like the cost-12 one: {took:?}", 24 - quick);
    // A single decoy at one cost would make every unknown name take the same time,
    // telling "fast" (answered in a millisecond) apart as a real user.
    assert!(quick > 0 && quick < 24, "{took:?}");
}

#[test]
fn refused_requests_do_not_spend_the_scrapers_rate_limit() {
    let users = format!(
        "basic_auth_users:\n  alice: {}\nrate_limit:\n  interval: 10s\n  burst: 3\n",
        hash("s3cret", 4)
    );
    let setup = Setup::start(Some(&users), false, &[]);
    for _ in 0..20 {
        let r = http(setup.addr(), "GET", "/metrics", &[], b"").unwrap();
        assert!([401, 429].contains(&r.status), "{}", r.status);
    }
    let r = http(
        setup.addr(),
        "GET",
        "/metrics",
        &[("Authorization", &basic("alice", "s3cret"))],
        b"",
    )
    .unwrap();
    assert_eq!(
        r.status, 200,
        "an authenticated scrape after 20 refused requests"
    );
}
