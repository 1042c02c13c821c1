//! The `dns` collector (on by default, exporter-wide: one [`DnsCollector`] for every
//! target): looks up each custom MAIL FROM domain's MX and SPF records itself;
//! [`resolver`] does the lookups, [`verdict`] judges the answers.
//!
//! Why: a removed or edited record shows before SES's own periodic check flips the domain
//! to Failed. A failed lookup (timeout, SERVFAIL) keeps the last answer, never "record
//! missing"; the time of each verdict's last answer is exported beside that of the last
//! lookup, so a kept answer can be told from a fresh one.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Registration, Scope};
use crate::facts::{AllFacts, Facts};
use crate::metrics::Telemetry;
use crate::model::{LookupOutcome, TargetId};
use crate::publish::{Publisher, Publishing};
use crate::render::{
    self, flag, gauge, target_labels, timestamp, unix_millis, Derived, Family, Rendered, Samples,
};
use crate::supervise::stopped;

pub mod resolver;
pub mod verdict;

pub use resolver::{Dns, HickoryDns, ResolverSetupError};
pub use verdict::{expected_mx, mx_correct, spf_correct};

const NAME: &str = "dns";

pub const REGISTRATION: Registration = Registration {
    name: NAME,
    enabled_by_default: true,
    help: "Look up each custom MAIL FROM domain's MX and SPF records in DNS (the dns collector; on by default).",
    scope: Scope::Exporter,
};

/// Results are rendered at most this often while lookups come in (a render of
/// 10,000 identities is a few MB of text).
const RENDER_EVERY: Duration = Duration::from_secs(5);
/// With no MAIL FROM domain known yet (the first poll cycle has not ended), look
/// again this soon rather than a whole interval later.
const EMPTY_RETRY: Duration = Duration::from_secs(5);

/// What `--collector.dns` and its flags say.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Empty: the system's resolvers (/etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub concurrency: usize,
}

/// An identity of a target.
type Subject = (TargetId, String);

/// The last check of one identity's MAIL FROM domain.
#[derive(Debug, Clone)]
struct Checked {
    domain: String,
    /// The last answered verdicts; `None` until DNS answered once.
    mx: Option<bool>,
    spf: Option<bool>,
    /// When DNS last answered for each verdict: a failed lookup keeps the verdict
    /// and this time, so the age of a kept verdict shows (`at` moves regardless).
    mx_answered: Option<SystemTime>,
    spf_answered: Option<SystemTime>,
    mx_outcome: LookupOutcome,
    txt_outcome: LookupOutcome,
    /// When the last lookup ended, answered or not.
    at: SystemTime,
}

/// One lookup's result, sent back to the collector.
struct Done {
    subject: Subject,
    domain: String,
    mx: Result<Vec<String>, LookupOutcome>,
    txt: Result<Vec<String>, LookupOutcome>,
}

/// The collector task: checks the domains the MAIL FROM collectors last rendered,
/// renders the results and hands them to the publisher.
pub struct DnsCollector<D: Dns> {
    dns: Arc<D>,
    settings: DnsSettings,
    interval: Duration,
    /// Every target's identity facts: the MAIL FROM domains to check.
    facts: watch::Receiver<Arc<AllFacts>>,
    telemetry: Arc<Telemetry>,
    results: BTreeMap<Subject, Checked>,
    dirty: bool,
    rendered_at: Option<Instant>,
    /// Its renderer keeps the pieces of the last render, to reuse the unchanged
    /// ones; one render at a time.
    publishing: Publishing<TargetRenderers>,
}

impl<D: Dns> crate::supervise::Task for DnsCollector<D> {
    fn run(
        &mut self,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send {
        DnsCollector::run(self, shutdown)
    }
}

impl<D: Dns> DnsCollector<D> {
    pub fn new(
        dns: D,
        settings: DnsSettings,
        interval: Duration,
        publisher: Arc<Publisher>,
        facts: &Facts,
        telemetry: Arc<Telemetry>,
    ) -> DnsCollector<D> {
        telemetry.enable_dns();
        let position = Registration::position(NAME).unwrap_or(usize::MAX);
        DnsCollector {
            dns: Arc::new(dns),
            settings,
            interval,
            facts: facts.subscribe(),
            telemetry,
            results: BTreeMap::new(),
            dirty: false,
            rendered_at: None,
            publishing: Publishing::new(publisher, position),
        }
    }

    /// Checks every MAIL FROM domain once per interval, spread over it (one lookup
    /// every `interval / N`), at most `--dns.concurrency` at once, each bounded by
    /// `--dns.timeout`, until `shutdown`.
    pub async fn run(&mut self, mut shutdown: watch::Receiver<bool>) {
        info!(
            nameservers = ?self.settings.nameservers,
            "dns collector started"
        );
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        loop {
            let start = Instant::now();
            // Cloned out, so no borrow of the channel is held across an await.
            let targets = Arc::clone(&self.facts.borrow_and_update());
            let domains: BTreeMap<Subject, &String> = targets
                .iter()
                .flat_map(|(target, identities)| {
                    identities.iter().filter_map(move |(identity, facts)| {
                        let domain = facts.mail_from_domain.as_ref()?;
                        Some(((target.clone(), identity.clone()), domain))
                    })
                })
                .collect();
            // Identities that went (or lost their MAIL FROM domain) lose their series.
            let before = self.results.len();
            self.results
                .retain(|id, c| domains.get(id).is_some_and(|d| **d == c.domain));
            self.dirty |= self.results.len() != before;
            let spacing = self.interval / u32::try_from(domains.len().max(1)).unwrap_or(u32::MAX);
            let mut running = JoinSet::new();
            for (i, (subject, domain)) in domains.iter().enumerate() {
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
                let (subject, domain) = (subject.clone(), String::clone(domain));
                running.spawn(async move {
                    let (mx, txt) = tokio::join!(
                        bounded(timeout, dns.mx(&domain)),
                        bounded(timeout, dns.txt(&domain))
                    );
                    drop(permit);
                    Done {
                        subject,
                        domain,
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
        let telemetry = &self.telemetry;
        let mx_outcome = done.mx.as_ref().map_or_else(|o| *o, |_| LookupOutcome::Ok);
        let txt_outcome = done.txt.as_ref().map_or_else(|o| *o, |_| LookupOutcome::Ok);
        let region = &done.subject.0.region;
        telemetry.count_dns_lookup("MX", mx_outcome.as_str());
        telemetry.count_dns_lookup("TXT", txt_outcome.as_str());
        // Only an answer changes a verdict; a failure keeps the last one.
        let mx = match &done.mx {
            Ok(exchanges) => Some(mx_correct(exchanges, region)),
            Err(o) if o.answered() => Some(false),
            Err(_) => None,
        };
        let spf = match &done.txt {
            Ok(txts) => Some(spf_correct(txts)),
            Err(o) if o.answered() => Some(false),
            Err(_) => None,
        };
        // Nothing known yet of a new identity's domain, or of another MAIL FROM domain:
        // the old verdicts say nothing about it.
        let fresh = || Checked {
            domain: done.domain.clone(),
            mx: None,
            spf: None,
            mx_answered: None,
            spf_answered: None,
            mx_outcome,
            txt_outcome,
            at: now,
        };
        let entry = self
            .results
            .entry(done.subject.clone())
            .or_insert_with(fresh);
        if entry.domain != done.domain {
            *entry = fresh();
        }
        if let (Some(before), Some(now)) = (entry.mx, mx) {
            if before && !now {
                warn!(
                    aws_account_id = %done.subject.0.account,
                    aws_region = %region,
                    identity = %done.subject.1,
                    mail_from_domain = %done.domain,
                    expected = %expected_mx(region),
                    "the MAIL FROM domain's MX record no longer points at SES: SES will fail it at its next check"
                );
            } else if !before && now {
                info!(aws_account_id = %done.subject.0.account, aws_region = %region, identity = %done.subject.1, mail_from_domain = %done.domain, "the MAIL FROM domain's MX record points at SES again");
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
        // Still busy: try again later, unless this is the end of a round.
        if !now && self.publishing.busy() {
            return;
        }
        let results = self.results.clone();
        self.publishing
            .start(move |renderer: &mut TargetRenderers| renderer.render(&results))
            .await;
        self.dirty = false;
        self.rendered_at = Some(Instant::now());
    }
}

/// A lookup that has not answered within `timeout` is a timeout.
async fn bounded(
    timeout: Duration,
    lookup: impl Future<Output = Result<Vec<String>, LookupOutcome>>,
) -> Result<Vec<String>, LookupOutcome> {
    tokio::time::timeout(timeout, lookup)
        .await
        .unwrap_or(Err(LookupOutcome::Timeout))
}



#[rustfmt::skip]
const FAMILIES: &[Family<Checked>] = &[
    gauge("aws_ses_identity_mail_from_mx_correct", &Derived { value: |c: &Checked| c.mx, write: flag },
        "1 if the MX records of the identity's custom MAIL FROM domain include feedback-smtp.<region>.amazonses.com, 0 if DNS answered without it (other hosts, no MX record, no such name). Looked up by the exporter (dns collector); absent until DNS answered once; a failed lookup keeps the last answer."),
    gauge("aws_ses_identity_mail_from_spf_correct", &Derived { value: |c: &Checked| c.spf, write: flag },
        "1 if the identity's custom MAIL FROM domain has exactly one SPF record and it includes amazonses.com, 0 if DNS answered without one. Looked up by the exporter (dns collector); absent until DNS answered once; a failed lookup keeps the last answer."),
    gauge("aws_ses_identity_mail_from_dns_lookup", &Derived { value: |c: &Checked| Some((c.mx_outcome, c.txt_outcome)), write: lookups },
        "How the last DNS lookup of the identity's custom MAIL FROM domain ended, by record type (MX, TXT), as a state set: the series of the last outcome (ok, nxdomain, no_records, servfail, timeout, error) is 1, the others 0."),
    gauge("aws_ses_identity_mail_from_dns_last_check_timestamp_seconds", &Derived { value: |c: &Checked| Some(unix_millis(c.at)), write: timestamp },
        "Unix time of the last DNS lookup of the identity's custom MAIL FROM domain, answered or not (answers are cached for their TTL, 30 s to 10 min)."),
    gauge("aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds", &Derived { value: answer_times, write: answers },
        "Unix time of the last DNS answer that decided a verdict on the identity's custom MAIL FROM domain, by record_type (mx: aws_ses_identity_mail_from_mx_correct, spf: ..._spf_correct): records found, no such name or no records. A failed lookup (timeout, SERVFAIL, error) keeps the verdict and does not move this, so time() minus it is the verdict's age. Absent until DNS answered once; an answer may come from the resolver's cache (kept 30 s to 10 min)."),
];

/// The outcome of each record type's last lookup, as a state set: every outcome's
/// series exists, the last one's is 1. (One series whose `outcome` label changed
/// would end a series and start another on every change: churn, and a `rate()` or
/// `changes()` over it sees nothing.)
fn lookups(samples: &mut Samples<'_>, (mx, txt): &(LookupOutcome, LookupOutcome)) {
    for (record, last) in [("MX", mx), ("TXT", txt)] {
        for outcome in LookupOutcome::ALL {
            let pairs = [("record", record), ("outcome", outcome.as_str())];
            samples.sample(&pairs, f64::from(u8::from(outcome == *last)));
        }
    }
}

/// When DNS last answered for each verdict; none before the first answer.
fn answer_times(c: &Checked) -> Option<(Option<u64>, Option<u64>)> {
    let times = (c.mx_answered.map(unix_millis), c.spf_answered.map(unix_millis));
    (times.0.is_some() || times.1.is_some()).then_some(times)
}

fn answers(samples: &mut Samples<'_>, (mx, spf): &(Option<u64>, Option<u64>)) {
    for (record_type, answered) in [("mx", mx), ("spf", spf)] {
        if let Some(t) = answered {
            samples.sample(&[("record_type", record_type)], render::seconds(*t));
        }
    }
}

/// Renders the results as one part per target, keeping each target's pieces to
/// reuse the unchanged ones.
#[derive(Default)]
pub struct TargetRenderers {
    targets: BTreeMap<TargetId, render::Renderer<Checked>>,
}

impl TargetRenderers {
    fn render(&mut self, results: &BTreeMap<Subject, Checked>) -> Vec<(TargetId, Rendered)> {
        let mut by_target: BTreeMap<&TargetId, Vec<(&str, &Checked)>> = BTreeMap::new();
        for ((target, identity), checked) in results {
            by_target
                .entry(target)
                .or_default()
                .push((identity.as_str(), checked));
        }
        let mut out = Vec::with_capacity(by_target.len());
        // A target whose domains all went gets an empty part, not its last one.
        let gone: Vec<TargetId> = self
            .targets
            .keys()
            .filter(|t| !by_target.contains_key(t))
            .cloned()
            .collect();
        for target in gone {
            self.targets.remove(&target);
            let empty = render::Renderer::new(FAMILIES, String::new()).build(std::iter::empty());
            out.push((target, empty));
        }
        for (target, entries) in by_target {
            let renderer = self.targets.entry(target.clone()).or_insert_with(|| {
                render::Renderer::new(FAMILIES, target_labels(&target.account, &target.region))
            });
            out.push((target.clone(), renderer.build(entries)));
        }
        out
    }
}

/// The dns collector's families as text (tests).
#[cfg(test)]
fn render(results: &BTreeMap<Subject, Checked>) -> String {
    let parts: Vec<Arc<Rendered>> = TargetRenderers::default()
        .render(results)
        .into_iter()
        .map(|(_, part)| Arc::new(part))
        .collect();
    render::Assembler::default().assemble(&[&parts]).text()
}

#[cfg(test)]
mod tests {
    use super::verdict::tests::s;
    use super::*;

    fn target() -> TargetId {
        TargetId::new("111111111111", "us-east-1")
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_answer_and_never_invents_one() {
        let mut results = BTreeMap::new();
        results.insert(
            (target(), "a.example.com".to_owned()),
            Checked {
                domain: "bounce.a.example.com".into(),
                mx: None,
                spf: None,
                mx_answered: None,
                spf_answered: None,
                mx_outcome: LookupOutcome::Timeout,
                txt_outcome: LookupOutcome::ServFail,
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            },
        );
        let text = render(&results);
        assert!(
            !text.contains("mx_correct{"),
            "no verdict without an answer:\n{text}"
        );
        assert!(text.contains(
            "aws_ses_identity_mail_from_dns_lookup{aws_account_id=\"111111111111\",aws_region=\"us-east-1\",identity=\"a.example.com\",record=\"MX\",outcome=\"timeout\"} 1"
        ));
        // A state set: every outcome of both record types, one of each at 1.
        let lookups: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("aws_ses_identity_mail_from_dns_lookup{"))
            .collect();
        assert_eq!(lookups.len(), 2 * LookupOutcome::ALL.len(), "{text}");
        assert_eq!(lookups.iter().filter(|l| l.ends_with(" 1")).count(), 2);
        assert!(text.contains(
            "aws_ses_identity_mail_from_dns_lookup{aws_account_id=\"111111111111\",aws_region=\"us-east-1\",identity=\"a.example.com\",record=\"MX\",outcome=\"ok\"} 0"
        ));
        assert!(text.contains(
            "aws_ses_identity_mail_from_dns_lookup{aws_account_id=\"111111111111\",aws_region=\"us-east-1\",identity=\"a.example.com\",record=\"TXT\",outcome=\"servfail\"} 1"
        ));
        assert!(text.contains("last_check_timestamp_seconds{aws_account_id=\"111111111111\",aws_region=\"us-east-1\",identity=\"a.example.com\"} 5\n"));
        assert!(
            !text.contains("last_answer_timestamp_seconds"),
            "no answer time without an answer:\n{text}"
        );
    }

    /// Never asked: [`DnsCollector::apply`] only takes in results.
    struct NoDns;

    impl Dns for NoDns {
        async fn mx(&self, _name: &str) -> Result<Vec<String>, LookupOutcome> {
            Err(LookupOutcome::Error)
        }
        async fn txt(&self, _name: &str) -> Result<Vec<String>, LookupOutcome> {
            Err(LookupOutcome::Error)
        }
    }

    #[test]
    fn a_failed_lookup_after_an_answer_keeps_the_answer_time_and_moves_the_check_time() {
        let telemetry = Arc::new(crate::metrics::Telemetry::new(60.0).expect("registry"));
        let publisher = Arc::new(Publisher::new());
        let settings = DnsSettings {
            nameservers: vec![],
            timeout: Duration::from_secs(1),
            concurrency: 1,
        };
        let facts = Facts::new();
        let mut collector = DnsCollector::new(
            NoDns,
            settings,
            Duration::from_secs(60),
            publisher,
            &facts,
            telemetry,
        );
        let done = |mx, txt| Done {
            subject: (target(), "a.example.com".to_owned()),
            domain: "bounce.a.example.com".to_owned(),
            mx,
            txt,
        };
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let line = |text: &str, family: &str, extra: &str| -> Option<String> {
            let start = format!(
                "aws_ses_identity_mail_from_{family}{{aws_account_id=\"111111111111\",aws_region=\"us-east-1\",identity=\"a.example.com\"{extra}}} "
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
                Err(LookupOutcome::Timeout),
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
        collector.apply(done(Err(LookupOutcome::ServFail), Err(LookupOutcome::Timeout)), at(500));
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
            done(Err(LookupOutcome::NxDomain), Err(LookupOutcome::NoRecords)),
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
            mx: Some(mx),
            spf: Some(true),
            mx_answered: Some(SystemTime::UNIX_EPOCH),
            spf_answered: Some(SystemTime::UNIX_EPOCH),
            mx_outcome: LookupOutcome::Ok,
            txt_outcome: LookupOutcome::Ok,
            at: SystemTime::UNIX_EPOCH,
        };
        let mut results: BTreeMap<Subject, Checked> = (0..1000)
            .map(|i| ((target(), format!("id-{i:04}.example.com")), checked(true)))
            .collect();
        let mut r = TargetRenderers::default();
        r.render(&results);
        results.insert((target(), "id-0500.example.com".into()), checked(false));
        let second = r.render(&results);
        let fresh = r.targets[&target()].rendered_last;
        assert_eq!(fresh, 1, "only the mx_correct piece holding id-0500 is new");
        let parts: Vec<Arc<Rendered>> = second.into_iter().map(|(_, p)| Arc::new(p)).collect();
        let text = render::Assembler::default().assemble(&[&parts]).text();
        assert!(text.contains(
            "aws_ses_identity_mail_from_mx_correct{aws_account_id=\"111111111111\",aws_region=\"us-east-1\",identity=\"id-0500.example.com\"} 0\n"
        ));
        assert_eq!(text.matches("# TYPE").count(), 5);
    }
}
