//! The only code that touches the DNS resolver (hickory-resolver, through mail-auth's
//! [`MessageAuthenticator`], which wraps the same resolver): [`Dns`], MX, TXT and CNAME
//! lookups and SPF's `check_host()` (with RFC 7208's void-lookup limit, which mail-auth
//! does not keep: [`VoidLookups`]), and [`HickoryDns`], its implementation, whose errors
//! become a [`LookupOutcome`].

use std::borrow::Borrow;
use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, Parameters, RecordSet, ResolverCache, SpfResult, MX};
use tracing::debug;

use super::DnsSettings;
use crate::model::{LookupOutcome, SpfStatus};

/// Answers are kept at least this long, whatever their TTL says (a TTL of 0 would
/// otherwise send every check to the network).
pub const MIN_TTL: Duration = Duration::from_secs(30);
/// And at most this long, so a changed record is seen within this (plus the poll
/// interval) even where its TTL is a day.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 60);
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(5 * 60);

/// The dns collector's lookups. [`HickoryDns`] in production; the tests use a real DNS
/// server on loopback through it.
pub trait Dns: Send + Sync + 'static {
    /// The MX exchanges of `name` (host names, without the trailing dot).
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupOutcome>> + Send;
    /// The TXT records of `name`, each one's strings joined (as SPF reads them).
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupOutcome>> + Send;
    /// The CNAME targets of `name` (without the trailing dot).
    fn cname(&self, name: &str)
        -> impl Future<Output = Result<Vec<String>, LookupOutcome>> + Send;
    /// What SPF's `check_host()` (RFC 7208 section 4: the include chain, the limit of 10
    /// DNS-querying terms, and of 2 void lookups) says of mail from `client` with MAIL
    /// FROM `postmaster@domain`. A temporary error (a lookup of the chain failed) is no
    /// answer.
    fn spf(
        &self,
        domain: &str,
        client: IpAddr,
    ) -> impl Future<Output = Result<SpfStatus, LookupOutcome>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver for the dns collector (read /etc/resolv.conf): {0}; name resolvers with --dns.nameserver or switch the collector off with --no-collector.dns")]
pub struct ResolverSetupError(#[source] NetError);

/// [`Dns`] over hickory-resolver. Answers are cached by the resolver for their TTL,
/// bounded to [`MIN_TTL`]..[`MAX_TTL`] (negative answers to
/// [`MIN_TTL`]..[`MAX_NEGATIVE_TTL`]); the SPF evaluation shares the resolver and its
/// cache, so an include chain common to many domains is asked once per TTL.
pub struct HickoryDns {
    auth: MessageAuthenticator,
}

impl HickoryDns {
    pub fn new(settings: &DnsSettings) -> Result<HickoryDns, ResolverSetupError> {
        let (config, mut opts) = if settings.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf().map_err(ResolverSetupError)?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|addr| {
                    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                        .into_iter()
                        .map(|mut c| {
                            c.port = addr.port();
                            c
                        })
                        .collect();
                    // Named servers are trusted to say a name does not exist.
                    NameServerConfig::new(addr.ip(), true, connections)
                })
                .collect();
            (
                ResolverConfig::from_parts(None, vec![], servers),
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
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(ResolverSetupError)?;
        Ok(HickoryDns {
            auth: MessageAuthenticator(resolver),
        })
    }

    async fn lookup(&self, name: &str, record: RecordType) -> Result<Vec<RData>, LookupOutcome> {
        match self.auth.0.lookup(fqdn(name).as_str(), record).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == record)
                .map(|r| r.data.clone())
                .collect()),
            Err(err) => Err(classify(name, record, &err)),
        }
    }
}

/// A resolver error as an outcome; only a definitive negative answer counts as one.
fn classify(name: &str, record: RecordType, err: &NetError) -> LookupOutcome {
    let outcome = match err {
        NetError::Dns(DnsError::NoRecordsFound(no)) => match no.response_code {
            ResponseCode::NXDomain => LookupOutcome::NxDomain,
            ResponseCode::NoError => LookupOutcome::NoRecords,
            ResponseCode::ServFail => LookupOutcome::ServFail,
            _ => LookupOutcome::Error,
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => LookupOutcome::ServFail,
        NetError::Timeout => LookupOutcome::Timeout,
        _ => LookupOutcome::Error,
    };
    debug!(name, record = %record, outcome = outcome.as_str(), error = %err, "DNS lookup failed");
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

/// A name as the collector compares it: without the trailing dot.
fn plain(name: &hickory_resolver::proto::rr::Name) -> String {
    name.to_utf8().trim_end_matches('.').to_owned()
}

impl Dns for HickoryDns {
    async fn mx(&self, name: &str) -> Result<Vec<String>, LookupOutcome> {
        let answers = self.lookup(name, RecordType::MX).await?;
        Ok(answers
            .iter()
            .filter_map(|d| match d {
                RData::MX(mx) => Some(plain(&mx.exchange)),
                _ => None,
            })
            .collect())
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupOutcome> {
        let answers = self.lookup(name, RecordType::TXT).await?;
        Ok(answers
            .iter()
            .filter_map(|d| match d {
                // A TXT record is several strings; SPF and DMARC join them with
                // nothing between (RFC 7208, 3.3).
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    async fn cname(&self, name: &str) -> Result<Vec<String>, LookupOutcome> {
        let answers = self.lookup(name, RecordType::CNAME).await?;
        Ok(answers
            .iter()
            .filter_map(|d| match d {
                RData::CNAME(target) => Some(plain(&target.0)),
                _ => None,
            })
            .collect())
    }

    async fn spf(&self, domain: &str, client: IpAddr) -> Result<SpfStatus, LookupOutcome> {
        let sender = format!("postmaster@{domain}");
        let voids = VoidLookups::default();
        // The HELO name only feeds the %{h} macro; SES's is not known, the MAIL FROM
        // domain stands in for it.
        let params = Parameters::new(SpfParameters::verify_mail_from(
            client, domain, domain, &sender,
        ))
        .with_mx_cache(&voids)
        .with_ipv4_cache(&voids)
        .with_ipv6_cache(&voids);
        let output = self.auth.verify_spf(params).await;
        // More than two void lookups are a permerror wherever they happened (RFC 7208
        // section 4.6.4): the evaluation stops at the third, so a result mail-auth
        // reached after it (a match, or a temporary error) is not the receiver's.
        let void = voids.count();
        let status = match output.result() {
            SpfResult::Pass => SpfStatus::Pass,
            SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => {
                SpfStatus::NotAuthorized
            }
            SpfResult::None => SpfStatus::NoRecord,
            SpfResult::PermError => SpfStatus::PermError,
            // The lookup that failed went unanswered too, and may be counted as
            // void: only a fourth makes this certain.
            SpfResult::TempError if void > MAX_VOID_LOOKUPS + 1 => SpfStatus::PermError,
            SpfResult::TempError => {
                debug!(domain, "SPF evaluation met a temporary DNS error");
                return Err(LookupOutcome::Error);
            }
        };
        if void > MAX_VOID_LOOKUPS && status != SpfStatus::PermError {
            debug!(domain, void, "SPF evaluation exceeded the void-lookup limit");
            return Ok(SpfStatus::PermError);
        }
        Ok(status)
    }
}

/// RFC 7208 section 4.6.4: "SPF implementations SHOULD limit "void lookups" to two".
pub const MAX_VOID_LOOKUPS: usize = 2;

/// What an SPF evaluation asked and was not answered, to count its void lookups (RFC
/// 7208 section 4.6.4: a term whose query answers NXDOMAIN or no records), which
/// mail-auth's `check_host()` does not count. No crate under a licence this project can
/// ship counts them (viaspf does, under the GPL), so this observes mail-auth's own
/// lookups through the one door it opens to them, its per-evaluation caches: each
/// lookup asks its cache first and fills it only with an answer. It caches nothing
/// (the resolver does). What it relies on, in mail-auth 0.13.3 (pinned; the SPF cases
/// of tests/e2e_receivers.rs check it): an `a` term (and each MX exchange) looks up
/// the client's address family through `get`, then `insert` on an answer; an `mx`
/// term likewise through the MX cache. An `exists` term asks both address caches and
/// fills neither, so its answer is not seen: exists terms are not counted. The client
/// is SES's IPv4 address, so only an `exists` term asks the IPv6 cache. A `ptr` term
/// (deprecated by RFC 7208) looks up each PTR name's address the way an `a` term does,
/// so a PTR name of SES's address without an address would count as void; SES's PTR
/// names resolve.
///
/// The cache's `get` sees a name only as something that hashes like its key (`Q`
/// with `Box<str>: Borrow<Q>`), so names are kept as their hashes; `Borrow`'s contract
/// makes a `str` and its `Box<str>` hash alike.
#[derive(Default)]
struct VoidLookups(Mutex<Observed>);

#[derive(Default)]
struct Observed {
    /// Address lookups asked and not answered (an `a` term's or an `exists` term's).
    a: Vec<u64>,
    /// `mx` lookups asked and not answered.
    mx: Vec<u64>,
    /// The exchanges of answered `mx` terms: their address lookups are part of the
    /// `mx` term, not terms of their own.
    exchanges: HashSet<u64>,
}

fn hash<Q: Hash + ?Sized>(name: &Q) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(name)
}

fn forget(pending: &mut Vec<u64>, name: u64) {
    if let Some(i) = pending.iter().position(|&p| p == name) {
        pending.swap_remove(i);
    }
}

impl VoidLookups {
    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The void lookups seen: the `a` and `mx` terms asked and not answered.
    fn count(&self) -> usize {
        let observed = self.observed();
        observed.a.len() + observed.mx.len()
    }
}

impl ResolverCache<Box<str>, RecordSet<Ipv4Addr>> for VoidLookups {
    fn get<Q>(&self, name: &Q) -> Option<RecordSet<Ipv4Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let name = hash(name);
        let mut observed = self.observed();
        if !observed.exchanges.contains(&name) {
            observed.a.push(name);
        }
        None
    }

    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<Ipv4Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, name: Box<str>, _: RecordSet<Ipv4Addr>, _: Instant) {
        forget(&mut self.observed().a, hash(&name));
    }
}

impl ResolverCache<Box<str>, RecordSet<Ipv6Addr>> for VoidLookups {
    /// Only an `exists` term asks for IPv6 addresses (the client is IPv4), just after
    /// asking for IPv4 ones: its name is not an `a` term's.
    fn get<Q>(&self, name: &Q) -> Option<RecordSet<Ipv6Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        forget(&mut self.observed().a, hash(name));
        None
    }

    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<Ipv6Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: RecordSet<Ipv6Addr>, _: Instant) {}
}

impl ResolverCache<Box<str>, RecordSet<MX>> for VoidLookups {
    fn get<Q>(&self, name: &Q) -> Option<RecordSet<MX>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.observed().mx.push(hash(name));
        None
    }

    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<MX>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, name: Box<str>, records: RecordSet<MX>, _: Instant) {
        let mut observed = self.observed();
        forget(&mut observed.mx, hash(&name));
        for exchange in records.rrset.iter().flat_map(|mx| mx.exchanges.iter()) {
            // The exchange is looked up under its absolute name.
            let absolute: Box<str> = if exchange.ends_with('.') {
                exchange.clone()
            } else {
                format!("{exchange}.").into()
            };
            observed.exchanges.insert(hash(&absolute));
        }
    }
}
