//! Property test of configuration parsing: thousands of generated config files (the
//! real keys with wrong, odd and hostile values, unknown keys, broken YAML, random
//! bytes) and flag values go through the same `load` the binary uses. None may panic;
//! each is either accepted or refused with a message. Seeded, so a failure repeats.

use std::panic::{catch_unwind, AssertUnwindSafe};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ses_identity_exporter::config::{load, Flags};

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
    "timeout",
    "unknown_key",
];

fn scalar(rng: &mut StdRng) -> String {
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

fn value(rng: &mut StdRng, depth: u32, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match rng.random_range(0..if depth > 3 { 2 } else { 5 }) {
        0 => scalar(rng),
        1 => format!("{:?}", scalar(rng)),
        2 => {
            let n = rng.random_range(0..4);
            (0..n)
                .map(|_| format!("\n{pad}- {}", value(rng, depth + 1, indent + 2)))
                .collect()
        }
        3 => format!(
            "[{}]",
            (0..rng.random_range(0..4))
                .map(|_| scalar(rng))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => mapping(rng, depth + 1, indent + 2),
    }
}

fn mapping(rng: &mut StdRng, depth: u32, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let n = rng.random_range(0..5);
    (0..n)
        .map(|_| {
            let key = KEYS[rng.random_range(0..KEYS.len())];
            format!("\n{pad}{key}: {}", value(rng, depth, indent))
        })
        .collect()
}

fn document(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..10) {
        // Random bytes, not even UTF-8.
        0 => (0..rng.random_range(0..200))
            .map(|_| rng.random())
            .collect(),
        // A valid-looking document with a random byte flipped.
        1 => {
            let mut d = mapping(rng, 0, 0).into_bytes();
            if !d.is_empty() {
                let i = rng.random_range(0..d.len());
                d[i] = rng.random();
            }
            d
        }
        _ => mapping(rng, 0, 0).into_bytes(),
    }
}

#[test]
fn no_config_file_or_flag_value_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let mut rng = StdRng::seed_from_u64(0x5e5_c0f1);
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..3000 {
        let doc = document(&mut rng);
        std::fs::write(&path, &doc).unwrap();
        let mut args = vec![
            "ses-identity-exporter".to_string(),
            "--config.file".into(),
            path.display().to_string(),
        ];
        for flag in [
            "--ses.rate",
            "--ses.timeout",
            "--poll.interval",
            "--discovery.interval",
            "--web.telemetry-path",
            "--web.read-header-timeout",
        ] {
            if rng.random_bool(0.3) {
                args.push(format!("{flag}={}", scalar(&mut rng)));
            }
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| match Flags::try_parse_from(&args) {
            Err(err) => Err(err.to_string()),
            Ok(flags) => load(flags).map(|_| ()).map_err(|e| e.to_string()),
        }));
        match outcome {
            Ok(Ok(())) => accepted += 1,
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
    println!("{accepted} accepted, {refused} refused");
    assert!(
        accepted > 0 && refused > 0,
        "the generator reaches both outcomes"
    );
}
