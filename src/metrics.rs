//! The exporter's own metrics: its health and work, exporter-wide ([`Telemetry`]) and per
//! target ([`TargetTelemetry`]), and the process metrics, in a `prometheus` registry of
//! their own. The collectors' families, the bulk of a scrape, go through [`crate::render`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::{
    Atomic, Collector, GenericCounter, GenericCounterVec, GenericGauge, GenericGaugeVec,
};
use prometheus::{
    Counter, CounterVec, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::aws::Operation;
use crate::model::{LookupOutcome, Outcome, DNS_RECORD_TYPES};

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// The labels of every per-target series, before the scope's own.
const TARGET: [&str; 2] = ["aws_account_id", "aws_region"];

/// Why the HTTP server closed a connection itself (`aws_ses_exporter_http_connections_closed_total`).
pub const CONNECTION_CLOSE_REASONS: [&str; 4] =
    ["evicted", "send_timeout", "stream_stalled", "idle"];
/// Why a request was answered without being served (`aws_ses_exporter_http_requests_refused_total`).
pub const REQUEST_REFUSE_REASONS: [&str; 3] = ["rate_limit", "auth_address_busy", "auth_busy"];

/// Declares the self-metrics from their tables (below): the exporter-wide table,
/// then one table per target scope, headed by the scope's extra labels. Makes
/// [`Families`], one field per row, with `new` (every family made, its series that
/// exist from the start created, and registered) and `per_target` (the per-target
/// rows, for the code that treats them all alike). A macro only because a row names
/// a field of its own type; everything else is ordinary code over [`Family`],
/// [`TargetFamily`] and [`Row`].
macro_rules! self_metrics {
    (
        exporter {
            $($field:ident: $ty:ty, $labels:tt, $name:literal, $help:literal;)+
        }
        $(per_target $extra:tt {
            $($t_field:ident: $t_ty:ty, $start:expr, $t_name:literal, $t_help:literal;)+
        })+
    ) => {
        /// Every self-metric family but the process collector's.
        struct Families {
            $($field: $ty,)+
            $($($t_field: $t_ty,)+)+
        }

        impl Families {
            fn new(registry: &Registry) -> Result<Families, prometheus::Error> {
                let families = Families {
                    $($field: exporter_family($name, $help, &$labels)?,)+
                    $($($t_field: Family::declare($t_name, $t_help, &target_labels(&$extra))?,)+)+
                };
                $(registry.register(Box::new(families.$field.clone()))?;)+
                $($(registry.register(Box::new(families.$t_field.clone()))?;)+)+
                Ok(families)
            }

            fn per_target(&self) -> Vec<Row<'_>> {
                vec![$($(Row { family: &self.$t_field, extra: &$extra, start: $start },)+)+]
            }
        }
    };
}

// The tables. An exporter-wide row: field, type, its labels each with the values
// whose series exist from the start (every combination of them; none listed, none
// created), name, help. A per-target row: field, type, which of the target's series
// exist from when it appears (`Start`), name, help. Whether a relabelled target's
// counts carry over is the type's: a counter's do, a gauge's don't (see
// `TargetFamily::carry`).
self_metrics! {
    exporter {
        poll_interval: Gauge, [], "aws_ses_exporter_poll_interval_seconds",
            "Configured time from the start of one poll cycle to the start of the next.";
        duplicate_targets: IntGauge, [], "aws_ses_exporter_duplicate_targets",
            "Targets not polled because an earlier target already covers their AWS account and region (two roles into the same account).";
        web_config_reload_successful: IntGauge, [], "aws_ses_exporter_web_config_last_reload_successful",
            "1 if the last load of --web.config.file (at start-up, on SIGHUP or on a file change) succeeded, 0 if it failed and the previous one stays in force.";
        web_config_reload_timestamp: Gauge, [], "aws_ses_exporter_web_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of --web.config.file (the start-up time without one).";
        // Created by `enable_dns`: without the dns collector the family stays absent.
        dns_lookups: IntCounterVec, [("record", &[]), ("outcome", &[])], "aws_ses_exporter_dns_lookups_total",
            "DNS lookups made by the dns collector (a MAIL FROM domain's MX and TXT records, DMARC and legacy verification TXT records, Easy DKIM CNAME records; not the SPF evaluation's own lookups of an include chain), by record type and outcome (answers cached by the resolver included).";
        task_restarts: IntCounterVec, [("task", &["poller", "dns", "web_config"])], "aws_ses_exporter_task_restarts_total",
            "Background tasks restarted after they panicked or ended before shutdown, by task (poller: any target's; dns; web_config). A restarted poller's target shows aws_ses_exporter_up 0 until its next cycle.";
        task_up: IntGaugeVec, [("task", &[])], "aws_ses_exporter_task_up",
            "1 while the exporter-wide background task runs, 0 from its failure until it is restarted (dns: the dns collector, whose verdicts are not refreshed meanwhile; web_config: the web config watcher).";
        http_connections_closed: IntCounterVec, [("reason", &CONNECTION_CLOSE_REASONS)], "aws_ses_exporter_http_connections_closed_total",
            "HTTP connections the exporter closed itself, by reason: evicted (the oldest connection without a request in flight, closed to admit a new one at --web.max-connections), send_timeout (no write succeeded for --web.send-timeout), stream_stalled (a response, e.g. an HTTP/2 stream whose client grants no window, that made no progress for --web.send-timeout), idle (an HTTP/2 connection without a request for --web.read-header-timeout).";
        http_requests_refused: IntCounterVec, [("reason", &REQUEST_REFUSE_REASONS)], "aws_ses_exporter_http_requests_refused_total",
            "HTTP requests answered without being served, by reason: rate_limit (429, the web config's rate_limit), auth_address_busy (429, the client's address already has its share of password checks waiting), auth_busy (503, every password check slot was taken for too long or the queue was full).";
        log_lines_dropped: IntCounter, [], "aws_ses_exporter_log_lines_dropped_total",
            "Log lines of the HTTP server's libraries (hyper, h2, rustls) dropped by their per-target budget (10 at once, then one per 10 s), so that no client can fill the log.";
        // Set to 1 for this build's labels by `Telemetry::new`.
        build_info: IntGaugeVec, [("version", &[]), ("revision", &[]), ("rustc_version", &[])], "aws_ses_exporter_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustc_version from which the exporter was built.";
    }
    // Per target: aws_account_id, aws_region.
    per_target [] {
        up: IntGaugeVec, Start::Zero, "aws_ses_exporter_up",
            "1 if the target's last poll cycle fetched every batch of every enabled collector (and the identity list, when due) from SES, 0 otherwise.";
        // No 0 for it: before the first success there is no time to report, and a 0
        // would read as "last success in 1970".
        last_success: GaugeVec, Start::Absent, "aws_ses_exporter_last_success_timestamp_seconds",
            "Unix time at which the target's last fully successful poll cycle ended.";
        poll_duration: GaugeVec, Start::Zero, "aws_ses_exporter_poll_duration_seconds",
            "Duration of the target's last poll cycle, rate-limit waits and retries included.";
        poll_overruns: IntCounterVec, Start::Zero, "aws_ses_exporter_poll_overruns_total",
            "Poll cycles of the target that took longer than the poll interval, so the next one started late.";
        rate_limit_wait: CounterVec, Start::Zero, "aws_ses_exporter_rate_limit_wait_seconds_total",
            "Time the target's SES requests spent waiting for the exporter's own rate limiters.";
        identities: IntGaugeVec, Start::Zero, "aws_ses_exporter_identities",
            "Identities the target currently watches (static list plus discovered, after filters).";
    }
    // Per target and operation (each SES operation the target calls).
    per_target [Label::Operation] {
        // Discovery is not planned per cycle.
        planned_rate: GaugeVec, Start::ZeroExcept(Operation::ListIdentities), "aws_ses_exporter_ses_planned_request_rate",
            "Requests per second the target plans for an SES operation in its current cycle: at most --ses.rate, which the first cycle uses; later cycles spread an identity collector's batches over --ses.pacing of the poll interval; the quota collector makes one call of each of its operations per cycle. Retries come on top; ListIdentities (discovery) is not planned per cycle.";
    }
    // Per target and collector (each collector the target runs).
    per_target [Label::Collector] {
        collector_success: IntGaugeVec, Start::Zero, "aws_ses_exporter_collector_success",
            "1 if the collector's part of the target's last poll cycle fetched everything it asked SES for, 0 otherwise.";
    }
    // Per target, operation and outcome.
    per_target [Label::Operation, Label::Outcome] {
        ses_requests: IntCounterVec, Start::Zero, "aws_ses_exporter_ses_requests_total",
            "HTTP attempts made to SES, retries included, by target, API operation and outcome.";
    }
    // Per target and outcome.
    per_target [Label::Outcome] {
        sts_requests: IntCounterVec, Start::Zero, "aws_ses_exporter_sts_requests_total",
            "STS GetCallerIdentity calls made to learn the target's account, by outcome. aws_account_id is empty until one succeeded for a target without a role.";
    }
}

/// A label of a per-target scope beyond the target's own, whose values a target
/// knows ([`TargetTelemetry::values`]).
#[derive(Clone, Copy)]
enum Label {
    /// The SES operations the target calls.
    Operation,
    /// The collectors the target runs.
    Collector,
    /// Every [`Outcome`] of a request.
    Outcome,
}

impl Label {
    fn name(self) -> &'static str {
        match self {
            Label::Operation => "operation",
            Label::Collector => "collector",
            Label::Outcome => "outcome",
        }
    }
}

/// The label names of a per-target family of the scope `extra`.
fn target_labels(extra: &[Label]) -> Vec<&'static str> {
    TARGET
        .into_iter()
        .chain(extra.iter().map(|l| l.name()))
        .collect()
}

/// Which of a target's series in a per-target family exist, at 0, from when the
/// target appears, before anything is written.
#[derive(Clone, Copy)]
enum Start {
    /// All of them, so rate() and increase() see a target's first error rather than
    /// a series appearing out of nowhere.
    Zero,
    /// All but those of one operation.
    ZeroExcept(Operation),
    /// None: a series appears at its first write.
    Absent,
}

impl Start {
    /// Whether the series with these extra label values exists from the start.
    fn creates(self, extra: &[&str]) -> bool {
        match self {
            Start::Zero => true,
            Start::ZeroExcept(op) => !extra.contains(&op.as_str()),
            Start::Absent => false,
        }
    }
}

/// A per-target row as the code that treats them all alike sees it.
struct Row<'a> {
    family: &'a dyn TargetFamily,
    extra: &'static [Label],
    start: Start,
}

/// Every combination of one value from each list, in the lists' order; one empty
/// combination for no lists.
fn combinations(lists: impl IntoIterator<Item = Vec<&'static str>>) -> Vec<Vec<&'static str>> {
    lists.into_iter().fold(vec![Vec::new()], |combos, values| {
        combos
            .iter()
            .flat_map(|combo| {
                values
                    .iter()
                    .map(move |v| [combo.as_slice(), &[*v]].concat())
            })
            .collect()
    })
}

/// A self-metric family of any of the types the tables use.
trait Family: Collector + Clone + Sized + 'static {
    /// The family, unregistered; a single metric takes no labels.
    fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Self, prometheus::Error>;
    /// Creates the series of these label values, at 0 (a single metric always exists).
    fn create(&self, values: &[&str]) -> Result<(), prometheus::Error>;
}

/// Declares an exporter-wide family of the table and creates its series that exist
/// from the start.
fn exporter_family<F: Family>(
    name: &str,
    help: &str,
    labels: &[(&'static str, &[&'static str])],
) -> Result<F, prometheus::Error> {
    let names: Vec<&str> = labels.iter().map(|(name, _)| *name).collect();
    let family = F::declare(name, help, &names)?;
    for values in combinations(labels.iter().map(|(_, values)| values.to_vec())) {
        family.create(&values)?;
    }
    Ok(family)
}

/// A single metric declared with labels: a row of the tables gave a single type a
/// label, found by the first `Telemetry::new`.
fn no_labels(name: &str, labels: &[&str]) -> Result<(), prometheus::Error> {
    if labels.is_empty() {
        Ok(())
    } else {
        Err(prometheus::Error::Msg(format!(
            "{name} is a single metric, declared with labels {labels:?}"
        )))
    }
}

impl<P: Atomic + 'static> Family for GenericGauge<P> {
    fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Self, prometheus::Error> {
        no_labels(name, labels)?;
        GenericGauge::with_opts(Opts::new(name, help))
    }

    fn create(&self, _: &[&str]) -> Result<(), prometheus::Error> {
        Ok(())
    }
}

impl<P: Atomic + 'static> Family for GenericCounter<P> {
    fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Self, prometheus::Error> {
        no_labels(name, labels)?;
        GenericCounter::with_opts(Opts::new(name, help))
    }

    fn create(&self, _: &[&str]) -> Result<(), prometheus::Error> {
        Ok(())
    }
}

impl<P: Atomic + 'static> Family for GenericGaugeVec<P> {
    fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Self, prometheus::Error> {
        GenericGaugeVec::new(Opts::new(name, help), labels)
    }

    fn create(&self, values: &[&str]) -> Result<(), prometheus::Error> {
        self.get_metric_with_label_values(values).map(drop)
    }
}

impl<P: Atomic + 'static> Family for GenericCounterVec<P> {
    fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Self, prometheus::Error> {
        GenericCounterVec::new(Opts::new(name, help), labels)
    }

    fn create(&self, values: &[&str]) -> Result<(), prometheus::Error> {
        self.get_metric_with_label_values(values).map(drop)
    }
}

/// What a target does to its series of a per-target family, whatever its type. The
/// label values always have the family's count (both come from the row's scope), so
/// the errors `prometheus` could return cannot happen and are not reported.
trait TargetFamily {
    /// Creates the series at 0 if it does not exist.
    fn create_series(&self, values: &[&str]);
    /// Removes the series; one that does not exist is no error.
    fn remove_series(&self, values: &[&str]);
    /// Adds the count of series `from` to series `to`: a relabelled target's counts
    /// are its own whatever its labels, and a counter that started over would lose
    /// them from every sum. A gauge carries nothing: the next cycle measures it again.
    fn carry(&self, from: &[&str], to: &[&str]);
}

impl<P: Atomic> TargetFamily for GenericGaugeVec<P> {
    fn create_series(&self, values: &[&str]) {
        let _ = self.get_metric_with_label_values(values);
    }

    fn remove_series(&self, values: &[&str]) {
        let _ = self.remove_label_values(values);
    }

    fn carry(&self, _: &[&str], _: &[&str]) {}
}

impl<P: Atomic> TargetFamily for GenericCounterVec<P> {
    fn create_series(&self, values: &[&str]) {
        let _ = self.get_metric_with_label_values(values);
    }

    fn remove_series(&self, values: &[&str]) {
        let _ = self.remove_label_values(values);
    }

    fn carry(&self, from: &[&str], to: &[&str]) {
        if let (Ok(from), Ok(to)) = (
            self.get_metric_with_label_values(from),
            self.get_metric_with_label_values(to),
        ) {
            to.inc_by(from.get());
        }
    }
}

/// The exporter's own health metrics, in a registry of their own (never the global
/// one, so tests can run side by side). Per-target series are written through a
/// [`TargetTelemetry`]; scrapes read them.
pub struct Telemetry {
    registry: Registry,
    families: Arc<Families>,
    pub poll_interval: Gauge,
}

impl Telemetry {
    pub fn new(poll_interval_seconds: f64) -> Result<Telemetry, prometheus::Error> {
        let registry = Registry::new();
        let families = Families::new(&registry)?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        families.poll_interval.set(poll_interval_seconds);
        // The start-up load succeeded, or the exporter would not be running.
        families.web_config_reload_successful.set(1);
        families
            .web_config_reload_timestamp
            .set(unix_seconds(SystemTime::now()));
        families
            .build_info
            .get_metric_with_label_values(&[
                crate::build::VERSION,
                crate::build::REVISION,
                crate::build::RUSTC_VERSION,
            ])?
            .set(1);
        Ok(Telemetry {
            registry,
            poll_interval: families.poll_interval.clone(),
            families: Arc::new(families),
        })
    }

    /// Counts a connection the HTTP server closed; `reason` is one of
    /// [`CONNECTION_CLOSE_REASONS`].
    pub fn count_connection_closed(&self, reason: &str) {
        self.families
            .http_connections_closed
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a request refused before being served; `reason` is one of
    /// [`REQUEST_REFUSE_REASONS`].
    pub fn count_request_refused(&self, reason: &str) {
        self.families
            .http_requests_refused
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a restart of a background task.
    pub fn count_task_restart(&self, task: &str) {
        self.families.task_restarts.with_label_values(&[task]).inc();
    }

    /// Whether an exporter-wide background task (`dns`, `web_config`) is running.
    pub fn set_task_up(&self, task: &str, up: bool) {
        self.families
            .task_up
            .with_label_values(&[task])
            .set(i64::from(up));
    }

    /// The series of one target, created at 0 where its family's row says so (`up`
    /// too: nothing fetched yet). `operations` are the SES operations it will call,
    /// `collectors` the collectors it runs.
    pub fn target(
        &self,
        account: &str,
        region: &str,
        operations: &[Operation],
        collectors: &[&'static str],
    ) -> TargetTelemetry {
        let families = &self.families;
        let labels = [account, region];
        let target = TargetTelemetry {
            account: account.to_owned(),
            region: region.to_owned(),
            operations: operations.to_vec(),
            collectors: collectors.to_vec(),
            families: Arc::clone(families),
            up: families.up.with_label_values(&labels),
            poll_duration: families.poll_duration.with_label_values(&labels),
            poll_overruns: families.poll_overruns.with_label_values(&labels),
            rate_limit_wait: families.rate_limit_wait.with_label_values(&labels),
            identities: families.identities.with_label_values(&labels),
        };
        for row in families.per_target() {
            for extra in target.series(row.extra) {
                if row.start.creates(&extra) {
                    row.family.create_series(&target.labels(&extra));
                }
            }
        }
        target
    }

    pub fn set_duplicate_targets(&self, n: usize) {
        self.families.duplicate_targets.set(n as i64);
    }

    /// Creates every dns lookup series at 0, when the dns collector runs (without
    /// it the family stays absent).
    pub fn enable_dns(&self) {
        for record in DNS_RECORD_TYPES {
            for outcome in LookupOutcome::ALL {
                self.families
                    .dns_lookups
                    .with_label_values(&[record, outcome.as_str()]);
            }
        }
    }

    pub fn count_dns_lookup(&self, record: &str, outcome: &str) {
        self.families
            .dns_lookups
            .with_label_values(&[record, outcome])
            .inc();
    }

    /// Records the outcome of a web config reload.
    pub fn web_config_reloaded(&self, ok: bool) {
        self.families
            .web_config_reload_successful
            .set(i64::from(ok));
        if ok {
            self.families
                .web_config_reload_timestamp
                .set(unix_seconds(SystemTime::now()));
        }
    }

    /// The self and process metrics as text: small, so rendered for scrapes rather
    /// than kept (at most once a second, see [`crate::serve::state`]).
    pub fn render(&self) -> String {
        // The log filter counts in a static: it is set up before any telemetry exists.
        let dropped = crate::logging::dropped_lines();
        let seen = self.families.log_lines_dropped.get();
        if dropped > seen {
            self.families.log_lines_dropped.inc_by(dropped - seen);
        }
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }
}

/// One target's health series, bound to its `aws_account_id` and `aws_region`. The
/// pub fields are the series its target writes directly; the rest are written
/// through the methods.
pub struct TargetTelemetry {
    account: String,
    region: String,
    /// What the values of the scopes' extra labels are for this target.
    operations: Vec<Operation>,
    collectors: Vec<&'static str>,
    families: Arc<Families>,
    pub up: IntGauge,
    pub poll_duration: Gauge,
    pub poll_overruns: IntCounter,
    pub rate_limit_wait: Counter,
    pub identities: IntGauge,
}

impl TargetTelemetry {
    /// The values this target gives a scope's extra label.
    fn values(&self, label: Label) -> Vec<&'static str> {
        match label {
            Label::Operation => self.operations.iter().map(|op| op.as_str()).collect(),
            Label::Collector => self.collectors.clone(),
            Label::Outcome => Outcome::ALL.iter().map(|o| o.as_str()).collect(),
        }
    }

    /// The extra label values of every series this target can have in a family of
    /// the scope `extra`.
    fn series(&self, extra: &[Label]) -> Vec<Vec<&'static str>> {
        combinations(extra.iter().map(|label| self.values(*label)))
    }

    /// The label values of this target's series with extra label values `extra`.
    fn labels<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut labels = vec![self.account.as_str(), self.region.as_str()];
        labels.extend_from_slice(extra);
        labels
    }

    pub fn count_request(&self, op: Operation, outcome: Outcome) {
        self.families
            .ses_requests
            .with_label_values(&self.labels(&[op.as_str(), outcome.as_str()]))
            .inc();
    }

    pub fn count_sts(&self, outcome: Outcome) {
        self.families
            .sts_requests
            .with_label_values(&self.labels(&[outcome.as_str()]))
            .inc();
    }

    /// The requests per second this cycle plans for an identity collector's `op`.
    pub fn set_planned_rate(&self, op: Operation, rate: f64) {
        self.families
            .planned_rate
            .with_label_values(&self.labels(&[op.as_str()]))
            .set(rate);
    }

    pub fn set_collector_success(&self, collector: &str, ok: bool) {
        self.families
            .collector_success
            .with_label_values(&self.labels(&[collector]))
            .set(i64::from(ok));
    }

    pub fn set_last_success(&self, at: SystemTime) {
        self.families
            .last_success
            .with_label_values(&self.labels(&[]))
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
        for row in self.families.per_target() {
            for extra in self.series(row.extra) {
                row.family.carry(&self.labels(&extra), &next.labels(&extra));
            }
        }
        self.remove();
        *self = next;
    }

    /// Removes every series of this target (a relabelled or duplicate target).
    pub fn remove(&self) {
        for row in self.families.per_target() {
            for extra in self.series(row.extra) {
                row.family.remove_series(&self.labels(&extra));
            }
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
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
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
