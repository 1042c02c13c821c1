//! The `ses-identity-exporter` binary: flags → config, the sockets systemd passed
//! (taken while the process has one thread), logging, the SES client, the
//! listeners, then [`ses_identity_exporter::run`] until SIGTERM or SIGINT; for the
//! `healthcheck` subcommand, [`healthcheck::probe`] and its exit code instead.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use ses_identity_exporter::aws::sdk::{self as ses, AwsSdk};
use ses_identity_exporter::aws::TargetAws;
use ses_identity_exporter::config::{self, Command, Config, Flags, Listen};
use ses_identity_exporter::serve::web_config::{self as web, WebConfig, WebState};
use ses_identity_exporter::serve::{healthcheck, listen};
use ses_identity_exporter::target::min_cycle_seconds;
use ses_identity_exporter::{build, logging};

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.command == Some(Command::Healthcheck) {
        // The first address: the one a single-address container or unit uses. Under
        // socket activation the probe cannot see systemd's sockets; it is given the
        // .socket unit's address (the default, :10150, is the shipped unit's).
        let address = flags
            .web_listen_address
            .first()
            .map_or(config::DEFAULT_LISTEN_ADDRESS, String::as_str);
        let probed = healthcheck::probe(address, flags.web_config_file.as_deref());
        return match probed {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("healthcheck: {why}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match config::load(flags) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ses-identity-exporter: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    // Loaded before anything starts, so a broken web config stops the exporter
    // instead of leaving /metrics open that the file meant to protect.
    let loaded = config.web_config_file.as_deref().map(|path| {
        let digest = web::input_digest(path);
        web::load(path).map(|web| (web, digest))
    });
    let web = match loaded.transpose() {
        Ok(web) => web,
        Err(err) => {
            eprintln!("ses-identity-exporter: invalid web configuration: {err}");
            return ExitCode::from(2);
        }
    };
    if config.check_only {
        println!("configuration OK: {}", describe_source(&config));
        for (collector, why) in &config.superseded {
            println!("note: {collector}: {why}");
        }
        if let Some((web, _)) = &web {
            println!("web configuration OK: {}", web::describe(web));
        }
        return ExitCode::SUCCESS;
    }
    // Before logging or the runtime start any thread: taking them clears LISTEN_*
    // from the environment, which is only sound single-threaded.
    let passed = (config.listen == Listen::SystemdSocket).then(listen::systemd_sockets);
    logging::init(config.log_level, config.log_format);
    let passed = match passed.transpose() {
        Ok(passed) => passed,
        Err(err) => {
            error!(error = %err, "cannot use the sockets systemd passed (--web.systemd-socket)");
            return ExitCode::FAILURE;
        }
    };
    let web = match (config.web_config_file.clone(), web) {
        (Some(path), Some((web, digest))) => {
            web::log_start(&web, &path);
            WebState::from_file(path, web, digest)
        }
        _ => WebState::fixed(WebConfig::default()),
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, web, passed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "exporter failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config: Config,
    web: WebState,
    passed: Option<Vec<std::net::TcpListener>>,
) -> anyhow::Result<()> {
    let passed_by_systemd = passed.is_some();
    let listeners = listeners(&config.listen, passed).await?;
    let base = ses::base_config(config.ses.timeout).await;
    let mut doors: Vec<Arc<dyn TargetAws>> = Vec::with_capacity(config.targets.len());
    let mut regions = Vec::with_capacity(config.targets.len());
    for target in &config.targets {
        let region = match &target.region {
            Some(region) => region.clone(),
            None => ses::default_region(&base)?,
        };
        let role = target.role.as_ref().map(|r| ses::AssumeRole {
            arn: &r.arn,
            external_id: r.external_id.as_deref(),
            session_name: &r.session_name,
        });
        doors.push(Arc::new(AwsSdk::for_target(&base, &region, role).await));
        regions.push(region);
    }
    // With static lists the cycle time is known now; with discovery each target logs
    // it once it knows how many identities there are.
    let min_cycle_seconds = if config
        .targets
        .iter()
        .all(|t| t.identities.discovery.is_none())
    {
        let most = config
            .targets
            .iter()
            .map(|t| t.identities.fixed.len())
            .max()
            .unwrap_or(0);
        format!("{:.1}", min_cycle_seconds(most, config.ses.rate))
    } else {
        "after discovery".to_owned()
    };
    info!(
        version = build::VERSION,
        revision = build::REVISION,
        targets = config.targets.len(),
        regions = regions.join(","),
        collectors = config.collectors.names().join(","),
        identities = describe_source(&config),
        min_cycle_seconds,
        poll_interval = ?config.poll_interval,
        ses_rate = config.ses.rate,
        ses_pacing = config.ses.pacing,
        listen_address = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.to_string()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        systemd_socket = passed_by_systemd,
        tls = web.current().tls.is_some(),
        "starting ses-identity-exporter"
    );
    if config.ses.rate > 1.0 {
        warn!(
            ses_rate = config.ses.rate,
            "--ses.rate is above SES's default limit of 1 request/s per operation; \
             only use it where AWS raised the account's limit"
        );
    }
    ses_identity_exporter::run(&config, web, doors, listeners, shutdown_signal()).await?;
    Ok(())
}

fn describe_source(config: &Config) -> String {
    let described: Vec<String> = config
        .targets
        .iter()
        .map(|t| {
            let selection = describe_selection(&t.identities);
            match (&t.region, &t.role) {
                (None, _) => selection,
                (Some(region), None) => format!("{region}: {selection}"),
                (Some(region), Some(role)) => format!("{region} as {}: {selection}", role.arn),
            }
        })
        .collect();
    described.join("; ")
}

fn describe_selection(identities: &config::Identities) -> String {
    let fixed = identities.fixed.len();
    match &identities.discovery {
        Some(d) if fixed > 0 => format!(
            "{fixed} listed plus discovery of {} identities every {:?}",
            d.identity_type.as_str(),
            d.interval
        ),
        Some(d) => format!(
            "discovery of {} identities every {:?}",
            d.identity_type.as_str(),
            d.interval
        ),
        None => format!("{fixed} listed identities"),
    }
}

/// The sockets to serve on: systemd's, made ready for the runtime, or each
/// `--web.listen-address` bound, the error naming the address that failed.
async fn listeners(
    listen: &Listen,
    passed: Option<Vec<std::net::TcpListener>>,
) -> anyhow::Result<Vec<TcpListener>> {
    match (listen, passed) {
        (_, Some(passed)) => passed
            .into_iter()
            .map(|l| listen::into_tokio(l).context("--web.systemd-socket"))
            .collect(),
        (Listen::Addresses(addresses), None) => {
            let mut bound = Vec::with_capacity(addresses.len());
            for address in addresses {
                let listener = listen::bind(address)
                    .await
                    .with_context(|| format!("--web.listen-address {address:?}"))?;
                bound.push(listener);
            }
            Ok(bound)
        }
        (Listen::SystemdSocket, None) => anyhow::bail!("--web.systemd-socket: no sockets taken"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("received SIGINT"),
        () = term => info!("received SIGTERM"),
    }
}
