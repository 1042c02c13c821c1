//! The container image, built and run here: deploy/docker/Dockerfile around the
//! release binary (`make release`), on a base assembled from this machine's Debian
//! packages (scripts/image-base.sh; no registry is reachable, so the default
//! distroless base cannot be pulled), built by Debian's buildah (`--format docker`
//! keeps the HEALTHCHECK) and run by podman with the settings ../shared/TOOLING.md
//! names. Checked: the image runs as 65532 on a read-only root filesystem, its
//! `healthcheck` subcommand passes, it serves the SES double's demo identities, and
//! the CA bundle is in the image and is what the AWS SDK's TLS loads.
//!
//! Without buildah, podman or runc the test says so and passes, except under
//! `CI=true`, where it fails (`make test` installs them).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::pki::Pki;
use common::{free_port, manifest_dir, wait_for, Double, Metrics};

const IMAGE: &str = "localhost/ses-identity-exporter:test";
const BASE: &str = "localhost/ses-identity-exporter-base:test";

/// buildah and podman on a storage of the test's own (vfs: no overlay here), so
/// nothing is left in the machine's container storage.
struct Containers {
    dir: tempfile::TempDir,
}

impl Containers {
    fn storage(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            "--root".into(),
            d.join("root").display().to_string(),
            "--runroot".into(),
            d.join("run").display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("containers.conf")
    }

    fn buildah(&self, args: &[&str]) -> Output {
        let out = Command::new("buildah")
            .args(self.storage())
            .args(args)
            .output()
            .expect("buildah");
        check(&out, &format!("buildah {args:?}"));
        out
    }

    fn podman_raw(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .args(self.storage())
            .args(["--runtime", "runc", "--cgroup-manager=cgroupfs"])
            .args(args)
            // The default ulimits cannot be set in this sandbox (TOOLING.md).
            .env("CONTAINERS_CONF", self.conf())
            .output()
            .expect("podman")
    }

    fn podman(&self, args: &[&str]) -> String {
        let out = self.podman_raw(args);
        check(&out, &format!("podman {args:?}"));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `image` detached on the host network, read-only, against `endpoint`
    /// for SES and STS, listening on `addr`; its container name.
    fn run(&self, name: &str, image: &str, endpoint: &str, addr: SocketAddr) -> String {
        let env = [
            "AWS_REGION=us-east-1".to_owned(),
            "AWS_ACCESS_KEY_ID=AKIDTESTTESTTESTTEST".to_owned(),
            "AWS_SECRET_ACCESS_KEY=test-secret-key".to_owned(),
            "AWS_EC2_METADATA_DISABLED=true".to_owned(),
            // Files that do not exist: no profile of this machine is read.
            "AWS_CONFIG_FILE=/nonexistent/config".to_owned(),
            "AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials".to_owned(),
            format!("AWS_ENDPOINT_URL_SES={endpoint}"),
            format!("AWS_ENDPOINT_URL_SESV2={endpoint}"),
            format!("AWS_ENDPOINT_URL={endpoint}"),
            format!("AWS_ENDPOINT_URL_STS={endpoint}"),
            // The healthcheck (podman exec) reads the same variable.
            format!("SES_EXPORTER_WEB_LISTEN_ADDRESS={addr}"),
        ];
        let mut args = vec!["run", "-d", "--name", name, "--network=host", "--read-only"];
        for e in &env {
            args.extend(["-e", e.as_str()]);
        }
        // The dns collector would resolve the demo domains outside the machine.
        args.extend([image, "--no-collector.dns"]);
        self.podman(&args);
        name.to_owned()
    }
}

impl Containers {
    /// Waits for `check` on `/metrics` at `addr`; on a timeout, fails with the
    /// container's log.
    fn wait(
        &self,
        name: &str,
        addr: SocketAddr,
        what: &str,
        check: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        common::wait_for_or(Duration::from_secs(60), || {
            metrics(addr).filter(|m| check(m))
        })
        .unwrap_or_else(|| {
            let log = self.podman_raw(&["logs", name]);
            panic!(
                "{name}: no {what} within 60 s; its log:\n{}{}",
                String::from_utf8_lossy(&log.stdout),
                String::from_utf8_lossy(&log.stderr)
            )
        })
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let _ = self.podman_raw(&["rm", "-af", "-t", "0"]);
        let _ = Command::new("buildah")
            .args(self.storage())
            .args(["rm", "--all"])
            .output();
    }
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tools, or `None` (with the reason said) where a skip is allowed.
fn tools() -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let missing: Vec<&str> = ["buildah", "podman", "runc"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    let binary = std::env::var("SES_EXPORTER_IMAGE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest_dir().join("target/release/ses-identity-exporter"));
    let problem = if !missing.is_empty() {
        Some(format!(
            "{} not installed (Debian's buildah, podman, runc; `make test` installs them)",
            missing.join(", ")
        ))
    } else if !binary.exists() {
        Some(format!(
            "{} not built: run `make release`",
            binary.display()
        ))
    } else {
        None
    };
    match problem {
        None => Some(binary),
        Some(p) if ci => panic!("the image test cannot run under CI=true: {p}"),
        Some(p) => {
            eprintln!("SKIPPED: the image test: {p}");
            None
        }
    }
}

/// The body of `/metrics` at `addr`, once it answers.
fn metrics(addr: SocketAddr) -> Option<Metrics> {
    common::http(addr, "GET", "/metrics", &[], b"")
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| Metrics::parse(&r.text()))
}

/// The demo identities with a MAIL FROM status (8 of the double's 10 demo
/// identities have a custom MAIL FROM domain).
const DEMO_WITH_STATUS: usize = 8;

fn demo_identities(m: &Metrics) -> usize {
    m.samples
        .keys()
        .filter(|k| {
            k.starts_with("aws_ses_identity_mail_from_status{") && k.contains("status=\"Success\"")
        })
        .count()
}

/// An nginx stopped on drop through its master, so that its worker goes too (a
/// killed master leaves the worker running).
struct Nginx {
    child: std::process::Child,
    args: Vec<String>,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .args(&self.args)
            .args(["-s", "stop"])
            .output();
        let _ = self.child.wait();
    }
}

/// nginx as a TLS front of the double: the exporter reaches SES over HTTPS with a
/// certificate of the test CA.
fn tls_front(dir: &Path, pki: &Pki, upstream: SocketAddr) -> (Nginx, u16) {
    let port = free_port();
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/px;\n\
             fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;\n\
             server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {key};\n\
             location / {{ proxy_pass http://{upstream}; proxy_set_header Host $http_host; proxy_http_version 1.1; }} }} }}\n",
            cert = pki.path("ses.pem"),
            key = pki.path("ses.key"),
        ),
    )
    .unwrap();
    let args = vec![
        "-p".to_owned(),
        d.to_string(),
        "-c".to_owned(),
        conf.display().to_string(),
    ];
    let child = Command::new("nginx")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (Debian's nginx-light)");
    let proc = Nginx { child, args };
    // nginx prints nothing when ready: its port accepting is the signal.
    wait_for(Duration::from_secs(20), "nginx's TLS port", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (proc, port)
}

#[test]
fn the_image_builds_runs_as_nonroot_read_only_and_serves_the_demo_identities() {
    let Some(binary) = tools() else { return };
    let c = Containers {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(c.conf(), "[containers]\ndefault_ulimits = []\n").unwrap();
    let storage = c.storage();
    let storage: Vec<&str> = storage.iter().map(String::as_str).collect();

    // The base, then the image from a context holding only what the Dockerfile
    // copies (the binary where `make dist` puts it).
    let mut cmd = Command::new(manifest_dir().join("scripts/image-base.sh"));
    let out = cmd.arg(BASE).args(&storage).output().unwrap();
    check(&out, "scripts/image-base.sh");
    let context = c.dir.path().join("context");
    std::fs::create_dir_all(context.join("dist/linux-amd64")).unwrap();
    std::fs::copy(
        &binary,
        context.join("dist/linux-amd64/ses-identity-exporter"),
    )
    .unwrap();
    let dockerfile = manifest_dir().join("deploy/docker/Dockerfile");
    c.buildah(&[
        "bud",
        "--format",
        "docker",
        "--pull=never",
        "--build-arg",
        &format!("BASE={BASE}"),
        "-f",
        dockerfile.to_str().unwrap(),
        "-t",
        IMAGE,
        context.to_str().unwrap(),
    ]);
    let size: u64 = c
        .podman(&["image", "inspect", IMAGE, "--format", "{{.Size}}"])
        .parse()
        .unwrap();
    let binary_size = std::fs::metadata(&binary).unwrap().len();
    eprintln!(
        "image size: {:.1} MiB ({:.1} MiB of it the binary, the rest the test base)",
        size as f64 / 1048576.0,
        binary_size as f64 / 1048576.0
    );
    assert_eq!(
        c.podman(&["image", "inspect", IMAGE, "--format", "{{.Config.User}}"]),
        "65532:65532"
    );
    assert_eq!(
        c.podman(&[
            "image",
            "inspect",
            IMAGE,
            "--format",
            "{{json .Config.Healthcheck.Test}}"
        ]),
        r#"["CMD","/usr/local/bin/ses-identity-exporter","healthcheck"]"#
    );

    // The CA bundle is in the image (the SDK's TLS reads the system roots).
    let ctr = String::from_utf8(c.buildah(&["from", "--pull=never", IMAGE]).stdout).unwrap();
    let ctr = ctr.trim();
    let mnt = String::from_utf8(c.buildah(&["mount", ctr]).stdout).unwrap();
    let bundle_path = Path::new(mnt.trim()).join("etc/ssl/certs/ca-certificates.crt");
    let bundle = std::fs::read_to_string(&bundle_path).expect("the CA bundle in the image");
    let roots = bundle.matches("BEGIN CERTIFICATE").count();
    assert!(roots >= 100, "{roots} certificates in the image's bundle");
    c.buildah(&["umount", ctr]);

    // Against the double on loopback: non-root, read-only, serving, healthy.
    let double = Double::start(&["--seed", "demo"]);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let name = c.run("plain", IMAGE, &double.url(), addr);
    let m = c.wait(&name, addr, "demo identities", |m| {
        demo_identities(m) >= DEMO_WITH_STATUS
    });
    assert!(m.text.contains("aws_ses_exporter_build_info{"));
    let pid = c.podman(&["inspect", &name, "--format", "{{.State.Pid}}"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(uid, ["65532"; 4], "real, effective, saved, fs uid");
    assert_eq!(
        c.podman(&[
            "inspect",
            &name,
            "--format",
            "{{.HostConfig.ReadonlyRootfs}}"
        ]),
        "true"
    );
    c.podman(&[
        "exec",
        &name,
        "/usr/local/bin/ses-identity-exporter",
        "healthcheck",
    ]);

    // The bundle loads: SES over HTTPS with a certificate of a test CA. The image
    // with the CA appended to its bundle (nothing else changed) gets answers; the
    // image as built does not, so the roots come from that file.
    let tls = c.dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let pki = Pki::ca(&tls, "test-ca");
    pki.leaf("test-ca", "ses", "DNS:localhost,IP:127.0.0.1", "serverAuth");
    let (_nginx, port) = tls_front(&tls, &pki, double.addr);
    let https = format!("https://127.0.0.1:{port}");
    let trusting = c.dir.path().join("trusting");
    std::fs::create_dir_all(&trusting).unwrap();
    let ca = std::fs::read_to_string(tls.join("test-ca.pem")).unwrap();
    std::fs::write(trusting.join("ca-certificates.crt"), bundle + &ca).unwrap();
    std::fs::write(
        trusting.join("Containerfile"),
        format!("FROM {IMAGE}\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n"),
    )
    .unwrap();
    c.buildah(&[
        "bud",
        "--format",
        "docker",
        "--pull=never",
        "-t",
        "localhost/ses-identity-exporter:trusting",
        trusting.to_str().unwrap(),
    ]);
    let trusted: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    c.run(
        "trusting",
        "localhost/ses-identity-exporter:trusting",
        &https,
        trusted,
    );
    c.wait("trusting", trusted, "answers over HTTPS", |m| {
        demo_identities(m) >= DEMO_WITH_STATUS
    });
    let untrusted: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    c.run("untrusting", IMAGE, &https, untrusted);
    let m = wait_for(Duration::from_secs(60), "a refused TLS handshake", || {
        metrics(untrusted).filter(|m| {
            m.samples.iter().any(|(k, v)| {
                k.starts_with("aws_ses_exporter_sts_requests_total{")
                    && !k.contains("outcome=\"success\"")
                    && *v > 0.0
            })
        })
    });
    assert_eq!(
        demo_identities(&m),
        0,
        "no identity without a trusted TLS answer"
    );
}
