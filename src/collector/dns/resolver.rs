//! The only code that touches the DNS resolver (hickory-resolver): [`Dns`], MX and TXT
//! lookups, and [`HickoryDns`], its implementation, whose errors become a
//! [`LookupOutcome`].

use std::future::Future;
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use tracing::debug;

use super::DnsSettings;
use crate::model::LookupOutcome;

/// Answers are kept at least this long, whatever their TTL says (a TTL of 0 would
/// otherwise send every check to the network).
pub const MIN_TTL: Duration = Duration::from_secs(30);
/// And at most this long, so a changed record is seen within this (plus the poll
/// interval) even where its TTL is a day.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 60);
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(5 * 60);

/// MX and TXT lookups. [`HickoryDns`] in production; the tests use a real DNS server
/// on loopback through it.
pub trait Dns: Send + Sync + 'static {
    /// The MX exchanges of `name` (host names, without the trailing dot).
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupOutcome>> + Send;
    /// The TXT records of `name`, each one's strings joined (as SPF reads them).
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupOutcome>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver for the dns collector (read /etc/resolv.conf): {0}; name resolvers with --dns.nameserver or switch the collector off with --no-collector.dns")]
pub struct ResolverSetupError(#[source] ResolveError);

/// [`Dns`] over hickory-resolver. Answers are cached by the resolver for their TTL,
/// bounded to [`MIN_TTL`]..[`MAX_TTL`] (negative answers to
/// [`MIN_TTL`]..[`MAX_NEGATIVE_TTL`]).
pub struct HickoryDns {
    resolver: TokioResolver,
}

impl HickoryDns {
    pub fn new(settings: &DnsSettings) -> Result<HickoryDns, ResolverSetupError> {
        let (config, mut opts) = if settings.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf().map_err(ResolverSetupError)?
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
fn classify(name: &str, record: &str, err: &ResolveError) -> LookupOutcome {
    let outcome = match err.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => match *response_code {
            ResponseCode::NXDomain => LookupOutcome::NxDomain,
            ResponseCode::NoError => LookupOutcome::NoRecords,
            ResponseCode::ServFail => LookupOutcome::ServFail,
            _ => LookupOutcome::Error,
        },
        Some(ProtoErrorKind::Timeout) => LookupOutcome::Timeout,
        _ => LookupOutcome::Error,
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
    async fn mx(&self, name: &str) -> Result<Vec<String>, LookupOutcome> {
        match self.resolver.mx_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|mx| mx.exchange().to_utf8().trim_end_matches('.').to_owned())
                .collect()),
            Err(err) => Err(classify(name, "MX", &err)),
        }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupOutcome> {
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

