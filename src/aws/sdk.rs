//! [`AwsSdk`]: the door ([`Aws`]) over `aws-sdk-ses`, `aws-sdk-sesv2` and `aws-sdk-sts`, the only code that
//! builds SDK clients: one `match` arm per operation, SDK results become domain types and
//! SDK errors [`SesError`] kinds.
//!
//! The SDK's own retries are off, so that every HTTP attempt passes through the target's
//! limiter. The SDK signs, sends and parses errors; the body of a success is taken raw (by
//! [`RawBody`], an interceptor) and read by [`super::wire`], which says why.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ses::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::wire::{self, WireError};
use super::wire_json;
use super::{
    Aws, CallerIdentity, Cause, IdentityPage, Reply, Request, Response, SesError, TargetAws,
    EMAIL_IDENTITY_PAGE_SIZE, ENTITY_PAGE_SIZE, LIST_PAGE_SIZE,
};
use crate::model::IdentityType;

/// [`Aws`] over the real SDK, configured from the standard aws-config chain
/// (environment, profile, web identity, container and instance credentials), so
/// `AWS_ENDPOINT_URL_SES` (v1), `AWS_ENDPOINT_URL_SESV2` and `AWS_ENDPOINT_URL_STS`
/// (or `AWS_ENDPOINT_URL` for all) point it at an emulator.
#[derive(Debug, Clone)]
pub struct AwsSdk {
    client: aws_sdk_ses::Client,
    sesv2: aws_sdk_sesv2::Client,
    sts: aws_sdk_sts::Client,
    region: String,
}

/// A role a target assumes through STS `AssumeRole`: what the configuration says,
/// borrowed (the adapter does not depend on the configuration's types).
#[derive(Debug, Clone, Copy)]
pub struct AssumeRole<'a> {
    pub arn: &'a str,
    pub external_id: Option<&'a str>,
    pub session_name: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum SdkSetupError {
    #[error(
        "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION), or a region \
         in the AWS profile"
    )]
    NoRegion,
}

impl AwsSdk {
    /// Loads the SDK configuration. `timeout` bounds each HTTP attempt, connect
    /// included. Retries are disabled here because the target loop does them through its
    /// rate limiter; the SDK's would be extra, unaccounted requests.
    pub async fn from_env(timeout: Duration) -> Result<Self, SdkSetupError> {
        let sdk = base_config(timeout).await;
        let region = sdk.region().ok_or(SdkSetupError::NoRegion)?.to_string();
        Ok(AwsSdk::for_target(&sdk, &region, None).await)
    }

    /// The clients of one target: `region`, and the base credentials or, with a
    /// `role`, that role's (assumed and refreshed by the SDK's provider, whose STS
    /// calls go to the same region's endpoint).
    pub async fn for_target(
        base: &aws_config::SdkConfig,
        region: &str,
        role: Option<AssumeRole<'_>>,
    ) -> AwsSdk {
        let mut sdk = base
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        if let Some(role) = role {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.arn)
                .session_name(role.session_name)
                .region(aws_config::Region::new(region.to_owned()))
                .configure(&sdk);
            if let Some(id) = role.external_id {
                provider = provider.external_id(id);
            }
            let provider = provider.build().await;
            sdk = sdk
                .to_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        AwsSdk {
            client: aws_sdk_ses::Client::new(&sdk),
            sesv2: aws_sdk_sesv2::Client::new(&sdk),
            sts: aws_sdk_sts::Client::new(&sdk),
            region: region.to_owned(),
        }
    }

    /// The SDK with a given HTTP client, endpoint and credentials and nothing from
    /// the environment: how the tests inject a DNS resolver into the real SDK path
    /// (so an unresolvable endpoint is tested without a query leaving the machine).
    pub fn with_http_client(
        timeout: Duration,
        region: &str,
        endpoint: &str,
        credentials: aws_credential_types::Credentials,
        http_client: aws_smithy_runtime_api::client::http::SharedHttpClient,
    ) -> AwsSdk {
        let conf = aws_sdk_ses::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(credentials.clone())
            .http_client(http_client.clone())
            .retry_config(RetryConfig::disabled())
            .timeout_config(attempt_timeouts(timeout))
            .build();
        let sesv2 = aws_sdk_sesv2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(credentials.clone())
            .http_client(http_client.clone())
            .retry_config(RetryConfig::disabled())
            .timeout_config(attempt_timeouts(timeout))
            .build();
        let sts = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(credentials)
            .http_client(http_client)
            .retry_config(RetryConfig::disabled())
            .timeout_config(attempt_timeouts(timeout))
            .build();
        AwsSdk {
            client: aws_sdk_ses::Client::from_conf(conf),
            sesv2: aws_sdk_sesv2::Client::from_conf(sesv2),
            sts: aws_sdk_sts::Client::from_conf(sts),
            region: region.to_owned(),
        }
    }
}

/// The SDK configuration from the standard chain, with the SDK's retries off and
/// `timeout` on each attempt; each target derives its clients from it.
pub async fn base_config(timeout: Duration) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(attempt_timeouts(timeout))
        .load()
        .await
}

/// The region of the standard chain (environment, profile), for the implicit target.
pub fn default_region(sdk: &aws_config::SdkConfig) -> Result<String, SdkSetupError> {
    sdk.region()
        .map(ToString::to_string)
        .ok_or(SdkSetupError::NoRegion)
}

/// `timeout` bounds each HTTP attempt, connecting (name resolution included) too.
fn attempt_timeouts(timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(timeout)
        .operation_attempt_timeout(timeout)
        .build()
}

/// Sends a request built from the SDK's fluent builder with a [`RawBody`] attached,
/// classifies a failure, and parses the answer's body with `parse` (one of
/// [`super::wire`]'s readers): the one way every attribute and account call goes.
macro_rules! read_raw {
    ($builder:expr, $parse:path) => {{
        let raw = RawBody::default();
        $builder
            .customize()
            .interceptor(raw.clone())
            .send()
            .await
            .map_err(classify)?;
        raw.parse($parse)?
    }};
}

impl Aws for AwsSdk {
    fn call<'a>(&'a self, request: Request<'a>) -> Reply<'a, Response> {
        let (ses, v2) = (&self.client, &self.sesv2);
        Box::pin(async move {
            Ok(match request {
                Request::ListIdentities {
                    identity_type,
                    next_token,
                } => {
                    Response::ListIdentities(self.list_identities(identity_type, next_token).await?)
                }
                Request::GetIdentityMailFromDomainAttributes { identities } => {
                    Response::GetIdentityMailFromDomainAttributes(read_raw!(
                        ses.get_identity_mail_from_domain_attributes()
                            .set_identities(Some(identities.to_vec())),
                        wire::mail_from
                    ))
                }
                Request::GetIdentityDkimAttributes { identities } => {
                    Response::GetIdentityDkimAttributes(read_raw!(
                        ses.get_identity_dkim_attributes()
                            .set_identities(Some(identities.to_vec())),
                        wire::dkim
                    ))
                }
                Request::GetIdentityVerificationAttributes { identities } => {
                    Response::GetIdentityVerificationAttributes(read_raw!(
                        ses.get_identity_verification_attributes()
                            .set_identities(Some(identities.to_vec())),
                        wire::verification
                    ))
                }
                Request::GetSendQuota {} => {
                    Response::GetSendQuota(read_raw!(ses.get_send_quota(), wire::send_quota))
                }
                Request::GetAccountSendingEnabled {} => Response::GetAccountSendingEnabled(
                    read_raw!(ses.get_account_sending_enabled(), wire::sending_enabled),
                ),
                Request::GetAccount {} => {
                    Response::GetAccount(read_raw!(v2.get_account(), wire_json::account))
                }
                Request::ListReputationEntities { next_token } => {
                    Response::ListReputationEntities(read_raw!(
                        v2.list_reputation_entities()
                            .page_size(ENTITY_PAGE_SIZE)
                            .set_next_token(next_token),
                        wire_json::reputation_entities
                    ))
                }
                Request::GetEmailIdentity { identity } => Response::GetEmailIdentity(read_raw!(
                    v2.get_email_identity().email_identity(identity),
                    wire_json::email_identity
                )),
                Request::ListEmailIdentities { next_token } => {
                    Response::ListEmailIdentities(read_raw!(
                        v2.list_email_identities()
                            .page_size(EMAIL_IDENTITY_PAGE_SIZE)
                            .set_next_token(next_token),
                        wire_json::email_identities
                    ))
                }
            })
        })
    }
}

impl TargetAws for AwsSdk {
    fn region(&self) -> &str {
        &self.region
    }

    fn caller_identity(&self) -> Reply<'_, CallerIdentity> {
        Box::pin(async move {
            let out = self
                .sts
                .get_caller_identity()
                .send()
                .await
                .map_err(classify)?;
            match out.account() {
                Some(account) if !account.is_empty() => Ok(CallerIdentity {
                    account: account.to_owned(),
                    arn: out.arn().unwrap_or("").to_owned(),
                }),
                // Without an account the series cannot be labelled: not a value to guess.
                _ => Err(SesError::Server {
                    status: 200,
                    message: "GetCallerIdentity answered without an Account".into(),
                }),
            }
        })
    }
}

impl AwsSdk {
    async fn list_identities(
        &self,
        identity_type: Option<IdentityType>,
        next_token: Option<String>,
    ) -> Result<IdentityPage, SesError> {
        let out = self
            .client
            .list_identities()
            .set_identity_type(identity_type.map(|t| match t {
                IdentityType::Domain => aws_sdk_ses::types::IdentityType::Domain,
                IdentityType::EmailAddress => aws_sdk_ses::types::IdentityType::EmailAddress,
            }))
            .max_items(LIST_PAGE_SIZE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(classify)?;
        Ok(IdentityPage {
            identities: out.identities().to_vec(),
            // An empty token is no token: taking it for one would loop forever.
            next_token: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        })
    }
}

/// Keeps the raw body of a call's answer, as the SDK read it off the wire, for
/// [`super::wire`] to parse. One per call (`.customize().interceptor(..)`): the
/// SDK has deserialised by then, so the body is in memory and only copied.
#[derive(Debug, Clone, Default)]
struct RawBody(std::sync::Arc<std::sync::Mutex<Option<bytes::Bytes>>>);

impl RawBody {
    /// Parses the kept body; an answer the SDK accepted but that we cannot read is a
    /// server fault (a later attempt may get a good one), never an empty result.
    fn parse<T>(&self, read: impl FnOnce(&str) -> Result<T, WireError>) -> Result<T, SesError> {
        let body = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| SesError::Server {
                status: 200,
                message: "the answer's body was not kept".into(),
            })?;
        let text = std::str::from_utf8(&body).map_err(|_| SesError::Server {
            status: 200,
            message: "the answer is not UTF-8".into(),
        })?;
        read(text).map_err(|err| SesError::Server {
            status: 200,
            message: format!("unreadable answer: {err}"),
        })
    }
}

impl Intercept for RawBody {
    fn name(&self) -> &'static str {
        "RawBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(bytes::Bytes::copy_from_slice(bytes));
        }
        Ok(())
    }
}

/// Error codes AWS uses for throttling across its Query and REST-JSON APIs.
const THROTTLING_CODES: [&str; 6] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

fn classify<E>(err: SdkError<E, HttpResponse>) -> SesError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // The whole chain, e.g. "dispatch failure: io error: Connection refused".
    let text = format!("{}", DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("").to_owned();
            let message = ctx.err().message().unwrap_or("").to_owned();
            if status == 429 || THROTTLING_CODES.contains(&code.as_str()) {
                SesError::Throttled { code, message }
            } else if (400..500).contains(&status) && !code.is_empty() {
                SesError::Client {
                    code,
                    status,
                    message,
                }
            } else {
                // 5xx, or a body that is neither a response nor an error: the server
                // is at fault, and a later attempt may work.
                let message = if message.is_empty() { text } else { message };
                SesError::Server { status, message }
            }
        }
        SdkError::ResponseError(ctx) => SesError::Server {
            status: ctx.raw().status().as_u16(),
            message: text,
        },
        SdkError::TimeoutError(_) => SesError::Timeout(Cause::caused_by(text, err)),
        SdkError::DispatchFailure(ctx) if ctx.is_timeout() => {
            SesError::Timeout(Cause::caused_by(text, err))
        }
        SdkError::DispatchFailure(ctx) if ctx.is_user() => {
            SesError::Construction(Cause::caused_by(text, err))
        }
        // No credentials could be loaded: the request never left, and retrying the
        // same chain will not help until the environment changes.
        SdkError::DispatchFailure(_) if caused_by_credentials(&err) => {
            SesError::Construction(Cause::caused_by(text, err))
        }
        SdkError::ConstructionFailure(_) => SesError::Construction(Cause::caused_by(text, err)),
        _ => SesError::Transport(Cause::caused_by(text, err)),
    }
}

/// Whether a credentials provider failure is anywhere in the error's source chain.
fn caused_by_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    #[test]
    fn only_client_errors_are_final() {
        let throttled = SesError::Throttled {
            code: "Throttling".into(),
            message: "Rate exceeded".into(),
        };
        assert!(throttled.retryable());
        assert_eq!(throttled.outcome(), Outcome::Throttled);
        let denied = SesError::Client {
            code: "AccessDenied".into(),
            status: 403,
            message: String::new(),
        };
        assert!(!denied.retryable());
        assert_eq!(denied.outcome(), Outcome::ClientError);
        assert!(SesError::Timeout(String::new().into()).retryable());
        assert_eq!(
            SesError::Transport(String::new().into()).outcome(),
            Outcome::TransportError
        );
    }

    #[test]
    fn an_sdk_failure_keeps_its_cause_as_the_source() {
        use std::error::Error as _;
        let sdk: SdkError<aws_sdk_ses::operation::get_send_quota::GetSendQuotaError, HttpResponse> =
            SdkError::timeout_error(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        let err = classify(sdk);
        assert_eq!(err.outcome(), Outcome::Timeout);
        let cause = err.source().expect("the cause");
        let sdk_error = cause.source().expect("the SDK's error, not only its text");
        let io = sdk_error.source().expect("the SDK keeps its own source");
        assert_eq!(io.to_string(), "slow");
    }
}
