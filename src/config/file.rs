//! The YAML configuration file as written: the serde types ([`RawFile`] and its
//! parts) and [`read_file`]. serde checks the shape, the types and unknown keys;
//! what the values mean is checked by `validate`.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;
use crate::model::IdentityType;

/// The configuration file as written. Strict: an unknown key is an error, because a
/// misspelt `exclude` silently watching everything is worse than refusing to start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    #[serde(default)]
    pub identities: Vec<String>,
    pub discovery: Option<RawDiscovery>,
    /// Accounts and regions to poll; without it, one target: the region and
    /// credentials of the environment.
    pub targets: Option<Vec<RawTarget>>,
    #[serde(default)]
    pub poll: RawPoll,
    #[serde(default)]
    pub ses: RawSes,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    pub enabled: Option<bool>,
    pub identity_type: Option<DiscoveryType>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub interval: Option<String>,
}

/// One target as written: a region, optionally a role to assume there, and
/// optionally its own identity selection (else the top-level one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub region: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub identities: Option<Vec<String>>,
    pub discovery: Option<RawDiscovery>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    pub interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSes {
    pub rate: Option<f64>,
    pub pacing: Option<f64>,
    pub timeout: Option<String>,
}

/// Which identities `ListIdentities` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DiscoveryType {
    Domain,
    EmailAddress,
    #[serde(rename = "all")]
    All,
}

impl DiscoveryType {
    /// The `IdentityType` request parameter; `None` asks for both kinds.
    pub fn identity_type(self) -> Option<IdentityType> {
        match self {
            DiscoveryType::Domain => Some(IdentityType::Domain),
            DiscoveryType::EmailAddress => Some(IdentityType::EmailAddress),
            DiscoveryType::All => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryType::Domain => "Domain",
            DiscoveryType::EmailAddress => "EmailAddress",
            DiscoveryType::All => "all",
        }
    }
}

/// Reads and parses a config file; an empty file is a valid, empty configuration.
pub fn read_file(path: &Path) -> Result<Option<RawFile>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(Some(RawFile::default()));
    }
    serde_yaml::from_str(&text)
        .map(Some)
        .map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
}
