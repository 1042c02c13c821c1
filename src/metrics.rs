//! The exporter's own health and the process metrics: small, kept in a `prometheus`
//! registry and rendered for scrapes (at most once a second, see [`crate::serve::state`]).
//! The collectors' families, the bulk of a scrape, go through [`crate::render`].

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    Counter, CounterVec, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::model::{LookupOutcome, Operation, Outcome, DNS_RECORD_TYPES};

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// The labels of every per-target series.
const TARGET: [&str; 2] = ["aws_account_id", "aws_region"];

/// The exporter's own health metrics, in a registry of their own (never the global
/// one, so tests can run side by side). Per-target series are written through a
/// [`TargetTelemetry`]; scrapes read them.
pub struct Telemetry {
    registry: Registry,
    up: IntGaugeVec,
    /// A target's series appears at its first successful cycle: before that there is
    /// no time to report, and a 0 would read as "last success in 1970".
    last_success: GaugeVec,
    poll_duration: GaugeVec,
    pub poll_interval: Gauge,
    poll_overruns: IntCounterVec,
    ses_requests: IntCounterVec,
    sts_requests: IntCounterVec,
    rate_limit_wait: CounterVec,
    planned_rate: GaugeVec,
    identities: IntGaugeVec,
    collector_success: IntGaugeVec,
    duplicate_targets: IntGauge,
    web_config_reload_successful: IntGauge,
    web_config_reload_timestamp: Gauge,
    dns_lookups: IntCounterVec,
    task_restarts: IntCounterVec,
    task_up: IntGaugeVec,
    http_connections_closed: IntCounterVec,
    http_requests_refused: IntCounterVec,
    log_lines_dropped: IntCounter,
}

/// Why the HTTP server closed a connection itself (`aws_ses_exporter_http_connections_closed_total`).
pub const CONNECTION_CLOSE_REASONS: [&str; 4] =
    ["evicted", "send_timeout", "stream_stalled", "idle"];
/// Why a request was answered without being served (`aws_ses_exporter_http_requests_refused_total`).
pub const REQUEST_REFUSE_REASONS: [&str; 3] = ["rate_limit", "auth_address_busy", "auth_busy"];

impl Telemetry {
    pub fn new(poll_interval_seconds: f64) -> Result<Telemetry, prometheus::Error> {
        let registry = Registry::new();
        let target_opts = |name: &str, help: &str| Opts::new(name, help);
        let up = IntGaugeVec::new(
            target_opts(
                "aws_ses_exporter_up",
                "1 if the target's last poll cycle fetched every batch of every enabled collector (and the identity list, when due) from SES, 0 otherwise.",
            ),
            &TARGET,
        )?;
        let last_success = GaugeVec::new(
            target_opts(
                "aws_ses_exporter_last_success_timestamp_seconds",
                "Unix time at which the target's last fully successful poll cycle ended.",
            ),
            &TARGET,
        )?;
        let poll_duration = GaugeVec::new(
            target_opts(
                "aws_ses_exporter_poll_duration_seconds",
                "Duration of the target's last poll cycle, rate-limit waits and retries included.",
            ),
            &TARGET,
        )?;
        let poll_interval = Gauge::new(
            "aws_ses_exporter_poll_interval_seconds",
            "Configured time from the start of one poll cycle to the start of the next.",
        )?;
        let poll_overruns = IntCounterVec::new(
            target_opts(
                "aws_ses_exporter_poll_overruns_total",
                "Poll cycles of the target that took longer than the poll interval, so the next one started late.",
            ),
            &TARGET,
        )?;
        let ses_requests = IntCounterVec::new(
            Opts::new(
                "aws_ses_exporter_ses_requests_total",
                "HTTP attempts made to SES, retries included, by target, API operation and outcome.",
            ),
            &["aws_account_id", "aws_region", "operation", "outcome"],
        )?;
        let sts_requests = IntCounterVec::new(
            Opts::new(
                "aws_ses_exporter_sts_requests_total",
                "STS GetCallerIdentity calls made to learn the target's account, by outcome. aws_account_id is empty until one succeeded for a target without a role.",
            ),
            &["aws_account_id", "aws_region", "outcome"],
        )?;
        let rate_limit_wait = CounterVec::new(
            target_opts(
                "aws_ses_exporter_rate_limit_wait_seconds_total",
                "Time the target's SES requests spent waiting for the exporter's own rate limiters.",
            ),
            &TARGET,
        )?;
        let planned_rate = GaugeVec::new(
            Opts::new(
                "aws_ses_exporter_ses_planned_request_rate",
                "Requests per second the target plans for an SES operation in its current cycle: at most --ses.rate, which the first cycle uses; later cycles spread an identity collector's batches over --ses.pacing of the poll interval; the quota collector makes one call of each of its operations per cycle. Retries come on top; ListIdentities (discovery) is not planned per cycle.",
            ),
            &["aws_account_id", "aws_region", "operation"],
        )?;
        let identities = IntGaugeVec::new(
            target_opts(
                "aws_ses_exporter_identities",
                "Identities the target currently watches (static list plus discovered, after filters).",
            ),
            &TARGET,
        )?;
        let collector_success = IntGaugeVec::new(
            Opts::new(
                "aws_ses_exporter_collector_success",
                "1 if the collector's part of the target's last poll cycle fetched everything it asked SES for, 0 otherwise.",
            ),
            &["aws_account_id", "aws_region", "collector"],
        )?;
        let duplicate_targets = IntGauge::new(
            "aws_ses_exporter_duplicate_targets",
            "Targets not polled because an earlier target already covers their AWS account and region (two roles into the same account).",
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
        let task_restarts = IntCounterVec::new(
            Opts::new(
                "aws_ses_exporter_task_restarts_total",
                "Background tasks restarted after they panicked or ended before shutdown, by task (poller: any target's; dns; web_config). A restarted poller's target shows aws_ses_exporter_up 0 until its next cycle.",
            ),
            &["task"],
        )?;
        let task_up = IntGaugeVec::new(
            Opts::new(
                "aws_ses_exporter_task_up",
                "1 while the exporter-wide background task runs, 0 from its failure until it is restarted (dns: the dns collector, whose verdicts are not refreshed meanwhile; web_config: the web config watcher).",
            ),
            &["task"],
        )?;
        for task in ["poller", "dns", "web_config"] {
            task_restarts.with_label_values(&[task]);
        }
        let http_connections_closed = IntCounterVec::new(
            Opts::new(
                "aws_ses_exporter_http_connections_closed_total",
                "HTTP connections the exporter closed itself, by reason: evicted (the oldest connection without a request in flight, closed to admit a new one at --web.max-connections), send_timeout (no write succeeded for --web.send-timeout), stream_stalled (a response, e.g. an HTTP/2 stream whose client grants no window, that made no progress for --web.send-timeout), idle (an HTTP/2 connection without a request for --web.read-header-timeout).",
            ),
            &["reason"],
        )?;
        for reason in CONNECTION_CLOSE_REASONS {
            http_connections_closed.with_label_values(&[reason]);
        }
        let http_requests_refused = IntCounterVec::new(
            Opts::new(
                "aws_ses_exporter_http_requests_refused_total",
                "HTTP requests answered without being served, by reason: rate_limit (429, the web config's rate_limit), auth_address_busy (429, the client's address already has its share of password checks waiting), auth_busy (503, every password check slot was taken for too long or the queue was full).",
            ),
            &["reason"],
        )?;
        for reason in REQUEST_REFUSE_REASONS {
            http_requests_refused.with_label_values(&[reason]);
        }
        let log_lines_dropped = IntCounter::new(
            "aws_ses_exporter_log_lines_dropped_total",
            "Log lines of the HTTP server's libraries (hyper, h2, rustls) dropped by their per-target budget (10 at once, then one per 10 s), so that no client can fill the log.",
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
        poll_interval.set(poll_interval_seconds);

        registry.register(Box::new(up.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(poll_duration.clone()))?;
        registry.register(Box::new(poll_interval.clone()))?;
        registry.register(Box::new(poll_overruns.clone()))?;
        registry.register(Box::new(ses_requests.clone()))?;
        registry.register(Box::new(sts_requests.clone()))?;
        registry.register(Box::new(rate_limit_wait.clone()))?;
        registry.register(Box::new(planned_rate.clone()))?;
        registry.register(Box::new(identities.clone()))?;
        registry.register(Box::new(collector_success.clone()))?;
        registry.register(Box::new(duplicate_targets.clone()))?;
        registry.register(Box::new(dns_lookups.clone()))?;
        registry.register(Box::new(web_config_reload_successful.clone()))?;
        registry.register(Box::new(web_config_reload_timestamp.clone()))?;
        registry.register(Box::new(task_restarts.clone()))?;
        registry.register(Box::new(task_up.clone()))?;
        registry.register(Box::new(http_connections_closed.clone()))?;
        registry.register(Box::new(http_requests_refused.clone()))?;
        registry.register(Box::new(log_lines_dropped.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Telemetry {
            registry,
            up,
            last_success,
            poll_duration,
            poll_interval,
            poll_overruns,
            ses_requests,
            sts_requests,
            rate_limit_wait,
            planned_rate,
            identities,
            collector_success,
            duplicate_targets,
            web_config_reload_successful,
            web_config_reload_timestamp,
            dns_lookups,
            task_restarts,
            task_up,
            http_connections_closed,
            http_requests_refused,
            log_lines_dropped,
        })
    }

    /// Counts a connection the HTTP server closed; `reason` is one of
    /// [`CONNECTION_CLOSE_REASONS`].
    pub fn count_connection_closed(&self, reason: &str) {
        self.http_connections_closed
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a request refused before being served; `reason` is one of
    /// [`REQUEST_REFUSE_REASONS`].
    pub fn count_request_refused(&self, reason: &str) {
        self.http_requests_refused
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a restart of a background task.
    pub fn count_task_restart(&self, task: &str) {
        self.task_restarts.with_label_values(&[task]).inc();
    }

    /// Whether an exporter-wide background task (`dns`, `web_config`) is running.
    pub fn set_task_up(&self, task: &str, up: bool) {
        self.task_up.with_label_values(&[task]).set(i64::from(up));
    }

    /// The series of one target, created at 0 (`up` too: nothing fetched yet) so
    /// rate() and increase() see a target's first error rather than a series
    /// appearing out of nowhere. `operations` are the SES operations it will call.
    pub fn target(
        &self,
        account: &str,
        region: &str,
        operations: &[Operation],
        collectors: &[&'static str],
    ) -> TargetTelemetry {
        let labels = [account, region];
        for op in operations {
            for outcome in Outcome::ALL {
                self.ses_requests.with_label_values(&[
                    account,
                    region,
                    op.as_str(),
                    outcome.as_str(),
                ]);
            }
        }
        for outcome in Outcome::ALL {
            self.sts_requests
                .with_label_values(&[account, region, outcome.as_str()]);
        }
        for op in operations
            .iter()
            .filter(|op| **op != Operation::ListIdentities)
        {
            self.planned_rate
                .with_label_values(&[account, region, op.as_str()])
                .set(0.0);
        }
        for c in collectors {
            self.collector_success
                .with_label_values(&[account, region, c])
                .set(0);
        }
        TargetTelemetry {
            account: account.to_owned(),
            region: region.to_owned(),
            up: self.up.with_label_values(&labels),
            poll_duration: self.poll_duration.with_label_values(&labels),
            poll_overruns: self.poll_overruns.with_label_values(&labels),
            rate_limit_wait: self.rate_limit_wait.with_label_values(&labels),
            identities: self.identities.with_label_values(&labels),
            operations: operations.to_vec(),
            collectors: collectors.to_vec(),
            last_success: self.last_success.clone(),
            ses_requests: self.ses_requests.clone(),
            sts_requests: self.sts_requests.clone(),
            planned_rate: self.planned_rate.clone(),
            collector_success: self.collector_success.clone(),
            up_vec: self.up.clone(),
            poll_duration_vec: self.poll_duration.clone(),
            poll_overruns_vec: self.poll_overruns.clone(),
            rate_limit_wait_vec: self.rate_limit_wait.clone(),
            identities_vec: self.identities.clone(),
        }
    }

    pub fn set_duplicate_targets(&self, n: usize) {
        self.duplicate_targets.set(n as i64);
    }

    /// Creates every dns lookup series at 0, when the dns collector runs (without
    /// it the family stays absent).
    pub fn enable_dns(&self) {
        for record in DNS_RECORD_TYPES {
            for outcome in LookupOutcome::ALL {
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

    /// Renders the self and process metrics; small, so done per scrape.
    pub fn render(&self) -> String {
        // The log filter counts in a static: it is set up before any telemetry exists.
        let dropped = crate::logging::dropped_lines();
        let seen = self.log_lines_dropped.get();
        if dropped > seen {
            self.log_lines_dropped.inc_by(dropped - seen);
        }
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }
}

/// One target's health series, bound to its `aws_account_id` and `aws_region`.
pub struct TargetTelemetry {
    account: String,
    region: String,
    pub up: IntGauge,
    pub poll_duration: Gauge,
    pub poll_overruns: IntCounter,
    pub rate_limit_wait: Counter,
    pub identities: IntGauge,
    operations: Vec<Operation>,
    collectors: Vec<&'static str>,
    last_success: GaugeVec,
    ses_requests: IntCounterVec,
    sts_requests: IntCounterVec,
    planned_rate: GaugeVec,
    collector_success: IntGaugeVec,
    up_vec: IntGaugeVec,
    poll_duration_vec: GaugeVec,
    poll_overruns_vec: IntCounterVec,
    rate_limit_wait_vec: CounterVec,
    identities_vec: IntGaugeVec,
}

impl TargetTelemetry {
    pub fn count_request(&self, op: Operation, outcome: Outcome) {
        self.ses_requests
            .with_label_values(&[&self.account, &self.region, op.as_str(), outcome.as_str()])
            .inc();
    }

    pub fn count_sts(&self, outcome: Outcome) {
        self.sts_requests
            .with_label_values(&[&self.account, &self.region, outcome.as_str()])
            .inc();
    }

    /// The requests per second this cycle plans for an identity collector's `op`.
    pub fn set_planned_rate(&self, op: Operation, rate: f64) {
        self.planned_rate
            .with_label_values(&[&self.account, &self.region, op.as_str()])
            .set(rate);
    }

    pub fn set_collector_success(&self, collector: &str, ok: bool) {
        self.collector_success
            .with_label_values(&[&self.account, &self.region, collector])
            .set(i64::from(ok));
    }

    pub fn set_last_success(&self, at: SystemTime) {
        self.last_success
            .with_label_values(&[&self.account, &self.region])
            .set(unix_seconds(at));
    }

    /// The same target under the account STS named: its series move to the new
    /// label (counters keep their counts) and the old ones are removed, so no series
    /// is left behind with an empty or wrong account.
    pub fn relabel(&mut self, telemetry: &Telemetry, account: &str) {
        if account == self.account {
            return;
        }
        let next = telemetry.target(account, &self.region, &self.operations, &self.collectors);
        for outcome in Outcome::ALL {
            let old = self
                .sts_requests
                .with_label_values(&[&self.account, &self.region, outcome.as_str()])
                .get();
            next.sts_requests
                .with_label_values(&[account, &self.region, outcome.as_str()])
                .inc_by(old);
            let _ = self.sts_requests.remove_label_values(&[
                &self.account,
                &self.region,
                outcome.as_str(),
            ]);
            for op in &self.operations {
                let labels = [
                    self.account.as_str(),
                    self.region.as_str(),
                    op.as_str(),
                    outcome.as_str(),
                ];
                let old = self.ses_requests.with_label_values(&labels).get();
                next.ses_requests
                    .with_label_values(&[account, &self.region, op.as_str(), outcome.as_str()])
                    .inc_by(old);
                let _ = self.ses_requests.remove_label_values(&labels);
            }
        }
        next.poll_overruns.inc_by(self.poll_overruns.get());
        next.rate_limit_wait.inc_by(self.rate_limit_wait.get());
        self.remove();
        *self = next;
    }

    /// Removes every series of this target (a relabelled or duplicate target).
    pub fn remove(&self) {
        let labels = [self.account.as_str(), self.region.as_str()];
        let _ = self.up_vec.remove_label_values(&labels);
        let _ = self.poll_duration_vec.remove_label_values(&labels);
        let _ = self.poll_overruns_vec.remove_label_values(&labels);
        let _ = self.rate_limit_wait_vec.remove_label_values(&labels);
        let _ = self.identities_vec.remove_label_values(&labels);
        let _ = self.last_success.remove_label_values(&labels);
        for c in &self.collectors {
            let _ = self.collector_success.remove_label_values(&[
                self.account.as_str(),
                self.region.as_str(),
                c,
            ]);
        }
        for outcome in Outcome::ALL {
            let _ = self.sts_requests.remove_label_values(&[
                &self.account,
                &self.region,
                outcome.as_str(),
            ]);
            for op in &self.operations {
                let _ = self.ses_requests.remove_label_values(&[
                    &self.account,
                    &self.region,
                    op.as_str(),
                    outcome.as_str(),
                ]);
            }
        }
        for op in &self.operations {
            let _ =
                self.planned_rate
                    .remove_label_values(&[&self.account, &self.region, op.as_str()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `render()` without what varies from run to run: the process collector's
    /// families, the build's labels, the reload time, and the dropped log lines (a
    /// process-wide static other tests may move). Their HELP and TYPE lines stay.
    fn stable(text: &str) -> String {
        text.lines()
            .filter(|l| !l.starts_with("process_") && !l.starts_with("# HELP process_"))
            .filter(|l| !l.starts_with("# TYPE process_"))
            .filter(|l| !l.starts_with("aws_ses_exporter_build_info{"))
            .filter(|l| {
                !l.starts_with("aws_ses_exporter_web_config_last_reload_success_timestamp_seconds ")
            })
            .filter(|l| !l.starts_with("aws_ses_exporter_log_lines_dropped_total "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Every writer once or more, two targets and a duplicate, a relabel with counts
    /// to carry: the text the self-metrics render, snapshotted on the way.
    fn representative_sequence() -> String {
        let t = Telemetry::new(300.0).expect("registry");
        let mut out = String::new();
        let mut a = t.target(
            "",
            "eu-west-1",
            &[
                Operation::ListIdentities,
                Operation::GetIdentityMailFromDomainAttributes,
                Operation::GetIdentityDkimAttributes,
                Operation::GetSendQuota,
                Operation::GetAccountSendingEnabled,
            ],
            &["mail_from", "dkim", "quota"],
        );
        let b = t.target(
            "222222222222",
            "us-east-1",
            &[Operation::GetIdentityVerificationAttributes],
            &["verification"],
        );
        let dup = t.target(
            "333333333333",
            "eu-west-1",
            &[Operation::GetSendQuota, Operation::GetAccountSendingEnabled],
            &["quota"],
        );
        out.push_str("## targets created\n");
        out.push_str(&stable(&t.render()));

        a.count_sts(Outcome::Timeout);
        a.count_sts(Outcome::Timeout);
        a.count_sts(Outcome::Success);
        a.count_request(Operation::ListIdentities, Outcome::Success);
        a.count_request(Operation::GetIdentityDkimAttributes, Outcome::Throttled);
        a.count_request(Operation::GetIdentityDkimAttributes, Outcome::Success);
        a.count_request(Operation::GetSendQuota, Outcome::ServerError);
        a.set_planned_rate(Operation::GetIdentityDkimAttributes, 2.5);
        a.set_planned_rate(Operation::GetSendQuota, 0.25);
        a.set_collector_success("dkim", true);
        a.set_collector_success("quota", false);
        a.up.set(1);
        a.poll_duration.set(1.25);
        a.poll_overruns.inc();
        a.rate_limit_wait.inc_by(0.75);
        a.identities.set(7);
        a.set_last_success(UNIX_EPOCH + Duration::from_millis(1_700_000_000_250));
        b.count_sts(Outcome::Success);
        b.count_request(
            Operation::GetIdentityVerificationAttributes,
            Outcome::ClientError,
        );
        b.set_planned_rate(Operation::GetIdentityVerificationAttributes, 1.0);
        b.set_collector_success("verification", true);
        b.up.set(1);
        b.identities.set(3);
        dup.count_sts(Outcome::Success);
        dup.count_request(Operation::GetSendQuota, Outcome::Success);
        dup.up.set(1);
        out.push_str("## written\n");
        out.push_str(&stable(&t.render()));

        a.relabel(&t, "111111111111");
        dup.remove();
        t.set_duplicate_targets(1);
        // The same account: nothing moves.
        let mut b = b;
        b.relabel(&t, "222222222222");
        out.push_str("## relabelled and removed\n");
        out.push_str(&stable(&t.render()));

        a.count_request(Operation::GetSendQuota, Outcome::Success);
        a.count_sts(Outcome::Success);
        a.poll_overruns.inc();
        a.set_last_success(UNIX_EPOCH + Duration::from_secs(1_700_000_300));
        t.enable_dns();
        t.count_dns_lookup("MX", "ok");
        t.count_dns_lookup("TXT", "servfail");
        t.count_dns_lookup("TXT", "servfail");
        t.count_task_restart("poller");
        t.count_task_restart("dns");
        t.set_task_up("dns", true);
        t.set_task_up("web_config", false);
        t.count_connection_closed("evicted");
        t.count_connection_closed("idle");
        t.count_request_refused("rate_limit");
        t.count_request_refused("auth_busy");
        t.web_config_reloaded(true);
        t.web_config_reloaded(false);
        out.push_str("## exporter-wide\n");
        out.push_str(&stable(&t.render()));
        out
    }

    /// The self-metrics' text, family by family and series by series, as rendered
    /// before they were declared in tables: the refactoring changed no byte of it.
    #[test]
    fn self_metrics_render_as_the_golden_text() {
        let text = representative_sequence();
        if std::env::var_os("WRITE_GOLDEN").is_some() {
            std::fs::write("testdata/metrics/self_metrics.txt", &text).expect("write golden");
        }
        let golden = include_str!("../testdata/metrics/self_metrics.txt");
        for (n, (got, want)) in text.lines().zip(golden.lines()).enumerate() {
            assert_eq!(got, want, "line {}", n + 1);
        }
        assert_eq!(text, golden);

        // What `stable` leaves out is there all the same.
        let text = Telemetry::new(300.0).expect("registry").render();
        let build = format!(
            "aws_ses_exporter_build_info{{revision=\"{}\",rustc_version=\"{}\",version=\"{}\"}} 1\n",
            crate::build::REVISION,
            crate::build::RUSTC_VERSION,
            crate::build::VERSION
        );
        assert!(text.contains(&build), "{text}");
        for family in [
            "aws_ses_exporter_web_config_last_reload_success_timestamp_seconds ",
            "aws_ses_exporter_log_lines_dropped_total ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(family)), "{family}");
        }
    }

    #[test]
    fn every_request_series_of_a_target_exists_from_the_start() {
        let t = Telemetry::new(300.0).expect("registry");
        let target = t.target("", "eu-west-1", &Operation::ALL, &["mail_from"]);
        let text = t.render();
        for op in Operation::ALL {
            for outcome in Outcome::ALL {
                let line = format!(
                    "aws_ses_exporter_ses_requests_total{{aws_account_id=\"\",aws_region=\"eu-west-1\",operation=\"{}\",outcome=\"{}\"}} 0",
                    op.as_str(),
                    outcome.as_str()
                );
                assert!(text.contains(&line), "missing {line}");
            }
        }
        assert!(!text.contains("aws_ses_exporter_last_success_timestamp_seconds{"));
        // The plan exists for every operation but discovery's.
        assert!(text.contains("aws_ses_exporter_ses_planned_request_rate{aws_account_id=\"\",aws_region=\"eu-west-1\",operation=\"GetIdentityDkimAttributes\"} 0\n"));
        assert!(text.contains("aws_ses_exporter_ses_planned_request_rate{aws_account_id=\"\",aws_region=\"eu-west-1\",operation=\"GetSendQuota\"} 0\n"));
        assert!(!text.contains("aws_ses_exporter_ses_planned_request_rate{aws_account_id=\"\",aws_region=\"eu-west-1\",operation=\"ListIdentities\""));
        target.count_sts(Outcome::Timeout);
        target.count_request(Operation::GetSendQuota, Outcome::Throttled);

        // STS names the account: the series move, counts kept, nothing left behind.
        let mut target = target;
        target.relabel(&t, "111111111111");
        target.set_last_success(UNIX_EPOCH + Duration::from_secs(6));
        let text = t.render();
        assert!(!text.contains("aws_account_id=\"\""), "{text}");
        assert!(text.contains("aws_ses_exporter_ses_planned_request_rate{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",operation=\"GetIdentityDkimAttributes\"} 0\n"));
        assert!(text.contains("aws_ses_exporter_sts_requests_total{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",outcome=\"timeout\"} 1\n"));
        assert!(text.contains("aws_ses_exporter_ses_requests_total{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",operation=\"GetSendQuota\",outcome=\"throttled\"} 1\n"));
        assert!(text.contains("aws_ses_exporter_last_success_timestamp_seconds{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\"} 6\n"));
        assert!(text.contains("aws_ses_exporter_collector_success{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",collector=\"mail_from\"} 0\n"));
    }
}
