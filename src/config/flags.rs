//! The command line: [`Flags`] as clap parses them (each flag also from its
//! `SES_EXPORTER_*` variable), the [`Command`] and the log enums. clap checks types, ranges
//! and enum values; what the values mean is checked by `validate`.

use std::path::PathBuf;

use clap::Parser;

pub use crate::logging::{LogFormat, LogLevel};

use super::{CollectorFlags, DEFAULT_LISTEN_ADDRESS, DEFAULT_TELEMETRY_PATH};

/// The command line. Every flag can also come from `SES_EXPORTER_<FLAG>` (dots and
/// dashes as `_`), which is how the systemd unit and the container pass them.
#[derive(Debug, Parser)]
#[command(
    name = "ses-identity-exporter",
    version = crate::build::VERSION,
    long_version = crate::build::LONG_VERSION,
    about = "Prometheus exporter for the custom MAIL FROM state of Amazon SES identities"
)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Path to the YAML configuration file. Without one, every identity in the
    /// region is discovered and watched.
    #[arg(
        long = "config.file",
        env = "SES_EXPORTER_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub config_file: Option<PathBuf>,

    /// Validate the configuration (file and flags) and exit.
    #[arg(long = "config.check", env = "SES_EXPORTER_CONFIG_CHECK")]
    pub config_check: bool,

    /// Address to listen on for HTTP requests; ":PORT" means every interface. Repeat
    /// (or separate with commas) to listen on several.
    #[arg(
        long = "web.listen-address",
        env = "SES_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = DEFAULT_LISTEN_ADDRESS,
        value_name = "ADDR",
        value_delimiter = ',',
        action = clap::ArgAction::Append,
        global = true
    )]
    pub web_listen_address: Vec<String>,

    /// Listen on the sockets systemd passes (socket activation: a .socket unit)
    /// instead of --web.listen-address.
    #[arg(long = "web.systemd-socket", env = "SES_EXPORTER_WEB_SYSTEMD_SOCKET")]
    pub web_systemd_socket: bool,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "SES_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = DEFAULT_TELEMETRY_PATH,
        value_name = "PATH"
    )]
    pub web_telemetry_path: String,

    /// Path to a web configuration file (the exporter-toolkit format: TLS, client
    /// certificates, basic auth, headers, rate limit). Reloaded on SIGHUP and when it
    /// or a file it names changes.
    #[arg(
        long = "web.config.file",
        env = "SES_EXPORTER_WEB_CONFIG_FILE",
        value_name = "PATH",
        global = true
    )]
    pub web_config_file: Option<PathBuf>,

    /// Most HTTP connections open at once (as Prometheus's own --web.max-connections).
    /// At the cap a new connection is admitted by closing the oldest one without a
    /// request in flight; it waits only while every connection has one.
    #[arg(
        long = "web.max-connections",
        env = "SES_EXPORTER_WEB_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub web_max_connections: u32,

    /// Time a client has to send a request's headers, counted from the connection's
    /// start or the end of its previous response: it also closes idle keep-alive
    /// connections.
    #[arg(
        long = "web.read-header-timeout",
        env = "SES_EXPORTER_WEB_READ_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub web_read_header_timeout: String,

    /// Longest a response may go without a successful write to its client (as
    /// nginx's send_timeout): a client that stops reading, or an HTTP/2 stream its
    /// client stops granting window to, is closed after it, so it cannot hold a
    /// connection slot for ever.
    #[arg(
        long = "web.send-timeout",
        env = "SES_EXPORTER_WEB_SEND_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s"
    )]
    pub web_send_timeout: String,

    /// Log level of the exporter's own messages. RUST_LOG, when set, takes precedence.
    #[arg(
        long = "log.level",
        env = "SES_EXPORTER_LOG_LEVEL",
        value_enum,
        default_value_t = LogLevel::Info
    )]
    pub log_level: LogLevel,

    /// Log line format.
    #[arg(
        long = "log.format",
        env = "SES_EXPORTER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Logfmt
    )]
    pub log_format: LogFormat,

    /// SES requests per second, per API operation, retries included [default: 1].
    #[arg(
        long = "ses.rate",
        env = "SES_EXPORTER_SES_RATE",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub ses_rate: Option<f64>,

    /// Fraction of the poll interval over which each collector spreads its batches
    /// (its first cycle runs at --ses.rate); 0 = as fast as --ses.rate allows
    /// [default: 0.8].
    #[arg(
        long = "ses.pacing",
        env = "SES_EXPORTER_SES_PACING",
        value_name = "FRACTION",
        allow_negative_numbers = true
    )]
    pub ses_pacing: Option<f64>,

    /// Timeout of one HTTP attempt to SES [default: 10s].
    #[arg(
        long = "ses.timeout",
        env = "SES_EXPORTER_SES_TIMEOUT",
        value_name = "DURATION"
    )]
    pub ses_timeout: Option<String>,

    /// Time from the start of one poll cycle to the start of the next [default: 5m].
    #[arg(
        long = "poll.interval",
        env = "SES_EXPORTER_POLL_INTERVAL",
        value_name = "DURATION"
    )]
    pub poll_interval: Option<String>,

    /// Time between two listings of the account's identities [default: 15m].
    #[arg(
        long = "discovery.interval",
        env = "SES_EXPORTER_DISCOVERY_INTERVAL",
        value_name = "DURATION"
    )]
    pub discovery_interval: Option<String>,

    // The collector switches (--collector.NAME, --no-collector.NAME) live in
    // collectors.rs with the Collectors they turn into. Flattened here, between
    // --discovery.interval and --dns.nameserver, so --help lists them where it
    // always has.
    #[command(flatten)]
    pub collectors: CollectorFlags,

    /// Where the verification collector reads verification states: attributes
    /// (GetIdentityVerificationAttributes, 100 identities a call, the IAM action of
    /// earlier versions) or list (SESv2 ListEmailIdentities, 1,000 a call; needs
    /// ses:ListEmailIdentities).
    #[arg(
        long = "collector.verification.source",
        env = "SES_EXPORTER_COLLECTOR_VERIFICATION_SOURCE",
        value_enum,
        default_value_t = crate::collector::VerificationSource::Attributes
    )]
    pub verification_source: crate::collector::VerificationSource,

    /// GetEmailIdentity calls per target and poll cycle of the identity_reasons
    /// collector: the most not-yet-explained identities it explains each cycle.
    #[arg(
        long = "collector.identity_reasons.calls-per-cycle",
        env = "SES_EXPORTER_COLLECTOR_IDENTITY_REASONS_CALLS_PER_CYCLE",
        value_name = "N",
        default_value_t = 20,
        value_parser = clap::value_parser!(u16).range(1..=300)
    )]
    pub reasons_per_cycle: u16,

    /// DNS server for the dns collector, IP or IP:PORT (port 53 by default); repeat
    /// or separate with commas for several. Default: the system's (/etc/resolv.conf).
    #[arg(
        long = "dns.nameserver",
        env = "SES_EXPORTER_DNS_NAMESERVER",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub dns_nameserver: Vec<String>,

    /// Time one DNS lookup may take.
    #[arg(
        long = "dns.timeout",
        env = "SES_EXPORTER_DNS_TIMEOUT",
        value_name = "DURATION",
        default_value = "5s"
    )]
    pub dns_timeout: String,

    /// DNS lookups in flight at once (identities checked at once, each one's lookups
    /// one after the other). 16: a round of 10,000 identities, 6 lookups each, at
    /// 30 ms a lookup fits in the default 5-minute interval (about 112 s).
    #[arg(
        long = "dns.concurrency",
        env = "SES_EXPORTER_DNS_CONCURRENCY",
        value_name = "N",
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub dns_concurrency: u16,

    /// Threads serving HTTP and running the poller. One is plenty: a scrape sends
    /// bytes rendered in advance, and rendering runs on a separate blocking pool
    /// (node_exporter's --runtime.gomaxprocs defaults to 1 for the same reason).
    #[arg(
        long = "runtime.worker-threads",
        env = "SES_EXPORTER_RUNTIME_WORKER_THREADS",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub worker_threads: u16,
}

/// Subcommands; without one the exporter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Ask a running exporter's /-/healthy (at the first --web.listen-address, on
    /// loopback for a wildcard address; under socket activation, pass the .socket
    /// unit's address) and exit 0 if it answers 200: a container HEALTHCHECK that
    /// needs no shell or curl.
    Healthcheck,
}
