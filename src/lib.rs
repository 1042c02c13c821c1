//! ses-identity-exporter: a Prometheus exporter that tells operators when an Amazon
//! SES identity's sending setup is broken, before their mail bounces.
//!
//! Data flows one way, and nothing calls back upstream:
//!
//! ```text
//! SES/STS ──> aws ──> target (retry, limiter) ──> collector::* ──> publish (render) ──> serve ──> scrape
//!                                                      └──> facts ──> collector::dns <── DNS (collector::dns::resolver)
//! ```
//!
//! The modules, in that order (a test checks this map names every module):
//!
//! - [`config`]: flags, environment and the YAML file → one validated [`config::Config`].
//!   [`config::flags`] the flags, [`config::file`] the raw file, [`config::validate`]
//!   the checks, [`config::collectors`] the `--collector.NAME` switches, made from the
//!   collector registry.
//! - [`aws`]: the one door to AWS, [`aws::Aws`]: one HTTP attempt per call, the
//!   operations declared once in a table ([`aws::Operation`], [`aws::Request`],
//!   [`aws::Response`]), STS by a method of its own; [`aws::sdk`] the adapter over
//!   `aws-sdk-ses`/`aws-sdk-sesv2`/`aws-sdk-sts`, SDK errors → [`aws::SesError`] kinds;
//!   [`aws::wire`] the bodies of SES's v1 answers read from the raw XML and
//!   [`aws::wire_json`] SESv2's from the raw JSON, so an omitted field stays unknown.
//! - [`target`]: a target (an AWS account and region) and its loop: schedule, STS
//!   resolve, discovery, its collectors side by side; it owns its account, limiters
//!   and health series. [`target::limiter`] spaces every attempt per (account,
//!   region, operation); [`target::retry`] wraps the door: retries and backoff, every
//!   attempt through the limiter; [`target::fleet`] the running set, where targets
//!   are added and removed while the exporter runs.
//! - [`collector`]: one file per collector, registered in one list
//!   ([`collector::REGISTRY`]): [`collector::mail_from`], [`collector::dkim`],
//!   [`collector::verification`] (sharing the batching of [`collector::identity`]),
//!   [`collector::identity_reasons`] (SES's reason for the identities those find
//!   unhealthy, through the target's `Findings`), [`collector::quota`],
//!   [`collector::account`], [`collector::reputation_entities`], and the
//!   exporter-wide [`collector::dns`] with
//!   [`collector::dns::resolver`] (the only code touching the DNS resolver) and
//!   [`collector::dns::verdict`] (pure verdicts).
//! - [`facts`]: the one channel of identity facts (per target and identity: its MAIL
//!   FROM attributes, its Easy DKIM attributes with their tokens, its legacy
//!   verification token) from the SES collectors to the dns collector; plain data.
//! - [`render`]: the one renderer: families declared once as tables, records → pieces
//!   re-rendered only where their inputs changed; [`render::piece`] a piece's text and
//!   deflate blocks, [`render::body`] the assembled body and its gzip framing.
//! - [`publish`]: the one writer of what scrapes read: every collector's
//!   render-and-publish path ([`publish::Publishing`]), the latest part of every
//!   (collector, target), assembled, handed to HTTP through a `watch` channel;
//!   readiness.
//! - [`serve`]: everything HTTP: [`serve::connection`], [`serve::tracking`] (per
//!   connection watch, eviction), [`serve::router`] (routes, the scrape),
//!   [`serve::body`], [`serve::state`] (what HTTP reads from the publisher, the health
//!   tail cache), [`serve::web_config`] with [`serve::web_config::tls_section`] and
//!   [`serve::web_config::live`] (reloads), [`serve::tls`], [`serve::auth`] and the
//!   client of the `healthcheck` subcommand, [`serve::healthcheck`], and
//!   [`serve::listen`] (the sockets: bound or passed by systemd).
//! - [`model`]: plain domain types, the label enums included.
//! - [`metrics`]: the exporter's own health metrics and the process metrics.
//! - [`testing`] (feature `test-support`): the scripted AWS double the unit and
//!   integration tests share.
//! - [`supervise`]: restarts a target loop, the dns collector or the web-config
//!   watcher that panicked or ended, with backoff; its values stay served.
//! - [`logging`]: logfmt/JSON set-up, the secret caps and the log budget.
//! - [`build`]: the version and revision baked in at build time.
//!
//! The binary parses flags and calls [`run`] with its bound listeners and a shutdown
//! future, which is how the integration tests run the same code on `127.0.0.1:0`.
//! How to add a collector, by example: docs/architecture.md.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub mod aws;
pub mod build;
pub mod collector;
pub mod config;
pub mod facts;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod publish;
pub mod render;
pub mod serve;
pub mod supervise;
pub mod target;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

use aws::TargetAws;
use collector::{Scope, REGISTRY};
use config::Config;
use facts::Facts;
use metrics::Telemetry;
use publish::Publisher;
use serve::state::Shared;
use serve::web_config::WebState;
use target::fleet::{Targets, Template};
use target::{Limiters, Wiring};

/// How long the targets and the HTTP server get to stop after a shutdown signal.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(9);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot set up the exporter's own metrics")]
    Telemetry(#[from] prometheus::Error),
    #[error(transparent)]
    Dns(#[from] collector::dns::ResolverSetupError),
}

/// Runs one target loop per target, the exporter-wide collectors and the HTTP server
/// until `shutdown` resolves, then stops them: no new connections, in-flight
/// requests finish, each target ends its cycle where it is (a part is swapped whole,
/// so nothing half-done is served). `doors[i]` is the door to AWS of
/// `config.targets[i]`.
pub async fn run(
    config: &Config,
    web: WebState,
    doors: Vec<Arc<dyn TargetAws>>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(config, web, doors, listeners, shutdown, |_| {}).await
}

/// [`run`], handing `control` the running targets once the first are started, so
/// targets can be added and removed while the exporter runs.
pub async fn run_with(
    config: &Config,
    web: WebState,
    doors: Vec<Arc<dyn TargetAws>>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
    control: impl FnOnce(Targets),
) -> Result<(), RunError> {
    let telemetry = Arc::new(Telemetry::new(config.poll_interval.as_secs_f64())?);
    let publisher = Arc::new(Publisher::new());
    let facts = Arc::new(Facts::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let enabled = config.collectors.positions();

    for (collector, why) in &config.superseded {
        tracing::info!(collector, "{why}");
    }
    let mut tasks = Vec::new();
    let mail_from_on = config.collectors.is_on("mail_from");
    if let Some(dns_settings) = config.dns.as_ref().filter(|_| mail_from_on) {
        // (Without the mail_from collector there are no MAIL FROM facts, which every
        // identity's checks and verdict start from.)
        let resolver = collector::dns::HickoryDns::new(dns_settings)?;
        let dns = collector::dns::DnsCollector::new(
            resolver,
            dns_settings.clone(),
            config.poll_interval,
            Arc::clone(&publisher),
            &facts,
            Arc::clone(&telemetry),
        );
        // Behind a mutex outside the task, so a restart keeps its verdicts.
        tasks.push(tokio::spawn(supervise::run_locked(
            "dns",
            String::new(),
            Arc::new(tokio::sync::Mutex::new(dns)),
            SingletonWatch::new("dns", &telemetry),
            stop_rx.clone(),
        )));
    }
    let targets = Targets::new(
        Wiring {
            publisher: Arc::clone(&publisher),
            telemetry: Arc::clone(&telemetry),
            limiters: Arc::new(Limiters::default()),
            facts,
        },
        Template {
            poll_interval: config.poll_interval,
            rate: config.ses.rate,
            pacing: config.ses.pacing,
            timeout: config.ses.timeout,
            collectors: enabled
                .iter()
                .copied()
                .filter(|&p| matches!(REGISTRY[p].scope, Scope::Target(_)))
                .collect(),
            options: config.collector_options,
        },
    );
    for (target, aws) in config.targets.iter().zip(doors) {
        targets.add(target, aws).await;
    }
    publisher.started();
    control(targets.clone());
    let shared = Arc::new(Shared::new(publisher.subscribe(), Arc::clone(&telemetry)));
    let web = Arc::new(web);
    {
        let (web, rx, for_task) = (Arc::clone(&web), stop_rx.clone(), Arc::clone(&shared));
        tasks.push(tokio::spawn(supervise::run(
            "web_config",
            String::new(),
            move || Arc::clone(&web).watch(Arc::clone(&for_task), rx.clone()),
            SingletonWatch::new("web_config", &telemetry),
            stop_rx.clone(),
        )));
    }
    let server = tokio::spawn(serve::serve(
        listeners,
        Arc::clone(&shared),
        web,
        serve::Settings {
            telemetry_path: config.telemetry_path.clone(),
            max_connections: config.max_connections,
            read_header_timeout: config.read_header_timeout,
            send_timeout: config.send_timeout,
        },
        stop_rx,
    ));

    shutdown.await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    let stopping = async {
        targets.stop_all().await;
        let _ = server.await;
        for task in tasks {
            let _ = task.await;
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

/// An exporter-wide task: `aws_ses_exporter_task_up{task}` is 0 from its failure to
/// its restart.
struct SingletonWatch {
    task: &'static str,
    telemetry: Arc<Telemetry>,
}

impl SingletonWatch {
    fn new(task: &'static str, telemetry: &Arc<Telemetry>) -> SingletonWatch {
        telemetry.set_task_up(task, true);
        SingletonWatch {
            task,
            telemetry: Arc::clone(telemetry),
        }
    }
}

impl supervise::Watcher for SingletonWatch {
    fn failed(&mut self) {
        self.telemetry.count_task_restart(self.task);
        self.telemetry.set_task_up(self.task, false);
    }

    fn restarted(&mut self) {
        self.telemetry.set_task_up(self.task, true);
    }
}
