//! Hostile and careless HTTP clients against the real binary: idle and slow
//! connections, the connection cap, oversized headers. Every server is on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{http, Double, Exporter};

fn exporter(args: &[&str]) -> (Double, Exporter) {
    let double = Double::start(&["--seed", "demo"]);
    let mut all = vec!["--poll.interval", "1h"];
    all.extend_from_slice(args);
    let exporter = Exporter::start(&double.url(), None, &all);
    exporter.wait_ready();
    (double, exporter)
}

/// Reads until the server closes the connection; `Err` if it stays open past `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Result<(), String> {
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            // A reset is the server closing too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(format!("still open: {e}")),
        }
    }
}

#[test]
fn five_hundred_idle_and_slow_connections_do_not_hold_up_a_scrape() {
    let (_double, exporter) = exporter(&[]);
    let mut held = Vec::new();
    for i in 0..500 {
        let mut s = TcpStream::connect(exporter.addr).expect("connect");
        if i % 2 == 1 {
            // Slow: half a request, never finished.
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
        }
        held.push(s);
    }
    let mut took = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let r = http(
            exporter.addr,
            "GET",
            "/metrics",
            &[("Accept-Encoding", "gzip")],
            b"",
        )
        .expect("scrape");
        took.push(start.elapsed());
        assert_eq!(r.status, 200);
    }
    took.sort();
    let p99 = took[took.len() * 99 / 100 - 1];
    println!(
        "scrapes beside 500 idle/slow connections: p50 {:?}, p99 {:?}",
        took[took.len() / 2],
        p99
    );
    // The bound; the scrapes themselves take about a millisecond.
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    drop(held);
}

#[test]
fn idle_and_slow_clients_are_closed_after_the_header_timeout() {
    let (_double, exporter) = exporter(&["--web.read-header-timeout", "1s"]);
    // Never sends anything.
    let mut idle = TcpStream::connect(exporter.addr).unwrap();
    // Sends part of the headers and stops.
    let mut slow = TcpStream::connect(exporter.addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Keep-alive: one full exchange, then silence.
    let mut kept = TcpStream::connect(exporter.addr).unwrap();
    kept.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    for (name, stream) in [
        ("idle", &mut idle),
        ("slow", &mut slow),
        ("kept-alive", &mut kept),
    ] {
        closed_within(stream, Duration::from_secs(15)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn at_the_connection_cap_an_idle_connection_makes_room() {
    let (_double, exporter) = exporter(&[
        "--web.max-connections",
        "2",
        "--web.read-header-timeout",
        "2s",
    ]);
    let _a = TcpStream::connect(exporter.addr).unwrap();
    let _b = TcpStream::connect(exporter.addr).unwrap();
    // The third is admitted by closing the oldest of the two idle ones.
    let r = http(exporter.addr, "GET", "/-/healthy", &[], b"").expect("served");
    assert_eq!(r.status, 200);
    common::wait_for(Duration::from_secs(10), "the limit warning", || {
        exporter
            .proc
            .log()
            .contains("connection limit reached")
            .then_some(())
    });
}

#[test]
fn oversized_and_overlong_requests_are_refused() {
    let (_double, exporter) = exporter(&[]);
    // Over 32 KiB before a response: disconnected, never answered.
    let big = "x".repeat(40 * 1024);
    // (An error here is the connection closed or reset, which is the point.)
    if let Ok(r) = http(exporter.addr, "GET", "/metrics", &[("X-Big", &big)], b"") {
        assert_eq!(r.status, 431, "answered an oversized request");
    }
    // A long but acceptable header still works.
    let long = "x".repeat(8 * 1024);
    let r = http(exporter.addr, "GET", "/metrics", &[("X-Long", &long)], b"").expect("answer");
    assert_eq!(r.status, 200);

    let many: Vec<(String, String)> = (0..100).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = http(exporter.addr, "GET", "/metrics", &many, b"").expect("answer");
    assert_eq!(r.status, 431, "too many header fields");

    // The server is still fine.
    assert_eq!(
        http(exporter.addr, "GET", "/metrics", &[], b"")
            .unwrap()
            .status,
        200
    );
}
