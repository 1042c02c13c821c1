//! The web config in force ([`WebState`]) and its reloading, on SIGHUP and when the file
//! or a file it names changes; a reload that fails leaves the previous config in force.
//! Also the log lines that say what a config turns on ([`describe`], [`log_start`]).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{base_dir, load_replacing, parse, WebConfig};
use crate::metrics::Telemetry;

/// How often the file and the files it names are checked for changes: the issue of
/// a rotated certificate is picked up within this, without a signal.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

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
    /// [`WATCH_INTERVAL`]) until `shutdown`. Of `shared` it uses only the telemetry,
    /// which counts the reloads.
    pub async fn watch(
        self: Arc<Self>,
        shared: Arc<crate::serve::state::Shared>,
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
                () = crate::supervise::stopped(&mut shutdown) => return,
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
