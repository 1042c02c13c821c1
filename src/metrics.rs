//! Snapshot → exposition text. The identity families are rendered once per published
//! snapshot, by hand (they are the bulk of a scrape and change only when the poller
//! runs) and kept both plain and gzipped; the exporter's own health and the process
//! metrics are small, kept in a `prometheus` registry and rendered per scrape.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus::{
    Counter, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::model::{BehaviorOnMxFailure, IdentityType, MailFromStatus, Observation, Snapshot};
use crate::ses::{Operation, Outcome};

/// Appended to the HELP of every identity family: the values are not fetched at
/// scrape time, as the Prometheus exporter guidelines ask to make clear.
const CACHED: &str = "Cached: fetched from SES by the background poller, not at scrape time.";

/// The identity part of a scrape, ready to send.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub plain: Bytes,
    /// A complete gzip member of `plain`; the per-scrape tail is sent as a second one.
    pub gzip: Bytes,
}

impl Exposition {
    pub fn build(snapshot: &Snapshot) -> Exposition {
        let plain = render_identities(snapshot);
        let gzip = gzip(plain.as_bytes());
        Exposition {
            plain: Bytes::from(plain),
            gzip: Bytes::from(gzip),
        }
    }
}

/// Compresses one complete gzip member. Level 6 (the default) keeps a 10,000-identity
/// body near 0.3 MB; it runs once per snapshot, not per scrape.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_level(data, Compression::default())
}

/// A fast gzip member for the small per-scrape tail.
pub fn gzip_fast(data: &[u8]) -> Vec<u8> {
    gzip_level(data, Compression::fast())
}

fn gzip_level(data: &[u8], level: Compression) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 8 + 64), level);
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    let mut out = enc.finish().unwrap_or_default();
    // The buffer lives as long as the snapshot: give back what the guess overshot.
    out.shrink_to_fit();
    out
}

/// Writes a label value with the escapes the text format requires.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help} {CACHED}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn identity_sample(out: &mut String, name: &str, identity: &str, value: impl std::fmt::Display) {
    out.push_str(name);
    out.push_str("{identity=\"");
    escape(out, identity);
    let _ = writeln!(out, "\"}} {value}");
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// Renders every identity family of a snapshot in the Prometheus text format. Only
/// identities that have been fetched are in the snapshot, so an identity never
/// fetched has no series at all; families with no samples are left out.
pub fn render_identities(snapshot: &Snapshot) -> String {
    // ~100 bytes per line and up to 11 lines per identity.
    let mut out = String::with_capacity(snapshot.len() * 1100 + 4096);

    let present = || {
        snapshot.iter().filter_map(|(id, r)| match &r.observation {
            Observation::Present(a) => Some((id, a)),
            Observation::Missing => None,
        })
    };

    if present().any(|(_, a)| a.configured()) {
        header(
            &mut out,
            "aws_ses_identity_mail_from_status",
            "Status of the identity's custom MAIL FROM domain as SES reports it (MailFromDomainStatus), as a state set: the series of the current status is 1. Only for identities with a custom MAIL FROM domain.",
        );
        for (id, a) in present().filter(|(_, a)| a.configured()) {
            for s in MailFromStatus::ALL {
                out.push_str("aws_ses_identity_mail_from_status{identity=\"");
                escape(&mut out, id);
                let _ = writeln!(
                    out,
                    "\",status=\"{}\"}} {}",
                    s.as_str(),
                    u8::from(a.status == s)
                );
            }
        }
    }

    if present().next().is_some() {
        header(
            &mut out,
            "aws_ses_identity_mail_from_behavior_on_mx_failure",
            "What SES does with mail while the MAIL FROM domain is not in Success (BehaviorOnMXFailure), as a state set. Both 0 when SES returned no or an unrecognised value.",
        );
        for (id, a) in present() {
            for b in BehaviorOnMxFailure::EXPORTED {
                out.push_str("aws_ses_identity_mail_from_behavior_on_mx_failure{identity=\"");
                escape(&mut out, id);
                let _ = writeln!(
                    out,
                    "\",behavior=\"{}\"}} {}",
                    b.as_str(),
                    u8::from(a.behavior == b)
                );
            }
        }

        header(
            &mut out,
            "aws_ses_identity_mail_from_info",
            "The identity's type and custom MAIL FROM domain (empty when none is configured); always 1.",
        );
        for (id, a) in present() {
            out.push_str("aws_ses_identity_mail_from_info{identity=\"");
            escape(&mut out, id);
            let _ = write!(
                out,
                "\",identity_type=\"{}\",mail_from_domain=\"",
                IdentityType::of(id).as_str()
            );
            escape(&mut out, a.domain.as_deref().unwrap_or(""));
            out.push_str("\"} 1\n");
        }

        header(
            &mut out,
            "aws_ses_identity_mail_from_configured",
            "1 if the identity has a custom MAIL FROM domain, 0 if mail uses SES's default MAIL FROM.",
        );
        for (id, a) in present() {
            identity_sample(
                &mut out,
                "aws_ses_identity_mail_from_configured",
                id,
                u8::from(a.configured()),
            );
        }
    }

    if !snapshot.is_empty() {
        header(
            &mut out,
            "aws_ses_identity_exists",
            "1 if SES returned the identity, 0 if it was asked for but left out (the identity does not exist in this region, or is not visible to these credentials).",
        );
        for (id, r) in snapshot {
            let exists = matches!(r.observation, Observation::Present(_));
            identity_sample(&mut out, "aws_ses_identity_exists", id, u8::from(exists));
        }

        header(
            &mut out,
            "aws_ses_identity_last_refresh_timestamp_seconds",
            "Unix time at which SES last answered for this identity; a failed fetch leaves it unchanged.",
        );
        for (id, r) in snapshot {
            identity_sample(
                &mut out,
                "aws_ses_identity_last_refresh_timestamp_seconds",
                id,
                unix_seconds(r.refreshed_at),
            );
        }
    }
    out
}

/// The exporter's own health metrics, in a registry of their own (never the global
/// one, so tests can run side by side). The poller writes them; scrapes read them.
pub struct Telemetry {
    registry: Registry,
    pub up: IntGauge,
    /// Registered at the first successful cycle: before that there is no time to
    /// report, and a 0 would read as "last success in 1970".
    last_success: Gauge,
    last_success_registered: std::sync::Once,
    pub poll_duration: Gauge,
    pub poll_interval: Gauge,
    pub poll_overruns: IntCounter,
    pub ses_requests: IntCounterVec,
    pub rate_limit_wait: Counter,
    pub identities: IntGauge,
}

impl Telemetry {
    pub fn new(poll_interval_seconds: f64) -> Result<Telemetry, prometheus::Error> {
        let registry = Registry::new();
        let up = IntGauge::new(
            "aws_ses_exporter_up",
            "1 if the last poll cycle fetched every batch (and the identity list, when due) from SES, 0 otherwise.",
        )?;
        let last_success = Gauge::new(
            "aws_ses_exporter_last_success_timestamp_seconds",
            "Unix time at which the last fully successful poll cycle ended.",
        )?;
        let poll_duration = Gauge::new(
            "aws_ses_exporter_poll_duration_seconds",
            "Duration of the last poll cycle, rate-limit waits and retries included.",
        )?;
        let poll_interval = Gauge::new(
            "aws_ses_exporter_poll_interval_seconds",
            "Configured time from the start of one poll cycle to the start of the next.",
        )?;
        let poll_overruns = IntCounter::new(
            "aws_ses_exporter_poll_overruns_total",
            "Poll cycles that took longer than the poll interval, so the next one started late.",
        )?;
        let ses_requests = IntCounterVec::new(
            Opts::new(
                "aws_ses_exporter_ses_requests_total",
                "HTTP attempts made to SES, retries included, by API operation and outcome.",
            ),
            &["operation", "outcome"],
        )?;
        let rate_limit_wait = Counter::new(
            "aws_ses_exporter_rate_limit_wait_seconds_total",
            "Time SES requests spent waiting for the exporter's own rate limiter.",
        )?;
        let identities = IntGauge::new(
            "aws_ses_exporter_identities",
            "Identities currently watched (static list plus discovered, after filters).",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "aws_ses_exporter_build_info",
                "A metric with a constant '1' value labeled by version, revision and rustc_version from which the exporter was built.",
            ),
            &["version", "revision", "rustc_version"],
        )?;
        build_info
            .with_label_values(&[
                crate::build::VERSION,
                crate::build::REVISION,
                crate::build::RUSTC_VERSION,
            ])
            .set(1);
        // Every combination exists from the start, so rate() and increase() see the
        // first error rather than a series appearing out of nowhere.
        for op in Operation::ALL {
            for outcome in Outcome::ALL {
                ses_requests.with_label_values(&[op.as_str(), outcome.as_str()]);
            }
        }
        poll_interval.set(poll_interval_seconds);

        registry.register(Box::new(up.clone()))?;
        registry.register(Box::new(poll_duration.clone()))?;
        registry.register(Box::new(poll_interval.clone()))?;
        registry.register(Box::new(poll_overruns.clone()))?;
        registry.register(Box::new(ses_requests.clone()))?;
        registry.register(Box::new(rate_limit_wait.clone()))?;
        registry.register(Box::new(identities.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Telemetry {
            registry,
            up,
            last_success,
            last_success_registered: std::sync::Once::new(),
            poll_duration,
            poll_interval,
            poll_overruns,
            ses_requests,
            rate_limit_wait,
            identities,
        })
    }

    pub fn count_request(&self, op: Operation, outcome: Outcome) {
        self.ses_requests
            .with_label_values(&[op.as_str(), outcome.as_str()])
            .inc();
    }

    pub fn set_last_success(&self, at: SystemTime) {
        self.last_success.set(unix_seconds(at));
        self.last_success_registered.call_once(|| {
            // Registering a fresh, uniquely named collector cannot fail.
            let _ = self.registry.register(Box::new(self.last_success.clone()));
        });
    }

    /// Renders the self and process metrics; small, so done per scrape.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IdentityRecord, MailFromAttributes};
    use std::time::Duration;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn empty_snapshot_renders_nothing() {
        assert_eq!(render_identities(&Snapshot::new()), "");
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let mut snap = Snapshot::new();
        snap.insert(
            "example.com".into(),
            IdentityRecord {
                observation: Observation::Present(MailFromAttributes {
                    domain: Some("mail.example.com".into()),
                    status: MailFromStatus::Failed,
                    behavior: BehaviorOnMxFailure::RejectMessage,
                }),
                refreshed_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            },
        );
        let e = Exposition::build(&snap);
        let mut back = String::new();
        flate2::read::GzDecoder::new(&e.gzip[..])
            .read_to_string(&mut back)
            .expect("valid gzip");
        assert_eq!(back.as_bytes(), &e.plain[..]);
        assert!(back.contains(
            "aws_ses_identity_mail_from_status{identity=\"example.com\",status=\"Failed\"} 1\n"
        ));
    }

    #[test]
    fn every_request_series_exists_from_the_start() {
        let t = Telemetry::new(300.0).expect("registry");
        let text = t.render();
        for op in Operation::ALL {
            for outcome in Outcome::ALL {
                let line = format!(
                    "aws_ses_exporter_ses_requests_total{{operation=\"{}\",outcome=\"{}\"}} 0",
                    op.as_str(),
                    outcome.as_str()
                );
                assert!(text.contains(&line), "missing {line}");
            }
        }
        assert!(!text.contains("aws_ses_exporter_last_success_timestamp_seconds"));
        t.set_last_success(UNIX_EPOCH + Duration::from_secs(5));
        t.set_last_success(UNIX_EPOCH + Duration::from_secs(6));
        assert!(t
            .render()
            .contains("aws_ses_exporter_last_success_timestamp_seconds 6\n"));
    }
}
