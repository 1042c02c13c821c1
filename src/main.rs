//! The `ses-identity-exporter` binary: flags → config, logging, the SES client, the
//! listener, then [`ses_identity_exporter::run`] until SIGTERM or SIGINT.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use ses_identity_exporter::config::{self, Command, Config, Flags};
use ses_identity_exporter::poller::min_cycle_seconds;
use ses_identity_exporter::ses::AwsSes;
use ses_identity_exporter::{build, logging};

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.command == Some(Command::Healthcheck) {
        return healthcheck(&flags.web_listen_address);
    }
    let config = match config::load(flags) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ses-identity-exporter: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    if config.check_only {
        println!("configuration OK: {}", describe_source(&config));
        return ExitCode::SUCCESS;
    }
    logging::init(config.log_level, config.log_format);

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
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "exporter failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = bind(&config.listen_address)
        .await
        .with_context(|| format!("--web.listen-address {:?}", config.listen_address))?;
    let ses = AwsSes::from_env(config.ses.timeout).await?;
    // With a static list the cycle time is known now; with discovery the poller
    // logs it once it knows how many identities there are.
    let min_cycle_seconds = match &config.identities.discovery {
        None => format!(
            "{:.1}",
            min_cycle_seconds(config.identities.fixed.len(), config.ses.rate)
        ),
        Some(_) => "after discovery".to_owned(),
    };
    info!(
        version = build::VERSION,
        revision = build::REVISION,
        region = ses.region(),
        identities = describe_source(&config),
        min_cycle_seconds,
        poll_interval = ?config.poll_interval,
        ses_rate = config.ses.rate,
        listen_address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        "starting ses-identity-exporter"
    );
    if config.ses.rate > 1.0 {
        warn!(
            ses_rate = config.ses.rate,
            "--ses.rate is above SES's default limit of 1 request/s per operation; \
             only use it where AWS raised the account's limit"
        );
    }
    ses_identity_exporter::run(&config, ses, listener, shutdown_signal()).await?;
    Ok(())
}

fn describe_source(config: &Config) -> String {
    let fixed = config.identities.fixed.len();
    match &config.identities.discovery {
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

/// `healthcheck`: a blocking probe of `/-/healthy`, run before any runtime exists.
fn healthcheck(listen_address: &str) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;

    let target = probe_address(listen_address);
    let result = (|| -> std::io::Result<String> {
        let addr = target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(b"GET /-/healthy HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head)?;
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    })();
    match result {
        Ok(head) if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") => {
            ExitCode::SUCCESS
        }
        Ok(head) => {
            eprintln!(
                "healthcheck: {target} answered {:?}",
                head.lines().next().unwrap_or("")
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("healthcheck: {target}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Where a probe on this host reaches a server bound to `listen_address`: loopback
/// for `:PORT` and the wildcard addresses, the address itself otherwise.
fn probe_address(listen_address: &str) -> String {
    if let Some(port) = listen_address.strip_prefix(':') {
        return format!("127.0.0.1:{port}");
    }
    for wildcard in ["0.0.0.0:", "[::]:"] {
        if let Some(port) = listen_address.strip_prefix(wildcard) {
            return format!("127.0.0.1:{port}");
        }
    }
    listen_address.to_owned()
}
