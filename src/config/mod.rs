//! Settings: raw flags and the YAML file go in, one validated [`Config`] comes out of
//! [`load`], or a [`ConfigError`] naming the flag or key at fault. This module owns
//! [`Config`], its parts and the defaults; the steps live in its submodules.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

mod collectors;
mod file;
mod flags;
mod validate;

pub use collectors::{CollectorFlags, Collectors};
pub use file::{read_file, DiscoveryType, RawDiscovery, RawFile, RawPoll, RawSes, RawTarget};
pub use flags::{Command, Flags, LogFormat, LogLevel};
pub use validate::{parse_duration, validate};

pub const DEFAULT_LISTEN_ADDRESS: &str = ":10150";
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_SES_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SES_RATE: f64 = 1.0;
pub const DEFAULT_SES_PACING: f64 = 0.8;
pub const DEFAULT_SESSION_NAME: &str = "ses-identity-exporter";

/// Where the HTTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `--web.listen-address`, one or more (none empty, none twice), each bound by
    /// the exporter.
    Addresses(Vec<String>),
    /// `--web.systemd-socket`: the sockets systemd passes; the addresses are ignored.
    SystemdSocket,
}

/// Validated settings: the only form the rest of the program sees.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub telemetry_path: String,
    pub max_connections: usize,
    pub read_header_timeout: Duration,
    pub send_timeout: Duration,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub config_file: Option<PathBuf>,
    pub web_config_file: Option<PathBuf>,
    pub check_only: bool,
    /// The top-level selection: what a target without its own watches.
    pub identities: Identities,
    /// What to poll; at least one. Without `targets` in the file, one implicit
    /// target: the environment's region and credentials, the top-level selection.
    pub targets: Vec<TargetConfig>,
    pub collectors: Collectors,
    pub poll_interval: Duration,
    pub ses: SesSettings,
    pub worker_threads: usize,
    /// The dns collector's settings; `None` when it is switched off.
    pub dns: Option<crate::collector::dns::DnsSettings>,
    pub collector_options: crate::collector::CollectorOptions,
    /// Collectors switched on but not run, each with the reason, for a log line
    /// at start-up (quota while account answers its families).
    pub superseded: Vec<(&'static str, &'static str)>,
}

/// A role a target assumes through STS `AssumeRole`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The account the role lives in, read from its ARN when it was validated.
    pub account: String,
    pub arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
}

/// One AWS account and region to poll, as configured.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// `None` for the implicit target: the region of the environment's chain.
    pub region: Option<String>,
    pub role: Option<Role>,
    pub identities: Identities,
}

impl TargetConfig {
    /// The account the role lives in.
    pub fn role_account(&self) -> Option<&str> {
        self.role.as_ref().map(|r| r.account.as_str())
    }
}

/// Which identities to watch: a static list, discovery, or both (the union).
#[derive(Debug, Clone)]
pub struct Identities {
    /// Listed in the file: always watched, whatever the discovery filters say.
    pub fixed: Vec<String>,
    pub discovery: Option<Discovery>,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    pub identity_type: DiscoveryType,
    /// Fully anchored, as Prometheus anchors relabelling regexes.
    pub include: Vec<Regex>,
    pub exclude: Vec<Regex>,
    pub interval: Duration,
}

impl Discovery {
    /// Whether a discovered identity passes the include and exclude filters. An empty
    /// include list lets everything in.
    pub fn admits(&self, identity: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(identity)))
            && !self.exclude.iter().any(|r| r.is_match(identity))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SesSettings {
    /// Requests per second per SES operation; every HTTP attempt counts. The
    /// ceiling: with pacing, cycles after the first use less.
    pub rate: f64,
    /// Fraction (0..=1) of the poll interval over which a collector spreads its
    /// batches; 0 sends them as fast as `rate` allows.
    pub pacing: f64,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Reads the file named by the flags, if any, and validates both together.
pub fn load(flags: Flags) -> Result<Config, ConfigError> {
    let path = flags.config_file.clone();
    let raw = match &path {
        Some(path) => read_file(path)?,
        None => None,
    };
    validate(flags, raw).map_err(|err| match (err, path) {
        // Keys from the file are named with the file, so the user knows where to look.
        (ConfigError::Invalid { key, reason }, Some(path)) if !key.starts_with("--") => {
            ConfigError::Invalid {
                key: format!("config file {}: {key}", path.display()),
                reason,
            }
        }
        (err, _) => err,
    })
}
