//! Where the exporter listens, through the real binary: several `--web.listen-address`
//! at once, and systemd socket activation (`--web.systemd-socket`) through
//! `systemd-socket-activate`, the tool systemd ships for trying socket units (it
//! holds the sockets, waits for the first connection, then starts the exporter
//! with them as systemd does); and which address the `healthcheck` subcommand
//! probes in each case. Everything on 127.0.0.1, against the SES double.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{aws_env, free_port, get, wait_for, Double, Proc, EXPORTER};

/// Reads `proc`'s stderr up to the first line containing `marker`, returning
/// everything read; panics when the process ends first.
fn read_until(reader: &mut impl BufRead, marker: &str) -> String {
    read_until_any(reader, &[marker])
}

/// The same, up to the first line containing any of `markers`.
fn read_until_any(reader: &mut impl BufRead, markers: &[&str]) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "ended before {markers:?}; stderr:\n{seen}");
        seen.push_str(&line);
        if markers.iter().any(|m| line.contains(m)) {
            return seen;
        }
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|f| f.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn healthcheck(addresses: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(EXPORTER);
    cmd.env_clear().arg("healthcheck");
    for a in addresses {
        cmd.args(["--web.listen-address", a]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn assert_scrapes(addr: SocketAddr) {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{addr}");
    assert!(r.text().contains("aws_ses_exporter_build_info{"), "{addr}");
}

#[test]
fn serves_on_every_listen_address_and_healthcheck_probes_the_first() {
    let double = Double::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, idle) = (free_port(), free_port(), free_port());
    let (a1, a2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let mut child = Command::new(EXPORTER)
        .env_clear()
        .envs(aws_env(dir.path(), &double.url()))
        .args(["--web.listen-address", &a1, "--web.listen-address", &a2])
        .arg("--no-collector.dns")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let _proc = Proc {
        child,
        log: Arc::new(Mutex::new(String::new())),
    };
    let log = read_until(&mut stderr, "starting ses-identity-exporter");
    let start = log.lines().last().unwrap();
    assert_eq!(field(start, "listen_address"), format!("{a1},{a2}"));
    assert_eq!(field(start, "systemd_socket"), "false");
    assert_scrapes(loopback(p1));
    assert_scrapes(loopback(p2));

    // The first address is the one probed: an exporter there passes whatever
    // follows; a first address nobody listens on fails, naming it.
    let nobody = format!("127.0.0.1:{idle}");
    let (ok, why) = healthcheck(&[&a1, &nobody]);
    assert!(ok, "{why}");
    let (ok, why) = healthcheck(&[&nobody, &a1]);
    assert!(!ok);
    assert!(why.contains(&nobody), "{why}");
}

#[test]
fn socket_activation_serves_every_socket_systemd_passes() {
    let double = Double::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, ignored) = (free_port(), free_port(), free_port());
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.env_clear()
        .args(["-l", &format!("127.0.0.1:{p1}")])
        .args(["-l", &format!("127.0.0.1:{p2}")]);
    // It starts the program with only the variables it is given (and LISTEN_*).
    for (k, v) in aws_env(dir.path(), &double.url()) {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    let mut child = cmd
        .arg(EXPORTER)
        .args(["--web.systemd-socket", "--no-collector.dns"])
        // Ignored under socket activation, as in exporter-toolkit.
        .args(["--web.listen-address", &format!("127.0.0.1:{ignored}")])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (it ships with systemd)");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let _proc = Proc {
        child,
        log: Arc::new(Mutex::new(String::new())),
    };
    // Its readiness signal: a line per socket it holds.
    read_until(&mut stderr, &format!("Listening on 127.0.0.1:{p1} as 3."));
    read_until(&mut stderr, &format!("Listening on 127.0.0.1:{p2} as 4."));

    // The exporter is not running yet: this connection starts it and waits in the
    // socket's queue until it accepts.
    let first = get(loopback(p1), "/-/healthy");
    assert_eq!(first.status, 200);
    let log = read_until(&mut stderr, "starting ses-identity-exporter");
    let start = log.lines().last().unwrap();
    assert_eq!(field(start, "systemd_socket"), "true");
    assert_eq!(
        field(start, "listen_address"),
        format!("127.0.0.1:{p1},127.0.0.1:{p2}")
    );
    assert_scrapes(loopback(p1));
    assert_scrapes(loopback(p2));
    assert!(
        TcpStream::connect_timeout(&loopback(ignored), Duration::from_secs(2)).is_err(),
        "--web.listen-address must not be bound under socket activation"
    );
    // The probe cannot see systemd's sockets: it is given the unit's address.
    let (ok, why) = healthcheck(&[&format!("127.0.0.1:{p2}")]);
    assert!(ok, "{why}");
}

#[test]
fn systemd_socket_without_sockets_fails_saying_so() {
    let out = Command::new(EXPORTER)
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["--web.systemd-socket", "--no-collector.dns"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--web.systemd-socket"), "{stderr}");
    assert!(stderr.contains("LISTEN_FDS"), "{stderr}");
}

/// Starts `systemd-socket-activate` with `mode` and one socket on `port`, running
/// the exporter with --web.systemd-socket, and waits until it holds the socket.
fn activate(mode: &[&str], port: u16) -> (Proc, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new("systemd-socket-activate")
        .env_clear()
        .args(mode)
        .args(["-l", &format!("127.0.0.1:{port}")])
        .args([
            "-E",
            "AWS_REGION=us-east-1",
            "-E",
            "AWS_EC2_METADATA_DISABLED=true",
        ])
        .arg(EXPORTER)
        .args(["--web.systemd-socket", "--no-collector.dns"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (it ships with systemd)");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    read_until(&mut stderr, &format!("Listening on 127.0.0.1:{port} as 3."));
    let proc = Proc {
        child,
        log: Arc::new(Mutex::new(String::new())),
    };
    (proc, stderr)
}

#[test]
fn a_socket_that_is_not_tcp_is_refused_naming_it() {
    let port = free_port();
    let (mut proc, mut stderr) = activate(&["--datagram"], port);
    // A datagram starts the exporter.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"x", loopback(port)).unwrap();
    let log = read_until(&mut stderr, "systemd passed:");
    assert!(
        log.contains("socket 0 of the 1 systemd passed: fd 3 is not a valid tcp socket"),
        "{log}"
    );
    let status = wait_for(Duration::from_secs(30), "the exporter to exit", || {
        proc.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(1));
}

/// `Accept=yes` passes each connection instead of the listening socket: every
/// accept on it would fail, so the exporter must refuse it rather than run
/// without serving.
#[test]
fn a_connection_passed_instead_of_a_listening_socket_is_refused() {
    let port = free_port();
    let (_proc, mut stderr) = activate(&["--accept"], port);
    // The connection systemd-socket-activate accepts and hands to the exporter.
    let _conn = TcpStream::connect(loopback(port)).unwrap();
    // A refused socket ends start-up before the "starting" line; were it taken,
    // that line would come and the exporter would run without serving.
    let log = read_until_any(
        &mut stderr,
        &["systemd passed:", "starting ses-identity-exporter"],
    );
    assert!(
        log.contains("socket 0 of the 1 systemd passed: fd 3 is a connection from 127.0.0.1:"),
        "{log}"
    );
    assert!(log.contains("Accept=no"), "{log}");
    // The exporter exits (1): the connection it was handed is closed.
    let mut buf = [0u8; 1];
    let mut conn = _conn;
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(std::io::Read::read(&mut conn, &mut buf).unwrap(), 0);
}
