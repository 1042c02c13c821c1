//! An authoritative DNS server on loopback (tests/dns/server.py, Python's dnslib in
//! .venv) for the dns collector: answers from a zones file the test rewrites.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{manifest_dir, Proc};

/// The DNS server, with its zones file (rewritten to change answers).
pub struct DnsServer {
    _proc: Proc,
    pub port: u16,
    pub zones: PathBuf,
}

impl DnsServer {
    pub fn start(dir: &Path, zones: &serde_json::Value) -> DnsServer {
        let path = dir.join("zones.json");
        std::fs::write(&path, zones.to_string()).unwrap();
        let python = manifest_dir().join(".venv/bin/python");
        let mut child = Command::new(&python)
            .arg(manifest_dir().join("tests/dns/server.py"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python in .venv (make venv installs dnslib)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("DNS server did not start: {line:?}"));
        DnsServer {
            _proc: Proc {
                child,
                log: Default::default(),
            },
            port,
            zones: path,
        }
    }

    pub fn set(&self, zones: &serde_json::Value) {
        // Written whole, then renamed: the server never reads half a file.
        let tmp = self.zones.with_extension("tmp");
        std::fs::write(&tmp, zones.to_string()).unwrap();
        std::fs::rename(&tmp, &self.zones).unwrap();
    }

    /// Every query so far: (arrival, end, name, type).
    pub fn queries(&self) -> Vec<(f64, f64, String, String)> {
        let log =
            std::fs::read_to_string(self.zones.with_extension("json.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["t"].as_f64().unwrap_or(0.0),
                    v["end"].as_f64().unwrap_or(0.0),
                    v["name"].as_str().unwrap_or("").to_owned(),
                    v["type"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}
