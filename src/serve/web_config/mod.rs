//! `--web.config.file`: the exporter-toolkit web configuration (the file node_exporter,
//! Prometheus and the other Go exporters read) → one validated [`WebConfig`]; its TLS
//! section is read in `tls_section`, the config in force and its reloading live in `live`.
//!
//! Every key of the format is known; one this exporter cannot honour is an error naming
//! it, so a file never silently means less than it says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;

use crate::serve::auth::Users;
use crate::serve::tls::{self, ClientAuth};
use tls_section::{tls_enabled, tls_settings};

mod live;
mod tls_section;

pub use live::{describe, input_digest, log_start, WebState, WATCH_INTERVAL};

/// The file as written. Strict, like the toolkit's `UnmarshalStrict`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebConfig {
    pub tls_server_config: Option<RawTls>,
    pub http_server_config: Option<RawHttp>,
    pub basic_auth_users: Option<BTreeMap<String, Option<String>>>,
    pub rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<String>,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub http2: Option<bool>,
    pub headers: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub interval: Option<String>,
    pub burst: Option<i64>,
}

/// The headers `http_server_config.headers` may set, and the values each allows
/// (`None`: any), as in the toolkit.
const SETTABLE_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
];

/// What the HTTP server does with each connection and request.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// The TLS handshake needs a client certificate (the healthcheck cannot pass it).
    pub client_cert_required: bool,
    /// `None`: no authentication.
    pub users: Option<Arc<Users>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub rate_limit: Option<RateLimit>,
    /// With basic auth: the bucket requests that fail authentication spend, so
    /// they cannot use up `rate_limit` for authenticated scrapes.
    pub rate_limit_refused: Option<RateLimit>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("web config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("web config file {path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

type Invalid = (String, String);

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Invalid {
    (key.into(), reason.into())
}

/// Reads, parses and validates the file, reading the files it names (relative
/// paths are relative to the file's directory, as in the toolkit). Costs one bcrypt
/// when users are configured: call it off the async threads.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    load_replacing(path, None)
}

/// As [`load`], for a reload: what `previous` remembers of verified credentials is
/// kept for the users whose hash did not change.
pub fn load_replacing(
    path: &Path,
    previous: Option<&WebConfig>,
) -> Result<WebConfig, WebConfigError> {
    let raw = read(path)?;
    build_replacing(raw, &base_dir(path), previous).map_err(|(key, reason)| {
        WebConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason,
        }
    })
}

/// Reads and parses the file, nothing more.
fn read(path: &Path) -> Result<RawWebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| WebConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Parses the YAML; an empty file is the empty configuration (plain HTTP, open).
pub fn parse(text: &str) -> Result<RawWebConfig, serde_yaml::Error> {
    if text.trim().is_empty() {
        return Ok(RawWebConfig::default());
    }
    serde_yaml::from_str::<Option<RawWebConfig>>(text).map(Option::unwrap_or_default)
}

/// Validates a parsed file; `dir` resolves relative file names.
pub fn build(raw: RawWebConfig, dir: &Path) -> Result<WebConfig, Invalid> {
    build_replacing(raw, dir, None)
}

fn build_replacing(
    raw: RawWebConfig,
    dir: &Path,
    previous: Option<&WebConfig>,
) -> Result<WebConfig, Invalid> {
    let http = raw.http_server_config.unwrap_or_default();
    let http2 = http.http2.unwrap_or(true);
    let headers = headers(http.headers.unwrap_or_default())?;
    let tls_raw = raw.tls_server_config.unwrap_or_default();
    let client_cert_required = tls_raw
        .client_auth_type
        .as_deref()
        .and_then(ClientAuth::parse)
        .is_some_and(ClientAuth::requires);
    let tls = tls_settings(tls_raw, dir, http2)?
        .map(|settings| tls::server_config(settings).map_err(|e| invalid("tls_server_config", e)))
        .transpose()?
        .map(Arc::new);
    let users = match raw.basic_auth_users {
        Some(map) if !map.is_empty() => {
            let hashes = map
                .into_iter()
                .map(|(user, hash)| (user, hash.unwrap_or_default()))
                .collect();
            let previous = previous.and_then(|p| p.users.as_deref());
            let users = Users::replacing(hashes, previous)
                .map_err(|(user, reason)| invalid(format!("basic_auth_users.{user}"), reason))?;
            Some(Arc::new(users))
        }
        _ => None,
    };
    let rate_limit = rate_limit(raw.rate_limit.unwrap_or_default())?;
    // With users, refused requests spend a bucket of their own (see serve/router.rs).
    let rate_limit_refused = rate_limit
        .as_ref()
        .filter(|_| users.is_some())
        .map(|limit| RateLimit::new(limit.interval, limit.burst));
    Ok(WebConfig {
        client_cert_required: client_cert_required && tls.is_some(),
        tls,
        users,
        headers,
        rate_limit,
        rate_limit_refused,
    })
}

fn headers(
    raw: BTreeMap<String, Option<String>>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Invalid> {
    let mut out = Vec::new();
    for (name, value) in raw {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = SETTABLE_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = SETTABLE_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(invalid(
                key,
                format!("this header cannot be set; allowed: {}", names.join(", ")),
            ));
        };
        // Blank means unset, as in the toolkit.
        let value = value.unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        if let Some(allowed) = allowed {
            if !allowed.contains(&value.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    key,
                    format!("{value:?} is not allowed; use one of {allowed:?}"),
                ));
            }
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| invalid(&key, "not a valid HTTP header value"))?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(&key, "not a valid HTTP header name"))?;
        out.push((name, value));
    }
    Ok(out)
}

/// How the `healthcheck` subcommand must talk to the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeMode {
    pub tls: bool,
    pub client_cert_required: bool,
}

/// Reads only what the healthcheck needs from the file: no certificates, no bcrypt.
pub fn probe_mode(path: &Path) -> Result<ProbeMode, WebConfigError> {
    let raw = read(path)?;
    let tls = raw.tls_server_config.unwrap_or_default();
    Ok(ProbeMode {
        tls: tls_enabled(&tls),
        client_cert_required: tls_enabled(&tls)
            && tls
                .client_auth_type
                .as_deref()
                .and_then(ClientAuth::parse)
                .is_some_and(ClientAuth::requires),
    })
}

fn rate_limit(raw: RawRateLimit) -> Result<Option<RateLimit>, Invalid> {
    let interval = match raw.interval.as_deref().map(str::trim) {
        None | Some("") | Some("0") => return Ok(None),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            invalid(
                "rate_limit.interval",
                format!("invalid duration {text:?} ({e}); use e.g. 1s, 100ms"),
            )
        })?,
    };
    if interval.is_zero() {
        return Ok(None);
    }
    let burst = raw.burst.unwrap_or(0);
    if burst < 1 {
        return Err(invalid(
            "rate_limit.burst",
            format!("must be at least 1 when interval is set (with {burst} every request would be refused)"),
        ));
    }
    let burst = u32::try_from(burst)
        .map_err(|_| invalid("rate_limit.burst", format!("{burst} is too large")))?;
    Ok(Some(RateLimit::new(interval, burst)))
}

/// A token bucket, as Go's `rate.NewLimiter(rate.Every(interval), burst)`: full at
/// the start, one token back per `interval`, at most `burst`.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    burst: u32,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub fn new(interval: Duration, burst: u32) -> RateLimit {
        RateLimit {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return true;
        };
        let (tokens, last) = *state;
        let refill =
            now.saturating_duration_since(last).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (tokens + refill).min(f64::from(self.burst));
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_text(text: &str) -> Result<WebConfig, Invalid> {
        build(
            parse(text).map_err(|e| invalid("yaml", e.to_string()))?,
            Path::new("/nonexistent"),
        )
    }

    fn key_of(text: &str) -> String {
        build_text(text).unwrap_err().0
    }

    #[test]
    fn empty_and_null_sections_mean_plain_and_open() {
        for text in [
            "",
            "{}",
            "tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n",
        ] {
            let config = build_text(text).unwrap();
            assert!(config.tls.is_none() && config.users.is_none(), "{text:?}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("tls_server_config:\n  cert_fle: x\n").unwrap_err();
        assert!(err.to_string().contains("cert_fle"), "{err}");
        assert!(parse("basic_auth: {}\n").is_err());
    }

    #[test]
    fn every_error_names_its_key() {
        assert_eq!(
            key_of("tls_server_config:\n  min_version: TLS12\n"),
            "tls_server_config.min_version"
        );
        assert_eq!(
            key_of("tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: k.pem\n"),
            "tls_server_config.cert_file"
        );
        assert_eq!(
            key_of("tls_server_config:\n  cert: x\n  cert_file: y\n  key: z\n"),
            "tls_server_config.cert_file"
        );
        assert_eq!(
            key_of("http_server_config:\n  headers:\n    Server: x\n"),
            "http_server_config.headers.Server"
        );
        assert_eq!(
            key_of("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
            "http_server_config.headers.X-Frame-Options"
        );
        assert_eq!(
            key_of("basic_auth_users:\n  bob: plain\n"),
            "basic_auth_users.bob"
        );
        assert_eq!(
            key_of("basic_auth_users:\n  bob:\n"),
            "basic_auth_users.bob"
        );
        assert_eq!(key_of("rate_limit:\n  interval: 1s\n"), "rate_limit.burst");
        assert_eq!(
            key_of("rate_limit:\n  interval: soon\n  burst: 1\n"),
            "rate_limit.interval"
        );
    }

    #[test]
    fn security_headers_are_kept_in_order_and_blank_unsets() {
        let config = build_text(
            "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n    X-Content-Type-Options: nosniff\n    Content-Security-Policy: \"\"\n",
        )
        .unwrap();
        let names: Vec<&str> = config.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-content-type-options", "x-frame-options"]);
    }

    #[test]
    fn rate_limit_is_a_token_bucket() {
        let limit = RateLimit::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert!(limit.allow_at(t0));
        assert!(limit.allow_at(t0));
        assert!(!limit.allow_at(t0));
        assert!(!limit.allow_at(t0 + Duration::from_millis(500)));
        assert!(limit.allow_at(t0 + Duration::from_millis(1000)));
        assert!(!limit.allow_at(t0 + Duration::from_millis(1000)));
        assert!(build_text("rate_limit:\n  interval: 0s\n  burst: 0\n")
            .unwrap()
            .rate_limit
            .is_none());
    }
}
