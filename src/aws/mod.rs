//! The one door to AWS: [`Aws`], one HTTP attempt per call, an SES operation as a
//! [`Request`] answered by a [`Response`], STS `GetCallerIdentity` by a method of its own;
//! the operations declared once in the [`operations!`] table; failures as [`SesError`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::model::{
    AccountDetails, DkimAttributes, EmailIdentity, EmailIdentityPage, EntityPage, IdentityType,
    MailFromAttributes, Outcome, SendQuota, Verification,
};

pub mod sdk;
pub mod wire;
pub mod wire_json;

pub use sdk::AwsSdk;

/// The most identities one `GetIdentity*Attributes` call takes (MAIL FROM, DKIM
/// and verification alike).
pub const MAX_IDENTITIES_PER_CALL: usize = 100;
/// The largest page `ListIdentities` returns.
pub const LIST_PAGE_SIZE: i32 = 1000;
/// The largest page SESv2 `ListEmailIdentities` returns.
pub const EMAIL_IDENTITY_PAGE_SIZE: i32 = 1000;
/// The page asked of SESv2 `ListReputationEntities`. SES's model states no maximum;
/// 100 is the page size SESv2's other paged lists accept, so it is not refused.
pub const ENTITY_PAGE_SIZE: i32 = 100;

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

/// A call's answer, boxed so that [`Aws`] is a trait object.
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, SesError>> + Send + 'a>>;

/// The door: what the exporter asks of AWS. Each call is exactly one HTTP attempt,
/// so a wrapper's rate limiter sees every request. Implemented by [`AwsSdk`], by the
/// target's retrying wrapper ([`crate::target::retry::Retrying`]) and by the tests'
/// scripted double.
pub trait Aws: Send + Sync {
    /// One attempt of an operation of the table. The answer's variant is the
    /// request's.
    fn call<'a>(&'a self, request: Request<'a>) -> Reply<'a, Response>;
}

/// A target's door: the door with the target's credentials and region, which also
/// says its region and who its credentials are. An exporter-wide client (one that
/// belongs to no target, such as Organizations') is an [`Aws`] only.
pub trait TargetAws: Aws {
    /// The region the calls go to (the dns collector checks MX records against it).
    fn region(&self) -> &str;

    /// STS `GetCallerIdentity` with the target's own credentials: its account.
    fn caller_identity(&self) -> Reply<'_, CallerIdentity>;
}

impl<A: Aws + ?Sized> Aws for Arc<A> {
    fn call<'a>(&'a self, request: Request<'a>) -> Reply<'a, Response> {
        (**self).call(request)
    }
}

impl<A: TargetAws + ?Sized> TargetAws for Arc<A> {
    fn region(&self) -> &str {
        (**self).region()
    }

    fn caller_identity(&self) -> Reply<'_, CallerIdentity> {
        (**self).caller_identity()
    }
}

/// The AWS services the exporter calls through the door, each with the prefix of
/// its IAM actions. SES v1 and v2 (two SDK crates) are one service: one IAM prefix, and SES's
/// per-operation rate limits hold across both APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Ses,
}

impl Service {
    /// The prefix of the service's IAM actions.
    pub fn iam_prefix(self) -> &'static str {
        match self {
            Service::Ses => "ses",
        }
    }
}

/// Declares the operations once. Each row gives the operation's name (its label
/// value and IAM action), its service, the typed method collectors call, its
/// arguments and what it answers. From the table come [`Operation`] (label values,
/// `ALL`, one limiter each), [`Request`], [`Response`] and the typed methods on
/// `dyn Aws`, which send the request and unpack the answer of the same variant.
macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        $op:ident ($service:ident): $method:ident($($arg:ident: $ty:ty),*) -> $out:ty;
    )+) => {
        /// The SES API operations the exporter calls; each has its own rate limit at
        /// AWS, and so its own limiter and its own label value (`operation`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $($(#[$doc])* $op,)+
        }

        impl Operation {
            /// Every operation, in declaration order (the order of request series).
            pub const ALL: [Operation; [$(stringify!($op)),+].len()] = [$(Operation::$op),+];

            /// The label value: the operation's name in the AWS API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$op => stringify!($op),)+
                }
            }

            pub fn service(self) -> Service {
                match self {
                    $(Operation::$op => Service::$service,)+
                }
            }

            /// The IAM action that allows it, e.g. `ses:ListIdentities`.
            pub fn iam_action(self) -> String {
                format!("{}:{}", self.service().iam_prefix(), self.as_str())
            }
        }

        /// One request of an operation, with its arguments.
        #[derive(Debug, Clone)]
        pub enum Request<'a> {
            $($(#[$doc])* $op { $($arg: $ty),* },)+
        }

        impl Request<'_> {
            pub fn operation(&self) -> Operation {
                match self {
                    $(Request::$op { .. } => Operation::$op,)+
                }
            }
        }

        /// The answer of an operation, the variant of its request.
        #[derive(Debug, Clone)]
        pub enum Response {
            $($op($out),)+
        }

        impl Response {
            pub fn operation(&self) -> Operation {
                match self {
                    $(Response::$op(_) => Operation::$op,)+
                }
            }
        }

        impl<'s> dyn Aws + 's {
            $(
                $(#[$doc])*
                // `'a` ties an argument borrowed for the request to the call; the
                // methods without such an argument could elide it.
                #[allow(clippy::needless_lifetimes)]
                pub async fn $method<'a>(&'a self, $($arg: $ty),*) -> Result<$out, SesError> {
                    match self.call(Request::$op { $($arg),* }).await? {
                        Response::$op(out) => Ok(out),
                        other => Err(mismatch(Operation::$op, &other)),
                    }
                }
            )+
        }
    };
}

/// An answer of another operation's variant: a bug in an [`Aws`] implementation,
/// reported as an unreadable answer rather than a panic.
fn mismatch(asked: Operation, answer: &Response) -> SesError {
    SesError::Server {
        status: 200,
        message: format!(
            "asked {}, answered as {}",
            asked.as_str(),
            answer.operation().as_str()
        ),
    }
}

operations! {
    /// One page of `ListIdentities`; `None` lists both domains and addresses.
    ListIdentities(Ses): list_identities(identity_type: Option<IdentityType>, next_token: Option<String>) -> IdentityPage;
    /// `GetIdentityMailFromDomainAttributes` for at most [`MAX_IDENTITIES_PER_CALL`]
    /// identities; identities SES leaves out are absent from the map.
    GetIdentityMailFromDomainAttributes(Ses): mail_from_attributes(identities: &'a [String]) -> HashMap<String, MailFromAttributes>;
    /// `GetIdentityDkimAttributes` for at most [`MAX_IDENTITIES_PER_CALL`] identities.
    GetIdentityDkimAttributes(Ses): dkim_attributes(identities: &'a [String]) -> HashMap<String, DkimAttributes>;
    /// `GetIdentityVerificationAttributes` for at most [`MAX_IDENTITIES_PER_CALL`].
    GetIdentityVerificationAttributes(Ses): verification_attributes(identities: &'a [String]) -> HashMap<String, Verification>;
    /// `GetSendQuota`.
    GetSendQuota(Ses): send_quota() -> SendQuota;
    /// `GetAccountSendingEnabled`; `None` when SES answered without `Enabled`.
    GetAccountSendingEnabled(Ses): account_sending_enabled() -> Option<bool>;
    /// SESv2 `GetAccount`: enforcement status, sandbox, sending, quota, review, VDM.
    GetAccount(Ses): account() -> AccountDetails;
    /// One page of SESv2 `ListReputationEntities` ([`ENTITY_PAGE_SIZE`]).
    ListReputationEntities(Ses): reputation_entities(next_token: Option<String>) -> EntityPage;
    /// SESv2 `GetEmailIdentity` for one identity.
    GetEmailIdentity(Ses): email_identity(identity: &'a str) -> EmailIdentity;
    /// One page of SESv2 `ListEmailIdentities` ([`EMAIL_IDENTITY_PAGE_SIZE`]).
    ListEmailIdentities(Ses): email_identities(next_token: Option<String>) -> EmailIdentityPage;
}
