//! Test certificates made with the openssl CLI (as an operator would make them), and
//! curl as the TLS client: real tools on both sides of the exporter's TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and certificates it signed, as PEM files in `dir`.
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl not found (it ships with the image; apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A CA named `name`: `<name>.pem` and `<name>.key` in `dir`.
    pub fn ca(dir: &Path, name: &str) -> Pki {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        Pki {
            dir: dir.to_owned(),
        }
    }

    /// A leaf `<name>.pem`/`<name>.key` signed by CA `ca`, with the SANs given in
    /// openssl's form (`DNS:x,IP:1.2.3.4,email:a@b,URI:spiffe://...`).
    pub fn leaf(&self, ca: &str, name: &str, sans: &str, usage: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName={sans}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\n"
            ),
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

/// What curl got.
#[derive(Debug)]
pub struct Curl {
    /// 0 when no HTTP response came (refused handshake, reset).
    pub status: u16,
    pub http_version: String,
    pub headers: String,
    pub body: String,
    pub error: String,
}

impl Curl {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Runs curl against loopback with `args` (the URL among them), 10 s at most.
pub fn curl(args: &[&str]) -> Curl {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--noproxy", "*"])
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .output()
        .expect("curl not found (apt-get install curl)");
    let written = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = written.split_whitespace();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let http_version = parts.next().unwrap_or("").to_owned();
    Curl {
        status,
        http_version,
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read_to_string(&body).unwrap_or_default(),
        error: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
