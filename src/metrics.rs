//! The exporter's own health and the process metrics: small, kept in a `prometheus`
//! registry and rendered for scrapes (at most once a second, see [`crate::state`]).
//! The identity families, the bulk of a scrape, are in [`crate::exposition`].

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    Counter, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::ses::{Operation, Outcome};

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
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
    web_config_reload_successful: IntGauge,
    web_config_reload_timestamp: Gauge,
    dns_lookups: IntCounterVec,
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
        let web_config_reload_successful = IntGauge::new(
            "aws_ses_exporter_web_config_last_reload_successful",
            "1 if the last load of --web.config.file (at start-up, on SIGHUP or on a file change) succeeded, 0 if it failed and the previous one stays in force.",
        )?;
        let web_config_reload_timestamp = Gauge::new(
            "aws_ses_exporter_web_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of --web.config.file (the start-up time without one).",
        )?;
        let dns_lookups = IntCounterVec::new(
            Opts::new(
                "aws_ses_exporter_dns_lookups_total",
                "DNS lookups of MAIL FROM domains made by the dns collector, by record type and outcome (answers cached by the resolver included).",
            ),
            &["record", "outcome"],
        )?;
        // The start-up load succeeded, or the exporter would not be running.
        web_config_reload_successful.set(1);
        web_config_reload_timestamp.set(unix_seconds(SystemTime::now()));
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
        registry.register(Box::new(dns_lookups.clone()))?;
        registry.register(Box::new(web_config_reload_successful.clone()))?;
        registry.register(Box::new(web_config_reload_timestamp.clone()))?;
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
            web_config_reload_successful,
            web_config_reload_timestamp,
            dns_lookups,
        })
    }

    /// Creates every dns lookup series at 0, when the dns collector runs (without
    /// it the family stays absent).
    pub fn enable_dns(&self) {
        for record in crate::dns::RECORDS {
            for outcome in crate::dns::Outcome::ALL {
                self.dns_lookups
                    .with_label_values(&[record, outcome.as_str()]);
            }
        }
    }

    pub fn count_dns_lookup(&self, record: &str, outcome: &str) {
        self.dns_lookups.with_label_values(&[record, outcome]).inc();
    }

    /// Records the outcome of a web config reload.
    pub fn web_config_reloaded(&self, ok: bool) {
        self.web_config_reload_successful.set(i64::from(ok));
        if ok {
            self.web_config_reload_timestamp
                .set(unix_seconds(SystemTime::now()));
        }
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
    use std::time::Duration;

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
