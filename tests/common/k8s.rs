//! Offline validation of rendered Kubernetes manifests, shared by the kustomize
//! tests (tests/deploy.rs) and the Helm chart's (tests/chart.rs), so both pass the
//! same check: core objects by kubernetes-validate --strict (unknown fields are
//! errors), prometheus-operator objects by the operator's JSON schemas (node,
//! tests/k8s-validate). The tools come from `make test-deps`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{manifest_dir, output_text};

/// A test tool from .venv when it is there, else from PATH.
pub fn venv_tool(name: &str) -> PathBuf {
    let venv = manifest_dir().join(".venv/bin").join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// The documents of a YAML stream (empty ones dropped).
pub fn parse_stream(rendered: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(rendered)
        .map(|d| serde::Deserialize::deserialize(d).expect("rendered YAML parses"))
        .filter(|d: &serde_yaml::Value| !d.is_null())
        .collect()
}

pub fn to_yaml(docs: &[&serde_yaml::Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Validates every document; panics naming the first invalid one. `crds` is how
/// many prometheus-operator objects the caller expects among them.
pub fn validate(docs: &[serde_yaml::Value], crds_expected: usize) {
    let (crds, core): (Vec<&serde_yaml::Value>, Vec<&serde_yaml::Value>) =
        docs.iter().partition(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
        });
    assert_eq!(crds.len(), crds_expected, "prometheus-operator objects");
    let tmp = tempfile::tempdir().unwrap();
    let core_file = tmp.path().join("core.yaml");
    std::fs::write(&core_file, to_yaml(&core)).unwrap();
    let out = Command::new(venv_tool("kubernetes-validate"))
        .arg("--strict")
        .arg(&core_file)
        .output()
        .expect("kubernetes-validate (run `make test-deps`)");
    let report = output_text(&out);
    assert!(
        out.status.success(),
        "kubernetes-validate --strict:\n{report}"
    );
    assert!(
        !report.contains("WARN") && !report.contains("ERROR"),
        "{report}"
    );
    assert_eq!(
        report.matches(" passed for resource ").count(),
        core.len(),
        "{report}"
    );
    if crds.is_empty() {
        return;
    }
    let mut node = Command::new("node")
        .arg("tests/k8s-validate/validate.mjs")
        .current_dir(manifest_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    node.stdin
        .take()
        .unwrap()
        .write_all(to_yaml(&crds).as_bytes())
        .unwrap();
    let out = node.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus-operator schema validation:\n{}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains(&format!("{} prometheus-operator objects valid", crds.len()))
    );
}

/// The document of this kind (and name, when given); panics when there is none.
pub fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}
