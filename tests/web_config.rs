//! `--web.config.file` against the real binary, with openssl-made certificates and
//! curl as the client: TLS (HTTP/1.1 and HTTP/2), basic auth with every bcrypt
//! variant htpasswd and others write, security headers, client certificates with
//! allowed SANs, the rate limit, the healthcheck over TLS, and reloading on SIGHUP
//! and on file changes. Everything stays on 127.0.0.1.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::pki::{curl, Curl, Pki};
use common::{wait_for, Double, Exporter, EXPORTER};

const IDENTITY_FAMILY: &str = "aws_ses_identity_mail_from_status";

fn hash(password: &str, version: bcrypt::Version) -> String {
    // Cost 4, the minimum: the cost is not what these tests are about.
    bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(version)
}

/// A CA, a server certificate for 127.0.0.1, and client certificates: `client`
/// (allowed SANs), `stranger` (same CA, other SAN), `forged` (another CA, allowed SAN).
fn pki(dir: &Path) -> Pki {
    let pki = Pki::ca(dir, "ca");
    Pki::ca(dir, "rogue-ca");
    pki.leaf("ca", "server", "IP:127.0.0.1,DNS:localhost", "serverAuth");
    pki.leaf(
        "ca",
        "client",
        "DNS:prometheus.monitoring.svc,email:ops@example.com,URI:spiffe://cluster/prometheus,IP:10.0.0.9",
        "clientAuth",
    );
    pki.leaf("ca", "stranger", "DNS:intruder.example", "clientAuth");
    pki.leaf(
        "rogue-ca",
        "forged",
        "DNS:prometheus.monitoring.svc",
        "clientAuth",
    );
    pki
}

fn start(web_config: &Path) -> (Double, Exporter) {
    let double = Double::start(&["--seed", "demo"]);
    let exporter = Exporter::start(
        &double.url(),
        None,
        &[
            "--poll.interval",
            "1h",
            "--web.config.file",
            &web_config.display().to_string(),
        ],
    );
    (double, exporter)
}

fn url(exporter: &Exporter, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", exporter.addr.port())
}

/// curl with the test CA trusted and `extra` arguments.
fn tls_get(pki: &Pki, exporter: &Exporter, path: &str, extra: &[&str]) -> Curl {
    let ca = pki.path("ca.pem");
    let url = url(exporter, path);
    let mut args = vec!["--cacert", &ca];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// curl's arguments to present certificate `name` and its key.
fn as_client(pki: &Pki, name: &str) -> Vec<String> {
    vec![
        "--cert".to_owned(),
        pki.path(&format!("{name}.pem")),
        "--key".to_owned(),
        pki.path(&format!("{name}.key")),
    ]
}

fn wait_ready_tls(pki: &Pki, exporter: &Exporter, extra: &[&str]) {
    wait_for(Duration::from_secs(60), "/-/ready over TLS", || {
        (tls_get(pki, exporter, "/-/ready", extra).status == 200).then_some(())
    });
}

fn healthcheck(exporter: &Exporter, web_config: &Path) -> std::process::Output {
    Command::new(EXPORTER)
        .env_clear()
        .args([
            "healthcheck",
            "--web.listen-address",
            &exporter.addr.to_string(),
            "--web.config.file",
            &web_config.display().to_string(),
        ])
        .output()
        .unwrap()
}

#[test]
fn tls_with_basic_auth_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let config = dir.path().join("web.yml");
    // Relative file names: resolved against the file's own directory.
    std::fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\n\
             basic_auth_users:\n  alice: {}\n  bob: {}\n  carol: {}\n",
            hash("alice-pw", bcrypt::Version::TwoY),
            hash("bob-pw", bcrypt::Version::TwoA),
            hash("carol-pw", bcrypt::Version::TwoB),
        ),
    )
    .unwrap();
    let (_double, exporter) = start(&config);
    assert!(
        exporter.proc.log().contains("tls=true"),
        "{}",
        exporter.proc.log()
    );

    // The probes stay open: no credentials.
    wait_ready_tls(&pki, &exporter, &[]);
    let healthy = tls_get(&pki, &exporter, "/-/healthy", &[]);
    assert_eq!(healthy.status, 200, "{healthy:?}");
    assert_eq!(healthy.header("X-Frame-Options").as_deref(), Some("deny"));

    // Each hash variant, over HTTP/1.1 and HTTP/2 (chosen by ALPN).
    for (user, version) in [
        ("alice:alice-pw", "1.1"),
        ("bob:bob-pw", "2"),
        ("carol:carol-pw", "2"),
    ] {
        let flag = if version == "2" {
            "--http2"
        } else {
            "--http1.1"
        };
        let r = tls_get(&pki, &exporter, "/metrics", &["-u", user, flag]);
        assert_eq!(r.status, 200, "{user}: {r:?}");
        assert_eq!(r.http_version, version, "{user}");
        assert!(
            r.body.contains(IDENTITY_FAMILY),
            "{user}: no identity metrics"
        );
        assert!(r
            .body
            .contains("aws_ses_exporter_web_config_last_reload_successful 1"));
        assert_eq!(
            r.header("X-Content-Type-Options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            r.header("Strict-Transport-Security").as_deref(),
            Some("max-age=31536000")
        );
    }
    // gzip over TLS is the same single gzip member.
    let gz = tls_get(
        &pki,
        &exporter,
        "/metrics",
        &["-u", "alice:alice-pw", "--compressed"],
    );
    assert_eq!(gz.status, 200);
    assert!(gz.body.contains(IDENTITY_FAMILY));

    // Refusals: wrong password, unknown user, none at all; the landing page too.
    for (what, extra) in [
        ("wrong password", vec!["-u", "alice:nope"]),
        ("unknown user", vec!["-u", "mallory:alice-pw"]),
        ("no credentials", vec![]),
    ] {
        for path in ["/metrics", "/", "/nowhere"] {
            let r = tls_get(&pki, &exporter, path, &extra);
            assert_eq!(r.status, 401, "{what} {path}: {r:?}");
            assert!(
                r.header("WWW-Authenticate")
                    .is_some_and(|v| v.starts_with("Basic realm=")),
                "{what}: {r:?}"
            );
            assert_eq!(r.header("X-Frame-Options").as_deref(), Some("deny"));
            assert!(!r.body.contains(IDENTITY_FAMILY));
        }
    }

    // Plain HTTP on the TLS port gets no page.
    let plain = curl(&[&format!(
        "http://127.0.0.1:{}/-/healthy",
        exporter.addr.port()
    )]);
    assert_ne!(plain.status, 200, "{plain:?}");

    // The container healthcheck speaks TLS when the web config says so.
    let out = healthcheck(&exporter, &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No password or Authorization header reached the log.
    let log = exporter.proc.log();
    for secret in ["alice-pw", "bob-pw", "Authorization", "YWxpY2U6"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn client_certificates_and_allowed_sans() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let config = dir.path().join("web.yml");
    std::fs::write(
        &config,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n  \
         client_allowed_sans: [prometheus.monitoring.svc]\n  min_version: TLS13\n",
    )
    .unwrap();
    let (_double, exporter) = start(&config);
    let client = as_client(&pki, "client");
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    wait_ready_tls(&pki, &exporter, &client);
    let ok = tls_get(&pki, &exporter, "/metrics", &client);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body.contains(IDENTITY_FAMILY));

    for who in ["stranger", "forged"] {
        let args = as_client(&pki, who);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = tls_get(&pki, &exporter, "/-/healthy", &args);
        assert_eq!(r.status, 0, "{who} got an answer: {r:?}");
    }
    let anonymous = tls_get(&pki, &exporter, "/-/healthy", &[]);
    assert_eq!(anonymous.status, 0, "{anonymous:?}");
    // TLS 1.2 is below min_version.
    let old = tls_get(
        &pki,
        &exporter,
        "/-/healthy",
        &[&client[..], &["--tls-max", "1.2"]].concat(),
    );
    assert_eq!(old.status, 0, "{old:?}");

    // The healthcheck cannot present a certificate: it checks the port only.
    let out = healthcheck(&exporter, &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn any_client_certificate_with_an_allowed_san() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let config = dir.path().join("web.yml");
    std::fs::write(
        &config,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAnyClientCert\n  \
         client_allowed_sans: [\"spiffe://cluster/prometheus\", 10.0.0.9, prometheus.monitoring.svc]\n",
    )
    .unwrap();
    let (_double, exporter) = start(&config);
    // Not verified against a CA (RequireAnyClientCert), but the SAN must match.
    for (who, answered) in [("client", true), ("forged", true), ("stranger", false)] {
        let args = as_client(&pki, who);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = tls_get(&pki, &exporter, "/-/healthy", &args);
        assert_eq!(r.status == 200, answered, "{who}: {r:?}");
    }
}

#[test]
fn rate_limit_refuses_with_429_but_not_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web.yml");
    std::fs::write(&config, "rate_limit:\n  interval: 1h\n  burst: 2\n").unwrap();
    let (_double, exporter) = start(&config);
    let base = format!("http://127.0.0.1:{}", exporter.addr.port());
    let codes: Vec<u16> = (0..4)
        .map(|_| curl(&[&format!("{base}/metrics")]).status)
        .collect();
    assert_eq!(codes, [200, 200, 429, 429]);
    assert_eq!(curl(&[&format!("{base}/-/healthy")]).status, 200);
}

#[test]
fn reloads_on_sighup_and_on_change_keeping_the_old_config_when_the_new_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    Pki::ca(dir.path(), "ca2");
    pki.leaf("ca2", "server2", "IP:127.0.0.1", "serverAuth");
    let config = dir.path().join("web.yml");
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    std::fs::write(
        &config,
        format!(
            "{tls}basic_auth_users:\n  alice: {}\n",
            hash("alice-pw", bcrypt::Version::TwoY)
        ),
    )
    .unwrap();
    let (_double, mut exporter) = start(&config);
    wait_ready_tls(&pki, &exporter, &[]);
    let reload_ok = |exporter: &Exporter, user: &str| -> Option<f64> {
        let r = tls_get(&pki, exporter, "/metrics", &["-u", user]);
        let line = r
            .body
            .lines()
            .find(|l| l.starts_with("aws_ses_exporter_web_config_last_reload_successful "))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    assert_eq!(reload_ok(&exporter, "alice:alice-pw"), Some(1.0));

    // A broken file on SIGHUP: refused, the old config stays, the metric says so.
    std::fs::write(
        &config,
        format!("{tls}basic_auth_users:\n  alice: plaintext\n"),
    )
    .unwrap();
    let pid = exporter.proc.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(Duration::from_secs(15), "the reload to fail", || {
        (reload_ok(&exporter, "alice:alice-pw") == Some(0.0)).then_some(())
    });
    assert!(exporter.proc.log().contains("basic_auth_users.alice"));
    assert!(
        exporter.proc.is_running(),
        "SIGHUP must not stop the exporter"
    );

    // A good file, no signal: picked up by the file check (every 5 s), alice is out.
    std::fs::write(
        &config,
        format!(
            "{tls}basic_auth_users:\n  dave: {}\n",
            hash("dave-pw", bcrypt::Version::TwoY)
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(15), "dave to be let in", || {
        (reload_ok(&exporter, "dave:dave-pw") == Some(1.0)).then_some(())
    });
    assert_eq!(
        tls_get(&pki, &exporter, "/metrics", &["-u", "alice:alice-pw"]).status,
        401
    );

    // A rotated certificate, config file unchanged: new connections get it.
    std::fs::copy(
        dir.path().join("server2.pem"),
        dir.path().join("server.pem"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("server2.key"),
        dir.path().join("server.key"),
    )
    .unwrap();
    let ca2 = pki.path("ca2.pem");
    let url = url(&exporter, "/-/healthy");
    wait_for(Duration::from_secs(15), "the new certificate", || {
        (curl(&["--cacert", &ca2, &url]).status == 200).then_some(())
    });
    assert_eq!(
        tls_get(&pki, &exporter, "/-/healthy", &[]).status,
        0,
        "old CA still accepted"
    );
    assert!(exporter.proc.is_running());
}

/// Each file in testdata/bad-web-config names the key its error must name; the
/// exporter refuses to start (`--config.check` exits 2) with that key in the message.
#[test]
fn bad_web_configs_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let cases = common::manifest_dir().join("testdata/bad-web-config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&cases).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{} has no '# error:' line", path.display()))
            .to_owned();
        let target = pki.dir.join(path.file_name().unwrap());
        std::fs::write(&target, &text).unwrap();
        let out = Command::new(EXPORTER)
            .env_clear()
            .args(["--config.check", "--web.config.file"])
            .arg(&target)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert!(
            stderr.contains(&expected),
            "{}: expected {expected:?} in {stderr:?}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} cases");

    // And a good one passes the check, saying what it turns on.
    let good = pki.dir.join("good.yml");
    std::fs::write(
        &good,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n  \
         cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  \
         curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n  \
         max_version: TLS13\n\
         http_server_config:\n  http2: false\n",
    )
    .unwrap();
    let out = Command::new(EXPORTER)
        .env_clear()
        .args(["--config.check", "--web.config.file"])
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("web configuration OK: tls=true client_cert_required=true"),
        "{stdout}"
    );
}
