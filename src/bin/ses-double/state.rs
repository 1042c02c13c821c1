//! What the double holds, behind one lock: per (account, region) scope the
//! identities and the account-level answers, the roles `AssumeRole` checks, the
//! faults in force, the request records, and the counts the rate limit and the
//! faults keep. Also [`Double`], the state with the flags every connection shares.
//! Identities, accounts and roles are stored in the shape the control API's JSON has.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::faults::Faults;

/// One identity as the double stores it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Identity {
    pub(crate) mail_from_domain: Option<String>,
    /// `MailFromDomainStatus` as sent; any string, so tests can send values the
    /// exporter does not know.
    pub(crate) status: Option<String>,
    pub(crate) behavior: Option<String>,
    /// `DkimEnabled`; false when not set.
    pub(crate) dkim_enabled: Option<bool>,
    /// `DkimVerificationStatus`; `NotStarted` when not set.
    pub(crate) dkim_status: Option<String>,
    /// `VerificationStatus`; `Success` when not set.
    pub(crate) verification_status: Option<String>,
    /// Wire fields to leave out of the answers even when set (`MailFromDomain`,
    /// `MailFromDomainStatus`, `BehaviorOnMXFailure`, `DkimEnabled`,
    /// `DkimVerificationStatus`, `VerificationStatus`): SES's model marks them
    /// required, but a test must see what the exporter does when one is missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) omit: Vec<String>,
}

impl Identity {
    pub(crate) fn sends(&self, field: &str) -> bool {
        sends(&self.omit, field)
    }
}

/// Whether a wire field is sent, given the fields a test asked to leave out.
fn sends(omit: &[String], field: &str) -> bool {
    !omit.iter().any(|f| f == field)
}

/// Account-level answers of one account and region.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Account {
    pub(crate) sending_enabled: bool,
    pub(crate) max_24_hour_send: f64,
    pub(crate) max_send_rate: f64,
    pub(crate) sent_last_24_hours: f64,
    /// Wire fields to leave out (`Max24HourSend`, `MaxSendRate`, `SentLast24Hours`,
    /// `Enabled`), as for [`Identity::omit`].
    pub(crate) omit: Vec<String>,
}

impl Account {
    pub(crate) fn sends(&self, field: &str) -> bool {
        sends(&self.omit, field)
    }
}

impl Default for Account {
    fn default() -> Self {
        Account {
            sending_enabled: true,
            max_24_hour_send: 50_000.0,
            max_send_rate: 14.0,
            sent_last_24_hours: 0.0,
            omit: Vec::new(),
        }
    }
}

/// One account in one region.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub(crate) identities: BTreeMap<String, Identity>,
    pub(crate) account: Account,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Role {
    pub(crate) external_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Record {
    /// Arrival, Unix seconds.
    pub(crate) t: f64,
    pub(crate) action: String,
    pub(crate) account: String,
    pub(crate) region: String,
    pub(crate) identities: usize,
    pub(crate) status: u16,
    pub(crate) outcome: &'static str,
}

#[derive(Default)]
pub(crate) struct State {
    /// (account, region) → what SES knows there.
    pub(crate) scopes: BTreeMap<(String, String), Scope>,
    pub(crate) roles: BTreeMap<String, Role>,
    pub(crate) faults: Faults,
    pub(crate) records: Vec<Record>,
    /// Arrivals per (account, region, action) in the last seconds, for the rate limit.
    pub(crate) recent: HashMap<(String, String, String), VecDeque<Instant>>,
    pub(crate) counts: HashMap<String, u64>,
    pub(crate) errors_sent: u64,
}

pub(crate) struct Double {
    pub(crate) state: Mutex<State>,
    pub(crate) rate: f64,
    pub(crate) upstream: Option<SocketAddr>,
    pub(crate) account: String,
    pub(crate) region: String,
}

impl Double {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
