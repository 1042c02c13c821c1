//! Log set-up ([`init`]): logfmt ([`Logfmt`]) or JSON on stderr, `--log.level` for this
//! program's own messages. A `RUST_LOG` the user set wins over the flag, but never lifts the
//! caps on the AWS SDK's credential-bearing lines or the HTTP libraries' log budget.

use std::fmt;
use std::time::SystemTime;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// The filter for a level: this crate (library and binaries) at `level`, libraries
/// (the AWS SDK, hyper) at warn at most, since their debug output is noise to an
/// operator and can include request details.
pub fn filter(level: LogLevel) -> EnvFilter {
    if let Ok(user) = std::env::var("RUST_LOG") {
        if !user.trim().is_empty() {
            if let Ok(filter) = EnvFilter::try_new(&user) {
                return filter;
            }
            eprintln!("ignoring RUST_LOG={user:?}: not a valid filter");
        }
    }
    let own = level.as_str();
    let deps = match level {
        LogLevel::Debug | LogLevel::Info | LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    EnvFilter::new(format!(
        "{deps},ses_identity_exporter={own},ses_double={own}"
    ))
}

/// Caps no `RUST_LOG` can lift, for libraries whose lines carry credentials: the
/// endpoint resolver prints the whole identity (the access key ID, the secret
/// redacted) at debug, and at trace the SDK's orchestrator and signer print the
/// identity and the signing scope (the access key ID again). `(target prefix, most
/// verbose level allowed)`, the first match wins.
const SECRET_CAPS: &[(&str, Level)] = &[
    (
        "aws_smithy_runtime::client::orchestrator::endpoints",
        Level::INFO,
    ),
    ("aws", Level::DEBUG),
];

/// Whether a line's level is within the cap of its target.
fn within_secret_caps(meta: &Metadata<'_>) -> bool {
    SECRET_CAPS
        .iter()
        .find(|(prefix, _)| meta.target().starts_with(prefix))
        .is_none_or(|(_, cap)| meta.level() <= cap)
}

/// Lines of one target of the HTTP server's libraries let through at once, and how
/// often one more is allowed after that. A client can make hyper, h2 or rustls log
/// (h2 warns of every burst of reset streams): without a budget one client without
/// credentials wrote ~240 lines a second. The AWS SDK's lines are not budgeted (no
/// client can trigger them, and whoever turns them on wants them all); our own are
/// never dropped: none can be triggered by a client (failed handshakes and 401s are
/// debug or silent).
const LIBRARY_BURST: f64 = 10.0;
const LIBRARY_REFILL: Duration = Duration::from_secs(10);

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Library lines dropped by the budget since the start, for the exporter's metrics.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The per-layer filter: the secret caps, then the library budget.
#[derive(Default)]
struct Guard {
    /// Tokens left and when they were counted, per library target.
    budgets: Mutex<HashMap<&'static str, (f64, Instant)>>,
}

impl Guard {
    fn allow_library_line(&self, target: &'static str, now: Instant) -> bool {
        let Ok(mut budgets) = self.budgets.lock() else {
            return true;
        };
        let (tokens, last) = budgets.entry(target).or_insert((LIBRARY_BURST, now));
        let refill =
            now.saturating_duration_since(*last).as_secs_f64() / LIBRARY_REFILL.as_secs_f64();
        *tokens = (*tokens + refill).min(LIBRARY_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// The libraries that read what clients send.
const CLIENT_FACING: &[&str] = &["hyper", "hyper_util", "h2", "rustls", "tokio_rustls"];

fn is_budgeted(target: &str) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    CLIENT_FACING.contains(&crate_name)
}

impl<S> Filter<S> for Guard {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        within_secret_caps(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if !within_secret_caps(meta) {
            Interest::never()
        } else if !is_budgeted(meta.target()) || meta.is_span() {
            Interest::always()
        } else {
            // Asked per event, so the budget sees every one.
            Interest::sometimes()
        }
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        let meta = event.metadata();
        !is_budgeted(meta.target()) || self.allow_library_line(meta.target(), Instant::now())
    }
}

/// Installs the global subscriber; call once, at start-up.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = filter(level).and(Guard::default());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Logfmt => tracing_subscriber::registry()
            .with(layer.event_format(Logfmt).with_filter(filter))
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_filter(filter),
            )
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("logging was already set up: {err}");
    }
}

/// `ts=… level=info target=… msg="…" key=value`, one event a line: logfmt, the
/// Prometheus ecosystem's default.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        write!(
            writer,
            "ts={} level={} target={}",
            humantime::format_rfc3339_millis(SystemTime::now()),
            meta.level().as_str().to_ascii_lowercase(),
            meta.target()
        )?;
        if let Some(msg) = &fields.message {
            write!(writer, " msg=")?;
            write_value(&mut writer, msg)?;
        }
        for (key, value) in &fields.rest {
            write!(writer, " {key}=")?;
            write_value(&mut writer, value)?;
        }
        writeln!(writer)
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

/// Quotes a value when logfmt needs it (empty, spaces, quotes, `=`, control chars).
fn write_value(w: &mut Writer<'_>, value: &str) -> fmt::Result {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
    if plain {
        return w.write_str(value);
    }
    w.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\t' => w.write_str("\\t")?,
            c if c.is_control() => write!(w, "\\u{{{:x}}}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(value: &str) -> String {
        let mut out = String::new();
        write_value(&mut Writer::new(&mut out), value).unwrap();
        out
    }

    #[test]
    fn logfmt_quotes_only_when_needed() {
        assert_eq!(quoted("plain"), "plain");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("two words"), "\"two words\"");
        assert_eq!(quoted("a\"b\nc"), "\"a\\\"b\\nc\"");
    }

    #[test]
    fn the_secret_caps_hold_whatever_the_filter_says() {
        use tracing::callsite::Identifier;
        use tracing::metadata::Kind;
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level: Level| {
            Metadata::new(
                "e",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], Identifier(&SITE)),
                Kind::EVENT,
            )
        };
        let endpoints = "aws_smithy_runtime::client::orchestrator::endpoints";
        assert!(!within_secret_caps(&meta(endpoints, Level::DEBUG)));
        assert!(within_secret_caps(&meta(endpoints, Level::INFO)));
        assert!(!within_secret_caps(&meta(
            "aws_sigv4::http_request",
            Level::TRACE
        )));
        assert!(within_secret_caps(&meta(
            "aws_sigv4::http_request",
            Level::DEBUG
        )));
        assert!(within_secret_caps(&meta("hyper::proto", Level::TRACE)));
    }

    #[test]
    fn library_lines_have_a_budget_per_target() {
        let guard = Guard::default();
        let t0 = Instant::now();
        let passed = (0..100)
            .filter(|_| guard.allow_library_line("h2::proto", t0))
            .count();
        assert_eq!(passed, LIBRARY_BURST as usize);
        assert!(
            guard.allow_library_line("hyper::proto", t0),
            "another target has its own"
        );
        assert!(!guard.allow_library_line("h2::proto", t0 + LIBRARY_REFILL / 2));
        assert!(guard.allow_library_line("h2::proto", t0 + LIBRARY_REFILL * 2));
    }
}
