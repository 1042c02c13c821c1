//! Log set-up: logfmt (the Prometheus ecosystem's default) or JSON on stderr, with
//! `--log.level` applying to this program's own messages. A `RUST_LOG` the user
//! set wins over the flag, as users of Rust programs expect.

use std::fmt;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// The filter for a level: this crate (library and binaries) at `level`, libraries
/// (the AWS SDK, hyper) at warn at most, since their debug output is noise to an
/// operator and can include request details.
pub fn filter(level: LogLevel) -> EnvFilter {
    if let Ok(user) = std::env::var("RUST_LOG") {
        if !user.trim().is_empty() {
            if let Ok(filter) = EnvFilter::try_new(with_secret_caps(&user)) {
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

/// Targets of the AWS SDK whose debug lines carry credentials (the endpoint resolver
/// prints the whole identity: the access key ID, with the secret redacted). Capped at
/// info even under a `RUST_LOG=debug`, unless the user names them explicitly.
const SECRET_BEARING: &[&str] = &["aws_smithy_runtime::client::orchestrator::endpoints"];

fn with_secret_caps(user: &str) -> String {
    let mut filter = user.to_owned();
    for target in SECRET_BEARING {
        if !user.contains(target) {
            filter.push_str(&format!(",{target}=info"));
        }
    }
    filter
}

/// Installs the global subscriber; call once, at start-up.
pub fn init(level: LogLevel, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("logging was already set up: {err}");
    }
}

/// `ts=… level=info target=… msg="…" key=value`, one event a line.
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
    fn a_user_filter_gets_the_secret_caps_unless_it_names_them() {
        assert_eq!(
            with_secret_caps("debug"),
            "debug,aws_smithy_runtime::client::orchestrator::endpoints=info"
        );
        let explicit = "aws_smithy_runtime::client::orchestrator::endpoints=trace";
        assert_eq!(with_secret_caps(explicit), explicit);
    }
}
