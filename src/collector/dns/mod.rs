//! The `dns` collector (on by default, exporter-wide: one [`DnsCollector`] for every
//! target): checks in DNS, itself, what decides whether receivers take the mail SES
//! sends for each identity: the custom MAIL FROM domain's MX and SPF records (SPF
//! evaluated for SES's sending address as a receiver does), the DKIM records (judged
//! by the domain's DKIM origin where known: [`DkimRule`]), the legacy `_amazonses`
//! record, and the From domain's DMARC policy; and from these and the SES
//! collectors' facts, one DMARC verdict per identity. [`resolver`] does the lookups,
//! [`verdict`] judges the answers.
//!
//! Why: a removed or edited record shows before SES's own periodic check flips the
//! domain to Failed, and DMARC's verdict is the receivers' (SES checks none of it). A
//! failed lookup (timeout, SERVFAIL) keeps the last answer, never "record missing";
//! the time of each verdict's last answer is exported, so a kept answer can be told
//! from a fresh one; a verdict whose facts are not all known is absent.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Registration, Scope};
use crate::facts::{AllFacts, Facts};
use crate::metrics::Telemetry;
use crate::model::{
    DkimOrigin, RecordState, DmarcRecordState, DmarcVerdict, IdentityFacts, LookupOutcome,
    SpfStatus, TargetId, VerificationStatus,
};
use crate::publish::{Publisher, Publishing};
use crate::render::{
    self, flag, gauge, target_labels, timestamp, unix_millis, Derived, Family, Rendered, Samples,
};
use crate::supervise::stopped;

pub mod resolver;
pub mod verdict;

pub use resolver::{Dns, HickoryDns, ResolverSetupError};
pub use verdict::{expected_mx, mx_correct, spf_correct};
use verdict::{DmarcRecord, SendingFacts};

const NAME: &str = "dns";

pub const REGISTRATION: Registration = Registration {
    name: NAME,
    enabled_by_default: true,
    help: "Check in DNS each identity's custom MAIL FROM domain (MX, SPF evaluated for SES), Easy DKIM CNAME records and DMARC policy, and judge what receivers do with its mail (the dns collector; on by default).",
    scope: Scope::Exporter,
};

/// Results are rendered at most this often while lookups come in (a render of
/// 10,000 identities is a few MB of text).
const RENDER_EVERY: Duration = Duration::from_secs(5);
/// With no identity known yet (the first poll cycle has not ended), look again this
/// soon rather than a whole interval later.
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
struct MailFromChecked {
    domain: String,
    /// The last answered verdicts; `None` until DNS answered once.
    mx: Option<bool>,
    spf: Option<bool>,
    /// SPF's evaluation for SES's sending address; `None` until it answered once.
    spf_status: Option<SpfStatus>,
    /// When DNS last answered for each verdict: a failed lookup keeps the verdict
    /// and this time, so the age of a kept verdict shows (`at` moves regardless).
    mx_answered: Option<SystemTime>,
    spf_answered: Option<SystemTime>,
    spf_status_answered: Option<SystemTime>,
    mx_outcome: LookupOutcome,
    txt_outcome: LookupOutcome,
    /// When the last lookup ended, answered or not.
    at: SystemTime,
}

/// The last DMARC lookup of an identity's From domain.
#[derive(Debug, Clone, Default)]
struct DmarcChecked {
    /// `None` until DNS answered once; then the record that applies, or why none does.
    found: Option<Result<DmarcRecord, DmarcRecordState>>,
    answered: Option<SystemTime>,
}

/// The last check of records SES looks for at names it gave (`key`): a domain
/// identity's Easy DKIM CNAME records (the tokens; one state per token), or its legacy
/// `_amazonses` TXT record (the verification token).
#[derive(Debug, Clone)]
struct RecordsChecked<K, S> {
    key: K,
    /// `None` until DNS answered once (for the tokens: every lookup of one round).
    state: Option<S>,
    answered: Option<SystemTime>,
}

impl<K: PartialEq, S> RecordsChecked<K, S> {
    /// Takes in one round's answer for `key`; whether the records went from in place
    /// to not, which is worth a warning. A new key keeps the last state until it is
    /// answered (the caller drops the state first where the old key's says nothing of
    /// the new one's: other names looked up).
    fn take(
        slot: &mut Option<Self>,
        key: K,
        answer: Result<S, LookupOutcome>,
        now: SystemTime,
        in_place: impl Fn(&S) -> bool,
    ) -> bool {
        let checked = match slot {
            Some(c) => {
                c.key = key;
                c
            }
            None => slot.insert(RecordsChecked {
                key,
                state: None,
                answered: None,
            }),
        };
        // No answer: the last one stands.
        let Ok(state) = answer else {
            return false;
        };
        let lost = checked.state.as_ref().is_some_and(&in_place) && !in_place(&state);
        checked.state = Some(state);
        checked.answered = Some(now);
        lost
    }
}

type DkimChecked = RecordsChecked<(Vec<String>, DkimRule), Vec<RecordState>>;

/// The rule a domain's DKIM records are judged by: what SES verifies them by, from
/// the DKIM origin the identity_reasons collector learnt ([`DkimOrigin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum DkimRule {
    /// Easy DKIM in the signing zone SES named: each token's CNAME points at
    /// `<token>.<zone>`.
    Zone(Arc<str>),
    /// Bring-your-own DKIM: the selector publishes a DKIM key (as TXT, directly or
    /// through a CNAME to the key's host).
    Key,
    /// The origin (or the zone) not known, or a replicated identity (its primary
    /// region's zone, not this one's): a CNAME to `<token>.` in some zone, or a key
    /// published as TXT at the name.
    Token,
}

impl DkimRule {
    fn of(origin: Option<&DkimOrigin>) -> DkimRule {
        match origin {
            Some(DkimOrigin::AwsSes { zone: Some(zone) }) => DkimRule::Zone(Arc::clone(zone)),
            Some(DkimOrigin::External) => DkimRule::Key,
            _ => DkimRule::Token,
        }
    }
}
type LegacyChecked = RecordsChecked<String, RecordState>;

/// Everything checked of one identity, and the verdict judged from it at render.
#[derive(Debug, Clone, Default)]
struct Checked {
    /// `None`: no custom MAIL FROM domain known.
    mail_from: Option<MailFromChecked>,
    dmarc: DmarcChecked,
    /// `None`: no Easy DKIM tokens known (an e-mail address, DKIM off or not asked).
    dkim: Option<DkimChecked>,
    /// The `_amazonses` TXT record of a domain verified the legacy way; `None` when
    /// not checked (no token, DKIM verified or not known).
    legacy: Option<LegacyChecked>,
    verdict: Option<DmarcVerdict>,
}

/// What one identity's round looks up, from its facts.
#[derive(Debug, Clone)]
struct Job {
    subject: Subject,
    from: String,
    mail_from_domain: Option<String>,
    /// The Easy DKIM tokens of a domain identity that signs (or may).
    dkim_tokens: Vec<String>,
    dkim_rule: DkimRule,
    /// The verification token of a domain identity whose Easy DKIM is known not to
    /// be verified: its `_amazonses` TXT record is what keeps it verified.
    legacy_token: Option<String>,
    /// SES's sending address, for the SPF evaluation; `None` when not known.
    ses_address: Option<IpAddr>,
}

/// One identity's lookups, sent back to the collector.
struct Done {
    subject: Subject,
    mail_from: Option<MailFromDone>,
    /// `Ok(None)`: no DMARC record at the From domain or its organizational domain.
    dmarc: Result<Option<Result<DmarcRecord, DmarcRecordState>>, LookupOutcome>,
    dkim: Option<DkimDone>,
    legacy: Option<(String, Result<RecordState, LookupOutcome>)>,
}

/// The tokens looked up, and one state per token, or the outcome of the first lookup
/// that did not answer.
type DkimDone = ((Vec<String>, DkimRule), Result<Vec<RecordState>, LookupOutcome>);

struct MailFromDone {
    domain: String,
    mx: Result<Vec<String>, LookupOutcome>,
    txt: Result<Vec<String>, LookupOutcome>,
    /// `None`: not evaluated (SES's sending address not known).
    spf: Option<Result<SpfStatus, LookupOutcome>>,
}

/// The collector task: checks the identities the SES collectors last rendered,
/// renders the results and hands them to the publisher.
pub struct DnsCollector<D: Dns> {
    dns: Arc<D>,
    settings: DnsSettings,
    interval: Duration,
    /// Every target's identity facts: what to check and judge.
    facts: watch::Receiver<Arc<AllFacts>>,
    /// The facts of the round under way, for the verdicts.
    seen: Arc<AllFacts>,
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

/// What one identity's facts ask to look up.
fn job(target: &TargetId, identity: &str, facts: &IdentityFacts, ses_address: Option<IpAddr>) -> Job {
    let is_domain = !identity.contains('@');
    // The records matter while SES checks them, signing on or off: they keep a
    // domain verified through its DKIM.
    let dkim_tokens = match &facts.dkim {
        Some(d) if is_domain => d.tokens.clone(),
        _ => Vec::new(),
    };
    // A domain whose Easy DKIM is verified stays verified through it (signing on or
    // off); only one known not to be depends on the legacy record (with the dkim
    // collector off, or its status unknown, which one it is is not known, and a
    // missing record would be a false alarm).
    let legacy_token = match (&facts.dkim, &facts.verification_token) {
        (Some(d), Some(token))
            if is_domain
                && !matches!(
                    d.status,
                    VerificationStatus::Success | VerificationStatus::Unknown
                ) =>
        {
            Some(token.clone())
        }
        _ => None,
    };
    Job {
        subject: (target.clone(), identity.to_owned()),
        from: verdict::from_domain(identity),
        mail_from_domain: facts.mail_from.as_ref().and_then(|m| m.domain.clone()),
        dkim_tokens,
        dkim_rule: DkimRule::of(facts.dkim_origin.as_ref()),
        legacy_token,
        ses_address,
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
            seen: Arc::default(),
            telemetry,
            results: BTreeMap::new(),
            dirty: false,
            rendered_at: None,
            publishing: Publishing::new(publisher, position),
        }
    }

    /// Checks every identity once per interval, spread over it (one identity every
    /// `interval / N`), at most `--dns.concurrency` at once, each lookup bounded by
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
            self.seen = Arc::clone(&targets);
            // SES's sending address, once a round (the resolver caches the record).
            let ses_address = if targets.is_empty() {
                None
            } else {
                let answer = bounded(self.settings.timeout, self.dns.txt(verdict::SES_SPF_DOMAIN)).await;
                self.telemetry.count_dns_lookup("TXT", outcome(&answer).as_str());
                let address = answer.ok().and_then(|txts| verdict::ses_sending_address(&txts));
                if address.is_none() {
                    warn!(domain = verdict::SES_SPF_DOMAIN, "no SES sending address found in SPF: SPF is not evaluated this round and its last verdicts stand");
                }
                address
            };
            let jobs: Vec<Job> = targets
                .iter()
                .flat_map(|(target, identities)| {
                    identities
                        .iter()
                        .map(move |(identity, facts)| job(target, identity, facts, ses_address))
                })
                .collect();
            // Identities that went lose their series; one whose MAIL FROM domain or
            // DKIM tokens changed loses what was checked of the old ones.
            let before = self.results.len();
            let wanted: BTreeMap<&Subject, &Job> = jobs.iter().map(|j| (&j.subject, j)).collect();
            self.results.retain(|id, _| wanted.contains_key(id));
            for (id, checked) in &mut self.results {
                let Some(job) = wanted.get(id) else { continue };
                if checked.mail_from.as_ref().map(|m| &m.domain) != job.mail_from_domain.as_ref() {
                    checked.mail_from = None;
                    self.dirty = true;
                }
                // Other tokens are other names; the same ones judged by another
                // rule (the origin learnt) keep their last state until answered.
                if checked.dkim.as_ref().is_some_and(|d| d.key.0 != job.dkim_tokens)
                    || (checked.dkim.is_some() && job.dkim_tokens.is_empty())
                {
                    checked.dkim = None;
                    self.dirty = true;
                }
                if checked.legacy.as_ref().map(|l| &l.key) != job.legacy_token.as_ref() {
                    checked.legacy = None;
                    self.dirty = true;
                }
            }
            self.dirty |= self.results.len() != before;
            let spacing = self.interval / u32::try_from(jobs.len().max(1)).unwrap_or(u32::MAX);
            let mut running = JoinSet::new();
            for (i, job) in jobs.into_iter().enumerate() {
                let at = start + spacing * u32::try_from(i).unwrap_or(u32::MAX);
                // Wait for this identity's moment, taking in finished ones meanwhile.
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
                let telemetry = Arc::clone(&self.telemetry);
                running.spawn(async move {
                    let done = check(&*dns, timeout, &telemetry, job).await;
                    drop(permit);
                    done
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
                + if targets.is_empty() {
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

    /// Takes in one identity's lookups, ended at `now`.
    fn apply(&mut self, done: Done, now: SystemTime) {
        let region = done.subject.0.region.clone();
        let entry = self.results.entry(done.subject.clone()).or_default();
        if let Some(m) = done.mail_from {
            apply_mail_from(entry, &done.subject, &region, m, now);
        }
        // No answer: the last one stands.
        if let Ok(found) = done.dmarc {
            entry.dmarc.found = Some(found.unwrap_or(Err(DmarcRecordState::Absent)));
            entry.dmarc.answered = Some(now);
        }
        let log = |what: &str| {
            warn!(
                aws_account_id = %done.subject.0.account,
                aws_region = %region,
                identity = %done.subject.1,
                "{what}"
            );
        };
        if let Some((tokens, states)) = done.dkim {
            let all_correct = |s: &Vec<RecordState>| s.iter().all(|s| *s == RecordState::Correct);
            if DkimChecked::take(&mut entry.dkim, tokens, states, now, all_correct) {
                log("an Easy DKIM CNAME record is missing or points elsewhere: SES will fail the identity's DKIM, then its verification");
            }
        }
        if let Some((token, state)) = done.legacy {
            let correct = |s: &RecordState| *s == RecordState::Correct;
            if LegacyChecked::take(&mut entry.legacy, token, state, now, correct) {
                log("the domain's _amazonses TXT record no longer holds its verification token: SES will fail its verification");
            }
        }
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
        // The verdicts are judged with the render, off the async threads.
        let mut results = self.results.clone();
        let facts = Arc::clone(&self.seen);
        self.publishing
            .start(move |renderer: &mut TargetRenderers| {
                judge(&mut results, &facts);
                renderer.render(&results)
            })
            .await;
        self.dirty = false;
        self.rendered_at = Some(Instant::now());
    }
}

/// Takes in the MAIL FROM domain's lookups: only an answer changes a verdict; a
/// failure keeps the last one.
fn apply_mail_from(entry: &mut Checked, subject: &Subject, region: &str, done: MailFromDone, now: SystemTime) {
    let mx_outcome = outcome(&done.mx);
    let txt_outcome = outcome(&done.txt);
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
    // Two SPF records are a permerror whatever the first one says (mail-auth
    // evaluates the first).
    let spf_status = match (&done.txt, done.spf) {
        (Ok(txts), _) if verdict::spf_records_conflict(txts) => Some(SpfStatus::PermError),
        (_, Some(Ok(status))) => Some(status),
        _ => None,
    };
    // Nothing known yet of a new identity's domain, or of another MAIL FROM domain:
    // the old verdicts say nothing about it.
    let fresh = || MailFromChecked {
        domain: done.domain.clone(),
        mx: None,
        spf: None,
        spf_status: None,
        mx_answered: None,
        spf_answered: None,
        spf_status_answered: None,
        mx_outcome,
        txt_outcome,
        at: now,
    };
    let m = entry.mail_from.get_or_insert_with(fresh);
    if m.domain != done.domain {
        *m = fresh();
    }
    if let (Some(before), Some(now)) = (m.mx, mx) {
        if before && !now {
            warn!(
                aws_account_id = %subject.0.account,
                aws_region = %region,
                identity = %subject.1,
                mail_from_domain = %done.domain,
                expected = %expected_mx(region),
                "the MAIL FROM domain's MX record no longer points at SES: SES will fail it at its next check"
            );
        } else if !before && now {
            info!(aws_account_id = %subject.0.account, aws_region = %region, identity = %subject.1, mail_from_domain = %done.domain, "the MAIL FROM domain's MX record points at SES again");
        }
    }
    if mx.is_some() {
        m.mx = mx;
        m.mx_answered = Some(now);
    }
    if spf.is_some() {
        m.spf = spf;
        m.spf_answered = Some(now);
    }
    if spf_status.is_some() {
        m.spf_status = spf_status;
        m.spf_status_answered = Some(now);
    }
    m.mx_outcome = mx_outcome;
    m.txt_outcome = txt_outcome;
    m.at = now;
}

fn outcome<T>(r: &Result<T, LookupOutcome>) -> LookupOutcome {
    r.as_ref().map_or_else(|o| *o, |_| LookupOutcome::Ok)
}

/// One identity's lookups: its MAIL FROM domain's, its DMARC record's and its DKIM
/// records', one after the other (the identity holds one of `--dns.concurrency`'s
/// slots, so that many lookups are in flight at most), each bounded by `timeout`.
async fn check<D: Dns>(dns: &D, timeout: Duration, telemetry: &Telemetry, job: Job) -> Done {
    let count = |record: &str, o: LookupOutcome| telemetry.count_dns_lookup(record, o.as_str());
    let mail_from = match job.mail_from_domain.clone() {
        None => None,
        Some(domain) => {
            let mx = bounded(timeout, dns.mx(&domain)).await;
            count("MX", outcome(&mx));
            let txt = bounded(timeout, dns.txt(&domain)).await;
            count("TXT", outcome(&txt));
            // The evaluation's own lookups (the include chain) come from the
            // resolver's cache mostly; they are not counted one by one.
            let spf = match job.ses_address {
                Some(address) => Some(
                    tokio::time::timeout(timeout, dns.spf(&domain, address))
                        .await
                        .unwrap_or(Err(LookupOutcome::Timeout)),
                ),
                None => None,
            };
            Some(MailFromDone { domain, mx, txt, spf })
        }
    };
    let dmarc = dmarc(dns, timeout, &count, job.from.clone()).await;
    let dkim = if job.dkim_tokens.is_empty() {
        None
    } else {
        let mut states = Ok(Vec::with_capacity(job.dkim_tokens.len()));
        for token in &job.dkim_tokens {
            let name = format!("{token}._domainkey.{}", job.from);
            match dkim_record(dns, timeout, &count, &name, token, &job.dkim_rule).await {
                Ok(state) => {
                    if let Ok(s) = states.as_mut() {
                        s.push(state);
                    }
                }
                Err(o) => {
                    states = Err(o);
                    break;
                }
            }
        }
        Some(((job.dkim_tokens.clone(), job.dkim_rule.clone()), states))
    };
    let legacy = match job.legacy_token {
        None => None,
        Some(token) => {
            let answer = bounded(timeout, dns.txt(&format!("_amazonses.{}", job.from))).await;
            count("TXT", outcome(&answer));
            let state = match answer {
                Ok(txts) => Ok(verdict::legacy_record_state(&token, Some(&txts))),
                Err(o) if o.answered() => Ok(verdict::legacy_record_state(&token, None)),
                Err(o) => Err(o),
            };
            Some((token, state))
        }
    };
    Done {
        subject: job.subject,
        mail_from,
        dmarc,
        dkim,
        legacy,
    }
}

/// One DKIM record `name` (of `token`) judged by `rule`; `Err` when a lookup did
/// not answer.
async fn dkim_record<D: Dns>(
    dns: &D,
    timeout: Duration,
    count: &impl Fn(&str, LookupOutcome),
    name: &str,
    token: &str,
    rule: &DkimRule,
) -> Result<RecordState, LookupOutcome> {
    // A key published as TXT at the selector (a recursive resolver follows a CNAME
    // to the key's host).
    let key = || async {
        let txt = bounded(timeout, dns.txt(name)).await;
        count("TXT", outcome(&txt));
        match txt {
            Ok(txts) if verdict::dkim_key(&txts) => Ok(RecordState::Correct),
            Ok(_) => Ok(RecordState::Missing),
            Err(o) if o.answered() => Ok(RecordState::Missing),
            Err(o) => Err(o),
        }
    };
    if *rule == DkimRule::Key {
        return key().await;
    }
    let zone = match rule {
        DkimRule::Zone(zone) => Some(&**zone),
        _ => None,
    };
    let answer = bounded(timeout, dns.cname(name)).await;
    count("CNAME", outcome(&answer));
    match answer {
        Ok(targets) => Ok(verdict::dkim_record_state(token, Some(&targets), zone)),
        // The name is there without a CNAME: with the origin not known, a key
        // published as TXT, as with bring-your-own DKIM (SES names the selector as its
        // token), counts; Easy DKIM in a known zone needs its CNAME.
        Err(LookupOutcome::NoRecords) if zone.is_none() => key().await,
        Err(o) if o.answered() => Ok(verdict::dkim_record_state(token, None, zone)),
        Err(o) => Err(o),
    }
}

/// The DMARC record that applies to mail from `from` (RFC 7489 section 6.6.3): the
/// one at `_dmarc.<from>`, else the one at `_dmarc.<organizational domain>`.
/// `Ok(None)`: neither has one; `Err`: a lookup did not answer.
async fn dmarc<D: Dns>(
    dns: &D,
    timeout: Duration,
    count: &impl Fn(&str, LookupOutcome),
    from: String,
) -> Result<Option<Result<DmarcRecord, DmarcRecordState>>, LookupOutcome> {
    let mut at = from;
    loop {
        let answer = bounded(timeout, dns.txt(&format!("_dmarc.{at}"))).await;
        count("TXT", outcome(&answer));
        let found = match answer {
            Ok(txts) => verdict::dmarc_record(&at, &txts),
            Err(o) if o.answered() => None,
            Err(o) => return Err(o),
        };
        if let Some(found) = found {
            return Ok(Some(found));
        }
        match verdict::organizational_domain(&at) {
            Some(org) if org != at => at = org,
            _ => return Ok(None),
        }
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

/// Sets each identity's DMARC verdict from its checks and its facts.
///
/// An e-mail address identity sends with its own custom MAIL FROM when it has one, else
/// with its domain identity's, and SES's DKIM attributes of an address are its
/// domain's, whose records are checked at the domain identity: so an address and its
/// domain are judged alike. An identity whose own Easy DKIM does not sign verified is
/// signed by the nearest parent domain identity's that does (up to the organizational
/// domain), with `d=` that domain: aligned when `adkim` is relaxed.
fn judge(results: &mut BTreeMap<Subject, Checked>, facts: &AllFacts) {
    let verdicts: Vec<(Subject, Option<DmarcVerdict>)> = results
        .iter()
        .map(|(subject, checked)| {
            let (target, identity) = subject;
            let from = verdict::from_domain(identity);
            let is_address = identity.contains('@');
            let fact = |id: &str| facts.get(target).and_then(|f| f.get(id));
            let checked_of = |id: &str| results.get(&(target.clone(), id.to_owned()));
            let own = fact(identity);
            // MAIL FROM: the identity's own when configured, else its domain's.
            let own_mail_from = own.and_then(|f| f.mail_from.as_ref());
            let domain_mail_from = is_address
                .then(|| fact(&from).and_then(|f| f.mail_from.as_ref()))
                .flatten();
            let (mail_from, mail_from_checked) = match (own_mail_from, domain_mail_from) {
                (Some(m), Some(d)) if !m.configured() => {
                    (Some(d), checked_of(&from).and_then(|c| c.mail_from.as_ref()))
                }
                (Some(m), _) => (Some(m), checked.mail_from.as_ref()),
                (None, _) => (None, None),
            };
            // DKIM: whether it signs verified (`None`: not known) ...
            let signing = |f: Option<&IdentityFacts>| {
                let d = f?.dkim.as_ref()?;
                match (d.enabled, d.status) {
                    (Some(true), VerificationStatus::Success) => Some(true),
                    (None, _) | (_, VerificationStatus::Unknown) => None,
                    _ => Some(false),
                }
            };
            // ... and whether the records of the domain it signs with are in place.
            let records = |domain: &str| {
                let states = checked_of(domain)?.dkim.as_ref()?.state.as_ref()?;
                Some(states.iter().all(|s| *s == RecordState::Correct))
            };
            let mut dkim = (signing(own), from.clone(), records(&from));
            if dkim.0 != Some(true) {
                let parents = verdict::parent_domains(&from);
                let candidates = is_address
                    .then(|| from.clone())
                    .into_iter()
                    .chain(parents);
                for domain in candidates {
                    if signing(fact(&domain)) == Some(true) {
                        dkim = (Some(true), domain.clone(), records(&domain));
                        break;
                    }
                }
            }
            let dmarc = checked.dmarc.found.as_ref().map(|found| found.as_ref().ok());
            let sending = SendingFacts {
                from: &from,
                mail_from_configured: mail_from.map(|m| m.configured()),
                mail_from_domain: mail_from.and_then(|m| m.domain.as_deref()),
                mail_from_status: mail_from.and_then(|m| m.status),
                behavior: mail_from.map(|m| m.behavior),
                spf: mail_from_checked.and_then(|m| m.spf_status),
                dkim_signing: dkim.0,
                dkim_domain: Some(&dkim.1),
                dkim_records: dkim.2,
                dmarc,
            };
            (subject.clone(), verdict::dmarc_verdict(&sending))
        })
        .collect();
    for (subject, v) in verdicts {
        if let Some(c) = results.get_mut(&subject) {
            c.verdict = v;
        }
    }
}

/// The MAIL FROM check of an identity, when it has a custom MAIL FROM domain.
fn mf(c: &Checked) -> Option<&MailFromChecked> {
    c.mail_from.as_ref()
}

#[rustfmt::skip]
const FAMILIES: &[Family<Checked>] = &[
    gauge("aws_ses_identity_mail_from_mx_correct", &Derived { value: |c: &Checked| mf(c)?.mx, write: flag },
        "1 if the MX records of the identity's custom MAIL FROM domain include feedback-smtp.<region>.amazonses.com, 0 if DNS answered without it (other hosts, no MX record, no such name). Looked up by the exporter (dns collector); absent until DNS answered once; a failed lookup keeps the last answer."),
    gauge("aws_ses_identity_mail_from_spf_correct", &Derived { value: |c: &Checked| mf(c)?.spf, write: flag },
        "1 if the identity's custom MAIL FROM domain has exactly one SPF record and it includes amazonses.com, 0 if DNS answered without one. Looked up by the exporter (dns collector); absent until DNS answered once; a failed lookup keeps the last answer."),
    gauge("aws_ses_identity_mail_from_dns_lookup", &Derived { value: |c: &Checked| mf(c).map(|m| (m.mx_outcome, m.txt_outcome)), write: lookups },
        "How the last DNS lookup of the identity's custom MAIL FROM domain ended, by record type (MX, TXT), as a state set: the series of the last outcome (ok, nxdomain, no_records, servfail, timeout, error) is 1, the others 0."),
    gauge("aws_ses_identity_mail_from_dns_last_check_timestamp_seconds", &Derived { value: |c: &Checked| mf(c).map(|m| unix_millis(m.at)), write: timestamp },
        "Unix time of the last DNS lookup of the identity's custom MAIL FROM domain, answered or not (answers are cached for their TTL, 30 s to 10 min)."),
    gauge("aws_ses_identity_mail_from_dns_last_answer_timestamp_seconds", &Derived { value: answer_times, write: answers },
        "Unix time of the last DNS answer that decided a verdict on the identity's custom MAIL FROM domain, by record_type (mx: aws_ses_identity_mail_from_mx_correct, spf: ..._spf_correct, spf_evaluation: ..._spf_status): records found, no such name or no records. A failed lookup (timeout, SERVFAIL, error) keeps the verdict and does not move this, so time() minus it is the verdict's age. Absent until DNS answered once; an answer may come from the resolver's cache (kept 30 s to 10 min)."),
    gauge("aws_ses_identity_mail_from_spf_status", &Derived { value: |c: &Checked| mf(c)?.spf_status, write: spf_status },
        "What SPF's check_host() (RFC 7208: the include chain, at most 10 DNS-querying terms and 2 void lookups, one SPF record) says of mail from SES's sending address (the first ip4 network of amazonses.com's SPF record) with the identity's custom MAIL FROM domain, as a state set: pass, not_authorized (fail, softfail or neutral: the record does not authorize SES), no_record, permerror (receivers treat it as a fail). Evaluated by the exporter (dns collector); absent until it answered once; a temporary DNS error keeps the last answer."),
    gauge("aws_ses_identity_dkim_dns_records", &Derived { value: |c: &Checked| c.dkim.as_ref()?.state.clone(), write: dkim_records },
        "The identity's Easy DKIM CNAME records (<token>._domainkey.<domain>, one per DkimTokens entry) by state: correct (points at <token>.<the signing zone SES names> when the identity_reasons collector learnt it; bring-your-own DKIM: a DKIM key published as TXT at the selector; origin not known or replicated: points at <token>. in any zone, or a TXT key there), missing (no such name or no record), elsewhere (points at another target). Looked up by the exporter (dns collector) for domain identities whose DKIM tokens the dkim collector returned, DKIM signing on or off (the records keep a domain verified); absent until every record's lookup answered once; a failed lookup keeps the last answer."),
    gauge("aws_ses_identity_dkim_dns_last_answer_timestamp_seconds", &Derived { value: |c: &Checked| c.dkim.as_ref()?.answered.map(unix_millis), write: timestamp },
        "Unix time of the last DNS answer for all of the identity's Easy DKIM CNAME records (aws_ses_identity_dkim_dns_records); a failed lookup does not move it."),
    gauge("aws_ses_identity_verification_dns_record", &Derived { value: |c: &Checked| c.legacy.as_ref()?.state, write: record_state },
        "The TXT record at _amazonses.<domain> of a domain identity whose Easy DKIM status is known and not Success (so this legacy record is what keeps it verified), as a state set: correct (a TXT record there holds SES's VerificationToken), missing (no such name, or no TXT record), elsewhere (TXT records without the token). Looked up by the exporter (dns collector) when the verification and dkim collectors are on; absent until DNS answered once; a failed lookup keeps the last answer."),
    gauge("aws_ses_identity_verification_dns_last_answer_timestamp_seconds", &Derived { value: |c: &Checked| c.legacy.as_ref()?.answered.map(unix_millis), write: timestamp },
        "Unix time of the last DNS answer for the identity's _amazonses TXT record (aws_ses_identity_verification_dns_record); a failed lookup does not move it."),
    gauge("aws_ses_identity_dmarc_record", &Derived { value: |c: &Checked| c.dmarc.found.as_ref().map(|f| f.as_ref().map_or_else(|s| *s, |_| DmarcRecordState::Found)), write: dmarc_state },
        "The DMARC record of the identity's From domain (the domain identity, or an e-mail identity's domain), found as RFC 7489 says (at _dmarc.<domain>, else at _dmarc.<organizational domain> from the Public Suffix List), as a state set: found, absent, unparseable (a p= that is not a policy, or two v=DMARC1 records: no policy; another tag that cannot be read is ignored, as receivers do). Looked up by the exporter (dns collector); absent until DNS answered once; a failed lookup keeps the last answer."),
    gauge("aws_ses_identity_dmarc_policy_info", &Derived { value: |c: &Checked| c.dmarc.found.as_ref()?.as_ref().ok().cloned(), write: dmarc_info },
        "The DMARC record that applies to the identity's From domain: record_domain (where it was found), p, sp (p when left out), adkim and aspf (r relaxed, s strict); always 1. Absent without a readable record."),
    gauge("aws_ses_identity_dmarc_pct", &Derived { value: |c: &Checked| c.dmarc.found.as_ref()?.as_ref().ok().map(|r| r.pct), write: pct },
        "The pct tag of the DMARC record that applies (RFC 7489: the percentage of failing mail the policy is applied to; 100 when left out). RFC 9989 (DMARCbis) dropped the tag: its receivers apply the policy to all mail."),
    gauge("aws_ses_identity_dmarc_last_answer_timestamp_seconds", &Derived { value: |c: &Checked| c.dmarc.answered.map(unix_millis), write: timestamp },
        "Unix time of the last DNS answer for the identity's DMARC record; a failed lookup does not move it."),
    gauge("aws_ses_identity_dmarc_verdict", &Derived { value: |c: &Checked| c.verdict, write: dmarc_verdict },
        "What receivers enforcing DMARC do with the mail SES sends for the identity, as a state set: aligned (SPF passes through a custom MAIL FROM in Success that aligns with the From domain, or verified Easy DKIM signs with its records in place: DMARC passes), none (neither aligns; no DMARC record, p=none, or pct=0 with quarantine), quarantine (to spam; also reject with pct=0), reject (refused; with pct below 100 that share, the rest quarantined). An identity whose own Easy DKIM does not sign verified is signed by its nearest parent domain identity's that does (d= that domain: aligned under relaxed adkim only). Judged by the exporter from the mail_from, dkim and dns collectors; absent while a fact it needs is not known (the dkim collector off, a lookup or the DKIM records not yet answered), and when SES refuses the mail itself (MAIL FROM not Success with RejectMessage)."),
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
#[allow(clippy::type_complexity)]
fn answer_times(c: &Checked) -> Option<[(&'static str, Option<u64>); 3]> {
    let m = mf(c)?;
    let times = [
        ("mx", m.mx_answered.map(unix_millis)),
        ("spf", m.spf_answered.map(unix_millis)),
        ("spf_evaluation", m.spf_status_answered.map(unix_millis)),
    ];
    times.iter().any(|(_, t)| t.is_some()).then_some(times)
}

fn answers(samples: &mut Samples<'_>, times: &[(&'static str, Option<u64>); 3]) {
    for (record_type, answered) in times {
        if let Some(t) = answered {
            samples.sample(&[("record_type", record_type)], render::seconds(*t));
        }
    }
}

fn spf_status(samples: &mut Samples<'_>, status: &SpfStatus) {
    for s in SpfStatus::ALL {
        samples.sample(&[("status", s.as_str())], f64::from(u8::from(s == *status)));
    }
}

#[allow(clippy::ptr_arg)] // the family's value type is the Vec
fn dkim_records(samples: &mut Samples<'_>, states: &Vec<RecordState>) {
    for s in RecordState::ALL {
        let n = states.iter().filter(|x| **x == s).count();
        #[allow(clippy::cast_precision_loss)]
        samples.sample(&[("state", s.as_str())], n as f64);
    }
}

fn record_state(samples: &mut Samples<'_>, state: &RecordState) {
    for s in RecordState::ALL {
        samples.sample(&[("state", s.as_str())], f64::from(u8::from(s == *state)));
    }
}

fn dmarc_state(samples: &mut Samples<'_>, state: &DmarcRecordState) {
    for s in DmarcRecordState::ALL {
        samples.sample(&[("state", s.as_str())], f64::from(u8::from(s == *state)));
    }
}

fn dmarc_info(samples: &mut Samples<'_>, r: &DmarcRecord) {
    let mode = |strict: bool| if strict { "s" } else { "r" };
    samples.sample(
        &[
            ("record_domain", r.domain.as_str()),
            ("p", r.p.as_str()),
            ("sp", r.sp.as_str()),
            ("adkim", mode(r.adkim_strict)),
            ("aspf", mode(r.aspf_strict)),
        ],
        1.0,
    );
}

fn pct(samples: &mut Samples<'_>, pct: &u8) {
    samples.sample(&[], f64::from(*pct));
}

fn dmarc_verdict(samples: &mut Samples<'_>, verdict: &DmarcVerdict) {
    for v in DmarcVerdict::ALL {
        samples.sample(&[("verdict", v.as_str())], f64::from(u8::from(v == *verdict)));
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
        // A target whose identities all went gets an empty part, not its last one.
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
                mail_from: Some(MailFromChecked {
                    domain: "bounce.a.example.com".into(),
                    mx: None,
                    spf: None,
                    spf_status: None,
                    mx_answered: None,
                    spf_answered: None,
                    spf_status_answered: None,
                    mx_outcome: LookupOutcome::Timeout,
                    txt_outcome: LookupOutcome::ServFail,
                    at: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
                }),
                ..Checked::default()
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
        async fn cname(&self, _name: &str) -> Result<Vec<String>, LookupOutcome> {
            Err(LookupOutcome::Error)
        }
        async fn spf(&self, _domain: &str, _client: IpAddr) -> Result<SpfStatus, LookupOutcome> {
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
            mail_from: Some(MailFromDone {
                domain: "bounce.a.example.com".to_owned(),
                mx,
                txt,
                spf: None,
            }),
            dmarc: Err(LookupOutcome::Timeout),
            dkim: None,
            legacy: None,
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
            mail_from: Some(MailFromChecked {
                domain: "d".into(),
                mx: Some(mx),
                spf: Some(true),
                spf_status: None,
                mx_answered: Some(SystemTime::UNIX_EPOCH),
                spf_answered: Some(SystemTime::UNIX_EPOCH),
                spf_status_answered: None,
                mx_outcome: LookupOutcome::Ok,
                txt_outcome: LookupOutcome::Ok,
                at: SystemTime::UNIX_EPOCH,
            }),
            ..Checked::default()
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
