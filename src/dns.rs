//! The `dns` collector: looks up each custom MAIL FROM domain's MX and SPF records
//! itself, so a removed or edited record shows before SES's own periodic check flips
//! the domain to Failed. The only module that touches the DNS resolver
//! (hickory-resolver); the verdicts ([`mx_correct`], [`spf_correct`]) are pure.
//!
//! Lookups are spread over the poll interval (one every `interval / N`), at most
//! `--dns.concurrency` at once, each bounded by `--dns.timeout`. Answers are cached by
//! the resolver for their TTL, bounded to [`MIN_TTL`]..[`MAX_TTL`] (negative answers
//! to [`MIN_TTL`]..[`MAX_NEGATIVE_TTL`]). A failed lookup (timeout, SERVFAIL) keeps the
//! last answer: it is never turned into "record missing". So that a kept answer can be
//! told from a fresh one, the collector exports the time of each verdict's last answer
//! beside the time of the last lookup.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::exposition::{unix_millis, Line, Piece};
use crate::state::Shared;
use crate::stopped;

/// Answers are kept at least this long, whatever their TTL says (a TTL of 0 would
/// otherwise send every check to the network).
pub const MIN_TTL: Duration = Duration::from_secs(30);
/// And at most this long, so a changed record is seen within this (plus the poll
/// interval) even where its TTL is a day.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 60);
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(5 * 60);
/// Results are rendered at most this often while lookups come in (a render of
/// 10,000 identities is a few MB of text).
const RENDER_EVERY: Duration = Duration::from_secs(5);
/// With no MAIL FROM domain known yet (the first poll cycle has not ended), look
/// again this soon rather than a whole interval later.
const EMPTY_RETRY: Duration = Duration::from_secs(5);

/// How a lookup ended; the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The name does not exist: an answer (the record is missing).
    NxDomain,
    /// The name exists without this record type: an answer (the record is missing).
    NoRecords,
    /// The server failed: no answer; the last one stands.
    ServFail,
    Timeout,
    /// Anything else (refused, network error): no answer.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::NxDomain,
        Outcome::NoRecords,
        Outcome::ServFail,
        Outcome::Timeout,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NxDomain => "nxdomain",
            Outcome::NoRecords => "no_records",
            Outcome::ServFail => "servfail",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }

    /// Whether DNS answered: the record's presence or absence is known.
    fn answered(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::NxDomain | Outcome::NoRecords)
    }
}

/// The record types looked up; the `record` label.
pub const RECORDS: [&str; 2] = ["MX", "TXT"];

/// MX and TXT lookups. [`HickoryDns`] in production; the tests use a real DNS server
/// on loopback through it.
pub trait Dns: Send + Sync + 'static {
    /// The MX exchanges of `name` (host names, without the trailing dot).
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<String>, Outcome>> + Send;
    /// The TXT records of `name`, each one's strings joined (as SPF reads them).
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, Outcome>> + Send;
}

/// What `--collector.dns` and its flags say.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Empty: the system's resolvers (/etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver for the dns collector (read /etc/resolv.conf): {0}; name resolvers with --dns.nameserver or switch the collector off with --no-collector.dns")]
pub struct SetupError(#[source] ResolveError);

/// [`Dns`] over hickory-resolver.
pub struct HickoryDns {
    resolver: TokioResolver,
}

impl HickoryDns {
    pub fn new(settings: &DnsSettings) -> Result<HickoryDns, SetupError> {
        let (config, mut opts) = if settings.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf().map_err(SetupError)?
        } else {
            let mut group = NameServerConfigGroup::new();
            for addr in &settings.nameservers {
                for protocol in [Protocol::Udp, Protocol::Tcp] {
                    let mut ns = NameServerConfig::new(*addr, protocol);
                    // Named servers are trusted to say a name does not exist.
                    ns.trust_negative_responses = true;
                    group.push(ns);
                }
            }
            (
                ResolverConfig::from_parts(None, vec![], group),
                ResolverOpts::default(),
            )
        };
        opts.timeout = settings.timeout;
        // One try per server: the collector's own timeout bounds the whole lookup.
        opts.attempts = 1;
        opts.positive_min_ttl = Some(MIN_TTL);
        opts.positive_max_ttl = Some(MAX_TTL);
        opts.negative_min_ttl = Some(MIN_TTL);
        opts.negative_max_ttl = Some(MAX_NEGATIVE_TTL);
        // The names are absolute; no search domains from resolv.conf.
        opts.ndots = 0;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Ok(HickoryDns { resolver })
    }
}

/// A resolver error as an outcome; only a definitive negative answer counts as one.
fn classify(name: &str, record: &str, err: &ResolveError) -> Outcome {
    let outcome = match err.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => match *response_code {
            ResponseCode::NXDomain => Outcome::NxDomain,
            ResponseCode::NoError => Outcome::NoRecords,
            ResponseCode::ServFail => Outcome::ServFail,
            _ => Outcome::Error,
        },
        Some(ProtoErrorKind::Timeout) => Outcome::Timeout,
        _ => Outcome::Error,
    };
    debug!(name, record, outcome = outcome.as_str(), error = %err, "DNS lookup failed");
    outcome
}

/// Makes `name` absolute, so no search domain is tried.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

impl Dns for HickoryDns {
    async fn mx(&self, name: &str) -> Result<Vec<String>, Outcome> {
        match self.resolver.mx_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|mx| mx.exchange().to_utf8().trim_end_matches('.').to_owned())
                .collect()),
            Err(err) => Err(classify(name, "MX", &err)),
        }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, Outcome> {
        match self.resolver.txt_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|txt| {
                    // A TXT record is several strings; SPF joins them with nothing
                    // between (RFC 7208, 3.3).
                    txt.txt_data()
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>()
                })
                .collect()),
            Err(err) => Err(classify(name, "TXT", &err)),
        }
    }
}

/// The MX host SES wants for a MAIL FROM domain in `region`.
pub fn expected_mx(region: &str) -> String {
    format!("feedback-smtp.{region}.amazonses.com")
}

/// Whether one of the MX exchanges is the region's SES feedback host (names compare
/// case-insensitively, with or without the trailing dot).
pub fn mx_correct(exchanges: &[String], region: &str) -> bool {
    let want = expected_mx(region);
    exchanges
        .iter()
        .any(|e| e.trim_end_matches('.').eq_ignore_ascii_case(&want))
}

/// Whether the TXT records hold exactly one SPF record (two are an error, RFC 7208
/// 4.5) and it has the term `include:amazonses.com` with a pass qualifier.
pub fn spf_correct(txts: &[String]) -> bool {
    let spf: Vec<&String> = txts
        .iter()
        .filter(|t| {
            let mut terms = t.split_ascii_whitespace();
            terms
                .next()
                .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
        })
        .collect();
    let [record] = spf.as_slice() else {
        return false;
    };
    record.split_ascii_whitespace().skip(1).any(|term| {
        let term = term.strip_prefix('+').unwrap_or(term);
        term.eq_ignore_ascii_case("include:amazonses.com")
    })
}

/// An identity of a target: (target index, identity name).
type Subject = (usize, String);

/// The last check of one identity's MAIL FROM domain.
#[derive(Debug, Clone)]
struct Checked {
    domain: String,
    /// The target's label pairs.
    labels: Arc<str>,
    /// The last answered verdicts; `None` until DNS answered once.
    mx: Option<bool>,
    spf: Option<bool>,
    /// When DNS last answered for each verdict: a failed lookup keeps the verdict
    /// and this time, so the age of a kept verdict shows (`at` moves regardless).
    mx_answered: Option<SystemTime>,
    spf_answered: Option<SystemTime>,
    mx_outcome: Outcome,
    txt_outcome: Outcome,
    /// When the last lookup ended, answered or not.
    at: SystemTime,
}

/// One lookup's result, sent back to the collector.
struct Done {
    subject: Subject,
    domain: String,
    labels: Arc<str>,
    region: Arc<str>,
    mx: Result<Vec<String>, Outcome>,
    txt: Result<Vec<String>, Outcome>,
}

/// The collector task: checks the domains the poller last published, renders the
/// results into [`Shared`] for scrapes.
pub struct Collector<D: Dns> {
    dns: Arc<D>,
    settings: DnsSettings,
    interval: Duration,
    shared: Arc<Shared>,
    results: BTreeMap<Subject, Checked>,
    dirty: bool,
    rendered_at: Option<Instant>,
    /// Keeps the pieces of the last render, to reuse the unchanged ones.
    renderer: Option<Renderer>,
    /// The render in progress, on the blocking pool: one at a time, so an older
    /// render can never be published after a newer one.
    rendering: Option<tokio::task::JoinHandle<Renderer>>,
}

impl<D: Dns> crate::supervise::Task for Collector<D> {
    fn run(
        &mut self,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send {
        Collector::run(self, shutdown)
    }
}

impl<D: Dns> Collector<D> {
    pub fn new(
        dns: D,
        settings: DnsSettings,
        interval: Duration,
        shared: Arc<Shared>,
    ) -> Collector<D> {
        Collector {
            dns: Arc::new(dns),
            settings,
            interval,
            shared,
            results: BTreeMap::new(),
            dirty: false,
            rendered_at: None,
            renderer: None,
            rendering: None,
        }
    }

    /// Checks every MAIL FROM domain once per interval, spread over it, until
    /// `shutdown`.
    pub async fn run(&mut self, mut shutdown: watch::Receiver<bool>) {
        info!(
            nameservers = ?self.settings.nameservers,
            "dns collector started"
        );
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        loop {
            let start = Instant::now();
            let targets = self.shared.mail_from_domains();
            let domains: BTreeMap<Subject, (&String, &Arc<str>, &Arc<str>)> = targets
                .iter()
                .flat_map(|(index, t)| {
                    t.domains.iter().map(move |(identity, domain)| {
                        ((*index, identity.clone()), (domain, &t.labels, &t.region))
                    })
                })
                .collect();
            // Identities that went (or lost their MAIL FROM domain) lose their series.
            let before = self.results.len();
            self.results
                .retain(|id, c| domains.get(id).is_some_and(|d| *d.0 == c.domain));
            self.dirty |= self.results.len() != before;
            let spacing = self.interval / u32::try_from(domains.len().max(1)).unwrap_or(u32::MAX);
            let mut running = JoinSet::new();
            for (i, (subject, (domain, labels, region))) in domains.iter().enumerate() {
                let at = start + spacing * u32::try_from(i).unwrap_or(u32::MAX);
                // Wait for this lookup's moment, taking in finished ones meanwhile.
                loop {
                    tokio::select! {
                        () = stopped(&mut shutdown) => return,
                        () = tokio::time::sleep_until(at) => break,
                        Some(done) = running.join_next(), if !running.is_empty() => {
                            if let Ok(done) = done {
                                self.apply(done, SystemTime::now());
                            }
                        }
                    }
                }
                let permit = tokio::select! {
                    () = stopped(&mut shutdown) => return,
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                };
                let dns = Arc::clone(&self.dns);
                let timeout = self.settings.timeout;
                let (subject, domain) = (subject.clone(), (*domain).clone());
                let (labels, region) = (Arc::clone(labels), Arc::clone(region));
                running.spawn(async move {
                    let (mx, txt) = tokio::join!(
                        bounded(timeout, dns.mx(&domain)),
                        bounded(timeout, dns.txt(&domain))
                    );
                    drop(permit);
                    Done {
                        subject,
                        domain,
                        labels,
                        region,
                        mx,
                        txt,
                    }
                });
                self.render_if_due(false).await;
            }
            loop {
                tokio::select! {
                    () = stopped(&mut shutdown) => return,
                    done = running.join_next() => match done {
                        Some(Ok(done)) => self.apply(done, SystemTime::now()),
                        Some(Err(_)) => {}
                        None => break,
                    },
                }
            }
            self.render_if_due(true).await;
            let next = start
                + if domains.is_empty() {
                    EMPTY_RETRY.min(self.interval)
                } else {
                    self.interval
                };
            tokio::select! {
                () = stopped(&mut shutdown) => return,
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// Takes in one lookup's result, ended at `now`.
    fn apply(&mut self, done: Done, now: SystemTime) {
        let telemetry = &self.shared.telemetry;
        let mx_outcome = done.mx.as_ref().map_or_else(|o| *o, |_| Outcome::Ok);
        let txt_outcome = done.txt.as_ref().map_or_else(|o| *o, |_| Outcome::Ok);
        telemetry.count_dns_lookup("MX", mx_outcome.as_str());
        telemetry.count_dns_lookup("TXT", txt_outcome.as_str());
        // Only an answer changes a verdict; a failure keeps the last one.
        let mx = match &done.mx {
            Ok(exchanges) => Some(mx_correct(exchanges, &done.region)),
            Err(o) if o.answered() => Some(false),
            Err(_) => None,
        };
        let spf = match &done.txt {
            Ok(txts) => Some(spf_correct(txts)),
            Err(o) if o.answered() => Some(false),
            Err(_) => None,
        };
        let entry = self
            .results
            .entry(done.subject.clone())
            .or_insert_with(|| Checked {
                domain: done.domain.clone(),
                labels: Arc::clone(&done.labels),
                mx: None,
                spf: None,
                mx_answered: None,
                spf_answered: None,
                mx_outcome,
                txt_outcome,
                at: now,
            });
        if entry.domain != done.domain {
            // Another MAIL FROM domain: the old verdicts say nothing about it.
            *entry = Checked {
                domain: done.domain.clone(),
                labels: Arc::clone(&done.labels),
                mx: None,
                spf: None,
                mx_answered: None,
                spf_answered: None,
                mx_outcome,
                txt_outcome,
                at: now,
            };
        }
        if let (Some(before), Some(now)) = (entry.mx, mx) {
            if before && !now {
                warn!(
                    aws_region = %done.region,
                    identity = %done.subject.1,
                    mail_from_domain = %done.domain,
                    expected = %expected_mx(&done.region),
                    "the MAIL FROM domain's MX record no longer points at SES: SES will fail it at its next check"
                );
            } else if !before && now {
                info!(aws_region = %done.region, identity = %done.subject.1, mail_from_domain = %done.domain, "the MAIL FROM domain's MX record points at SES again");
            }
        }
        if mx.is_some() {
            entry.mx = mx;
            entry.mx_answered = Some(now);
        }
        if spf.is_some() {
            entry.spf = spf;
            entry.spf_answered = Some(now);
        }
        entry.mx_outcome = mx_outcome;
        entry.txt_outcome = txt_outcome;
        entry.at = now;
        self.dirty = true;
    }

    /// Renders the results when they changed, at most every [`RENDER_EVERY`] unless
    /// `now` (the end of a round), off the async threads.
    async fn render_if_due(&mut self, now: bool) {
        if !self.dirty {
            return;
        }
        if !now && self.rendered_at.is_some_and(|t| t.elapsed() < RENDER_EVERY) {
            return;
        }
        let mut renderer = match self.rendering.take() {
            // Still busy: try again later, unless this is the end of a round.
            Some(busy) if !now && !busy.is_finished() => {
                self.rendering = Some(busy);
                return;
            }
            // A render that failed leaves nothing to reuse: the next one is whole.
            Some(busy) => busy.await.unwrap_or_default(),
            None => self.renderer.take().unwrap_or_default(),
        };
        let results = self.results.clone();
        let shared = Arc::clone(&self.shared);
        self.rendering = Some(tokio::task::spawn_blocking(move || {
            shared.publish_dns(renderer.render(&results));
            renderer
        }));
        self.dirty = false;
        self.rendered_at = Some(Instant::now());
    }
}

/// A lookup that has not answered within `timeout` is a timeout.
async fn bounded(
    timeout: Duration,
    lookup: impl Future<Output = Result<Vec<String>, Outcome>>,
) -> Result<Vec<String>, Outcome> {
    tokio::time::timeout(timeout, lookup)
        .await
        .unwrap_or(Err(Outcome::Timeout))
}

/// Identities per rendered piece. Lookups go in name order and pieces hold runs of
/// names, so the results of one render window fall in a few pieces: only those are
/// rendered again, the rest are shared with the body being served.
const CHUNK: usize = 128;

/// One family of the dns collector: its header and how an identity's lines read.
struct Family {
    name: &'static str,
    help: &'static str,
    /// Writes the identity's lines (none if it has no value for this family).
    lines: fn(&mut String, &str, &Checked),
    /// Feeds exactly what `lines` reads, for the piece's fingerprint.
    inputs: fn(&mut DefaultHasher, &Checked),
}

/// `name{TARGET LABELS,identity="ID"`: the identity collectors' sample start.
fn series(out: &mut String, name: &'static str, identity: &str, c: &Checked) {
    Line::new(out, name, &c.labels, Some(identity))
        .start()
        .push('"');
}

/// A 0/1 verdict line, none while DNS has not answered.
fn verdict(out: &mut String, name: &'static str, identity: &str, c: &Checked, value: Option<bool>) {
    if let Some(ok) = value {
        series(out, name, identity, c);
        let _ = writeln!(out, "}} {}", u8::from(ok));
    }
}

const FAMILIES: [Family; 5] = [
    Family {
        name: "aws_ses_identity_mail_from_mx_correct",
        help: "1 if the MX records of the identity's custom MAIL FROM domain include feedback-smtp.<region>.amazonses.com, 0 if DNS answered without it (other hosts, no MX record, no such name). Looked up by the exporter (dns collector); absent until DNS answered once; a failed lookup keeps the last answer.",
        lines: |out, identity, c| {
            verdict(out, "aws_ses_identity_mail_from_mx_correct", identity, c, c.mx);
        },
        inputs: |h, c| c.mx.hash(h),
    },
    Family {
        name: "aws_ses_identity_mail_from_spf_correct",
        help: "1 if the identity's custom MAIL FROM domain has exactly one SPF record and it includes amazonses.com, 0 if DNS answered without one. Looked up by the exporter (dns collector); absent until DNS answered once; a failed lookup keeps the last answer.",
        lines: |out, identity, c| {
            verdict(out, "aws_ses_identity_mail_from_spf_correct", identity, c, c.spf);
        },
        inputs: |h, c| c.spf.hash(h),
    },
    Family {
        name: "aws_ses_identity_mail_from_dns_lookup",
        help: "1 for the outcome of the last DNS lookup of the identity's custom MAIL FROM domain, by record type (MX, TXT): ok, nxdomain, no_records, servfail, timeout or error.",
        lines: |out, identity, c| {
            for (record, outcome) in [("MX", c.mx_outcome), ("TXT", c.txt_outcome)] {
                series(out, "aws_ses_identity_mail_from_dns_lookup", identity, c);
                let _ = writeln!(out, ",record=\"{record}\",outcome=\"{}\"}} 1", outcome.as_str());
            }
        },
        inputs: |h, c| (c.mx_outcome.as_str(), c.txt_outcome.as_str()).hash(h),
    },
    Family {
        name: "aws_ses_identity_mail_from_dns_last_check_timestamp_seconds",
        help: "Unix time of the last DNS lookup of the identity's custom MAIL FROM domain, answered or not (answers are cached for their TTL, 30 s to 10 min).",
        lines: |out, identity, c| {
            series(out, "aws_ses_identity_mail_from_dns_last_check_timestamp_seconds", identity, c);
            let _ = writeln!(out, "}} {}", unix_millis(c.at) as f64 / 1000.0);
        },
        inputs: |h, c| unix_millis(c.at).hash(h),
    },
    Family {
        name: "aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds",
        help: "Unix time of the last DNS answer that decided a verdict on the identity's custom MAIL FROM domain, by record_type (mx: aws_ses_identity_mail_from_mx_correct, spf: ..._spf_correct): records found, no such name or no records. A failed lookup (timeout, SERVFAIL, error) keeps the verdict and does not move this, so time() minus it is the verdict's age. Absent until DNS answered once; an answer may come from the resolver's cache (kept 30 s to 10 min).",
        lines: |out, identity, c| {
            for (record_type, answered) in [("mx", c.mx_answered), ("spf", c.spf_answered)] {
                if let Some(t) = answered {
                    series(out, "aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds", identity, c);
                    let _ = writeln!(out, ",record_type=\"{record_type}\"}} {}", unix_millis(t) as f64 / 1000.0);
                }
            }
        },
        inputs: |h, c| (c.mx_answered.map(unix_millis), c.spf_answered.map(unix_millis)).hash(h),
    },
];

/// Renders the dns families as pieces, keeping each piece with a fingerprint of its
/// inputs so the next render reuses the unchanged ones.
#[derive(Default)]
pub struct Renderer {
    /// Per family, per chunk of names: (fingerprint, piece).
    pieces: Vec<Vec<(u64, Arc<Piece>)>>,
    headers: Vec<Arc<Piece>>,
}

impl Renderer {
    fn render(&mut self, results: &BTreeMap<Subject, Checked>) -> Vec<Arc<Piece>> {
        if self.headers.is_empty() {
            self.headers = FAMILIES
                .iter()
                .map(|f| {
                    let text = format!("# HELP {} {}\n# TYPE {} gauge\n", f.name, f.help, f.name);
                    Arc::new(Piece::new(&text, flate2::Compression::fast()))
                })
                .collect();
        }
        self.pieces.resize_with(FAMILIES.len(), Vec::new);
        let entries: Vec<(&Subject, &Checked)> = results.iter().collect();
        let mut out = Vec::new();
        for (f, family) in FAMILIES.iter().enumerate() {
            let before = std::mem::take(&mut self.pieces[f]);
            let mut now = Vec::with_capacity(entries.len().div_ceil(CHUNK));
            for (i, chunk) in entries.chunks(CHUNK).enumerate() {
                let mut h = DefaultHasher::new();
                for (subject, checked) in chunk {
                    subject.hash(&mut h);
                    (family.inputs)(&mut h, checked);
                }
                let fingerprint = h.finish();
                let piece = match before.get(i) {
                    Some((fp, piece)) if *fp == fingerprint => Arc::clone(piece),
                    _ => {
                        let mut text = String::with_capacity(chunk.len() * 128);
                        for ((_, identity), checked) in chunk {
                            (family.lines)(&mut text, identity, checked);
                        }
                        Arc::new(Piece::new(&text, flate2::Compression::fast()))
                    }
                };
                now.push((fingerprint, piece));
            }
            if now.iter().any(|(_, p)| !p.plain.is_empty()) {
                out.push(Arc::clone(&self.headers[f]));
                out.extend(now.iter().map(|(_, p)| Arc::clone(p)));
            }
            self.pieces[f] = now;
        }
        out
    }
}

/// The dns collector's families as text (tests).
#[cfg(test)]
fn render(results: &BTreeMap<Subject, Checked>) -> String {
    Renderer::default()
        .render(results)
        .iter()
        .map(|p| String::from_utf8_lossy(&p.plain).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn mx_must_name_the_regions_feedback_host() {
        assert!(mx_correct(
            &s(&["feedback-smtp.us-east-1.amazonses.com"]),
            "us-east-1"
        ));
        assert!(mx_correct(
            &s(&["mx.example.com", "FEEDBACK-SMTP.us-east-1.amazonses.com."]),
            "us-east-1"
        ));
        assert!(!mx_correct(
            &s(&["feedback-smtp.eu-west-1.amazonses.com"]),
            "us-east-1"
        ));
        assert!(!mx_correct(
            &s(&["feedback-smtp.us-east-1.amazonses.com.evil.example"]),
            "us-east-1"
        ));
        assert!(!mx_correct(&[], "us-east-1"));
    }

    #[test]
    fn spf_needs_one_record_including_amazonses_with_pass() {
        assert!(spf_correct(&s(&["v=spf1 include:amazonses.com ~all"])));
        assert!(spf_correct(&s(&[
            "google-site-verification=x",
            "V=SPF1 +include:AmazonSES.com -all"
        ])));
        assert!(!spf_correct(&s(&["v=spf1 include:_spf.google.com ~all"])));
        assert!(!spf_correct(&s(&["v=spf1 -include:amazonses.com ~all"])));
        assert!(!spf_correct(&s(&[
            "v=spf1 include:amazonses.com.evil ~all"
        ])));
        assert!(!spf_correct(&s(&["v=spf10 include:amazonses.com"])));
        // Two SPF records are a permanent error: SPF fails for everyone.
        assert!(!spf_correct(&s(&[
            "v=spf1 include:amazonses.com ~all",
            "v=spf1 -all"
        ])));
        assert!(!spf_correct(&[]));
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_answer_and_never_invents_one() {
        let mut results = BTreeMap::new();
        results.insert(
            (0, "a.example.com".to_owned()),
            Checked {
                domain: "bounce.a.example.com".into(),
                labels: Arc::from(""),
                mx: None,
                spf: None,
                mx_answered: None,
                spf_answered: None,
                mx_outcome: Outcome::Timeout,
                txt_outcome: Outcome::ServFail,
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            },
        );
        let text = render(&results);
        assert!(
            !text.contains("mx_correct{"),
            "no verdict without an answer:\n{text}"
        );
        assert!(text.contains(
            "aws_ses_identity_mail_from_dns_lookup{identity=\"a.example.com\",record=\"MX\",outcome=\"timeout\"} 1"
        ));
        assert!(text.contains("last_check_timestamp_seconds{identity=\"a.example.com\"} 5\n"));
        assert!(
            !text.contains("last_answer_timestamp_seconds"),
            "no answer time without an answer:\n{text}"
        );
    }

    /// Never asked: [`Collector::apply`] only takes in results.
    struct NoDns;

    impl Dns for NoDns {
        async fn mx(&self, _name: &str) -> Result<Vec<String>, Outcome> {
            Err(Outcome::Error)
        }
        async fn txt(&self, _name: &str) -> Result<Vec<String>, Outcome> {
            Err(Outcome::Error)
        }
    }

    #[test]
    fn a_failed_lookup_after_an_answer_keeps_the_answer_time_and_moves_the_check_time() {
        let shared = Arc::new(Shared::new(
            crate::metrics::Telemetry::new(60.0).expect("registry"),
        ));
        let settings = DnsSettings {
            nameservers: vec![],
            timeout: Duration::from_secs(1),
            concurrency: 1,
        };
        let mut collector = Collector::new(NoDns, settings, Duration::from_secs(60), shared);
        let done = |mx, txt| Done {
            subject: (0, "a.example.com".to_owned()),
            domain: "bounce.a.example.com".to_owned(),
            labels: Arc::from(""),
            region: Arc::from("us-east-1"),
            mx,
            txt,
        };
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let line = |text: &str, family: &str, extra: &str| -> Option<String> {
            let start = format!(
                "aws_ses_identity_mail_from_{family}{{identity=\"a.example.com\"{extra}}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&start).map(str::to_owned))
        };
        let answered = |text: &str, record_type: &str| {
            line(
                text,
                "dns_last_answer_timestamp_seconds",
                &format!(",record_type=\"{record_type}\""),
            )
        };

        // MX answers, TXT times out: only the MX verdict has an answer time.
        collector.apply(
            done(
                Ok(s(&["feedback-smtp.us-east-1.amazonses.com"])),
                Err(Outcome::Timeout),
            ),
            at(100),
        );
        let text = render(&collector.results);
        assert_eq!(answered(&text, "mx").as_deref(), Some("100"), "{text}");
        assert_eq!(answered(&text, "spf"), None, "never answered:\n{text}");

        collector.apply(
            done(
                Ok(s(&["feedback-smtp.us-east-1.amazonses.com"])),
                Ok(s(&["v=spf1 include:amazonses.com ~all"])),
            ),
            at(200),
        );
        // SERVFAIL and a timeout: the verdicts and their answer times stand, the
        // check time moves.
        collector.apply(done(Err(Outcome::ServFail), Err(Outcome::Timeout)), at(500));
        let text = render(&collector.results);
        assert_eq!(
            line(&text, "mx_correct", "").as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(line(&text, "spf_correct", "").as_deref(), Some("1"));
        assert_eq!(
            line(&text, "dns_last_check_timestamp_seconds", "").as_deref(),
            Some("500")
        );
        assert_eq!(answered(&text, "mx").as_deref(), Some("200"), "{text}");
        assert_eq!(answered(&text, "spf").as_deref(), Some("200"));

        // "No such name" and "no records" are answers: they move it.
        collector.apply(
            done(Err(Outcome::NxDomain), Err(Outcome::NoRecords)),
            at(800),
        );
        let text = render(&collector.results);
        assert_eq!(line(&text, "mx_correct", "").as_deref(), Some("0"));
        assert_eq!(answered(&text, "mx").as_deref(), Some("800"), "{text}");
        assert_eq!(answered(&text, "spf").as_deref(), Some("800"));
    }

    #[test]
    fn a_render_reuses_the_pieces_whose_identities_did_not_change() {
        let checked = |mx| Checked {
            domain: "d".into(),
            labels: Arc::from(crate::exposition::target_labels(
                "111111111111",
                "eu-west-1",
            )),
            mx: Some(mx),
            spf: Some(true),
            mx_answered: Some(SystemTime::UNIX_EPOCH),
            spf_answered: Some(SystemTime::UNIX_EPOCH),
            mx_outcome: Outcome::Ok,
            txt_outcome: Outcome::Ok,
            at: SystemTime::UNIX_EPOCH,
        };
        let mut results: BTreeMap<Subject, Checked> = (0..1000)
            .map(|i| ((0, format!("id-{i:04}.example.com")), checked(true)))
            .collect();
        let mut r = Renderer::default();
        let first = r.render(&results);
        // 5 families x (header + 8 chunks of 128).
        assert_eq!(first.len(), 5 * 9);
        results.insert((0, "id-0500.example.com".into()), checked(false));
        let second = r.render(&results);
        let fresh = first
            .iter()
            .zip(&second)
            .filter(|(a, b)| !Arc::ptr_eq(a, b))
            .count();
        assert_eq!(fresh, 1, "only the mx_correct piece holding id-0500 is new");
        let text: String = second
            .iter()
            .map(|p| String::from_utf8_lossy(&p.plain).into_owned())
            .collect();
        assert!(text.contains(
            "aws_ses_identity_mail_from_mx_correct{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",identity=\"id-0500.example.com\"} 0\n"
        ));
        assert_eq!(text.matches("# TYPE").count(), 5);
    }
}
