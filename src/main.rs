//! The `ses-identity-exporter` binary: flags → config, logging, the SES client, the
//! listener, then [`ses_identity_exporter::run`] until SIGTERM or SIGINT; for the
//! `healthcheck` subcommand, [`healthcheck::probe`] and its exit code instead.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use ses_identity_exporter::aws::sdk::{self as ses, AwsSes};
use ses_identity_exporter::config::{self, Command, Config, Flags};
use ses_identity_exporter::serve::healthcheck;
use ses_identity_exporter::serve::web_config::{self as web, WebConfig, WebState};
use ses_identity_exporter::target::min_cycle_seconds;
use ses_identity_exporter::{build, logging};

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.command == Some(Command::Healthcheck) {
        let probed =
            healthcheck::probe(&flags.web_listen_address, flags.web_config_file.as_deref());
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
        if let Some((web, _)) = &web {
            println!("web configuration OK: {}", web::describe(web));
        }
        return ExitCode::SUCCESS;
    }
    logging::init(config.log_level, config.log_format);
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
    match runtime.block_on(serve(config, web)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "exporter failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, web: WebState) -> anyhow::Result<()> {
    let listener = bind(&config.listen_address)
        .await
        .with_context(|| format!("--web.listen-address {:?}", config.listen_address))?;
    let base = ses::base_config(config.ses.timeout).await;
    let mut sessions = Vec::with_capacity(config.targets.len());
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
        sessions.push(AwsSes::for_target(&base, &region, role).await);
        regions.push(region);
    }
    // With static lists the cycle time is known now; with discovery each poller logs
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
        listen_address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
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
    ses_identity_exporter::run(&config, web, sessions, listener, shutdown_signal()).await?;
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

/// Binds the listen address; `:PORT` means every interface, IPv6 and IPv4 where the
/// host has IPv6, IPv4 alone where it does not.
async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .with_context(|| format!("invalid port {port:?}"))?;
        return match TcpListener::bind(("::", port)).await {
            Ok(l) => Ok(l),
            Err(_) => Ok(TcpListener::bind(("0.0.0.0", port)).await?),
        };
    }
    Ok(TcpListener::bind(addr).await?)
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
