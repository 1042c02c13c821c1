//! The only code that touches the DNS resolver (hickory-resolver, through mail-auth's
//! [`MessageAuthenticator`], which wraps the same resolver): [`Dns`], MX, TXT and CNAME
//! lookups and SPF's `check_host()`, and [`HickoryDns`], its implementation, whose errors
//! become a [`LookupOutcome`].

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfResult};
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
    /// DNS-querying terms) says of mail from `client` with MAIL FROM `postmaster@domain`.
    /// A temporary error (a lookup of the chain failed) is no answer.
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
        // The HELO name only feeds the %{h} macro; SES's is not known, the MAIL FROM
        // domain stands in for it.
        let output = self
            .auth
            .verify_spf(SpfParameters::verify_mail_from(
                client, domain, domain, &sender,
            ))
            .await;
        match output.result() {
            SpfResult::Pass => Ok(SpfStatus::Pass),
            SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => {
                Ok(SpfStatus::NotAuthorized)
            }
            SpfResult::None => Ok(SpfStatus::NoRecord),
            SpfResult::PermError => Ok(SpfStatus::PermError),
            SpfResult::TempError => {
                debug!(domain, "SPF evaluation met a temporary DNS error");
                Err(LookupOutcome::Error)
            }
        }
    }
}
