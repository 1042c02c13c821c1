//! ses-identity-exporter: a Prometheus exporter that tells operators when an Amazon
//! SES identity's custom MAIL FROM domain stops working, before their mail bounces.
//!
//! The system, in the direction data flows:
//!
//! - [`config`]: flags and the YAML file → one validated [`config::Config`].
//! - [`ses`]: the only code that talks to AWS. [`ses::SesApi`] is one HTTP attempt
//!   per call (the SDK's own retries are off); [`ses::AwsSes`] implements it over
//!   `aws-sdk-ses`, and SDK errors become [`ses::SesError`] kinds.
//! - [`poller`]: one per target (an AWS account and region): its account from STS,
//!   the schedule, discovery (`ListIdentities`), the enabled collectors (MAIL FROM,
//!   DKIM, verification, quota), each in batches of 100 through a rate limiter per
//!   (account, region, operation) that every attempt passes, retries with backoff;
//!   keeps the last good value of every identity and publishes each collector's part.
//! - [`dns`]: the dns collector: each MAIL FROM domain's MX and SPF records, looked
//!   up directly so a broken record shows before SES fails the domain.
//! - [`model`]: plain types for an identity's MAIL FROM state and the snapshot.
//! - [`exposition`]: snapshot → identity exposition, pre-rendered and pre-compressed
//!   in pieces that the next snapshot reuses where their inputs did not change, and
//!   the assembly of every target's and collector's pieces into one body.
//! - [`metrics`]: the self-metrics registry, rendered for scrapes.
//! - [`state`]: what the poller publishes and the HTTP server reads.
//! - [`web`]: `--web.config.file` (the exporter-toolkit format) → TLS, basic auth,
//!   headers, rate limit; reloaded on SIGHUP and when its files change.
//! - [`tls`]: the rustls adapter for it; [`auth`]: basic auth with bcrypt.
//! - [`http`]: hyper connections and routes; a scrape clones an `Arc` and never
//!   waits for SES.
//! - [`logging`]: logfmt/JSON set-up.
//!
//! The binary parses flags and calls [`run`] with a bound listener and a shutdown
//! future, which is how the integration tests run the same code on `127.0.0.1:0`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub mod auth;
pub mod build;
pub mod config;
pub mod dns;
pub mod exposition;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod poller;
pub mod ses;
pub mod state;
pub mod tls;
pub mod web;

use config::Config;
use poller::{Poller, PollerSettings};
use ses::SesApi;
use state::Shared;
use web::WebState;

/// How long the poller and the HTTP server get to stop after a shutdown signal.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(9);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot set up the exporter's own metrics")]
    Telemetry(#[from] prometheus::Error),
    #[error(transparent)]
    Dns(#[from] dns::SetupError),
}

/// Runs one poller per target and the HTTP server until `shutdown` resolves, then
/// stops them: no new connections, in-flight requests finish, each poller ends its
/// cycle where it is (a snapshot is swapped whole, so nothing half-done is served).
/// `sessions[i]` talks to AWS for `config.targets[i]`.
pub async fn run<S: SesApi>(
    config: &Config,
    web: WebState,
    sessions: Vec<S>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let telemetry = metrics::Telemetry::new(config.poll_interval.as_secs_f64())?;
    let shared = Arc::new(Shared::new(telemetry));
    shared.expect_targets(sessions.len());
    let (stop_tx, stop_rx) = watch::channel(false);

    let dns = match &config.dns {
        Some(dns_settings) if config.collectors.mail_from => {
            let resolver = dns::HickoryDns::new(dns_settings)?;
            shared.telemetry.enable_dns();
            let collector = dns::Collector::new(
                resolver,
                dns_settings.clone(),
                config.poll_interval,
                Arc::clone(&shared),
            );
            Some(tokio::spawn(collector.run(stop_rx.clone())))
        }
        // Without the mail_from collector there are no MAIL FROM domains to check.
        _ => None,
    };
    let limiters = Arc::new(poller::Limiters::default());
    let mut pollers = Vec::with_capacity(sessions.len());
    for (index, (target, ses)) in config.targets.iter().zip(sessions).enumerate() {
        let settings = PollerSettings {
            index,
            region: ses.region().to_owned(),
            provisional_account: target.role_account().unwrap_or("").to_owned(),
            fixed: target.identities.fixed.clone(),
            discovery: target.identities.discovery.clone(),
            poll_interval: config.poll_interval,
            rate: config.ses.rate,
            pacing: config.ses.pacing,
            timeout: config.ses.timeout,
            collectors: config.collectors,
        };
        let poller = Poller::new(ses, settings, Arc::clone(&shared), Arc::clone(&limiters));
        // Each target on its own task: a target waiting on a slow or failing account
        // never holds up another.
        pollers.push(tokio::spawn(poller.run(stop_rx.clone())));
    }
    let web = Arc::new(web);
    let web_watch = tokio::spawn(Arc::clone(&web).watch(Arc::clone(&shared), stop_rx.clone()));
    let server = tokio::spawn(http::serve(
        listener,
        Arc::clone(&shared),
        web,
        http::Settings {
            telemetry_path: config.telemetry_path.clone(),
            max_connections: config.max_connections,
            read_header_timeout: config.read_header_timeout,
        },
        stop_rx,
    ));

    shutdown.await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    let stopping = async {
        let _ = server.await;
        for poller in pollers {
            let _ = poller.await;
        }
        let _ = web_watch.await;
        if let Some(dns) = dns {
            let _ = dns.await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, stopping)
        .await
        .is_err()
    {
        warn!("shutdown timed out; exiting anyway");
    }
    Ok(())
}

/// Resolves when a shutdown is asked for on `rx`, or when no one can ask any more.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
