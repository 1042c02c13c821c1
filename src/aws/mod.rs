//! The only door to the AWS SDKs (SES and STS). [`SesApi`] is what the target loop
//! and the collectors need, one HTTP attempt per call (the SDK's own retries are
//! off, so every attempt passes the caller's rate limiter); [`Session`] is the same
//! as a trait object, so a target holds its collectors in a list. [`sdk`] implements
//! it over `aws-sdk-ses`/`aws-sdk-sts` and turns SDK errors into [`SesError`] kinds;
//! [`wire`] reads the bodies of SES's answers from the raw XML.
//!
//! A new SES operation is its methods here ([`SesApi`], [`Session`], the blanket
//! impl, [`Governed`]), its [`sdk::AwsSes`] call, its [`wire`] parse, its
//! [`crate::model::Operation`] value and the double's answer: docs/architecture.md
//! lists every place, the IAM policy's included.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::model::{
    DkimAttributes, IdentityType, MailFromAttributes, Operation, Outcome, SendQuota, Verification,
};

pub mod sdk;
pub mod wire;

pub use sdk::AwsSes;

/// The most identities one `GetIdentity*Attributes` call takes (MAIL FROM, DKIM
/// and verification alike).
pub const MAX_IDENTITIES_PER_CALL: usize = 100;
/// The largest page `ListIdentities` returns.
pub const LIST_PAGE_SIZE: i32 = 1000;

/// A failed SES call, by what the target loop should do about it.
#[derive(Debug, thiserror::Error)]
pub enum SesError {
    /// SES said slow down (`Throttling`, HTTP 429, ...): back off and retry.
    #[error("throttled by SES ({code}): {message}")]
    Throttled { code: String, message: String },
    /// SES refused the request (AccessDenied, InvalidParameterValue, missing
    /// credentials, ...): retrying the same request will not help.
    #[error("rejected by SES ({code}, HTTP {status}): {message}")]
    Client {
        code: String,
        status: u16,
        message: String,
    },
    /// The request never became an HTTP request (e.g. no credentials could be loaded).
    #[error("request could not be made: {0}")]
    Construction(#[source] Cause),
    /// SES failed (5xx) or answered something that is not a valid response.
    #[error("SES server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    #[error("no answer from SES within the timeout: {0}")]
    Timeout(#[source] Cause),
    /// Connection refused or reset, name not resolved, TLS failure, ...
    #[error("could not reach SES: {0}")]
    Transport(#[source] Cause),
}

/// What a failure says, and the error it came from when there is one (the SDK's,
/// kept as the source so the chain is not lost in a string).
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// `message` (the whole chain as text, for the log line) caused by `source`.
    pub fn caused_by(
        message: String,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Cause {
        Cause {
            message,
            source: Some(Arc::new(source)),
        }
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Cause {
        Cause {
            message,
            source: None,
        }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Cause {
        Cause::from(message.to_owned())
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl SesError {
    /// The `outcome` label of the attempt that failed so.
    pub fn outcome(&self) -> Outcome {
        match self {
            SesError::Throttled { .. } => Outcome::Throttled,
            SesError::Client { .. } | SesError::Construction(_) => Outcome::ClientError,
            SesError::Server { .. } => Outcome::ServerError,
            SesError::Timeout(_) => Outcome::Timeout,
            SesError::Transport(_) => Outcome::TransportError,
        }
    }

    /// SES refused a parameter of the request; for a batch that means one of its
    /// identities is not a valid identity name.
    pub fn is_invalid_parameter(&self) -> bool {
        matches!(self, SesError::Client { code, .. } if code == "InvalidParameterValue")
    }

    /// Whether another attempt of the same request may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, SesError::Client { .. } | SesError::Construction(_))
    }

    /// A short, stable description of the kind of failure, used to log an error once
    /// per change of state rather than once per attempt.
    pub fn state_key(&self) -> String {
        match self {
            SesError::Throttled { code, .. } => format!("throttled:{code}"),
            SesError::Client { code, .. } => format!("client_error:{code}"),
            SesError::Construction(_) => "client_error:construction".to_owned(),
            SesError::Server { status, .. } => format!("server_error:{status}"),
            SesError::Timeout(_) => "timeout".to_owned(),
            SesError::Transport(_) => "transport_error".to_owned(),
        }
    }
}

/// One page of `ListIdentities`.
#[derive(Debug, Clone, Default)]
pub struct IdentityPage {
    pub identities: Vec<String>,
    pub next_token: Option<String>,
}

/// Who a target's credentials are, from STS `GetCallerIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

/// What the target loop and its collectors need from SES (and STS, to learn the account). Each call is
/// exactly one HTTP attempt, so the caller's rate limiter sees every request.
/// Implemented by [`AwsSes`] and by test doubles.
pub trait SesApi: Send + Sync + 'static {
    /// STS `GetCallerIdentity` with the target's own credentials.
    fn caller_identity(&self) -> impl Future<Output = Result<CallerIdentity, SesError>> + Send;

    /// `GetIdentityDkimAttributes` for at most [`MAX_IDENTITIES_PER_CALL`] identities.
    fn dkim_attributes(
        &self,
        identities: &[String],
    ) -> impl Future<Output = Result<HashMap<String, DkimAttributes>, SesError>> + Send;

    /// `GetIdentityVerificationAttributes` for at most [`MAX_IDENTITIES_PER_CALL`].
    fn verification_attributes(
        &self,
        identities: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Verification>, SesError>> + Send;

    /// `GetSendQuota`.
    fn send_quota(&self) -> impl Future<Output = Result<SendQuota, SesError>> + Send;

    /// `GetAccountSendingEnabled`; `None` when SES answered without `Enabled`.
    fn account_sending_enabled(
        &self,
    ) -> impl Future<Output = Result<Option<bool>, SesError>> + Send;

    /// The region the calls go to (the dns collector checks MX records against it).
    fn region(&self) -> &str;

    /// `GetIdentityMailFromDomainAttributes` for at most [`MAX_IDENTITIES_PER_CALL`]
    /// identities. Identities SES leaves out are absent from the map.
    fn mail_from_attributes(
        &self,
        identities: &[String],
    ) -> impl Future<Output = Result<HashMap<String, MailFromAttributes>, SesError>> + Send;

    /// One page of `ListIdentities`; `None` lists both domains and addresses.
    fn list_identities(
        &self,
        identity_type: Option<IdentityType>,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<IdentityPage, SesError>> + Send;
}

/// A call's answer, boxed so that [`Session`] is a trait object.
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, SesError>> + Send + 'a>>;

/// [`SesApi`] as a trait object: what collectors are handed, so that a collector is
/// a value in a list rather than a type parameter of the target loop. Every
/// [`SesApi`] is one.
pub trait Session: Send + Sync {
    fn region(&self) -> &str;
    fn caller_identity(&self) -> Reply<'_, CallerIdentity>;
    fn mail_from_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, MailFromAttributes>>;
    fn dkim_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, DkimAttributes>>;
    fn verification_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, Verification>>;
    fn send_quota(&self) -> Reply<'_, SendQuota>;
    fn account_sending_enabled(&self) -> Reply<'_, Option<bool>>;
    fn list_identities(
        &self,
        identity_type: Option<IdentityType>,
        next_token: Option<String>,
    ) -> Reply<'_, IdentityPage>;
}

impl<S: SesApi> Session for S {
    fn region(&self) -> &str {
        SesApi::region(self)
    }

    fn caller_identity(&self) -> Reply<'_, CallerIdentity> {
        Box::pin(SesApi::caller_identity(self))
    }

    fn mail_from_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, MailFromAttributes>> {
        Box::pin(SesApi::mail_from_attributes(self, identities))
    }

    fn dkim_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, DkimAttributes>> {
        Box::pin(SesApi::dkim_attributes(self, identities))
    }

    fn verification_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, Verification>> {
        Box::pin(SesApi::verification_attributes(self, identities))
    }

    fn send_quota(&self) -> Reply<'_, SendQuota> {
        Box::pin(SesApi::send_quota(self))
    }

    fn account_sending_enabled(&self) -> Reply<'_, Option<bool>> {
        Box::pin(SesApi::account_sending_enabled(self))
    }

    fn list_identities(
        &self,
        identity_type: Option<IdentityType>,
        next_token: Option<String>,
    ) -> Reply<'_, IdentityPage> {
        Box::pin(SesApi::list_identities(self, identity_type, next_token))
    }
}

/// What governs every call of a [`Governed`] session: the target loop's retries and
/// rate limiting. `attempt` makes one HTTP attempt each time it is called.
pub trait Policy: Send + Sync {
    /// `op` is `None` for STS `GetCallerIdentity`.
    fn govern<'a, T, F>(&'a self, op: Option<Operation>, attempt: F) -> Reply<'a, T>
    where
        T: Send + 'a,
        F: FnMut() -> Reply<'a, T> + Send + 'a;
}

/// A session whose every call goes through a [`Policy`]: the one place that names
/// each operation for it, so a new operation is added here, not in the policy.
pub struct Governed<P> {
    inner: Arc<dyn Session>,
    pub policy: P,
}

impl<P: Policy> Governed<P> {
    pub fn new(inner: Arc<dyn Session>, policy: P) -> Governed<P> {
        Governed { inner, policy }
    }
}

impl<P: Policy> Session for Governed<P> {
    fn region(&self) -> &str {
        self.inner.region()
    }

    fn caller_identity(&self) -> Reply<'_, CallerIdentity> {
        self.policy.govern(None, || self.inner.caller_identity())
    }

    fn mail_from_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, MailFromAttributes>> {
        let op = Some(Operation::GetIdentityMailFromDomainAttributes);
        self.policy
            .govern(op, move || self.inner.mail_from_attributes(identities))
    }

    fn dkim_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, DkimAttributes>> {
        let op = Some(Operation::GetIdentityDkimAttributes);
        self.policy
            .govern(op, move || self.inner.dkim_attributes(identities))
    }

    fn verification_attributes<'a>(
        &'a self,
        identities: &'a [String],
    ) -> Reply<'a, HashMap<String, Verification>> {
        let op = Some(Operation::GetIdentityVerificationAttributes);
        self.policy
            .govern(op, move || self.inner.verification_attributes(identities))
    }

    fn send_quota(&self) -> Reply<'_, SendQuota> {
        let op = Some(Operation::GetSendQuota);
        self.policy.govern(op, || self.inner.send_quota())
    }

    fn account_sending_enabled(&self) -> Reply<'_, Option<bool>> {
        let op = Some(Operation::GetAccountSendingEnabled);
        self.policy
            .govern(op, || self.inner.account_sending_enabled())
    }

    fn list_identities(
        &self,
        identity_type: Option<IdentityType>,
        next_token: Option<String>,
    ) -> Reply<'_, IdentityPage> {
        let op = Some(Operation::ListIdentities);
        self.policy.govern(op, move || {
            self.inner
                .list_identities(identity_type, next_token.clone())
        })
    }
}
