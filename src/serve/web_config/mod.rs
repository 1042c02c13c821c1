//! `--web.config.file`: the exporter-toolkit web configuration (the file
//! node_exporter, Prometheus and the other Go exporters read) → one validated
//! [`WebConfig`], and its reloading on SIGHUP or when the file or a file it names
//! changes. Every key of the format is known; one this exporter cannot honour is an
//! error naming it, so a file never silently means less than it says.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::metrics::Telemetry;
use crate::serve::auth::Users;
use crate::serve::tls::{self, ClientAuth, TlsSettings};

/// How often the file and the files it names are checked for changes: the issue of
/// a rotated certificate is picked up within this, without a signal.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

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
    // With users, refused requests spend a bucket of their own (see serve/mod.rs).
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

/// The TLS section, with its files read; `None` when it configures no TLS.
fn tls_settings(raw: RawTls, dir: &Path, http2: bool) -> Result<Option<TlsSettings>, Invalid> {
    const K: &str = "tls_server_config";
    if !tls_enabled(&raw) {
        // Without a certificate the other keys would do nothing: say so rather than
        // let someone believe min_version or client_allowed_sans protects them.
        let idle = [
            ("min_version", raw.min_version.is_some()),
            ("max_version", raw.max_version.is_some()),
            ("cipher_suites", raw.cipher_suites.is_some()),
            ("curve_preferences", raw.curve_preferences.is_some()),
            ("client_allowed_sans", raw.client_allowed_sans.is_some()),
            (
                "prefer_server_cipher_suites",
                raw.prefer_server_cipher_suites.is_some(),
            ),
        ];
        if let Some((name, _)) = idle.iter().find(|(_, is_set)| *is_set) {
            return Err(invalid(
                format!("{K}.{name}"),
                "set, but TLS is off: there is no cert_file or cert",
            ));
        }
        return Ok(None);
    }

    let cert_pem = pem_source(dir, K, "cert", raw.cert, "cert_file", raw.cert_file)?;
    let key_pem = pem_source(dir, K, "key", raw.key, "key_file", raw.key_file)?;
    let (Some((cert_key, cert_pem)), Some((key_key, key_pem))) = (cert_pem, key_pem) else {
        return Err(invalid(
            K,
            "needs both a certificate (cert_file or cert) and a key (key_file or key)",
        ));
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&cert_key, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert_key, "no PEM certificate in it"));
    }
    // The error never quotes the key's content.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(key_key, format!("no usable PEM private key in it ({e})")))?;

    let auth_name = raw.client_auth_type.unwrap_or_default();
    let client_auth = ClientAuth::parse(&auth_name).ok_or_else(|| {
        invalid(
            format!("{K}.client_auth_type"),
            format!(
                "unknown value {auth_name:?}; use one of {}",
                ClientAuth::NAMES
            ),
        )
    })?;
    let ca = pem_source(
        dir,
        K,
        "client_ca",
        raw.client_ca,
        "client_ca_file",
        raw.client_ca_file,
    )?;
    let client_cas = match ca {
        Some((ca_key, pem)) => {
            if client_auth == ClientAuth::NoClientCert {
                return Err(invalid(
                    ca_key,
                    "client CAs are configured but client_auth_type is NoClientCert; \
                     set client_auth_type: RequireAndVerifyClientCert",
                ));
            }
            let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(&ca_key, format!("not a PEM certificate: {e}")))?;
            if cas.is_empty() {
                return Err(invalid(ca_key, "no PEM certificate in it"));
            }
            cas
        }
        None => Vec::new(),
    };
    if client_auth.verifies() && client_cas.is_empty() {
        return Err(invalid(
            format!("{K}.client_auth_type"),
            format!(
                "{auth_name} needs client_ca_file or client_ca: this exporter does not \
                 verify client certificates against the system's roots"
            ),
        ));
    }
    if raw.client_allowed_sans.is_some() && !client_auth.requires() {
        return Err(invalid(
            format!("{K}.client_allowed_sans"),
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert: \
             with the others a client may send no certificate, leaving no SAN to match",
        ));
    }

    let min = tls::version(raw.min_version.as_deref().unwrap_or("TLS12"))
        .map_err(|e| invalid(format!("{K}.min_version"), e))?;
    let max = tls::version(raw.max_version.as_deref().unwrap_or("TLS13"))
        .map_err(|e| invalid(format!("{K}.max_version"), e))?;
    let rank = |v: &rustls::SupportedProtocolVersion| u16::from(v.version);
    if rank(min) > rank(max) {
        return Err(invalid(format!("{K}.min_version"), "is above max_version"));
    }
    let versions = [&rustls::version::TLS12, &rustls::version::TLS13]
        .into_iter()
        .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
        .collect();
    let cipher_suites = parse_list(
        &format!("{K}.cipher_suites"),
        raw.cipher_suites,
        tls::cipher_suite,
    )?;
    let curves = parse_list(
        &format!("{K}.curve_preferences"),
        raw.curve_preferences,
        tls::curve,
    )?;
    Ok(Some(TlsSettings {
        chain,
        key,
        client_auth,
        client_cas,
        client_allowed_sans: raw.client_allowed_sans,
        versions,
        cipher_suites,
        curves,
        prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
        http2,
    }))
}

/// Parses each name of a list; an error names the key and the item's index.
fn parse_list<T>(
    key: &str,
    names: Option<Vec<String>>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Invalid> {
    names
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, name)| parse(name).map_err(|e| invalid(format!("{key}[{i}]"), e)))
        .collect()
}

/// Whether a TLS section turns TLS on: any of its certificate, key or client-auth
/// keys is set (as the toolkit's `IsEnabled`).
fn tls_enabled(raw: &RawTls) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    set(&raw.cert)
        || set(&raw.cert_file)
        || set(&raw.key)
        || set(&raw.key_file)
        || set(&raw.client_ca)
        || set(&raw.client_ca_file)
        || set(&raw.client_auth_type)
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

/// One PEM given inline (`inline_key`) or by file (`file_key`), not both. Returns the
/// key it came from (for errors) and the bytes.
fn pem_source(
    dir: &Path,
    section: &str,
    inline_key: &str,
    inline: Option<String>,
    file_key: &str,
    file: Option<String>,
) -> Result<Option<(String, Vec<u8>)>, Invalid> {
    let inline = inline.filter(|s| !s.is_empty());
    let file = file.filter(|s| !s.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            format!("{section}.{file_key}"),
            format!("set either {file_key} or {inline_key}, not both"),
        )),
        (Some(text), None) => Ok(Some((format!("{section}.{inline_key}"), text.into_bytes()))),
        (None, Some(name)) => {
            let key = format!("{section}.{file_key}");
            let path = dir.join(&name);
            std::fs::read(&path)
                .map(|bytes| Some((key.clone(), bytes)))
                .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
        }
        (None, None) => Ok(None),
    }
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

/// The web config in force, and where it came from.
pub struct WebState {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    /// Digest of the inputs of the last load tried, so an unchanged broken file is
    /// not reloaded (and logged) every few seconds.
    attempted: Mutex<u64>,
}

impl WebState {
    /// A fixed configuration (no `--web.config.file`: plain HTTP, open).
    pub fn fixed(config: WebConfig) -> WebState {
        WebState {
            path: None,
            current: RwLock::new(Arc::new(config)),
            attempted: Mutex::new(0),
        }
    }

    /// Loaded from `path` at start-up; `digest` is [`input_digest`] taken before
    /// the load, so a change made during it is still seen as a change.
    pub fn from_file(path: PathBuf, config: WebConfig, digest: u64) -> WebState {
        WebState {
            path: Some(path),
            current: RwLock::new(Arc::new(config)),
            attempted: Mutex::new(digest),
        }
    }

    pub fn current(&self) -> Arc<WebConfig> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reloads when `force` (SIGHUP) or when the inputs changed since the last try.
    /// Returns whether a reload was tried.
    async fn reload(self: &Arc<Self>, telemetry: &Telemetry, force: bool) -> bool {
        let Some(path) = self.path.clone() else {
            return false;
        };
        let state = Arc::clone(self);
        let previous = self.current();
        let outcome = tokio::task::spawn_blocking(move || {
            let digest = input_digest(&path);
            let mut attempted = state.attempted.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *attempted == digest {
                return None;
            }
            *attempted = digest;
            Some(load_replacing(&path, Some(&previous)))
        })
        .await;
        let loaded = match outcome {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return false,
            Err(err) => {
                error!(error = %err, "web config reload did not finish");
                telemetry.web_config_reloaded(false);
                return true;
            }
        };
        match loaded {
            Ok(config) => {
                let summary = describe(&config);
                match self.current.write() {
                    Ok(mut guard) => *guard = Arc::new(config),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
                }
                telemetry.web_config_reloaded(true);
                info!(%summary, "web config reloaded; new connections and requests use it");
            }
            Err(err) => {
                telemetry.web_config_reloaded(false);
                error!(error = %err, "web config reload failed; the previous one stays in force");
            }
        }
        true
    }

    /// Reloads on SIGHUP and when the inputs change (checked every
    /// [`WATCH_INTERVAL`]) until `shutdown`.
    pub async fn watch(
        self: Arc<Self>,
        shared: Arc<crate::state::Shared>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            #[cfg(unix)]
            let signal = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signal = std::future::pending::<Option<()>>();
            tokio::select! {
                () = crate::stopped(&mut shutdown) => return,
                _ = signal => {
                    if self.path.is_none() {
                        info!("received SIGHUP; there is no --web.config.file to reload \
                               (--config.file is read at start only)");
                    } else {
                        info!("received SIGHUP; reloading the web config");
                        self.reload(&shared.telemetry, true).await;
                    }
                }
                _ = tick.tick(), if self.path.is_some() => {
                    self.reload(&shared.telemetry, false).await;
                }
            }
        }
    }
}

/// One line for the logs: what the config turns on.
pub fn describe(config: &WebConfig) -> String {
    format!(
        "tls={} client_cert_required={} basic_auth_users={} headers={} rate_limit={}",
        config.tls.is_some(),
        config.client_cert_required,
        config.users.as_ref().map_or(0, |u| u.len()),
        config.headers.len(),
        config.rate_limit.is_some(),
    )
}

/// A digest of the file and of every file it names (certificate, key, client CA),
/// so a rotated certificate is noticed even when the config file is unchanged.
pub fn input_digest(path: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    match std::fs::read(path) {
        Ok(bytes) => {
            bytes.hash(&mut h);
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(raw) = parse(&text) {
                let tls = raw.tls_server_config.unwrap_or_default();
                let dir = base_dir(path);
                for name in [tls.cert_file, tls.key_file, tls.client_ca_file]
                    .into_iter()
                    .flatten()
                    .filter(|n| !n.is_empty())
                {
                    match std::fs::read(dir.join(name)) {
                        Ok(bytes) => bytes.hash(&mut h),
                        Err(e) => e.kind().hash(&mut h),
                    }
                }
            }
        }
        Err(e) => e.kind().hash(&mut h),
    }
    h.finish()
}

/// Logs what a start-up web config turns on, with a warning where it is weaker than
/// it may look.
pub fn log_start(config: &WebConfig, path: &Path) {
    info!(file = %path.display(), summary = %describe(config), "web config loaded");
    if config.tls.is_none() && config.users.is_some() {
        warn!("basic auth without TLS: passwords cross the network readable by anyone on the path");
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
