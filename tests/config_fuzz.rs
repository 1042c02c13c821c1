//! Property test of configuration parsing: thousands of generated config files and
//! web config files (the real keys with wrong, odd and hostile values, unknown keys,
//! broken YAML, random bytes) and flag values go through the same `load` functions
//! the binary uses. None may panic; each is either accepted or refused with a
//! message. Seeded, so a failure repeats.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ses_identity_exporter::config::{load, Flags};
use ses_identity_exporter::serve::web_config as web;

const KEYS: &[&str] = &[
    "identities",
    "discovery",
    "enabled",
    "identity_type",
    "include",
    "exclude",
    "interval",
    "poll",
    "ses",
    "rate",
    "pacing",
    "timeout",
    "targets",
    "region",
    "role_arn",
    "external_id",
    "session_name",
    "unknown_key",
];

/// Values the target keys take, right and nearly right.
const SCALARS: &[&str] = &[
    "eu-west-1",
    "us-gov-west-1",
    "EU-WEST-1",
    "eu-west",
    "arn:aws:iam::111111111111:role/r",
    "arn:aws:iam::1111:role/r",
    "arn:aws:sts::111111111111:assumed-role/r/s",
    "ses-identity-exporter",
    "x",
];

/// A valid configuration with targets: documents made from it with lines dropped
/// and values swapped reach the target validation, not only the parser.
const TEMPLATE: &[&str] = &[
    "identities: [example.com]",
    "discovery:",
    "  enabled: true",
    "  include: ['.*']",
    "targets:",
    "  - region: eu-west-1",
    "  - region: us-east-1",
    "    role_arn: arn:aws:iam::111111111111:role/ses-identity-exporter-target",
    "    external_id: ext-id-1",
    "    session_name: ses-identity-exporter",
    "    identities: [a.example.com]",
    "  - region: eu-west-1",
    "    role_arn: arn:aws:iam::222222222222:role/ses-identity-exporter-target",
    "    discovery:",
    "      enabled: true",
    "      exclude: ['test\\..*']",
];

/// Web config keys, at every level (the generator nests them at random).
const WEB_KEYS: &[&str] = &[
    "tls_server_config",
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
    "http_server_config",
    "http2",
    "headers",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Content-Security-Policy",
    "Strict-Transport-Security",
    "Server",
    "basic_auth_users",
    "alice",
    "rate_limit",
    "interval",
    "burst",
    "unknown_key",
];

/// Values that mean something to the web config: real files (made by openssl in
/// the test's directory), names Go knows and rustls may not, a real bcrypt hash.
const WEB_SCALARS: &[&str] = &[
    "server.pem",
    "server.key",
    "ca.pem",
    "/dev/null",
    "/nonexistent/x.pem",
    "TLS10",
    "TLS12",
    "TLS13",
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
    "TLS_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "X25519",
    "CurveP521",
    "deny",
    "nosniff",
    "-----BEGIN CERTIFICATE-----",
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    // "hunter2" at cost 4 (made by Python's bcrypt); a high cost here would make
    // the decoy hash slow.
    "$2y$04$L7goxoKIlouS7z2uW3X88OBTTDfup3qKoUL/rJX9ISzI1NHmV7dba",
    "$2b$04$L7goxoKIlouS7z2uW3X88OBTTDfup3qKoUL/rJX9ISzI1NHmV7dba",
    "$2x$04$L7goxoKIlouS7z2uW3X88OBTTDfup3qKoUL/rJX9ISzI1NHmV7dba",
    "$2y$99$L7goxoKIlouS7z2uW3X88OBTTDfup3qKoUL/rJX9ISzI1NHmV7dba",
    "1s",
    "1h",
    "-5",
    "4294967296",
];

/// A valid web config using every section: documents made from it with lines
/// dropped and values swapped reach the TLS and auth code, not only the parser.
const WEB_TEMPLATE: &[&str] = &[
    "tls_server_config:",
    "  cert_file: server.pem",
    "  key_file: server.key",
    "  client_ca_file: ca.pem",
    "  client_auth_type: RequireAndVerifyClientCert",
    "  client_allowed_sans: [prometheus.example]",
    "  min_version: TLS12",
    "  max_version: TLS13",
    "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]",
    "  prefer_server_cipher_suites: true",
    "  curve_preferences: [X25519, CurveP256]",
    "http_server_config:",
    "  http2: true",
    "  headers:",
    "    X-Frame-Options: deny",
    "    X-Content-Type-Options: nosniff",
    "basic_auth_users:",
    "  alice: $2b$04$L7goxoKIlouS7z2uW3X88OBTTDfup3qKoUL/rJX9ISzI1NHmV7dba",
    "rate_limit:",
    "  interval: 1s",
    "  burst: 5",
];

/// The keys and extra scalar values of one file format.
struct Grammar {
    keys: &'static [&'static str],
    scalars: &'static [&'static str],
    template: &'static [&'static str],
}

const CONFIG: Grammar = Grammar {
    keys: KEYS,
    scalars: SCALARS,
    template: TEMPLATE,
};
const WEB: Grammar = Grammar {
    keys: WEB_KEYS,
    scalars: WEB_SCALARS,
    template: WEB_TEMPLATE,
};

/// The template with each line kept at 90 % and each kept value swapped at 15 %.
fn near_valid(rng: &mut StdRng, g: &Grammar) -> Vec<u8> {
    let mut out = String::new();
    for line in g.template {
        if !rng.random_bool(0.9) {
            continue;
        }
        match line.split_once(": ") {
            Some((key, _)) if rng.random_bool(0.15) => {
                out.push_str(&format!("{key}: {}\n", scalar(rng, g)));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

fn scalar(rng: &mut StdRng, g: &Grammar) -> String {
    if !g.scalars.is_empty() && rng.random_bool(0.4) {
        return g.scalars[rng.random_range(0..g.scalars.len())].to_string();
    }
    let pool = [
        "",
        "0",
        "-1",
        "1e309",
        "NaN",
        ".inf",
        "-.inf",
        "true",
        "null",
        "~",
        "5m",
        "0s",
        "1h30m",
        "99999999999999999999d",
        "1ns",
        "Domain",
        "EmailAddress",
        "all",
        "(",
        "[a-",
        "(?P<x>",
        "*",
        "\\\\",
        "\"",
        "'",
        "a.example.com",
        "a@example.com",
        "\u{0}",
        "ü🙂",
        "&anchor",
        "*alias",
        "!!binary aGk=",
        "!!float 1",
        "{",
        "}",
        "[",
        "]",
        "|",
        ">",
        "- -",
    ];
    if rng.random_bool(0.7) {
        pool[rng.random_range(0..pool.len())].to_string()
    } else {
        let len = rng.random_range(0..40);
        (0..len)
            .map(|_| char::from_u32(rng.random_range(0..0x2000)).unwrap_or('x'))
            .collect()
    }
}

fn value(rng: &mut StdRng, g: &Grammar, depth: u32, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match rng.random_range(0..if depth > 3 { 2 } else { 5 }) {
        0 => scalar(rng, g),
        1 => format!("{:?}", scalar(rng, g)),
        2 => {
            let n = rng.random_range(0..4);
            (0..n)
                .map(|_| format!("\n{pad}- {}", value(rng, g, depth + 1, indent + 2)))
                .collect()
        }
        3 => format!(
            "[{}]",
            (0..rng.random_range(0..4))
                .map(|_| scalar(rng, g))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => mapping(rng, g, depth + 1, indent + 2),
    }
}

fn mapping(rng: &mut StdRng, g: &Grammar, depth: u32, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let n = rng.random_range(0..5);
    (0..n)
        .map(|_| {
            let key = g.keys[rng.random_range(0..g.keys.len())];
            format!("\n{pad}{key}: {}", value(rng, g, depth, indent))
        })
        .collect()
}

fn document(rng: &mut StdRng, g: &Grammar) -> Vec<u8> {
    if !g.template.is_empty() && rng.random_bool(0.5) {
        return near_valid(rng, g);
    }
    match rng.random_range(0..10) {
        // Random bytes, not even UTF-8.
        0 => (0..rng.random_range(0..200))
            .map(|_| rng.random())
            .collect(),
        // A valid-looking document with a random byte flipped.
        1 => {
            let mut d = mapping(rng, g, 0, 0).into_bytes();
            if !d.is_empty() {
                let i = rng.random_range(0..d.len());
                d[i] = rng.random();
            }
            d
        }
        _ => mapping(rng, g, 0, 0).into_bytes(),
    }
}

#[test]
fn no_config_file_or_flag_value_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let mut rng = StdRng::seed_from_u64(0x5e5_c0f1);
    let (mut accepted, mut refused, mut with_targets) = (0, 0, 0);
    for case in 0..3000 {
        let doc = document(&mut rng, &CONFIG);
        std::fs::write(&path, &doc).unwrap();
        let mut args = vec![
            "ses-identity-exporter".to_string(),
            "--config.file".into(),
            path.display().to_string(),
        ];
        for flag in [
            "--ses.rate",
            "--ses.pacing",
            "--ses.timeout",
            "--poll.interval",
            "--discovery.interval",
            "--web.telemetry-path",
            "--web.read-header-timeout",
        ] {
            if rng.random_bool(0.3) {
                args.push(format!("{flag}={}", scalar(&mut rng, &CONFIG)));
            }
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| match Flags::try_parse_from(&args) {
            Err(err) => Err(err.to_string()),
            Ok(flags) => load(flags).map(|_| ()).map_err(|e| e.to_string()),
        }));
        match outcome {
            Ok(Ok(())) => {
                accepted += 1;
                if String::from_utf8_lossy(&doc).contains("role_arn: arn:aws:iam::") {
                    with_targets += 1;
                }
            }
            Ok(Err(message)) => {
                assert!(!message.trim().is_empty(), "case {case}: an empty error");
                refused += 1;
            }
            Err(_) => panic!(
                "case {case} panicked; args {args:?}; file:\n{}",
                String::from_utf8_lossy(&doc)
            ),
        }
    }
    println!("{accepted} accepted ({with_targets} with role targets), {refused} refused");
    assert!(
        accepted > 0 && refused > 0,
        "the generator reaches both outcomes"
    );
    assert!(
        with_targets > 0,
        "accepted files reach the target validation"
    );
}

/// The web config: every generated file goes through `web::load`, which reads the
/// files it names (real ones among them), builds the TLS config and the users.
#[test]
fn no_web_config_file_panics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki::Pki::ca(dir.path(), "ca");
    pki.leaf("ca", "server", "IP:127.0.0.1", "serverAuth");
    let path = dir.path().join("web.yml");
    let mut rng = StdRng::seed_from_u64(0x3eb_c0f1);
    let (mut accepted, mut refused, mut secured) = (0, 0, 0);
    for case in 0..3000 {
        let doc = document(&mut rng, &WEB);
        std::fs::write(&path, &doc).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            web::load(&path)
                .map(|w| w.tls.is_some() && w.users.is_some())
                .map_err(|e| e.to_string())
        }));
        match outcome {
            Ok(Ok(tls_and_auth)) => {
                accepted += 1;
                secured += usize::from(tls_and_auth);
            }
            Ok(Err(message)) => {
                assert!(!message.trim().is_empty(), "case {case}: an empty error");
                refused += 1;
            }
            Err(_) => panic!(
                "case {case} panicked; file:\n{}",
                String::from_utf8_lossy(&doc)
            ),
        }
    }
    println!("{accepted} accepted ({secured} with TLS and basic auth), {refused} refused");
    assert!(
        secured > 0 && refused > 0,
        "the generator reaches TLS with auth, and refusals"
    );
}
